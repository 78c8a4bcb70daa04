"""The schema of how a run trains: the optimizer, its budget in steps and evaluations (`train:`), and what
fine-tuning and LoRA change (`finetune:`, `lora:`). Defaults that depend on the strategy are None here and
decided by ``lmtransfer.config.resolve``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from lmtransfer.config.section import Section
from lmtransfer.core import choices as c


class TrainConfig(Section):
    epochs: int | None = Field(
        None,
        ge=1,
        description="passes over train, raised where they hold fewer than min_steps optimizer steps; "
        "default 20 (feature) or 3 (finetune, lora)",
    )
    min_steps: int | None = Field(
        None,
        ge=0,
        description="the fewest optimizer steps a run takes, whatever the training set's size: epochs are raised to "
        "reach them and early stopping waits for them; default 300 (feature) or 150 (finetune, lora), measured "
        "in docs/benchmarks.md; 0: epochs alone",
    )
    eval_steps: int | None = Field(
        None,
        ge=1,
        description="optimizer steps between two dev evaluations (also before the first and after the last step); "
        "default twice an epoch, at least 10 steps apart and at most 20 evaluations in all",
    )
    batch_size: int = Field(64, ge=1, description="examples per optimizer step, across processes and accumulation")
    lr: float | None = Field(
        None, gt=0, description="AdamW lr; default 5e-3 feature, 5e-5 finetune (1e-3 on static vectors), 5e-4 lora"
    )
    head_lr: float | None = Field(None, gt=0, description="lr of scalar mix + head; default: lr")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of steps with linear warmup, then linear decay")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    gradient_checkpointing: bool = Field(
        False,
        description="fine-tuning, lora: keep only each block's input for the backward pass and recompute the "
        "rest (activation memory of one block instead of all, for about a third more compute)",
    )
    group_by_length: bool = Field(
        True, description="fine-tuning: batch texts of similar length together (less padding, faster steps)"
    )
    patience: int | None = Field(
        None,
        ge=1,
        description="dev evaluations without improvement before stopping (never before min_steps); default 3 "
        "(feature) or 5 (finetune, lora: dev dips while the learning rate is high); a run converged where its "
        "best evaluation is followed by this many",
    )
    metric: str | None = Field(
        None,
        description="dev metric for early stopping and the best checkpoint; default per task: accuracy "
        "(classification), micro_f1 (multilabel), pearson (regression), f1 (tagging, qa)",
    )
    max_grad_norm: float | None = Field(1.0, gt=0)
    mixed_precision: Literal[c.MIXED_PRECISION] = Field(  # type: ignore[valid-type]
        "auto",
        description="auto: bf16 autocast where the device has native bfloat16 (a recent GPU, or a CPU with "
        "AVX512-BF16 or AMX), else no",
    )
    checkpoint_every: int = Field(0, ge=0, description="also checkpoint every N optimizer steps (0: epoch ends only)")
    keep_checkpoints: int = Field(2, ge=1, description="periodic checkpoints kept (the best is kept apart)")
    seed: int = 13
    report_to: list[Literal[c.TRACKERS]] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="experiment trackers to log to, through accelerate: tensorboard (into <output_dir>/logs), "
        "mlflow (MLFLOW_TRACKING_URI), wandb, comet_ml, aim, clearml, dvclive; default none",
    )
    logging_steps: int = Field(10, ge=1, description="trackers get the training loss and lr every N optimizer steps")
    experiment: str | None = Field(
        None, description="the trackers' experiment (project); default: the run folder's name (compare: its folder's)"
    )
    tags: dict[str, str] = Field(default_factory=dict, description="tags of the run in the trackers")
    score_test: bool = Field(
        True, description="score the test split after training (false: dev alone, as compare's search trials are)"
    )

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        return "no" if value is False else value  # YAML reads a bare `no` as false


class FinetuneConfig(Section):
    freeze_embeddings: bool = False
    freeze_layers: int = Field(0, ge=0, description="freeze the bottom k transformer blocks")
    layer_lr_decay: float = Field(1.0, gt=0, le=1, description="block l gets lr * decay^(top - l)")
    attention_dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="dropout on the attention probabilities while the encoder trains (default: the checkpoint's, "
        "0.1 for BERT-like models); 0 lets torch's CPU attention skip storing them, which halved a SQuAD "
        "fine-tune's peak memory",
    )


class LoraConfig(Section):
    r: int = Field(8, ge=1, description="adapter rank")
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, description="default: the attention projections of the model")
