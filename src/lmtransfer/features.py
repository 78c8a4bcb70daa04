"""From encoder hidden states to features: choose layers, then pool per text, per word or keep tokens.

The same functions serve extraction (frozen encoder, results cached) and live use (fine-tuning, or
checking that a head gives the same output on live and cached features).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class FeatureSpec:
    """What to take from an encoder: hidden-state indices, granularity and pooling, max length."""

    layers: tuple[int, ...]
    granularity: str = "sentence"  # sentence | word | token
    pooling: str = "mean"  # sentence: cls | mean | max; word: first | last | mean
    max_length: int = 256


def stack_layers(hidden_states: Sequence[Tensor], layers: Sequence[int]) -> Tensor:
    """Tuple of (B, T, H) hidden states -> (B, L, T, H) for the chosen layer indices."""
    return torch.stack([hidden_states[i] for i in layers], dim=1)  # (B, L, T, H)


def pool_sentence(h: Tensor, mask: Tensor, how: str) -> Tensor:
    """(B, L, T, H) and a (B, T) attention mask -> (B, L, H)."""
    if how == "cls":
        return h[:, :, 0]  # (B, L, H)
    m = mask[:, None, :, None].to(h.dtype)  # (B, 1, T, 1)
    if how == "mean":
        return (h * m).sum(dim=2) / m.sum(dim=2).clamp(min=1)  # (B, L, H)
    if how == "max":
        return h.masked_fill(m == 0, torch.finfo(h.dtype).min).amax(dim=2)  # (B, L, H)
    raise ValueError(f"unknown sentence pooling '{how}'")


def pool_words(h: Tensor, word_ids: Sequence[Sequence[int | None]], how: str) -> list[Tensor]:
    """(B, L, T, H) and per-example token->word maps -> one (W_i, L, H) tensor per example.

    Special tokens (word id None) are dropped; a word whose subwords were all truncated away is absent.
    """
    out = []
    for b, ids in enumerate(word_ids):
        positions = [t for t, w in enumerate(ids) if w is not None]
        words = torch.tensor([ids[t] for t in positions], dtype=torch.long)  # (T',)
        tokens = h[b, :, positions].transpose(0, 1)  # (T', L, H)
        n_words = int(words.max()) + 1 if len(positions) else 0
        if how == "mean":
            sums = tokens.new_zeros(n_words, *tokens.shape[1:]).index_add_(0, words, tokens)  # (W, L, H)
            counts = torch.bincount(words, minlength=n_words).clamp(min=1).to(tokens.dtype)  # (W,)
            pooled = sums / counts[:, None, None]
        elif how in ("first", "last"):
            order = range(len(positions)) if how == "last" else reversed(range(len(positions)))
            pick = torch.zeros(n_words, dtype=torch.long)
            for t in order:  # the last write wins: the last subword, or (reversed) the first
                pick[words[t]] = t
            pooled = tokens[pick]  # (W, L, H)
        else:
            raise ValueError(f"unknown word pooling '{how}'")
        present = torch.bincount(words, minlength=n_words) > 0
        out.append(pooled[present])
    return out


def token_rows(h: Tensor, mask: Tensor) -> list[Tensor]:
    """(B, L, T, H) -> one (T_i, L, H) tensor per example holding its real (unpadded) tokens."""
    lengths = mask.sum(dim=1).tolist()
    return [h[b, :, :n].transpose(0, 1) for b, n in enumerate(lengths)]


def hidden_states(encoder: nn.Module, inputs: dict[str, Tensor], compute: str = "float32") -> list[Tensor]:
    """All hidden states of ``encoder`` as float32, computed in float32 or under bfloat16 autocast.

    bfloat16 roughly halves the time on hardware with bfloat16 matrix units (recent GPUs, CPUs with
    AMX or AVX512-BF16); on other CPUs torch emulates it and it is several times slower than float32.
    """
    device = next(encoder.parameters()).device.type
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=compute == "bfloat16"):
        out = encoder(**inputs, output_hidden_states=True)
    return [h.float() for h in out.hidden_states]


def encoder_inputs(batch: dict[str, Tensor], uses_token_type_ids: bool) -> dict[str, Tensor]:
    """The keyword arguments an encoder takes; ``token_type_ids`` only where the model has them."""
    keys = ("input_ids", "attention_mask", "token_type_ids") if uses_token_type_ids else ("input_ids", "attention_mask")
    return {k: batch[k] for k in keys if k in batch}


class EncoderFeatures(nn.Module):
    """Live sentence features: encoder -> chosen layers -> pooled (B, L, H).

    Whether the encoder trains is up to the caller; this module only routes tensors.
    """

    def __init__(
        self, encoder: nn.Module, spec: FeatureSpec, uses_token_type_ids: bool, compute: str = "float32"
    ) -> None:
        super().__init__()
        if spec.granularity != "sentence":
            raise ValueError("live features are pooled per sentence; use the cache for word or token features")
        self.encoder = encoder
        self.spec = spec
        self.uses_token_type_ids = uses_token_type_ids
        self.compute = compute

    def forward(self, **batch: Tensor) -> Tensor:
        states = hidden_states(self.encoder, encoder_inputs(batch, self.uses_token_type_ids), self.compute)
        h = stack_layers(states, self.spec.layers)  # (B, L, T, H)
        return pool_sentence(h, batch["attention_mask"], self.spec.pooling)  # (B, L, H)
