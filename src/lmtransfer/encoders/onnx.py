"""A frozen encoder run by ONNX Runtime: its graph exported once per weights (by torch's TorchScript-based
exporter), optionally with int8 weights (ONNX Runtime's dynamic quantisation), and kept beside the feature
caches, named by the weights' sha256: the onnx feature backend (``OnnxBackend``), which also writes a run's
export (``lmtransfer export --format onnx``) and reads it back.

Why by hand: sentence-transformers' ONNX backend does not install beside transformers 5, and optimum's
exporter fails to import under torch 2.13, so the export is torch's and the quantisation onnxruntime's
own. The graph returns every hidden state (embeddings first), as ``output_hidden_states`` does, so one
export serves any choice of layers. Measured extraction of MiniLM's 7 hidden states (docs/benchmarks.md):
ONNX Runtime float32 at 1.06x torch's on a 2-core Zen 4 and 1.08x on an AVX2-only Zen 3 (ties, within the
spread of repeated runs), int8 weights at 2.2x and 1.37x. ONNX Runtime's own BERT fusions (attention,
skip layer norm; possible only on a graph exported with eager attention) made no difference on the Zen 3,
so the graph is exported as it is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lmtransfer.core.backends import ONNX
from lmtransfer.core.errors import ConfigError
from lmtransfer.encoders.encoder import Encoder

OPSET = 17
ONNX_GRAPH = "model.onnx"  # an exported run's graph, in its encoder folder


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def require_onnxruntime(field: str) -> None:
    if not onnxruntime_available():
        raise ConfigError("the onnx backend needs onnxruntime and onnx: pip install onnxruntime onnx", field=field)


class _HiddenStates(nn.Module):
    """The encoder with its hidden states as a tuple of outputs: what the exporter traces."""

    def __init__(self, model: nn.Module, token_types: bool) -> None:
        super().__init__()
        self.model, self.token_types = model, token_types

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> tuple:
        extra = {"token_type_ids": token_type_ids} if self.token_types else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **extra)
        return tuple(out.hidden_states)


def input_names(encoder: Encoder) -> list[str]:
    names = ["input_ids", "attention_mask"]
    return [*names, "token_type_ids"] if encoder.uses_token_type_ids else names


def export_graph(encoder: Encoder, path: Path) -> Path:
    """Export ``encoder``'s hidden states to an ONNX graph at ``path`` (written whole or not at all), with
    batch and sequence length dynamic."""
    names = input_names(encoder)
    outputs = [f"hidden_{i}" for i in range(encoder.num_layers + 1)]
    dynamic = {name: {0: "batch", 1: "sequence"} for name in [*names, *outputs]}
    wrapper = _HiddenStates(encoder.model, encoder.uses_token_type_ids)
    model = encoder.model
    was_training = model.training
    example = torch.full((2, 8), encoder.tokenizer.unk_token_id or 1, dtype=torch.long)
    mask = torch.ones_like(example)
    mask[1, 5:] = 0  # a padded row, so that the traced graph applies the mask
    args = (example, mask, torch.zeros_like(example)) if encoder.uses_token_type_ids else (example, mask)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        wrapper.eval()  # the exporter puts the wrapper back in the mode it found it in: eval, with the encoder
        # the tracer warns where transformers turns a tensor into a Python bool (is the mask all ones?):
        # traced with a padded row, the graph keeps the mask, which is right for every input; the tests
        # check other shapes and paddings against torch
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message="Exporting aten::index")
            torch.onnx.export(
                wrapper,
                args,
                tmp,
                dynamo=False,  # the TorchScript exporter: the dynamo one fails on these models under torch 2.13
                input_names=names,
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=OPSET,
            )
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        model.train(was_training)
    return path


def quantize_graph(source: Path, target: Path) -> Path:
    """int8 weights (per-channel symmetric) with activations quantised on the fly, by ONNX Runtime."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".onnx")
    os.close(handle)
    quiet = logging.getLogger()  # the quantiser advises its optional pre-processing on the root logger, every call
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)
        quantize_dynamic(source, tmp, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, target)
    finally:
        quiet.setLevel(level)
        Path(tmp).unlink(missing_ok=True)
    return target


def graph_path(root: Path, encoder: Encoder, quantize: str = "none") -> Path:
    """Where the graph of ``encoder``'s weights lives under the cache root."""
    suffix = "" if quantize == "none" else f"-{quantize}"
    return Path(root) / "onnx" / f"{encoder.weights_hash()[:24]}{suffix}.onnx"


def ensure_graph(encoder: Encoder, root: Path, quantize: str = "none", progress: bool = True) -> Path:
    """The graph of ``encoder`` (int8 if asked) under ``root``: exported (and quantised) the first time."""
    require_onnxruntime("features.backend")
    plain = graph_path(root, encoder)
    if not plain.is_file():
        if progress:
            print(f"[onnx] exporting {encoder.name} to {plain}", file=sys.stderr)
        export_graph(encoder, plain)
    if quantize == "none":
        return plain
    target = graph_path(root, encoder, quantize)
    if not target.is_file():
        if progress:
            print(f"[onnx] quantising its weights to {quantize}: {target}", file=sys.stderr)
        quantize_graph(plain, target)
    return target


class OnnxHiddenStates:
    """An exported graph in an ONNX Runtime session: ``(inputs) -> hidden states`` as float32 tensors, the
    same call as ``features.pooling.hidden_states``. Threads: torch's count, so ``--threads`` sets both."""

    def __init__(self, path: Path, names: list[str], threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.names = names
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, inputs: dict[str, Tensor]) -> list[Tensor]:
        feed = {name: inputs[name].to("cpu").numpy().astype(np.int64, copy=False) for name in self.names}
        return [torch.from_numpy(h) for h in self.session.run(None, feed)]


def onnx_hidden_states(encoder: Encoder, root: Path, quantize: str = "none", progress: bool = True) -> OnnxHiddenStates:
    """``encoder`` under ONNX Runtime, its graph exported (and quantised) on first use."""
    return OnnxHiddenStates(ensure_graph(encoder, root, quantize, progress), input_names(encoder))


class GraphOnly(nn.Module):
    """What stands in for the torch encoder in an exported run, whose graph holds the weights: the model's
    config (layers, width) and a device, nothing to compute with."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("anchor", torch.zeros(0), persistent=False)  # next(parameters()) has a device

    def forward(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("an exported run computes with its ONNX graph, not with torch")


def graph_encoder(directory: Path, name: str, weights_sha256: str) -> Encoder:
    """The encoder of an exported run: its tokenizer and model config from ``directory``, the weights' hash
    it was exported from; its hidden states come from ``onnx_hidden_states`` of the graph beside them."""
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    encoder = Encoder(name, str(directory), GraphOnly(config), tokenizer)  # type: ignore[arg-type]
    encoder._weights_hash = weights_sha256
    return encoder


class OnnxBackend:
    """``features.backend: onnx``: ONNX Runtime on the CPU, in float32 or with int8 weights, the graph
    exported once per weights under the cache root; ``lmtransfer export --format onnx`` writes it into a run's
    export. ``auto`` prefers it on a CPU computing in float32 where onnxruntime is installed (ONNX Runtime's
    float32 ran 1.06x torch's on a Zen 4 and 1.08x on a Zen 3, both within the spread of repeated runs), not
    on a GPU, nor for bfloat16, which torch runs 1.6x faster than ONNX Runtime's float32 on a CPU with
    bfloat16 units."""

    info = ONNX

    def preferred(self, device: torch.device, compute: str) -> bool:
        return device.type == "cpu" and compute == "float32" and onnxruntime_available()

    def placed(self, device: torch.device, compute: str) -> tuple[torch.device, str]:
        return torch.device("cpu"), "float32"

    def cache_name(self, quantize: str) -> str | None:
        return "onnx" if quantize == "none" else f"onnx-{quantize}"

    def hidden_states(
        self, encoder: Encoder, compute: str, cache_root: Path, quantize: str, progress: bool
    ) -> OnnxHiddenStates:
        return onnx_hidden_states(encoder, Path(cache_root), quantize, progress)

    def export(self, encoder: Encoder, folder: Path, quantize: str, progress: bool) -> dict[str, Any]:
        """The graph (int8 if asked) as ``folder/model.onnx``, beside the tokenizer and the model's config."""
        require_onnxruntime("--format")
        encoder.tokenizer.save_pretrained(folder)
        encoder.model.config.save_pretrained(folder)
        graph = folder / ONNX_GRAPH
        if progress:
            print(f"[export] {encoder.name}: hidden states to ONNX", file=sys.stderr)
        if quantize == "none":
            export_graph(encoder, graph)
        else:
            plain = export_graph(encoder, folder / "float32.onnx")
            if progress:
                print(f"[export] weights to {quantize}", file=sys.stderr)
            quantize_graph(plain, graph)
            plain.unlink()
        return {
            "graph_sha256": hashlib.sha256(graph.read_bytes()).hexdigest(),
            "inputs": input_names(encoder),
            "hidden_states": encoder.num_layers + 1,
        }

    def exported_encoder(self, folder: Path, name: str, weights_sha256: str) -> Encoder:
        return graph_encoder(folder, name, weights_sha256)

    def exported_hidden_states(self, folder: Path, encoder: Encoder) -> OnnxHiddenStates:
        return OnnxHiddenStates(folder / ONNX_GRAPH, input_names(encoder))
