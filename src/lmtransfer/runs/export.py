"""``lmtransfer export RUN --format onnx``: a run as a self-contained inference artefact. The folder holds
the encoder as an ONNX graph of its hidden states (the run's fine-tuned encoder, or the frozen one a
feature-based run read), with int8 weights if asked; the tokenizer and the model's config beside it; and
the run's own files (config, head weights, labels, layer weights, metrics). ``load_run`` and ``lmtransfer
serve`` / ``predict`` / ``evaluate`` read it like the run, computing with ONNX Runtime and without the torch
weights of the encoder."""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import sys
from pathlib import Path

from lmtransfer.core.atomic import write_dir
from lmtransfer.core.errors import LmtError
from lmtransfer.encoders.onnx import ONNX_GRAPH, export_graph, input_names, quantize_graph, require_onnxruntime
from lmtransfer.runs.encoder_run import EXPORT_INFO, GRAPH_ENCODER, Run
from lmtransfer.runs.kinds import load_run

RUN_FILES = ("config.yaml", "model.safetensors", "labels.json", "encoder.json", "layer_weights.json", "metrics.json")
RUN_EXTRAS = ("README.md",)  # copied where the run has them


def default_target(run_dir: Path, quantize: str) -> Path:
    return run_dir.with_name(f"{run_dir.name}-onnx{'' if quantize == 'none' else '-' + quantize}")


def export_run(
    run_dir: str | Path, target: str | Path | None = None, quantize: str = "none", progress: bool = True
) -> Path:
    """Write the artefact of the run at ``run_dir`` to ``target`` (default: beside it, ``<run>-onnx`` or
    ``<run>-onnx-int8``), whole or not at all; returns its folder."""
    require_onnxruntime("--format")
    run = load_run(run_dir)
    if not isinstance(run, Run):
        raise LmtError("only runs of an encoder can be exported to ONNX (a bag-of-words run has none)", path=run_dir)
    if run.exported:
        raise LmtError("this is an export already; export the run it came from", path=run_dir)
    if run.encoder.num_layers == 0:
        raise LmtError("static word vectors have no transformer to export", path=run_dir)
    out = Path(target) if target else default_target(run.directory, quantize)
    encoder = run.encoder.freeze()

    def fill(folder: Path) -> None:
        for name in RUN_FILES + RUN_EXTRAS:
            if (run.directory / name).is_file():
                shutil.copy2(run.directory / name, folder / name)
        encoder.tokenizer.save_pretrained(folder / GRAPH_ENCODER)
        encoder.model.config.save_pretrained(folder / GRAPH_ENCODER)
        graph = folder / GRAPH_ENCODER / ONNX_GRAPH
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
        info = {
            "format": "onnx",
            "quantize": quantize,
            "from_run": str(run.directory.resolve()),
            "encoder": encoder.name,
            "weights_sha256": run.encoder_info["weights_sha256"],
            "graph_sha256": hashlib.sha256(graph.read_bytes()).hexdigest(),
            "inputs": input_names(encoder),
            "hidden_states": encoder.num_layers + 1,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        (folder / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    return write_dir(out, fill)
