"""What a server holds: trained runs (``ServedRun``), each predicting as ``lmtransfer predict`` does, and
encoders (``ServedEncoder``) for embeddings and raw features. Each is loaded once, at start-up; its
``work`` is what the batcher runs in the model thread: a batch of inputs in, one result per input out.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmtransfer.config.layers import resolve_layers
from lmtransfer.core.devices import release_freed_memory
from lmtransfer.core.errors import LmtError
from lmtransfer.data.examples import Encoded
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.encoders.loading import load_encoder
from lmtransfer.features.inputs import encode
from lmtransfer.features.pooling import encoder_inputs, hidden_states, pool_sentence, stack_layers
from lmtransfer.runs.base import LoadedRun
from lmtransfer.runs.kinds import load_run
from lmtransfer.serve.settings import ENCODER_MAX_LENGTH


@dataclass
class ServedRun:
    """A trained run behind ``POST /v1/predict/{name}``."""

    name: str
    run: LoadedRun

    @classmethod
    def load(cls, name: str, directory: str | Path) -> ServedRun:
        run = load_run(directory)
        run.ready()  # the encoder loads now, not on the first request
        return cls(name, run)

    @property
    def task(self) -> str:
        return self.run.config.task

    @property
    def pairs(self) -> bool:
        return self.run.config.data.text_pair_column is not None

    def info(self) -> dict[str, Any]:
        config, metrics = self.run.config, self.run.metrics
        encoder = getattr(self.run, "encoder_info", None) or {}
        return {
            "id": self.name,
            "object": "model",
            "owned_by": "lmtransfer",
            "kind": "run",
            "task": self.task,
            "pairs": self.pairs,
            "strategy": config.strategy,
            "labels": self.run.labels,
            "metrics": {split: metrics[split] for split in ("dev", "test") if metrics.get(split)},
            "encoder": {"model": config.encoder.model, "weights_sha256": encoder.get("weights_sha256")},
        }

    def parse(self, body: bytes) -> list[Any]:
        """The request's inputs, checked (a pydantic ValidationError names the bad field). A question
        without an id gets its place in the request, as ``lmtransfer predict`` gives it, before it is
        batched with other requests' questions."""
        return self.run.task.request_model().model_validate_json(body).items()

    def tokens(self, items: list[Any]) -> list[int]:
        """Each input's token count, for the batch budget (words + 2 for a run without a tokenizer)."""
        texts = [_text(item) for item in items]
        tokenizer = self.run.tokenizer
        if tokenizer is None:
            return [len(text.split()) + 2 for text in texts]
        return [len(ids) for ids in tokenizer(texts, verbose=False)["input_ids"]]

    def work(self, items: list[Any]) -> list[dict[str, Any]]:
        """``lmtransfer predict``'s output row for each input, computed in forward passes of similar lengths."""
        rows: list[dict[str, Any] | None] = [None] * len(items)
        for chunk in length_chunks(self.tokens(items)):
            chosen = [items[i] for i in chunk]
            found = self.run.predict(self.run.task.parse(chosen), batch_size=len(chosen))[1]
            for i, item, result in zip(chunk, chosen, found):
                rows[i] = self.run.task.prediction_row(item, result)
        release_freed_memory()  # what the batch freed, else the server's RSS creeps up
        return rows


FORWARD_TOKENS = 512  # padded tokens of one forward pass


def length_chunks(lengths: list[int], budget: int = FORWARD_TOKENS, most: int = 64) -> list[list[int]]:
    """The indices of ``lengths``, longest first, in chunks of at most ``budget`` padded tokens (the
    chunk's count times its longest) and ``most`` items; an item longer than the budget is a chunk alone.

    A batch of requests holds texts of every length; one forward pass over all of them pads each to the
    longest. On a CPU a pass costs what its padded tokens cost, and beyond a few hundred tokens a larger
    pass is no cheaper per token: on 2 cores, 32 SST-2 sentences ran at 113 per second in one pass of 64
    and at 148 in passes of 16 of similar length (and 63 one by one).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    chunks: list[list[int]] = []
    for i in order:
        if chunks and len(chunks[-1]) < most and (len(chunks[-1]) + 1) * lengths[chunks[-1][0]] <= budget:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def _text(item: Any) -> str:
    if isinstance(item, dict):
        return f"{item['question']} {item['context']}"
    if isinstance(item, tuple):
        return f"{item[0]} {item[1]}"
    return item if isinstance(item, str) else " ".join(item)


@dataclass(frozen=True)
class FeatureItem:
    """One text for an encoder: its token ids, the hidden states to pool and how, and whether the vector
    is scaled to length 1 (embeddings are; raw features are not)."""

    ids: tuple[int, ...]
    layers: tuple[int, ...]
    pooling: str
    normalize: bool


@dataclass
class ServedEncoder:
    """An encoder behind ``/v1/embeddings`` (mean of the last layer, length 1, as sentence-transformers'
    MiniLM and MPNet give) and ``/v1/features``."""

    name: str
    encoder: Encoder
    max_length: int = ENCODER_MAX_LENGTH
    compute: str = "float32"
    batch_size: int = 64

    @classmethod
    def load(
        cls, name: str, model: str, max_length: int = ENCODER_MAX_LENGTH, compute: str = "float32"
    ) -> ServedEncoder:
        encoder = load_encoder(model).freeze()
        limit = getattr(encoder.model.config, "max_position_embeddings", None)
        return cls(name, encoder, min(max_length, limit) if limit else max_length, compute)

    @property
    def last(self) -> int:
        return self.encoder.num_layers

    def info(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "object": "model",
            "owned_by": "lmtransfer",
            "kind": "encoder",
            "hidden_size": self.encoder.hidden_size,
            "hidden_states": self.encoder.num_layers + 1,
            "max_length": self.max_length,
            "compute": self.compute,
            "encoder": {"model": self.encoder.name, "weights_sha256": self.encoder.weights_hash()},
        }

    def layers(self, spec: Any) -> tuple[int, ...]:
        """Hidden-state indices of a request's ``layers`` (ValueError names the valid range)."""
        return tuple(resolve_layers(spec, self.encoder.num_layers))

    def items(self, texts: list[str], layers: tuple[int, ...], pooling: str, normalize: bool) -> list[FeatureItem]:
        """The texts tokenised (cut at ``max_length``), as the batcher's inputs."""
        ids = self.encoder.tokenizer(texts, truncation=True, max_length=self.max_length, verbose=False)["input_ids"]
        return [FeatureItem(tuple(row), layers, pooling, normalize) for row in ids]

    def work(self, items: list[FeatureItem]) -> list[np.ndarray]:
        """(len(layers), hidden) float32 per item, in forward passes of similar lengths (``length_chunks``)."""
        encoding = encode(self.encoder.tokenizer, [Encoded(item.ids) for item in items], self.max_length)
        model, device = self.encoder.model, next(self.encoder.model.parameters()).device
        pad_id = self.encoder.tokenizer.pad_token_id or 0
        out: list[np.ndarray | None] = [None] * len(items)
        for chunk in length_chunks(encoding.lengths, most=self.batch_size):
            chosen = np.array(chunk)
            batch = {k: v.to(device) for k, v in encoding.pad(chosen, pad_id).items()}
            with torch.inference_mode():
                states = hidden_states(model, encoder_inputs(batch, self.encoder.uses_token_type_ids), self.compute)
            wanted = defaultdict(list)  # the batch's rows by what they ask for
            for row, index in enumerate(chosen):
                wanted[items[index].layers, items[index].pooling, items[index].normalize].append(row)
            for (layers, pooling, normalize), rows in wanted.items():
                picked = torch.tensor(rows, device=device)
                h = stack_layers(states, layers)[picked]  # (n, L, T, H)
                pooled = pool_sentence(h, batch["attention_mask"][picked], pooling)  # (n, L, H)
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                for row, vector in zip(rows, pooled.float().cpu().numpy()):
                    out[chosen[row]] = np.ascontiguousarray(vector)
        release_freed_memory()  # what the batch freed, else the server's RSS creeps up
        return out


def embedding_value(vector: np.ndarray, encoding_format: str) -> np.ndarray | str:
    """One embedding as OpenAI sends it: floats (the array, which the answer's JSON writer lists), or base64
    of its little-endian float32 bytes."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector


def parse_named(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` or a bare ``PATH`` (named by its last folder) for the serve command's arguments."""
    name, eq, path = spec.partition("=")
    if eq and name and "/" not in name:
        return name, path
    folder = Path(spec.rstrip("/"))
    return folder.name or spec, spec


def unique_names(named: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for name, _ in named:
        if name in seen:
            raise LmtError(f"two models are named '{name}': name them apart as NAME=PATH")
        seen.add(name)
