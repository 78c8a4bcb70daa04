"""Static word vectors (GloVe, word2vec, fastText) as an encoder with no transformer blocks.

The vectors become one ``nn.Embedding`` whose output is hidden state 0, and a word-level fast tokenizer,
so the feature cache, pooling, every task and head, and both ways work on them unchanged.

- Rows: 0 is ``[PAD]`` (zeros, never trained), 1 is ``[UNK]``, then the file's words in file order.
- Out of vocabulary (``oov``): ``zero`` (the UNK row is zeros), ``random`` (a normal row, seed 13, scaled
  to the vectors' per-dimension std), ``learned`` (like random, and it trains when the vectors are
  updated; ``zero`` and ``random`` keep the UNK row fixed even then).
- Lowercasing follows the vectors: when no word among them changes under ``str.lower()``, the tokenizer
  lowercases its input (GloVe 6B); otherwise the case is kept.
- ``scratch``: no file at all; the training split's own words (case kept) with random N(0, 0.1^2) rows
  and a learned UNK, built by ``lmtransfer train`` and trained with the head (the from-scratch baseline).
- Words are split as BERT's pre-tokenizer does (on whitespace and punctuation), which is also how
  ``lmtransfer train-vectors`` splits its corpus, so trained vectors and lookups agree.

Reading vectors files (GloVe, word2vec, fastText) is ``lmtransfer.encoders.vector_files``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from torch import Tensor, nn
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast
from transformers.modeling_outputs import BaseModelOutput

from lmtransfer.core.choices import OOV_POLICIES
from lmtransfer.core.errors import DataError, ModelError

PAD, UNK = "[PAD]", "[UNK]"
OOV_SEED = 13


class StaticVectorsConfig(PretrainedConfig):
    model_type = "static-vectors"

    def __init__(
        self, vocab_size: int = 2, hidden_size: int = 1, lowercase: bool = False, oov: str = "zero", **kwargs
    ) -> None:
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.lowercase, self.oov = lowercase, oov
        kwargs["num_hidden_layers"] = 0
        super().__init__(**kwargs)


class StaticVectorsModel(PreTrainedModel):
    """One embedding table; ``hidden_states`` is ``(vectors,)``, so ``features.layers: all`` is [0]."""

    config_class = StaticVectorsConfig
    base_model_prefix = "static_vectors"

    def __init__(self, config: StaticVectorsConfig) -> None:
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=0)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Embedding):  # only rows a checkpoint lacks; vectors are copied in after
            nn.init.zeros_(module.weight)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        output_hidden_states: bool = False,
        return_dict: bool = True,
        **kwargs,
    ) -> BaseModelOutput:
        vectors = self.embeddings(input_ids)  # (B, T, D)
        if self.config.oov != "learned" and vectors.requires_grad:  # UNK positions send no gradient to their row
            vectors = torch.where((input_ids == 1)[..., None], vectors.detach(), vectors)  # (B, T, D)
        return BaseModelOutput(last_hidden_state=vectors, hidden_states=(vectors,))


def split_words(lowercase: bool) -> Tokenizer:
    """A tokenizer without a vocabulary yet: the normalizer and word splitting that lookups use."""
    tokenizer = Tokenizer(models.WordLevel({PAD: 0, UNK: 1}, unk_token=UNK))
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


def word_tokenizer(words: Sequence[str], lowercase: bool) -> PreTrainedTokenizerFast:
    """Word-level fast tokenizer: ``[PAD]`` 0, ``[UNK]`` 1, ``words`` from 2; no special tokens added."""
    tokenizer = split_words(lowercase)
    tokenizer.model = models.WordLevel({PAD: 0, UNK: 1, **dict(zip(words, range(2, len(words) + 2)))}, unk_token=UNK)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, unk_token=UNK, model_input_names=["input_ids", "attention_mask"]
    )


def is_lowercase(words: Sequence[str]) -> bool:
    """True when no word changes under lowercasing (one string comparison, not a loop per word)."""
    text = "\n".join(words)
    return text == text.lower()


def static_model(
    words: list[str], vectors: np.ndarray, oov: str = "zero", lowercase: bool | None = None
) -> tuple[StaticVectorsModel, PreTrainedTokenizerFast]:
    """The model and tokenizer for ``words`` and their (N, D) ``vectors``."""
    if oov not in OOV_POLICIES:
        raise ModelError(f"unknown OOV policy '{oov}' (choose one of {', '.join(OOV_POLICIES)})", field="oov")
    reserved = [words.index(name) for name in (PAD, UNK) if name in words]  # their file rows are dropped
    if reserved:
        words = [w for i, w in enumerate(words) if i not in reserved]
        vectors = np.delete(vectors, reserved, axis=0)  # (N, D)
    lowercase = is_lowercase(words) if lowercase is None else lowercase
    count, dim = vectors.shape
    matrix = np.zeros((count + 2, dim), dtype=np.float32)  # (V, D)
    matrix[2:] = vectors
    if oov != "zero":
        matrix[1] = np.random.default_rng(OOV_SEED).standard_normal(dim) * vectors.std(axis=0)  # (D,)
    config = StaticVectorsConfig(vocab_size=count + 2, hidden_size=dim, lowercase=lowercase, oov=oov)
    model = StaticVectorsModel(config)
    with torch.no_grad():
        model.embeddings.weight.copy_(torch.from_numpy(matrix))
    return model, word_tokenizer(words, lowercase)


def scratch_vocabulary(texts: Sequence[str], min_count: int = 1) -> list[str]:
    """The words of ``texts`` (split as lookups split them, case kept) seen at least ``min_count`` times,
    most frequent first."""
    split = pre_tokenizers.BertPreTokenizer()
    counts = Counter(word for text in texts for word, _ in split.pre_tokenize_str(text))
    kept = [word for word, n in counts.items() if n >= min_count and word not in (PAD, UNK)]
    return sorted(kept, key=lambda word: (-counts[word], word))


def scratch_model(
    texts: Sequence[str], dim: int = 100, min_count: int = 1, seed: int = OOV_SEED
) -> tuple[StaticVectorsModel, PreTrainedTokenizerFast]:
    """Word vectors to train from scratch: the training vocabulary, N(0, 0.1^2) rows, a learned [UNK]."""
    words = scratch_vocabulary(texts, min_count)
    if not words:
        raise DataError(f"no word is seen {min_count} times in the training data", field="encoder.min_count")
    vectors = np.random.default_rng(seed).normal(0.0, 0.1, (len(words), dim)).astype(np.float32)  # (N, D)
    return static_model(words, vectors, oov="learned", lowercase=False)
