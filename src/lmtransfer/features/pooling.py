"""From encoder hidden states to features: choose layers, then pool per text, per word or keep tokens.

The same functions serve extraction (frozen encoder, results cached) and live use (fine-tuning, or
checking that a head gives the same output on live and cached features).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lmtransfer.core.devices import resolve_compute


@dataclass(frozen=True)
class FeatureSpec:
    """What to take from an encoder: hidden-state indices, granularity and pooling, max length, and for a
    text longer than that, windows (sentence level: one pooled vector per window) instead of a cut."""

    layers: tuple[int, ...]
    granularity: str = "sentence"  # sentence | word | token
    pooling: str = "mean"  # sentence: cls | mean | max | last; word: first | last | mean
    max_length: int = 256
    window_stride: int | None = None  # tokens consecutive windows share; None: texts are cut at max_length


def stack_layers(hidden_states: Sequence[Tensor], layers: Sequence[int]) -> Tensor:
    """Tuple of (B, T, H) hidden states -> (B, L, T, H) for the chosen layer indices."""
    return torch.stack([hidden_states[i] for i in layers], dim=1)  # (B, L, T, H)


def pool_sentence(h: Tensor, mask: Tensor, how: str) -> Tensor:
    """(B, L, T, H) and a (B, T) attention mask -> (B, L, H). ``last`` is the last real token's state: a causal
    LM's summary of the text, since only that token has seen all of it."""
    if how == "cls":
        return h[:, :, 0]  # (B, L, H)
    if how == "last":
        positions = torch.arange(mask.shape[1], device=mask.device)  # (T,)
        last = (mask.long() * positions).argmax(dim=1)  # (B,) the last position the mask keeps
        return h[torch.arange(h.shape[0], device=h.device), :, last]  # (B, L, H)
    m = mask[:, None, :, None].to(h.dtype)  # (B, 1, T, 1)
    if how == "mean":
        return (h * m).sum(dim=2) / m.sum(dim=2).clamp(min=1)  # (B, L, H)
    if how == "max":
        return h.masked_fill(m == 0, torch.finfo(h.dtype).min).amax(dim=2)  # (B, L, H)
    raise ValueError(f"unknown sentence pooling '{how}'")


def word_spans(word_ids: Sequence[int | None]) -> list[tuple[int, int]]:
    """First and last token (inclusive) of each word present in a token->word map, in word order.

    A word whose subwords were all cut away by truncation is absent (the caller checks for that).
    """
    spans: dict[int, list[int]] = {}
    for t, w in enumerate(word_ids):
        if w is not None:
            spans.setdefault(w, [t, t])[1] = t
    return [tuple(spans[w]) for w in sorted(spans)]


def pool_word_spans(h: Tensor, spans: Tensor, how: str) -> Tensor:
    """(B, L, T, H) and (B, W, 2) first/last token of each word -> (B, W, L, H) word vectors.

    A word's subwords are consecutive tokens, so its mean is a difference of prefix sums; padding words
    (span (0, 0)) get the first token's vector, which the word mask then ignores.
    """
    first, last = spans[..., 0], spans[..., 1]  # (B, W), (B, W)
    if how == "mean":
        prefix = torch.nn.functional.pad(h.cumsum(dim=2), (0, 0, 1, 0))  # (B, L, T+1, H): prefix[t] = sum of h[:t]
        total = _take(prefix, last + 1) - _take(prefix, first)  # (B, W, L, H)
        return total / (last - first + 1).clamp(min=1)[:, :, None, None].to(h.dtype)
    if how in ("first", "last"):
        return _take(h, first if how == "first" else last)  # (B, W, L, H)
    raise ValueError(f"unknown word pooling '{how}'")


def _take(h: Tensor, positions: Tensor) -> Tensor:
    """(B, L, T, H) at (B, W) token positions -> (B, W, L, H)."""
    batch, layers, _, dim = h.shape
    index = positions[:, None, :, None].expand(batch, layers, positions.shape[1], dim)  # (B, L, W, H)
    return h.gather(2, index).transpose(1, 2)  # (B, W, L, H)


def pool_words(h: Tensor, word_ids: Sequence[Sequence[int | None]], how: str) -> list[Tensor]:
    """(B, L, T, H) and per-example token->word maps -> one (W_i, L, H) tensor per example."""
    spans = [word_spans(ids) for ids in word_ids]
    width = max((len(s) for s in spans), default=0)
    padded = torch.zeros(len(spans), width, 2, dtype=torch.long)  # (B, W, 2)
    for b, s in enumerate(spans):
        if s:
            padded[b, : len(s)] = torch.tensor(s)
    pooled = pool_word_spans(h, padded.to(h.device), how)  # (B, W, L, H)
    return [pooled[b, : len(s)] for b, s in enumerate(spans)]


def hidden_states(encoder: nn.Module, inputs: dict[str, Tensor], compute: str = "float32") -> list[Tensor]:
    """All hidden states of ``encoder`` as float32. ``bfloat16`` computes them under bfloat16 autocast
    (``auto``: where the device has native bfloat16, see ``core.devices.auto_compute``); ``float32`` adds
    no autocast of its own, so a caller's (the training loop's mixed precision) still applies.

    bfloat16 roughly halves the time on hardware with bfloat16 matrix units (recent GPUs, CPUs with
    AMX or AVX512-BF16); on other CPUs torch emulates it and it is several times slower than float32.
    """
    device = next(encoder.parameters()).device
    if resolve_compute(compute, device) == "bfloat16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            out = encoder(**inputs, output_hidden_states=True)
    else:  # not autocast(enabled=False): that would switch off the loop's bf16 autocast around a fine-tune
        out = encoder(**inputs, output_hidden_states=True)
    return [h.float() for h in out.hidden_states]


def encoder_inputs(batch: dict[str, Tensor], uses_token_type_ids: bool) -> dict[str, Tensor]:
    """The keyword arguments an encoder takes; ``token_type_ids`` only where the model has them."""
    keys = ("input_ids", "attention_mask", "token_type_ids") if uses_token_type_ids else ("input_ids", "attention_mask")
    return {k: batch[k] for k in keys if k in batch}


class EncoderFeatures(nn.Module):
    """Live features, shaped as the cache stores them, batched: per sentence (B, L, H), per word
    (B, W, L, H) from the batch's ``word_spans``, or per token (B, T, L, H); for items of grouped texts
    (the batch's ``groups``), per window (B, S, W, L, H).

    Whether the encoder trains is up to the caller; this module only routes tensors. ``runner``, where
    given, computes the (frozen) encoder's hidden states instead: a feature backend's (``features.backends``).
    """

    def __init__(
        self,
        encoder: nn.Module,
        spec: FeatureSpec,
        uses_token_type_ids: bool,
        compute: str = "float32",
        runner: Callable[[dict[str, Tensor]], list[Tensor]] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.spec = spec
        self.uses_token_type_ids = uses_token_type_ids
        self.compute = compute
        self.runner = runner

    def forward(self, **batch: Tensor) -> Tensor:
        inputs = encoder_inputs(batch, self.uses_token_type_ids)
        if self.runner is not None:
            states = [h.to(batch["input_ids"].device) for h in self.runner(inputs)]
        else:
            states = hidden_states(self.encoder, inputs, self.compute)
        h = stack_layers(states, self.spec.layers)  # (B, L, T, H)
        if self.spec.granularity == "sentence":
            pooled = pool_sentence(h, batch["attention_mask"], self.spec.pooling)  # (N, L, H) a sequence
            if "groups" not in batch:
                return pooled
            groups = batch["groups"]  # (B, S, W): each window's sequence, -1 for none
            grouped = pooled[groups.clamp(min=0)]  # (B, S, W, L, H)
            return grouped * (groups >= 0)[..., None, None].to(grouped.dtype)  # padding windows zero, as cached
        if self.spec.granularity == "word":
            return pool_word_spans(h, batch["word_spans"], self.spec.pooling)  # (B, W, L, H)
        return h.transpose(1, 2)  # (B, T, L, H)
