"""Loading transformers' models and tokenizers without their progress bars and load reports."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Loading without the libraries' bars and notes: transformers' own bars, its load report (the weights a
    model class leaves out, such as a causal LM's head read as an encoder: expected here), and the bar its
    GGUF reader draws with plain tqdm for every tensor it dequantises, which transformers' switch does not
    reach (so it is swapped for a disabled tqdm here, and put back after)."""
    from transformers import modeling_gguf_pytorch_utils as gguf_reader
    from transformers.utils import logging as hf_logging

    was_on, verbosity, bar = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity(), gguf_reader.tqdm
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity(max(verbosity, hf_logging.ERROR))
    gguf_reader.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_reader.tqdm = bar
        hf_logging.set_verbosity(verbosity)
        if was_on:
            hf_logging.enable_progress_bar()
