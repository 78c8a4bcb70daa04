"""The schema of the ways that train nothing (``prompt:``): prompting a causal LM with an instruction and k
demonstrations (``strategy: prompt``), and embedding each label's description (``strategy: zero-shot``).
What depends on other fields (the causal LM a prompt run defaults to, the tasks these ways take) is decided
by ``lmtransfer.config.resolve``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lmtransfer.config.section import Section
from lmtransfer.core import choices as c


class PromptConfig(Section):
    shots: int = Field(
        0, ge=0, description="prompt: demonstrations from the training split in every prompt (0 = zero-shot)"
    )
    demos: Literal[c.PROMPT_DEMOS] = Field(  # type: ignore[valid-type]
        "balanced",
        description="prompt: which demonstrations: balanced (seeded by train.seed, round robin over the labels, the "
        "same for every text) or similar (each text's nearest training texts by demo_encoder's embeddings, never "
        "a copy of the text itself)",
    )
    demo_encoder: str = Field("minilm", description="prompt, demos: similar: the encoder that finds the neighbours")
    verbalizer: dict[str, str] | None = Field(
        None,
        description="each label's words, e.g. {'0': negative, '1': positive}: what the LM is scored on (prompt), "
        "or the description that is embedded (zero-shot); default: the label names",
    )
    instruction: str = Field(
        "Classify each text as {words}.",
        description="prompt: the instruction before the demonstrations; {words} becomes the label words listed",
    )
    chat_template: bool | Literal["auto"] = Field(
        "auto",
        description="prompt: write the prompt in the model's chat template (instruction as the system message, "
        "each demonstration a user and an assistant turn): auto (where the model has one), true, false (plain text)",
    )
    score: Literal[c.PROMPT_SCORES] = Field(  # type: ignore[valid-type]
        "sum", description="prompt: a label's log-likelihood summed over its tokens, or their mean (length-normalised)"
    )
    calibrate: bool = Field(
        False,
        description="prompt: contextual calibration (Zhao et al. 2021): divide out the label probabilities the "
        "model gives a content-free text ('N/A')",
    )
    batch_size: int = Field(16, ge=1, description="prompt, zero-shot: texts per forward pass")
