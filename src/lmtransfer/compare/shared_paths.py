"""The files a comparison's Ray workers must see, checked on every node before any job runs (``check_shared``):
where it writes (its folder, with the rows' run folders, and the feature caches) and what it reads from this
machine (data files, encoder folders). A node that cannot see one is refused up front, with what to do, not
found out hours later as rows failing one by one.

The driver writes a probe file into each folder written; a task pinned to each live node reads it back (the same
storage, not a folder of the same name on the node's own disk) and writes one of its own, which the driver
reads back; it also looks for each path read. Paths are absolute: a relative one means what it means in the
driver's working directory, where every task runs (``compare.ray_executor.run_in_worker``), so that folder is
checked too where a path is relative.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from lmtransfer.config.schema import RunConfig
from lmtransfer.config.variants import jobs
from lmtransfer.core.caches import cache_root
from lmtransfer.core.errors import LmtError

PROBE = ".lmtransfer-probe"
PROBE_SECONDS = 120  # how long a node has to answer
HOW = (
    "Every path a comparison on Ray writes or reads (compare.output_dir, cache_dir, data files, local encoder "
    "folders) must be on storage every node mounts at the same path (NFS, a cluster file system), and relative "
    "paths need the working directory there too (docs/guide.md, 'A comparison on Ray')"
)


def shared_paths(config: RunConfig) -> tuple[list[str], list[str]]:
    """(folders the comparison writes, paths it reads from this machine), absolute."""
    assert config.compare is not None
    written, read = {config.compare.output_dir}, set()
    for job in jobs(config):
        run = job.config
        written.add(str(cache_root(run.cache_dir)))
        inputs = (run.data.train, run.data.dev, run.data.test, run.data.hf, run.encoder.model)
        read |= {value for value in inputs if value and Path(value).exists()}
    if any(not Path(p).is_absolute() for p in written | read):
        read.add(os.getcwd())
    return sorted(os.path.abspath(p) for p in written), sorted(os.path.abspath(p) for p in read)


def probe_paths(token: str, node: str, written: list[str], read: list[str]) -> list[str]:
    """On a worker of ``node``: what it cannot see of the comparison's paths (none: all is well)."""
    problems = []
    for folder in map(Path, written):
        try:
            if (folder / f"{PROBE}-{token}").read_text(encoding="utf-8") != token:
                raise OSError("another probe")
            (folder / f"{PROBE}-{token}-{node}").write_text(token, encoding="utf-8")
        except OSError:
            seen = "another folder of that name (not the driver's)" if folder.is_dir() else "no such folder"
            problems.append(f"{folder}: {seen}")
    problems += [f"{path}: not found" for path in read if not Path(path).exists()]
    return problems


def check_shared(ray: Any, config: RunConfig) -> None:
    """Refuse (``LmtError``) where a live node of the Ray cluster cannot see the comparison's paths."""
    written, read = shared_paths(config)
    token = uuid.uuid4().hex
    for folder in map(Path, written):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{PROBE}-{token}").write_text(token, encoding="utf-8")
    try:
        problems = _probe_nodes(ray, token, written, read)
    finally:
        for folder in map(Path, written):
            for probe in folder.glob(f"{PROBE}-{token}*"):
                probe.unlink(missing_ok=True)
    if problems:
        raise LmtError(f"Ray workers cannot see the comparison's files: {'; '.join(problems)}. {HOW}")


def _probe_nodes(ray: Any, token: str, written: list[str], read: list[str]) -> list[str]:
    """What each live node cannot see, as ``node ADDRESS: PATH: what``; its writes read back here."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_calls=1)(probe_paths)  # (looked up now: a test may stand in for it)
    nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    pinned = {node: NodeAffinitySchedulingStrategy(node, soft=False) for node in nodes}
    refs = {node: probe.options(scheduling_strategy=pinned[node]).remote(token, node, written, read) for node in nodes}
    try:
        found = dict(zip(refs, ray.get(list(refs.values()), timeout=PROBE_SECONDS)))
    except ray.exceptions.GetTimeoutError:
        return [f"a node did not answer the check within {PROBE_SECONDS} s"]
    problems = []
    for node, seen in found.items():
        seen += [f"{f}: its writes do not reach the driver" for f in written if _unreturned(f, token, node, seen)]
        problems += [f"node {nodes[node]}: {problem}" for problem in seen]
    return problems


def _unreturned(folder: str, token: str, node: str, seen: list[str]) -> bool:
    """Whether ``node`` saw ``folder`` but its probe file is not there for the driver."""
    saw = not any(problem.startswith(f"{folder}:") for problem in seen)
    return saw and not Path(folder, f"{PROBE}-{token}-{node}").exists()
