"""lmtransfer: a pretrained language model on a labelled NLP task, feature-based or fine-tuned."""

from lmtransfer.cache import CacheKey, FeatureCache
from lmtransfer.comparison import CompareResult, compare
from lmtransfer.config import CompareConfig, RunConfig, VariantConfig, load_config
from lmtransfer.crf import CRF
from lmtransfer.data import Split, load_classification, read_table
from lmtransfer.encoders import Encoder, load_encoder
from lmtransfer.errors import CacheError, ConfigError, DataError, LmtError, ModelError
from lmtransfer.extraction import extract as extract_features
from lmtransfer.features import EncoderFeatures, FeatureSpec
from lmtransfer.fillmask import fill_mask
from lmtransfer.heads import ConcatLayers, LinearHead, MLPHead, SequenceHead, TaskModel, sentence_classifier
from lmtransfer.inputs import Encoded, TextPair
from lmtransfer.layers import resolve_layers
from lmtransfer.loop import LoopArgs, fit
from lmtransfer.pipeline import evaluate, extract, predict, predict_file, train
from lmtransfer.pretrain import PretrainResult, pretrain
from lmtransfer.qa import QAExample, make_windows, predict_answers, read_squad, squad_metrics
from lmtransfer.report import Report, write_report
from lmtransfer.runs import Run
from lmtransfer.scalar_mix import ScalarMix
from lmtransfer.static import StaticVectorsConfig, StaticVectorsModel, read_vectors, static_model, word_tokenizer
from lmtransfer.tagging import Sentence, convert, detect_scheme, read_conll, write_conll
from lmtransfer.tasks import TASKS, Task, task_for
from lmtransfer.train_vectors import VectorsResult, train_vectors

__all__ = [
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
__version__ = "0.1.0"
