"""Task heads, and the one factory that builds them by the names in ``lmtransfer.core.choices``.

A whole-text head maps a vector per example (B, D) to scores (B, C), or, as a BiLSTM, reads the
text's token vectors (B, T, D) and pools what it outputs. A per-position head maps a vector per word
or token (B, T, D) with its mask to scores per position (B, T, K), optionally through a BiLSTM and with
a CRF on top. Heads read combined layer features (``lmtransfer.nn.task_model``), whether those come
from the cache (feature-based) or from a live encoder (fine-tuning): the head code is the same either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lmtransfer.core import choices
from lmtransfer.nn.crf import CRF, Allowed


class LinearHead(nn.Module):
    """Multinomial logistic regression: one affine map to the label scores."""

    def __init__(self, in_dim: int, num_labels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(in_dim, num_labels)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.dropout(x))  # (B, C)


class MLPHead(nn.Module):
    """One hidden layer (GELU) between the features and the label scores."""

    def __init__(self, in_dim: int, num_labels: int, hidden_size: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(in_dim, hidden_size),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_labels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, C)


def run_bilstm(lstm: nn.LSTM, x: Tensor, mask: Tensor) -> Tensor:
    """(B, T, D) through a bidirectional LSTM, packed so that padding never reaches it -> (B, T, 2h)."""
    lengths = mask.sum(dim=1).clamp(min=1).cpu()  # (B,)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, _ = pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=x.shape[1])  # (B, T, 2h)
    return out


class BiLSTMPoolHead(nn.Module):
    """A text as its token vectors (B, T, D) and mask -> BiLSTM -> max over real positions -> (B, C).

    The classic recurrent text classifier (max pooling as in InferSent); with trainable word vectors
    below it, it is the from-scratch baseline. A text with no tokens pools to zeros.
    """

    def __init__(self, in_dim: int, num_labels: int, lstm_hidden: int = 256, lstm_layers: int = 1, dropout=0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(in_dim, lstm_hidden, num_layers=lstm_layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * lstm_hidden, num_labels)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = run_bilstm(self.lstm, self.dropout(x), mask)  # (B, T, 2h)
        h = h.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)  # (B, 2h)
        h = torch.where(mask.any(dim=1, keepdim=True), h, torch.zeros_like(h))  # (B, 2h)
        return self.out(self.dropout(h))  # (B, C)


class CosineHead(nn.Module):
    """A pair read apart, (B, 2, D) -> (B, 1): ``low + (high - low) * (a * cos(u, v) + b)``, a learned affine
    map of the two vectors' cosine onto the targets' range ``[low, high]`` (the training set's). a starts at
    1 and b at 0, so that an untrained head ranks pairs exactly as the encoder's own cosine similarity does
    (what sentence-transformers' cosine loss trains a bi-encoder towards, its labels scaled to 0..1)."""

    def __init__(self, low: float = 0.0, high: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("low", torch.tensor(float(low)))  # ()
        self.register_buffer("span", torch.tensor(float(high) - float(low) or 1.0))  # ()
        self.scale = nn.Parameter(torch.ones(()))  # ()
        self.bias = nn.Parameter(torch.zeros(()))  # ()

    def forward(self, x: Tensor) -> Tensor:
        cos = F.cosine_similarity(x[:, 0], x[:, 1], dim=-1)  # (B,)
        return (self.low + self.span * (self.scale * cos + self.bias))[:, None]  # (B, 1)


class CosineResidualHead(nn.Module):
    """A score of a pair read apart, (B, 2, D) -> (B, 1): the cosine head's score plus ``inner`` on the pair's
    [u; v; |u-v|; u*v]. The inner head's output layer starts at zero, so that the head starts as the
    encoder's cosine similarity and learns what to add to it."""

    def __init__(self, inner: nn.Module, low: float = 0.0, high: float = 1.0) -> None:
        super().__init__()
        self.cosine, self.inner = CosineHead(low, high), inner
        last = [m for m in inner.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: Tensor) -> Tensor:
        u, v = x[:, 0], x[:, 1]  # (B, D) each
        features = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)  # (B, 4D)
        return self.cosine(x) + self.inner(features)  # (B, 1)


class SequenceHead(nn.Module):
    """(B, T, D) and a (B, T) mask of real positions -> (B, T, K) scores.

    ``lstm_hidden > 0`` puts a BiLSTM (packed, so padding never reaches it) under the output layer;
    ``crf`` adds a linear-chain CRF whose loss and Viterbi decoding replace per-position softmax.
    ``pad_score`` (if set) is written at padding positions, so that a softmax over positions (QA
    start / end) ignores them.
    """

    def __init__(
        self,
        in_dim: int,
        num_outputs: int,
        lstm_hidden: int = 0,
        lstm_layers: int = 1,
        dropout: float = 0.1,
        crf: CRF | None = None,
        pad_score: float | None = None,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.lstm = (
            nn.LSTM(in_dim, lstm_hidden, num_layers=lstm_layers, batch_first=True, bidirectional=True)
            if lstm_hidden
            else None
        )
        self.out = nn.Linear(2 * lstm_hidden if lstm_hidden else in_dim, num_outputs)
        self.crf = crf
        self.pad_score = pad_score

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.lstm is not None:
            x = run_bilstm(self.lstm, self.dropout(x), mask)  # (B, T, 2h)
        scores = self.out(self.dropout(x))  # (B, T, K)
        if self.pad_score is not None:
            scores = scores.masked_fill(~mask[..., None], self.pad_score)
        return scores

    def loss(self, scores: Tensor, labels: Tensor) -> Tensor:
        """Mean CRF negative log-likelihood per sequence, or mean cross-entropy per real position;
        ``labels`` hold -100 at padding."""
        if self.crf is not None:
            mask = labels != -100  # (B, T)
            return self.crf(scores, labels.clamp(min=0), mask, reduction="mean")
        return F.cross_entropy(scores.flatten(0, 1), labels.flatten(), ignore_index=-100)

    def decode(self, scores: Tensor, mask: Tensor) -> list[list[int]]:
        """Best label per real position: Viterbi with a CRF, else the arg-max."""
        if self.crf is not None:
            return self.crf.decode(scores, mask)
        best = scores.argmax(dim=-1).tolist()  # (B, T)
        return [row[:n] for row, n in zip(best, mask.sum(dim=1).tolist())]


@dataclass(frozen=True)
class HeadOptions:
    """What a head may be built with besides its sizes: the ``head`` section's values, and what the task adds
    (the CRF's transition masks ``allowed``, QA's ``pad_score`` at padding positions, a score's range)."""

    hidden_size: int = 256
    dropout: float = 0.1
    lstm_hidden: int = 256
    lstm_layers: int = 1
    allowed: Allowed | None = None
    pad_score: float | None = None
    target_range: tuple[float, float] = (0.0, 1.0)


HeadBuilder = Callable[[int, int, HeadOptions], nn.Module]


def _sequence(lstm: bool, crf: bool) -> HeadBuilder:
    def build(in_dim: int, num_outputs: int, o: HeadOptions) -> nn.Module:
        hidden = o.lstm_hidden if lstm else 0
        chain = CRF(num_outputs, o.allowed) if crf else None
        return SequenceHead(in_dim, num_outputs, hidden, o.lstm_layers, o.dropout, chain, o.pad_score)

    return build


# every head by its ``head.type`` name (``choices.TASK_HEADS`` says which tasks take it): whole-text heads
# on one vector per text (a BiLSTM on its token vectors, the cosine on a pair read apart), and heads with
# an output per word or token. A new head is a builder here and its name in ``lmtransfer.core.choices``.
WHOLE_TEXT_HEADS: dict[str, HeadBuilder] = {
    "linear": lambda in_dim, k, o: LinearHead(in_dim, k, o.dropout),
    "mlp": lambda in_dim, k, o: MLPHead(in_dim, k, o.hidden_size, o.dropout),
    "bilstm": lambda in_dim, k, o: BiLSTMPoolHead(in_dim, k, o.lstm_hidden, o.lstm_layers, o.dropout),
    "cosine": lambda in_dim, k, o: CosineHead(*o.target_range),
}
PER_POSITION_HEADS: dict[str, HeadBuilder] = {
    "linear": _sequence(lstm=False, crf=False),
    "bilstm": _sequence(lstm=True, crf=False),
    "crf": _sequence(lstm=False, crf=True),
    "bilstm-crf": _sequence(lstm=True, crf=True),
}


def register_head(name: str, build: HeadBuilder, *, tasks: tuple[str, ...], per_position: bool = False) -> None:
    """Add a head: its builder under ``name``, and the name among the heads of ``tasks``
    (``core.choices.TASK_HEADS``, which the config checks). A plug-in calls it once, when it is imported."""
    (PER_POSITION_HEADS if per_position else WHOLE_TEXT_HEADS)[name] = build
    for task in tasks:
        choices.TASK_HEADS[task] = (*choices.TASK_HEADS[task], name)


def build_head(kind: str, in_dim: int, num_outputs: int, *, per_position: bool = False, **options) -> nn.Module:
    """The head ``kind`` (``head.type``) over ``in_dim`` features with ``num_outputs`` scores (per text, or per
    position), built with ``HeadOptions(**options)``. Which task takes which heads is the config's check."""
    heads = PER_POSITION_HEADS if per_position else WHOLE_TEXT_HEADS
    if kind not in heads:
        where = "per-position" if per_position else "whole-text"
        raise ValueError(f"unknown {where} head '{kind}' (choose {', '.join(heads)})")
    return heads[kind](in_dim, num_outputs, HeadOptions(**options))
