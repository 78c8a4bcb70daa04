"""Where computation runs, decided here once: the accelerator torch finds (a CUDA GPU, say), else the CPU;
bfloat16 autocast where that accelerator has it; accelerate's processes for training; and what a process's
peak memory was."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform
import resource
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState


def accelerator_available() -> bool:
    """Whether torch finds an accelerator (CUDA, ROCm, MPS, XPU) to run on."""
    return torch.accelerator.is_available()


def launched_process() -> tuple[int, int, int, int]:
    """This process's place among those ``accelerate launch`` (or torchrun) started: rank, world size,
    local rank, processes on this machine; (0, 1, 0, 1) when started alone. Read from the environment the
    launcher sets, so that work which needs no process group (extraction) does not start one."""
    env = os.environ

    def number(name: str, default: int) -> int:
        try:
            return int(env.get(name, default))
        except ValueError:
            return default

    world = number("WORLD_SIZE", 1)
    return number("RANK", 0), world, number("LOCAL_RANK", 0), number("LOCAL_WORLD_SIZE", world)


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` is the accelerator torch finds (under ``accelerate launch`` with several GPUs, this
    process's: the one of its local rank), else the CPU; any other name (cpu, cuda, cuda:1) as given."""
    if name != "auto":
        return torch.device(name)
    if not accelerator_available():
        return torch.device("cpu")
    device = torch.accelerator.current_accelerator()
    _, _, local_rank, local_world = launched_process()
    if local_world > 1 and torch.accelerator.device_count() >= local_world:
        return torch.device(device.type, local_rank)
    return device


BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bfloat16 matrix arithmetic
# the instruction sets that decide how fast a CPU runs an encoder (bfloat16, int8 dot products, tiles)
SPEED_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere). ``LMTRANSFER_CPU_FLAGS`` (flags
    separated by spaces or commas) replaces them: to see what ``auto`` would choose on another CPU, or to
    keep a test suite's results the same on every machine."""
    forced = os.environ.get("LMTRANSFER_CPU_FLAGS")
    if forced is not None:
        return set(forced.replace(",", " ").split())
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """What this process computes on, for benchmark rows and metrics.json: the CPU model, the instruction
    sets of ``SPEED_CPU_FLAGS`` it has, its cores, and the GPU with its compute capability where torch
    finds one."""
    flags = cpu_flags()
    out: dict[str, Any] = {
        "cpu": cpu_model(),
        "isa": [f for f in SPEED_CPU_FLAGS if f in flags],
        "cores": os.cpu_count(),
    }
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        out |= {"gpu": torch.cuda.get_device_name(), "compute_capability": f"{major}.{minor}"}
    return out


def native_bfloat16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` does bfloat16 matrix arithmetic in hardware: a CPU with AVX512-BF16 or AMX (AMD
    Zen 4 and later, Intel Cooper Lake and Sapphire Rapids and later), a GPU that supports it. Elsewhere
    torch emulates bfloat16 on the CPU, several times slower than float32."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        return bool(cpu_flags() & set(BFLOAT16_CPU_FLAGS))
    return False


def auto_compute(device: torch.device | str = "cpu") -> str:
    """What ``compute: auto`` means on ``device``: bfloat16 where it is native, float32 elsewhere."""
    return "bfloat16" if native_bfloat16(device) else "float32"


def resolve_compute(compute: str, device: torch.device | str = "cpu") -> str:
    """``compute`` as it will run on ``device``: ``auto`` resolved, float32 and bfloat16 as given."""
    return auto_compute(device) if compute == "auto" else compute


def auto_mixed_precision() -> str:
    """What ``mixed_precision: auto`` means here: bf16 autocast where the device training runs on has
    native bfloat16 (a GPU that supports it; without one, a CPU with AVX512-BF16 or AMX), else none."""
    return "bf16" if native_bfloat16(pick_device()) else "no"


def make_accelerator(mixed_precision: str = "no", grad_accum: int = 1, log_with: list | None = None) -> Accelerator:
    """Devices and processes from accelerate: the accelerator torch finds, else the CPU; ``mixed_precision``
    ``auto`` is bf16 autocast where the GPU has it; ``log_with`` the experiment trackers (accelerate's).

    Without a GPU the processes run on the CPU and talk over gloo, so that
    ``accelerate launch --multi_gpu --num_processes 2 -m lmtransfer train ...`` also works on a CPU machine.
    """
    precision = auto_mixed_precision() if mixed_precision == "auto" else mixed_precision
    # accelerate keeps its settings in process-wide singletons; a second run in the same process (the
    # Python API, a notebook) may ask for other ones. The process group itself (PartialState) is kept.
    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=grad_accum,
        cpu=not accelerator_available(),
        log_with=log_with or None,
    )


def _peak_rss() -> int:
    """This process's own peak RSS in bytes. Linux's VmHWM is that of the process image since its exec;
    ``ru_maxrss`` is not: a child started by fork + exec inherits its parent's peak there (a compare row's
    child reported the parent's 1.3 GB after the parent had fine-tuned a search trial)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB (no /proc: other systems)


def peak_memory() -> dict[str, int]:
    """Peak resident memory of this process, and of the GPU where there is one (bytes)."""
    peak = {"peak_rss_bytes": _peak_rss()}
    if torch.cuda.is_available():
        peak["peak_gpu_bytes"] = int(torch.cuda.max_memory_allocated())
    return peak


def peak_rss_bytes() -> int:
    return peak_memory()["peak_rss_bytes"]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:  # find_library needs ldconfig or a compiler, which slim images may lack
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # no glibc (macOS, musl, Windows)
        return None


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc only; elsewhere a no-op).

    glibc keeps memory that torch freed in its arenas, so without this the resident size of a long
    extraction creeps up shard after shard although nothing is live; with it, RSS stays flat. The
    training loop calls it at each epoch's end: batches of many shapes leave the heap fragmented, and
    the next epoch's longest batch then needs fresh pages on top (benchmarks/memory.py, RTE at 256
    tokens, 2 epochs: peak RSS 3,673 MiB without it, 3,546 with it, the HF Trainer 3,509 and 3,537).
    The server calls it after each batch: over 10,000 served sentences its RSS grew 7% without it and
    kept growing, and stayed within 2% with it, at well under a millisecond a batch.
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
