"""Layer specifications: which hidden states to take from an encoder.

Layer 0 is the embedding output, layer ``n`` the last transformer block (an encoder with ``n``
blocks has ``n + 1`` hidden states). Negative indices count from the top: -1 is the last block.
"""

from __future__ import annotations

NAMED = {
    "all": lambda n: list(range(n + 1)),
    "last": lambda n: [n],
    "last4": lambda n: list(range(max(n - 3, 0), n + 1)),
    "second_to_last": lambda n: [n - 1],
    "embeddings": lambda n: [0],
}


def resolve_layers(spec: str | int | list[int] | tuple[int, ...], num_layers: int) -> list[int]:
    """Turn a layer spec into sorted, unique, non-negative hidden-state indices.

    Raises ValueError with a message that names the bad index and the valid range.
    """
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name in NAMED:
            indices = NAMED[name](num_layers)
            if any(i < 0 for i in indices):  # second_to_last of an encoder with no blocks (static vectors)
                raise ValueError(f"'{spec}' needs at least one transformer block; this encoder has {num_layers}")
            return indices
        try:
            spec = [int(part) for part in name.replace(",", " ").split()]
        except ValueError:
            raise ValueError(
                f"unknown layer spec '{spec}' (use {', '.join(NAMED)}, an index or a list of indices)"
            ) from None
    indices = [spec] if isinstance(spec, int) else list(spec)
    if not indices:
        raise ValueError("the layer list is empty")
    resolved = []
    for index in indices:
        absolute = index + num_layers + 1 if index < 0 else index
        if not 0 <= absolute <= num_layers:
            raise ValueError(
                f"layer {index} does not exist: this encoder has layers 0..{num_layers} "
                f"(0 = embeddings) or -1..-{num_layers + 1} from the top"
            )
        resolved.append(absolute)
    return sorted(set(resolved))
