"""A run folder on the Hugging Face Hub, as it is: ``huggingface_hub.upload_folder`` of the folder, without
its training checkpoints unless asked (their optimizer and RNG states are pickles) and refusing any other
weights that are not safetensors. The README.md it uploads is the run's model card (written first for a run
saved before runs had one)."""

from __future__ import annotations

from pathlib import Path

from lmtransfer.core.atomic import existing_dir
from lmtransfer.core.errors import LmtError
from lmtransfer.runs.directory import run_config, write_card
from lmtransfer.runs.kinds import way_of

CHECKPOINTS = ["checkpoints/*"]  # left out unless asked
PICKLES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")  # weights or states that load by unpickling


def upload_plan(directory: str | Path, checkpoints: bool = False) -> tuple[Path, list[str]]:
    """The run folder and the files (relative, sorted) that ``push`` uploads, filtered exactly as
    ``upload_folder`` filters them (its own default ignores included)."""
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    folder = existing_dir(Path(directory))
    if not all((folder / name).is_file() for name in ("config.yaml", "labels.json", "encoder.json")):
        raise LmtError("not a run folder (config.yaml, labels.json, encoder.json)", path=folder)
    ignored = [*DEFAULT_IGNORE_PATTERNS, *([] if checkpoints else CHECKPOINTS)]
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    files = sorted(files | {"README.md"})  # a run saved before model cards gets one written by push
    kept = list(filter_repo_objects(files, ignore_patterns=ignored))
    pickled = [f for f in kept if f.endswith(PICKLES) and not f.startswith("checkpoints/")]
    if pickled:
        raise LmtError(f"{pickled[0]}: weights go to the Hub as safetensors only", path=folder)
    return folder, kept


def push(
    directory: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    checkpoints: bool = False,
    revision: str | None = None,
    message: str | None = None,
    token: str | None = None,
) -> str:
    """Create ``repo_id`` (a model repo) if needed and upload the run folder to it; the commit's URL."""
    from huggingface_hub import HfApi

    folder, _ = upload_plan(directory, checkpoints)
    if not (folder / "README.md").is_file():
        write_card(folder, way_of(run_config(folder)))
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        revision=revision,
        commit_message=message or f"Upload {folder.name} (an lmtransfer run)",
        ignore_patterns=None if checkpoints else CHECKPOINTS,
    )
    return str(commit.commit_url)
