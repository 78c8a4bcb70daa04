"""What the benchmark scripts share: their --child / --table modes and the skip when data is absent."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def parser(doc: str, data: Path, out: Path, only_help: str) -> argparse.ArgumentParser:
    """The options every benchmark script takes: --data, --out, --table, --only, and the hidden --child."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--table", action="store_true", help="print the tables from --out and stop")
    parser.add_argument("--only", nargs="*", help=only_help)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def handled(
    args: argparse.Namespace,
    child_row: Callable[[], dict],
    table: Callable[[Path], str],
    needed: Sequence[str] = ("train.tsv",),
) -> bool:
    """True when this call was a child step (one JSON line printed) or --table; exits when one of the
    ``needed`` files (relative to --data) is missing."""
    if args.child:
        print(json.dumps(child_row()))
        return True
    if args.table:
        print(table(args.out))
        return True
    for name in needed:
        if not (args.data / name).is_file():
            sys.exit(f"skipped: {args.data / name} not found (see ../shared/data/README.md)")
    return False


def cpu() -> dict:
    """What a benchmark row ran on: the CPU model and the instruction sets that matter for speed, its cores,
    and the GPU with its compute capability where there is one (``core.devices.hardware``)."""
    from lmtransfer.core.devices import hardware

    return hardware()


def run_steps(script: str, steps: list[str], data: Path, out: Path, common: dict, flags: list[str] = ()) -> list[str]:
    """Each step in a child process of ``script`` (``--child STEP``), so that its peak memory is its own;
    its JSON row, with ``common``, appended to ``out``; a failed step is recorded and the others still
    run. Returns the failed steps."""
    import subprocess
    import time

    from lmtransfer.core.atomic import append_jsonl

    failed = []
    for step in steps:
        began = time.perf_counter()
        command = [sys.executable, script, "--child", step, "--data", str(data.resolve()), *flags]
        proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=Path(script).parent)
        if proc.returncode != 0:
            failed.append(step)
            append_jsonl(out, {**common, "step": step, "error": f"exit status {proc.returncode}"})
            print(f"{step}: FAILED (exit status {proc.returncode}; its output is above)", flush=True)
            continue
        append_jsonl(out, {**common, "step": step, **json.loads(proc.stdout.strip().splitlines()[-1])})
        print(f"{step}: {time.perf_counter() - began:.0f} s", flush=True)
    return failed
