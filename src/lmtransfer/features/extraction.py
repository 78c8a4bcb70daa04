"""Feature extraction: run texts once through a frozen encoder and store the chosen layers in the cache.

Texts are tokenised a shard at a time and batched by length, so little compute goes to padding and
memory stays bounded by one shard's token ids plus one batch of hidden states, whatever the data size.
The encoder runs on the accelerator torch finds (a CUDA GPU, say) unless told otherwise; there a
batch's features travel to host memory while the next batch is computed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmtransfer.core.devices import pick_device, release_freed_memory, resolve_compute
from lmtransfer.core.progress import Progress
from lmtransfer.core.text import human_bytes
from lmtransfer.data.examples import Example
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.features.backends import HiddenStates, backend_for
from lmtransfer.features.cache.admin import find_superset
from lmtransfer.features.cache.key import CacheKey, cache_dir_for, make_key
from lmtransfer.features.cache.reader import FeatureCache
from lmtransfer.features.cache.writer import CacheWriter, ShardBuffer
from lmtransfer.features.inputs import Encoding, encode, padded_spans
from lmtransfer.features.pooling import (
    FeatureSpec,
    encoder_inputs,
    pool_sentence,
    pool_word_spans,
    stack_layers,
)


@dataclass
class Extraction:
    cache: FeatureCache
    examples: int  # extracted in this call (0 when everything was cached already)
    tokens: int
    seconds: float
    truncated: int = 0  # of the examples extracted in this call, how many were cut at max_length

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def _tokenize(encoder: Encoder, examples: Sequence[Example], spec: FeatureSpec) -> Encoding:
    return encode(encoder.tokenizer, examples, spec.max_length, spec.window_stride)


def estimate_bytes(encoder: Encoder, examples: Sequence[Example], spec: FeatureSpec, dtype: str) -> tuple[int, bool]:
    """Bytes the cache will take, and whether that is exact (sentence level) or sampled."""
    per_row = len(spec.layers) * encoder.hidden_size * np.dtype(dtype).itemsize
    if dtype == "int8":
        per_row += len(spec.layers) * 4  # one float32 scale per stored vector
    if spec.granularity == "sentence" and spec.window_stride is None:
        return len(examples) * per_row, True
    rng = np.random.default_rng(0)
    sample = rng.choice(len(examples), size=min(len(examples), 1000), replace=False)
    encoding = _tokenize(encoder, [examples[i] for i in sample], spec)
    rows = [encoding.rows(i, spec.granularity) for i in range(len(sample))]
    return int(np.mean(rows) * len(examples) * per_row), False


def default_batch_size(device: torch.device) -> int:
    """Texts per forward pass: 64 on a CPU (larger batches gain nothing there); 512 on an accelerator,
    where a batch of 64 short texts is over before the next one is launched."""
    return 64 if device.type == "cpu" else 512


def _forward_rows(encoder: Encoder, batch: dict, spec: FeatureSpec, spans: list, runner: HiddenStates) -> torch.Tensor:
    """Padded features of one batch: (B, L, H) pooled per sentence, (B, W, L, H) per word or (B, T, L, H)
    per token (rows past an example's own are padding), from the hidden states the backend's ``runner``
    computes."""
    states = runner(encoder_inputs(batch, encoder.uses_token_type_ids))
    h = stack_layers(states, spec.layers)  # (B, L, T, H)
    if spec.granularity == "sentence":
        return pool_sentence(h, batch["attention_mask"], spec.pooling)  # (B, L, H)
    if spec.granularity == "token":
        return h.transpose(1, 2)  # (B, T, L, H)
    return pool_word_spans(h, padded_spans(spans).to(h.device), spec.pooling)  # (B, W, L, H)


class _ToHost:
    """A batch's features on their way to host memory. From a CUDA device the copy is queued behind the
    batch's compute and waited for only when the rows are stored, after the next batch was launched, so
    the GPU computes while the CPU pads, copies and writes."""

    def __init__(self, rows: torch.Tensor, dtype: str) -> None:
        if dtype == "float16":
            rows = rows.half()  # what the cache stores anyway: half the bytes to move
        self.event = None
        if rows.device.type == "cuda":
            self.rows = rows.to("cpu", non_blocking=True)  # into pinned memory, asynchronously
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.rows = rows.cpu()

    def get(self) -> torch.Tensor:
        if self.event is not None:
            self.event.synchronize()
        return self.rows


def _store(
    buffer: ShardBuffer, offsets: np.ndarray, row_of: np.ndarray, chosen: np.ndarray, rows: torch.Tensor
) -> None:
    """Write a batch's padded rows: one write for (B, L, H) sentence features (at each sequence's row:
    ``row_of``), else each example's own rows."""
    if rows.dim() == 3:  # one row per sequence: the whole batch in one write
        buffer.put(row_of[chosen], rows)
        return
    for b, i in enumerate(chosen):
        buffer.put(slice(offsets[i], offsets[i + 1]), rows[b, : offsets[i + 1] - offsets[i]])


def _extract_shard(encoder, writer, index, examples, spec, batch_size, bar, dtype, runner) -> tuple[int, int]:
    began = time.perf_counter()
    start, stop = writer.shard_range(index)
    encoding = _tokenize(encoder, examples[start:stop], spec)
    lengths = np.array(encoding.lengths)  # (sequences,): an example, or one of its windows
    offsets = np.concatenate([[0], np.cumsum([encoding.rows(i, spec.granularity) for i in range(stop - start)])])
    row_of = encoding.sequence_rows(offsets) if spec.granularity == "sentence" else offsets[:-1]
    owner = encoding.owner if encoding.owner is not None else np.arange(len(lengths))
    last = np.r_[owner[1:] != owner[:-1], True]  # an example's last window: where the progress bar counts it
    buffer = writer.open_shard(index, int(offsets[-1]))
    device = next(encoder.model.parameters()).device
    pad_id = encoder.tokenizer.pad_token_id or 0
    # Batches of similar length pad little. Longest first: later, smaller batches then fit into memory
    # the allocator already holds, where ascending sizes would fragment the heap a little more each batch.
    order = np.argsort(-lengths, kind="stable")
    pending = None  # the previous batch, stored once this one is on its way
    for first in range(0, len(order), batch_size):
        chosen = order[first : first + batch_size]
        batch = {k: v.to(device, non_blocking=True) for k, v in encoding.pad(chosen, pad_id).items()}
        spans = [encoding.spans[i] for i in chosen] if spec.granularity == "word" else []
        with torch.inference_mode():
            rows = _ToHost(_forward_rows(encoder, batch, spec, spans, runner), dtype)
        if pending is not None:
            _store(buffer, offsets, row_of, pending[0], pending[1].get())
        pending = (chosen, rows)
        bar.update(int(last[chosen].sum()))
        bar.tokens += int(lengths[chosen].sum())
        bar.set_postfix_str(f"{bar.tokens / max(bar.format_dict['elapsed'], 1e-9):,.0f} tok/s", refresh=False)
    if pending is not None:
        _store(buffer, offsets, row_of, pending[0], pending[1].get())
    truncated = encoding.truncated
    writer.commit_shard(index, buffer, offsets, int(lengths.sum()), truncated, time.perf_counter() - began)
    release_freed_memory()
    return int(lengths.sum()), truncated


def _shared_cache(root: Path, key: CacheKey, progress: bool, desc: str) -> FeatureCache | None:
    """A complete cache of a superset of ``key``'s layers, read as a cache of these, unless this exact key
    has a complete cache (or a partial one to resume) itself."""
    if (cache_dir_for(root, key) / "manifest.json").exists():
        return None
    directory = find_superset(root, key)
    if directory is None:
        return None
    cache = FeatureCache(directory, layers=key.layers)
    if progress:
        print(
            f"[{desc}] layers {list(key.layers)} from the cache of layers {cache.key['layers']}: {directory}",
            file=sys.stderr,
        )
    return cache


def extract(
    encoder: Encoder,
    examples: Sequence[Example],
    spec: FeatureSpec,
    cache_root: str | Path,
    *,
    dtype: str = "float16",
    batch_size: int | None = None,
    shard_size: int = 4096,
    progress: bool = True,
    desc: str = "extract",
    compute: str = "auto",
    device: str = "auto",
    backend: str = "torch",
    quantize: str = "none",
) -> Extraction:
    """Extract ``spec`` features of ``examples`` into the cache under ``cache_root`` (resuming if needed).

    ``dtype`` is how features are stored (float16, float32 or int8); ``compute`` the encoder's
    arithmetic (float32, bfloat16 autocast, or ``auto``: bfloat16 where ``device`` has it natively). Both
    are part of the cache key, ``compute`` as resolved here. ``backend`` names what runs the encoder
    (``features.backends``: torch, onnx with int8 weights if ``quantize`` says so, or ``auto``, the one
    preferred on this device); the cache key records what it says of itself, and it may compute elsewhere
    or otherwise (ONNX Runtime: on the CPU, in float32). Where no cache of this key
    is complete but one of the same key with more layers is, that one serves these layers. The encoder
    runs on ``device`` (``auto``: see ``core.devices.pick_device``) and is back where it was afterwards;
    ``batch_size`` defaults to ``default_batch_size`` of that device.
    """
    encoder.freeze()
    target = pick_device(device)
    compute = resolve_compute(compute, target)
    runs = backend_for(backend, target, compute)
    target, compute = runs.placed(target, compute)
    made_by = runs.cache_name(quantize)
    key = make_key(encoder, spec, dtype, examples, compute, made_by)
    shared = _shared_cache(Path(cache_root), key, progress, desc)
    if shared is not None:
        return Extraction(shared, 0, 0, 0.0)
    writer = CacheWriter(cache_dir_for(Path(cache_root), key), key, len(examples), shard_size, encoder.hidden_size)
    writer.open()
    if writer.complete:
        return Extraction(FeatureCache(writer.directory), 0, 0, 0.0)
    runner = runs.hidden_states(encoder, compute, Path(cache_root), quantize, progress)
    todo = [i for i in range(writer.num_shards) if not writer.done(i)]
    remaining = sum(writer.examples_in(i) for i in todo)
    if progress:
        size, exact = estimate_bytes(encoder, examples, spec, dtype)
        resumed = (
            f", resuming: {writer.num_shards - len(todo)}/{writer.num_shards} shards done"
            if len(todo) < writer.num_shards
            else ""
        )
        how = dtype if compute == "float32" else f"{dtype} ({compute} compute)"
        how += f" by {made_by}" if made_by else ""
        how += f", on {target}"
        print(
            f"[{desc}] {len(examples):,} examples, layers {list(spec.layers)}, {spec.granularity}/{spec.pooling}, "
            f"{how}: will write {'' if exact else '~'}{human_bytes(size)} to {writer.directory}{resumed}",
            file=sys.stderr,
        )
    batch_size = batch_size or default_batch_size(target)
    home = next(encoder.model.parameters()).device
    began = time.perf_counter()
    tokens = truncated = extracted = 0
    try:
        encoder.model.to(target)
        with Progress(total=remaining, unit="text", desc=desc, disable=not progress, dynamic_ncols=True) as bar:
            bar.tokens = 0
            for index, lock in writer.claimed(todo, bar.update):
                try:
                    shard_tokens, shard_truncated = _extract_shard(
                        encoder, writer, index, examples, spec, batch_size, bar, dtype, runner
                    )
                finally:
                    lock.release()
                tokens += shard_tokens
                truncated += shard_truncated
                extracted += writer.examples_in(index)
    finally:
        encoder.model.to(home)
    writer.finish()
    if progress and truncated:
        done = (
            "were cut there (encoder.max_length sets it)"
            if spec.window_stride is None
            else f"were read whole, in windows sharing {spec.window_stride} tokens (encoder.long_text: windows)"
        )
        print(
            f"[{desc}] {truncated:,} of {extracted:,} texts were longer than max_length={spec.max_length} tokens "
            f"and {done}",
            file=sys.stderr,
        )
    return Extraction(FeatureCache(writer.directory), extracted, tokens, time.perf_counter() - began, truncated)
