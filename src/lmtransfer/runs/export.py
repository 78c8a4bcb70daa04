"""``lmtransfer export RUN --format onnx``: a run as a self-contained inference artefact. The folder holds
the encoder as the format's backend wrote it (``encoder-onnx/``: an ONNX graph of its hidden states, with
int8 weights if asked, and the tokenizer and the model's config beside it), the encoder being the run's
fine-tuned one or the frozen one a feature-based run read; and the run's own files (config, head weights,
labels, layer weights, metrics). ``load_run`` and ``lmtransfer serve`` / ``predict`` / ``evaluate`` read it
like the run, computing with that backend and without the torch weights of the encoder."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

from lmtransfer.core.atomic import write_dir
from lmtransfer.core.errors import LmtError
from lmtransfer.features.backends import exporter
from lmtransfer.runs.encoder_run import EXPORT_INFO, Run, export_encoder_folder
from lmtransfer.runs.kinds import load_run

RUN_FILES = ("config.yaml", "model.safetensors", "labels.json", "encoder.json", "layer_weights.json", "metrics.json")
RUN_EXTRAS = ("README.md",)  # copied where the run has them


def default_target(run_dir: Path, fmt: str, quantize: str) -> Path:
    return run_dir.with_name(f"{run_dir.name}-{fmt}{'' if quantize == 'none' else '-' + quantize}")


def export_run(
    run_dir: str | Path,
    target: str | Path | None = None,
    quantize: str = "none",
    progress: bool = True,
    fmt: str = "onnx",
) -> Path:
    """Write the artefact of the run at ``run_dir`` in format ``fmt`` to ``target`` (default: beside it,
    ``<run>-onnx`` or ``<run>-onnx-int8``), whole or not at all; returns its folder."""
    backend = exporter(fmt)
    run = load_run(run_dir)
    if not isinstance(run, Run):
        raise LmtError(f"only runs of an encoder can be exported to {fmt} (a bag-of-words run has none)", path=run_dir)
    if run.exported:
        raise LmtError("this is an export already; export the run it came from", path=run_dir)
    if run.encoder.num_layers == 0:
        raise LmtError("static word vectors have no transformer to export", path=run_dir)
    out = Path(target) if target else default_target(run.directory, fmt, quantize)
    encoder = run.encoder.freeze()

    def fill(folder: Path) -> None:
        for name in RUN_FILES + RUN_EXTRAS:
            if (run.directory / name).is_file():
                shutil.copy2(run.directory / name, folder / name)
        encoder_folder = folder / export_encoder_folder(fmt)
        encoder_folder.mkdir()
        written = backend.export(encoder, encoder_folder, quantize, progress)
        info = {
            "format": fmt,
            "quantize": quantize,
            "from_run": str(run.directory.resolve()),
            "encoder": encoder.name,
            "weights_sha256": run.encoder_info["weights_sha256"],
            **written,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        (folder / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    return write_dir(out, fill)
