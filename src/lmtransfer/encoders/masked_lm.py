"""A masked language model loaded as lmtransfer loads encoders (an alias, a directory or a hub id; local
first, safetensors only), saying which head weights its checkpoint lacked: fill-mask refuses such a
model, masked-LM pretraining trains the new head.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from lmtransfer.core.errors import ModelError
from lmtransfer.encoders.loading import load_local_first
from lmtransfer.encoders.quiet import quiet_loading


@dataclass
class MaskedLM:
    """A masked language model with its tokenizer; ``new_head`` lists head weights the checkpoint lacked."""

    source: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    new_head: list[str]


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars, and no table of missing / unexpected weights (``MaskedLM.new_head`` says what matters)."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with quiet_loading():
            yield
    finally:
        hf_logging.set_verbosity(verbosity)


def load_masked_lm(name: str, *, dtype: torch.dtype | None = None) -> MaskedLM:
    """Load ``name`` (alias, directory or hub id) as a masked LM: local first, the hub only if needed.

    Where the checkpoint has no masked-LM head, transformers makes a new one (random, its decoder tied
    to the input embeddings); ``new_head`` then names the weights it had to create.
    """
    return load_local_first(name, lambda source, local_only: _load(source, local_files_only=local_only, dtype=dtype))


def _load(source: str, *, local_files_only: bool, dtype: torch.dtype | None) -> MaskedLM:
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        try:
            model, info = AutoModelForMaskedLM.from_pretrained(
                source,
                use_safetensors=True,
                local_files_only=local_files_only,
                output_loading_info=True,
                **({} if dtype is None else {"dtype": dtype}),
            )
        except ValueError as exc:  # a model type with no masked-LM class
            raise ModelError(f"not a masked language model ({str(exc).splitlines()[0]})", path=source) from None
    prefix = model.base_model_prefix
    body = set(model.base_model.state_dict())
    new_head = sorted(k for k in info["missing_keys"] if k not in body and k.removeprefix(f"{prefix}.") not in body)
    return MaskedLM(source=source, model=model, tokenizer=tokenizer, new_head=new_head)
