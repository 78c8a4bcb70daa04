"""Shared fixtures: tiny randomly initialised encoders saved to disk once per session, built offline.

A BERT (with token_type_ids) and an MPNet (without) of 2 layers and hidden size 32, each with a
WordPiece tokenizer over a small vocabulary of letters, subword letters and a few words.
"""

from __future__ import annotations

import copy
import string
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer, MPNetConfig, MPNetModel, MPNetTokenizer

from lmtransfer.encoders.encoder import Encoder
from lmtransfer.encoders.loading import load_encoder

WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "it",
    "not",
    "good",
    "bad",
    "movie",
    "film",
    "great",
    "awful",
    "day",
    "news",
    "sport",
    "market",
    "shares",
    "rose",
    "fell",
    "plot",
    "acting",
    "loved",
    "hated",
]
PIECES = [*string.ascii_lowercase, *(f"##{c}" for c in string.ascii_lowercase), *string.digits, *".,!?'-"]


def _vocab(specials: list[str]) -> dict[str, int]:
    tokens = dict.fromkeys([*specials, *PIECES, *WORDS])  # ordered and unique ("a" is a piece and a word)
    return {token: i for i, token in enumerate(tokens)}


TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}


def _build_tiny(directory: Path, config_class, model_class, tokenizer_class, specials: list[str], **extra) -> Path:
    torch.manual_seed(0)
    vocab = _vocab(specials)
    model_class(config_class(vocab_size=len(vocab), **TINY, **extra)).save_pretrained(directory)
    tokenizer_class(vocab=vocab, model_max_length=64).save_pretrained(directory)
    return directory


def build_tiny_bert(directory: Path) -> Path:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return _build_tiny(directory, BertConfig, BertModel, BertTokenizer, specials, max_position_embeddings=64)


def build_tiny_mpnet(directory: Path) -> Path:
    """MPNet has no token_type_ids; its positions start after the padding index, hence 66."""
    specials = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]
    return _build_tiny(
        directory, MPNetConfig, MPNetModel, MPNetTokenizer, specials, max_position_embeddings=66, pad_token_id=1
    )


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_mpnet_dir(tmp_path_factory) -> Path:
    return build_tiny_mpnet(tmp_path_factory.mktemp("tiny-mpnet"))


@pytest.fixture(scope="session")
def _tiny_bert_loaded(tiny_bert_dir) -> Encoder:
    return load_encoder(str(tiny_bert_dir))


@pytest.fixture
def tiny_encoder(_tiny_bert_loaded) -> Encoder:
    """A fresh deep copy per test, so that no test sees another's changes."""
    return copy.deepcopy(_tiny_bert_loaded)


SENTENCES = [
    "the movie was great",
    "awful plot and bad acting",
    "i loved it",
    "i hated the film",
    "shares rose in the market",
    "shares fell",
    "a good day for sport",
    "news of the day",
    "not good",
    "great acting, great plot!",
    "the film was awful",
    "market news",
]


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def sentiment_files(tmp_path) -> dict[str, Path]:
    """Small train / dev / test CSVs with labels pos / neg / biz."""
    labels = ["pos", "neg", "pos", "neg", "biz", "biz", "pos", "biz", "neg", "pos", "neg", "biz"]
    rows = list(zip(SENTENCES, labels))
    return {
        "train": write_csv(tmp_path / "train.csv", rows * 4),
        "dev": write_csv(tmp_path / "dev.csv", rows[:6]),
        "test": write_csv(tmp_path / "test.csv", rows[6:]),
    }


@pytest.fixture
def run_overrides(tiny_bert_dir, sentiment_files, tmp_path) -> list[str]:
    """Config overrides for a fast feature-based run on the tiny BERT."""
    return [
        f"encoder.model={tiny_bert_dir}",
        "encoder.max_length=32",
        f"data.train={sentiment_files['train']}",
        f"data.dev={sentiment_files['dev']}",
        f"data.test={sentiment_files['test']}",
        "train.epochs=3",
        "train.min_steps=0",  # epochs alone: the tests' runs stay a few steps long
        "train.batch_size=8",
        f"cache_dir={tmp_path / 'cache'}",
        f"output_dir={tmp_path / 'run'}",
        "features.shard_size=16",
    ]


def build_tiny_bert_mlm(directory: Path) -> Path:
    """The tiny BERT with a masked-LM head (random, its decoder tied to the word embeddings)."""
    from transformers import BertForMaskedLM

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return _build_tiny(directory, BertConfig, BertForMaskedLM, BertTokenizer, specials, max_position_embeddings=64)


@pytest.fixture(scope="session")
def tiny_mlm_dir(tmp_path_factory) -> Path:
    return build_tiny_bert_mlm(tmp_path_factory.mktemp("tiny-bert-mlm"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and far faster than on threads that share busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _cpu_without_bfloat16(monkeypatch):
    """Tests, and the processes they start, see a CPU without bfloat16 units, so that ``compute: auto`` and
    ``mixed_precision: auto`` mean float32 on every machine and float32 results can be compared exactly;
    a test of ``auto`` sets the flags it needs on top of this."""
    monkeypatch.setenv("LMTRANSFER_CPU_FLAGS", "avx2")
