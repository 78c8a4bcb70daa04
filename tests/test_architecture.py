"""The package's shape (docs/architecture.md): layers that import only downwards and no import cycles, one
source for the names of choices, frozen configs, and an ``import lmtransfer`` that costs no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
import typing
from pathlib import Path

import click
import pytest

import lmtransfer
from lmtransfer.core import choices

SRC = Path(__file__).resolve().parents[1] / "src" / "lmtransfer"
# lowest first: a module may import from its own layer and the ones before it, never from a later one
LAYERS = (
    *("core", "config", "data", "encoders", "nn", "features", "tasks", "training", "runs"),
    *("api", "sklearn", "compare", "serve", "cli"),
)
ENTRY = ("lmtransfer", "lmtransfer.__main__")  # the package's lazy front door and ``python -m lmtransfer``


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imported(name: str, path: Path) -> set[str]:
    """The lmtransfer modules ``name`` imports anywhere in its file (in functions and TYPE_CHECKING blocks too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:  # ``from lmtransfer.compare import worker`` imports the submodule
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m == "lmtransfer" or m.startswith("lmtransfer.")}


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def layer(name: str) -> int:
    return LAYERS.index(name.split(".")[1])


def test_every_module_belongs_to_a_layer():
    for name in MODULES:
        assert name in ENTRY or name.split(".")[1] in LAYERS, f"{name} is in no layer of {LAYERS}"


def test_imports_go_down_the_layers():
    upward = [
        f"{name} ({name.split('.')[1]}) imports {target} ({target.split('.')[1]})"
        for name, targets in GRAPH.items()
        if name not in ENTRY
        for target in targets
        if target in ENTRY or layer(target) > layer(name)
    ]
    assert upward == []


def test_no_import_cycles():
    """Depth-first search over the module graph; a module met again on the current path closes a cycle."""
    cycles, state = [], {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(GRAPH.get(name, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_lmtransfer_import_and_the_cheap_commands_leave_torch_alone(tmp_path):
    """``import lmtransfer``, ``lmtransfer --help`` and ``lmtransfer cache ls`` import no torch, numpy or pydantic."""
    script = (
        "import sys\n"
        "import lmtransfer\n"
        "from lmtransfer.cli.main import cli\n"
        f"for args in (['--help'], ['cache', 'ls', '--cache-dir', {str(tmp_path)!r}], ['train', '--help']):\n"
        "    cli(args, standalone_mode=False)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'pydantic', 'accelerate') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_training_an_encoder_run_does_not_import_scikit_learn_up_front():
    """The API (what every run imports) leaves scikit-learn and pandas to where they are used (the
    bag-of-words baseline, held-out splits, metrics): imported up front they cost about 100 MiB of RSS."""
    script = (
        "import sys\n"
        "import lmtransfer.api\n"
        "from lmtransfer.runs.kinds import load_run, trainer_for\n"
        "print(sorted(m for m in ('sklearn', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


PUBLIC = [
    "CRF",
    "TASKS",
    "CacheError",
    "CacheKey",
    "CompareConfig",
    "CompareResult",
    "ConcatLayers",
    "ConfigError",
    "DataError",
    "Encoded",
    "Encoder",
    "EncoderFeatures",
    "FeatureCache",
    "FeatureSpec",
    "LinearHead",
    "LmtError",
    "LoopArgs",
    "MLPHead",
    "ModelError",
    "PretrainResult",
    "QAExample",
    "Report",
    "Run",
    "RunConfig",
    "ScalarMix",
    "Sentence",
    "SequenceHead",
    "Split",
    "StaticVectorsConfig",
    "StaticVectorsModel",
    "Task",
    "TaskModel",
    "TextPair",
    "VariantConfig",
    "VectorsResult",
    "compare",
    "convert",
    "detect_scheme",
    "evaluate",
    "extract",
    "extract_features",
    "fill_mask",
    "fit",
    "load_classification",
    "load_config",
    "load_encoder",
    "make_windows",
    "predict",
    "predict_answers",
    "predict_file",
    "pretrain",
    "read_conll",
    "read_squad",
    "read_table",
    "read_vectors",
    "resolve_layers",
    "sentence_classifier",
    "squad_metrics",
    "static_model",
    "task_for",
    "train",
    "train_vectors",
    "word_tokenizer",
    "write_conll",
    "write_report",
]


def test_the_public_names_are_those_of_088346a_and_all_resolve():
    assert sorted(lmtransfer.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(lmtransfer, name) is not None, name
    with pytest.raises(AttributeError):
        lmtransfer.no_such_name  # noqa: B018


def literal(model, field: str) -> tuple:
    """The names a field takes: its Literal's, or those a ``registered`` field reads now."""
    info = model.model_fields[field]
    live = [m.func.names for m in info.metadata if hasattr(getattr(m, "func", None), "names")]
    if live:
        return tuple(live[0]())
    args = typing.get_args(info.annotation)
    return next((typing.get_args(a) for a in args if typing.get_origin(a) is typing.Literal), args)


def cli_choices(command: str, option: str) -> tuple:
    from lmtransfer.cli.main import cli

    params = {p.name: p for p in cli.commands[command].params}
    assert isinstance(params[option].type, click.Choice)
    return tuple(params[option].type.choices)


def test_names_of_choices_come_from_one_place():
    from lmtransfer.config.schema import HeadConfig, RunConfig
    from lmtransfer.nn.heads import build_head
    from lmtransfer.tasks.table import TASKS

    assert tuple(TASKS) == choices.TASKS
    assert all(TASKS[name].metrics == choices.TASK_METRICS[name] for name in TASKS)
    assert literal(RunConfig, "task") == choices.TASKS == cli_choices("train", "task")
    assert literal(RunConfig, "strategy") == choices.STRATEGIES == cli_choices("train", "strategy")
    assert literal(HeadConfig, "type") == choices.HEAD_TYPES == cli_choices("train", "head")
    assert cli_choices("extract", "splits") == choices.SPLITS
    for task, heads in choices.TASK_HEADS.items():  # the factory builds every head a task may name
        per_position = choices.TASK_GRANULARITY[task] != "sentence"
        for kind in heads:
            assert build_head(kind, 8, 3, per_position=per_position, lstm_hidden=4) is not None, (task, kind)


def test_a_resolved_config_cannot_be_changed():
    from pydantic import ValidationError

    config = lmtransfer.load_config(None, ["task=tagging"])
    assert config.train.lr == 5e-3 and config.features.granularity == "word" and config.train.metric == "f1"
    with pytest.raises(ValidationError, match="frozen"):
        config.train.lr = 1.0
    with pytest.raises(ValidationError, match="frozen"):
        config.strategy = "finetune"


def test_resolving_a_resolved_config_changes_nothing():
    from lmtransfer.config.build import build, changed

    for overrides in ([], ["task=tagging"], ["strategy=finetune", "head.type=bilstm"], ["encoder.model=tfidf"]):
        config = lmtransfer.load_config(None, overrides)
        assert build(config.model_dump(mode="json")).model_dump() == config.model_dump()
    tagging = lmtransfer.load_config(None, ["task=tagging"])
    found = changed(tagging, {"data.tag_scheme": "IOB1"})
    assert found.data.tag_scheme == "IOB1" and tagging.data.tag_scheme == "auto"  # a new config; the old one stays
