"""Feature backends as a config and the CLI see them, without importing one: each backend's name, the
arithmetic it computes in, the weights it can quantise to and the formats `lmtransfer export` makes with it.

A config is checked before anything that computes is imported (``lmtransfer --help`` imports no torch), so
these facts sit in the lowest layer; the backends themselves (hidden states, export, what a cache key
records) are in ``features/backends.py``, each with its ``BackendInfo`` from here, or its own where it
registers itself there (``features.backends.register`` adds it to ``DECLARED``).
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO = "auto"  # features.backend: auto, the registry's pick for the device (features.backends.backend_for)


@dataclass(frozen=True)
class BackendInfo:
    """What a config may ask of a backend."""

    name: str
    computes: tuple[str, ...] = ("float32", "bfloat16")  # the arithmetic it runs (features.compute)
    quantizations: tuple[str, ...] = ("none",)  # the weights it can run quantised (features.quantize)
    export_formats: tuple[str, ...] = ()  # what `lmtransfer export --format` writes with it

    def problem(self, compute: str, quantize: str) -> tuple[str, str] | None:
        """The field of a features section this backend cannot run, and why; None where it runs it."""
        if quantize not in self.quantizations:
            owners = [info.name for info in DECLARED.values() if quantize in info.quantizations]
            return "features.quantize", f"{quantize} weights are the {' or '.join(owners)} backend's: " + (
                f"set features.backend: {owners[0]}" if owners else "set features.quantize: none"
            )
        if compute != "auto" and compute not in self.computes:
            how = " or ".join(self.computes)
            return "features.compute", f"the {self.name} backend computes in {how}: use auto or {self.computes[0]}"
        return None


TORCH = BackendInfo("torch")
ONNX = BackendInfo("onnx", computes=("float32",), quantizations=("none", "int8"), export_formats=("onnx",))
DECLARED: dict[str, BackendInfo] = {info.name: info for info in (TORCH, ONNX)}


def names() -> tuple[str, ...]:
    """What ``features.backend`` may be."""
    return (*DECLARED, AUTO)


def export_formats() -> tuple[str, ...]:
    return tuple(fmt for info in DECLARED.values() for fmt in info.export_formats)


def problem(backend: str, compute: str, quantize: str) -> tuple[str, str] | None:
    """The field of a features section that ``backend`` cannot run (or that names no backend), and why.
    ``auto`` picks a backend that runs the section where the device is known, so it has none."""
    if backend == AUTO:
        return None
    if backend not in DECLARED:
        return "features.backend", f"unknown backend '{backend}': one of {', '.join(names())}"
    return DECLARED[backend].problem(compute, quantize)
