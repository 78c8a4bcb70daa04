"""CPU threads: how many torch runs, and a warning when other processes already keep the cores busy.

torch starts one thread per core and its parallel regions wait for their slowest thread, so when
other processes hold the cores a step waits on threads that are not running. On a 2-core machine
with both cores busy elsewhere, a BiLSTM training step ran 18x slower with torch's 2 threads than
with 1 (benchmarks/threads.py). The thread count itself is the CLI's ``--threads``.
"""

from __future__ import annotations

import os

import torch

from lmtransfer.core.devices import accelerator_available

BUSY = 1.5  # warn when the 1-minute load average exceeds this many times the usable cores


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def busy_cpu_warning() -> str | None:
    """Advice to use fewer threads when other work already loads the CPU; None when it does not apply
    (one thread, an accelerator doing the work, an idle machine, or no load average on this system)."""
    threads = torch.get_num_threads()
    if threads <= 1 or accelerator_available():
        return None
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return None
    cores = usable_cores()
    if load <= BUSY * cores:
        return None
    return (
        f"the CPU is busy (1-minute load average {load:.1f} on {cores} cores) and torch runs {threads} threads, "
        "which wait on each other while other processes hold their cores (training measured 10-20x slower so "
        "on 2 cores); `lmtransfer --threads 1 ...` (or LMTRANSFER_THREADS=1) is usually faster under such load"
    )
