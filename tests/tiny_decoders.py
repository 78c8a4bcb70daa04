"""Tiny random decoder-only LMs saved as their hub checkpoints are (with the LM head), built offline: a Llama with
a word-level tokenizer and a GPT-2 with a byte-level BPE one, neither with a padding token."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch


def build_tiny_llama(directory: Path, words: Sequence[str], seed: int = 0) -> Path:
    """A Llama of a few thousand parameters over ``words`` (whitespace-split; anything else is <unk>), whose
    tokenizer has no padding token and no template tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(dict.fromkeys(["<unk>", "<s>", "</s>", *words]))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_tiny_gpt2(directory: Path, texts: Sequence[str]) -> Path:
    """A GPT-2 of 2 blocks and width 16 with a byte-level BPE tokenizer trained on ``texts`` (its
    post-processor the byte-level one, which adds no tokens), ``<|endoftext|>`` its only special token."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    eos = "<|endoftext|>"
    core = ByteLevelBPETokenizer()
    core.train_from_iterator(list(texts), vocab_size=300, min_frequency=1, special_tokens=[eos])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core._tokenizer, bos_token=eos, eos_token=eos)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=16, n_layer=2, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_tiny_gguf(path: Path, seed: int = 0, hidden: int = 16, blocks: int = 2, heads: int = 2) -> Path:
    """A Llama of width ``hidden`` as a GGUF file (float32 tensors, random by ``seed``) with a byte-level BPE
    vocabulary of the lowercase letters, one merge and ``<|endoftext|>``, written with the ``gguf`` package."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens = ["<|endoftext|>", *(chr(c) for c in range(ord("a"), ord("z") + 1)), "Ġ", "th"]
    ffn = 2 * hidden
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_block_count(blocks)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3] + [1] * (len(tokens) - 1))  # 3: a control token
    writer.add_token_merges(["t h"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    shapes = {"token_embd": (len(tokens), hidden)}
    for i in range(blocks):
        square = {f"blk.{i}.attn_{name}": (hidden, hidden) for name in ("q", "k", "v", "output")}
        shapes |= square | {f"blk.{i}.ffn_gate": (ffn, hidden), f"blk.{i}.ffn_up": (ffn, hidden)}
        shapes[f"blk.{i}.ffn_down"] = (hidden, ffn)
    for name, shape in shapes.items():
        writer.add_tensor(f"{name}.weight", (rng.standard_normal(shape) * 0.1).astype(np.float32))
    norms = ["output_norm", *(f"blk.{i}.{kind}_norm" for i in range(blocks) for kind in ("attn", "ffn"))]
    for name in norms:
        writer.add_tensor(f"{name}.weight", np.ones(hidden, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
