"""Causal (decoder-only) language models with their LM head, for scoring text (prompting): loaded as encoders
are, from a local folder, a hub id (the local cache first), an alias such as ``smollm2``, or GGUF weights
(``encoders.gguf``), dequantised to float32.

The tokenizer is made ready once (``encoders.decoders.prepare_tokenizer``): the end-of-sequence token pads
where there is no padding token, on the right, so whoever batches texts passes the attention mask (and,
after a cached prefix, the positions), and padded positions are never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lmtransfer.core.errors import ModelError
from lmtransfer.encoders.decoders import is_causal, prepare_tokenizer
from lmtransfer.encoders.gguf import converted, gguf_location
from lmtransfer.encoders.loading import load_local_first
from lmtransfer.encoders.quiet import quiet_loading


@dataclass
class CausalLM:
    """A causal LM ready to score text: the model (eval mode, float32), its tokenizer (a padding token set,
    right padding) and where it came from."""

    name: str
    source: str
    model: Any  # transformers' *ForCausalLM
    tokenizer: Any
    gguf_file: str | None = None

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


def load_causal_lm(name: str, *, revision: str | None = None, trust_remote_code: bool = False) -> CausalLM:
    """Load the causal LM ``name`` (a folder, a hub id, an alias such as ``smollm2``, or GGUF weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, gguf = gguf_location(name)
    common = {"trust_remote_code": trust_remote_code, "revision": revision}

    def load(source: str, local_only: bool) -> tuple[Any, Any]:
        with quiet_loading():
            config = AutoConfig.from_pretrained(source, local_files_only=local_only, **common)
            if not is_causal(config):  # (BERT has a causal-LM class too, but it is no decoder-only LM)
                raise ModelError(
                    f"'{name}' is a {config.model_type} model, not a causal (decoder-only) language model: prompting "
                    "needs one, such as smollm2, a .gguf file, or a Llama, Qwen or GPT-2 folder or hub id",
                    field="model",
                )
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only, **common)
            model = AutoModelForCausalLM.from_pretrained(
                source, local_files_only=local_only, dtype=torch.float32, **common
            )
        return model, tokenizer

    # GGUF: read once, then from its float32 copy (encoders.gguf.converted); its identity stays the file
    model, tokenizer = load(str(converted(folder, gguf)), True) if gguf else load_local_first(folder, load)
    model.eval()
    return CausalLM(name, folder, model, prepare_tokenizer(tokenizer), gguf)
