"""lmtransfer: a pretrained language model on a labelled NLP task, feature-based or fine-tuned."""

from lmtransfer.cache import CacheKey, FeatureCache
from lmtransfer.config import RunConfig, load_config
from lmtransfer.data import Split, load_classification, read_table
from lmtransfer.encoders import Encoder, load_encoder
from lmtransfer.errors import CacheError, ConfigError, DataError, LmtError, ModelError
from lmtransfer.extraction import extract as extract_features
from lmtransfer.features import EncoderFeatures, FeatureSpec
from lmtransfer.heads import LinearHead, MixClassifier, MLPHead
from lmtransfer.layers import resolve_layers
from lmtransfer.loop import LoopArgs, fit
from lmtransfer.pipeline import evaluate, extract, predict, train
from lmtransfer.runs import Run
from lmtransfer.scalar_mix import ScalarMix

__all__ = [
    "CacheError",
    "CacheKey",
    "ConfigError",
    "DataError",
    "Encoder",
    "EncoderFeatures",
    "FeatureCache",
    "FeatureSpec",
    "LinearHead",
    "LmtError",
    "LoopArgs",
    "MLPHead",
    "MixClassifier",
    "ModelError",
    "Run",
    "RunConfig",
    "ScalarMix",
    "Split",
    "evaluate",
    "extract",
    "extract_features",
    "fit",
    "load_classification",
    "load_config",
    "load_encoder",
    "predict",
    "read_table",
    "resolve_layers",
    "train",
]
__version__ = "0.1.0"
