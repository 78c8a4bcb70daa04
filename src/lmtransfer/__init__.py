"""lmtransfer: a pretrained language model on a labelled NLP task, feature-based or fine-tuned.

The public names below are imported on first use (PEP 562), so that ``import lmtransfer`` (and with it
``lmtransfer --help``) costs no torch or transformers import. ``docs/architecture.md`` maps the packages.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it
_EXPORTS = {
    "CRF": "lmtransfer.nn.crf",
    "TASKS": "lmtransfer.tasks.table",
    "CacheError": "lmtransfer.core.errors",
    "CacheKey": "lmtransfer.features.cache.key",
    "CompareConfig": "lmtransfer.config.compare_schema",
    "CompareResult": "lmtransfer.compare.runner",
    "ConcatLayers": "lmtransfer.nn.task_model",
    "ConfigError": "lmtransfer.core.errors",
    "DataError": "lmtransfer.core.errors",
    "Encoded": "lmtransfer.data.examples",
    "Encoder": "lmtransfer.encoders.encoder",
    "EncoderFeatures": "lmtransfer.features.pooling",
    "FeatureCache": "lmtransfer.features.cache.reader",
    "FeatureSpec": "lmtransfer.features.pooling",
    "LinearHead": "lmtransfer.nn.heads",
    "LmtError": "lmtransfer.core.errors",
    "LoopArgs": "lmtransfer.training.loop_state",
    "MLPHead": "lmtransfer.nn.heads",
    "ModelError": "lmtransfer.core.errors",
    "PretrainResult": "lmtransfer.training.pretrain",
    "QAExample": "lmtransfer.data.squad",
    "Report": "lmtransfer.compare.report",
    "Run": "lmtransfer.runs.loaded",
    "RunConfig": "lmtransfer.config.schema",
    "ScalarMix": "lmtransfer.nn.scalar_mix",
    "Sentence": "lmtransfer.data.conll",
    "SequenceHead": "lmtransfer.nn.heads",
    "Split": "lmtransfer.data.splits",
    "StaticVectorsConfig": "lmtransfer.encoders.static",
    "StaticVectorsModel": "lmtransfer.encoders.static",
    "Task": "lmtransfer.tasks.base",
    "TaskModel": "lmtransfer.nn.task_model",
    "TextPair": "lmtransfer.data.examples",
    "VariantConfig": "lmtransfer.config.compare_schema",
    "VectorsResult": "lmtransfer.encoders.word2vec",
    "compare": "lmtransfer.compare.runner",
    "convert": "lmtransfer.data.tag_schemes",
    "detect_scheme": "lmtransfer.data.tag_schemes",
    "evaluate": "lmtransfer.api",
    "extract": "lmtransfer.api",
    "extract_features": ("lmtransfer.features.extraction", "extract"),
    "fill_mask": "lmtransfer.tasks.fill_mask",
    "fit": "lmtransfer.training.loop",
    "load_classification": "lmtransfer.data.tables",
    "load_config": "lmtransfer.config.loading",
    "load_encoder": "lmtransfer.encoders.loading",
    "make_windows": "lmtransfer.tasks.qa_windows",
    "predict": "lmtransfer.api",
    "predict_answers": "lmtransfer.tasks.qa_answers",
    "predict_file": "lmtransfer.api",
    "pretrain": "lmtransfer.training.pretrain",
    "read_conll": "lmtransfer.data.conll",
    "read_squad": "lmtransfer.data.squad",
    "read_table": "lmtransfer.data.tables",
    "read_vectors": "lmtransfer.encoders.vector_files",
    "resolve_layers": "lmtransfer.config.layers",
    "sentence_classifier": "lmtransfer.nn.task_model",
    "squad_metrics": "lmtransfer.tasks.metrics",
    "static_model": "lmtransfer.encoders.static",
    "task_for": "lmtransfer.tasks.table",
    "train": "lmtransfer.api",
    "train_vectors": "lmtransfer.encoders.word2vec",
    "word_tokenizer": "lmtransfer.encoders.static",
    "write_conll": "lmtransfer.data.conll",
    "write_report": "lmtransfer.compare.report",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'lmtransfer' has no attribute '{name}'")
    module, attribute = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
