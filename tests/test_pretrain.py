"""Masked-LM pretraining of the tiny BERT on a tiny corpus: it learns, saves a model both loaders take,
ties a new head to the embeddings, masks whole words together, and rejects bad corpora by line."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer, set_seed

from lmtransfer import fill_mask, load_encoder, pretrain
from lmtransfer.cli.main import cli
from lmtransfer.core.errors import ConfigError, DataError
from lmtransfer.encoders.masked_lm import load_masked_lm
from lmtransfer.training.pretrain import encode_corpus, make_collator, read_corpus

from .conftest import SENTENCES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n\n".join(SENTENCES * 4) + "\n", encoding="utf-8")  # blank lines in between
    return path


@pytest.fixture(scope="module")
def pretrained(tiny_bert_dir, corpus, tmp_path_factory):
    """The tiny BertModel (no masked-LM head) after 40 steps on the corpus."""
    output = tmp_path_factory.mktemp("pretrained") / "mlm"
    result = pretrain(tiny_bert_dir, corpus, output, max_steps=40, batch_size=8, lr=3e-3, seed=0, progress=False)
    return result


def _masked_loss(model, tokenizer, lines: list[str]) -> float:
    """Loss on one fixed masking of the corpus (the same masks for every model)."""
    batch = make_collator(tokenizer, 0.3, False, seed=123)(encode_corpus(tokenizer, lines, 32, False))
    with torch.no_grad():
        return float(model.eval()(**batch).loss)


def test_pretraining_lowers_the_masked_lm_loss(tiny_bert_dir, corpus, pretrained):
    assert pretrained.steps == 40 and pretrained.new_head and pretrained.examples == len(SENTENCES) * 4
    lines = read_corpus(corpus)
    set_seed(0)  # the new head exactly as pretrain started it
    before = load_masked_lm(str(tiny_bert_dir))
    after = load_masked_lm(str(pretrained.output_dir))
    assert after.new_head == []
    loss_before = _masked_loss(before.model, before.tokenizer, lines)
    loss_after = _masked_loss(after.model, after.tokenizer, lines)
    assert loss_after < loss_before - 0.5, (loss_before, loss_after)


def test_the_new_head_is_tied_to_the_embeddings(pretrained):
    model = AutoModelForMaskedLM.from_pretrained(pretrained.output_dir)
    assert model.config.tie_word_embeddings
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    stored = load_file(pretrained.output_dir / "model.safetensors")
    assert "cls.predictions.decoder.weight" not in stored  # stored once, as the word embeddings


def test_the_output_loads_for_fill_mask_and_as_an_encoder(tiny_bert_dir, pretrained):
    rows = fill_mask(str(pretrained.output_dir), "the movie was [MASK]", top_k=3)[0]
    assert len(rows) == 3
    encoder = load_encoder(str(pretrained.output_dir))
    original = load_encoder(str(tiny_bert_dir))
    assert type(encoder.model).__name__ == "BertModel" and encoder.num_layers == 2
    trained = encoder.model.embeddings.word_embeddings.weight
    assert not torch.equal(trained, original.model.embeddings.word_embeddings.weight)
    inputs = encoder.tokenizer(["the movie was great"], return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model(**inputs, output_hidden_states=True).hidden_states
    assert len(hidden) == 3 and hidden[-1].shape == (1, inputs["input_ids"].shape[1], 32)


def test_continuing_a_masked_lm_keeps_its_head(tiny_mlm_dir, corpus, tmp_path):
    result = pretrain(tiny_mlm_dir, corpus, tmp_path / "more", max_steps=2, batch_size=4, lr=1e-4, progress=False)
    assert not result.new_head and result.steps == 2
    assert "cls.predictions.transform.dense.weight" in load_file(tmp_path / "more" / "model.safetensors")


def test_whole_word_masking_masks_every_piece_of_a_word(tiny_bert_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    lines = ["the xylophone was great", "shares rose in the market"]
    examples = encode_corpus(tokenizer, lines, 32, whole_word_mask=True)
    pieces = tokenizer.convert_ids_to_tokens(examples[0]["input_ids"])
    word = [i for i, piece in enumerate(pieces) if piece == "x" or piece.startswith("##")]  # x ##y ##l ... ##e
    assert len(word) == 9
    seen = set()
    for seed in range(20):
        batch = make_collator(tokenizer, 0.5, True, seed=seed)(examples)
        masked = batch["labels"][0] != -100  # (T,)
        seen.add(bool(masked[word].all()))
        assert masked[word].all() or not masked[word].any()  # all pieces together, or none
        assert (batch["input_ids"][0][masked] == tokenizer.mask_token_id).all()  # always the mask token
        assert not masked[[0, len(pieces) - 1]].any()  # never [CLS] or [SEP]
    assert seen == {True, False}


def test_whole_word_pretraining_runs(tiny_bert_dir, corpus, tmp_path):
    result = pretrain(
        tiny_bert_dir, corpus, tmp_path / "wwm", max_steps=3, batch_size=4, whole_word_mask=True, progress=False
    )
    assert result.steps == 3 and result.final_loss > 0
    assert fill_mask(str(result.output_dir), "a [MASK] day", top_k=1)[0][0]["score"] > 0


def test_long_lines_become_several_examples(tiny_bert_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    examples = encode_corpus(tokenizer, ["shares rose in the market " * 6], 10, whole_word_mask=False)
    assert len(examples) == 4 and all(len(e["input_ids"]) <= 10 for e in examples)  # 30 words, 8 per example


def test_a_corpus_that_is_not_utf8_names_the_line(tiny_bert_dir, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the movie was great\n\nshares \xe9 rose\n")
    with pytest.raises(DataError, match=r"bad\.txt: line 3: bytes that are not UTF-8 \(0xe9 at column 8\)"):
        pretrain(tiny_bert_dir, bad, tmp_path / "out", max_steps=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_a_blank_corpus_and_bad_arguments_are_errors(tiny_bert_dir, tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\t\n", encoding="utf-8")
    with pytest.raises(DataError, match="no text"):
        pretrain(tiny_bert_dir, blank, tmp_path / "out", max_steps=1, progress=False)
    with pytest.raises(ConfigError, match="mlm_probability"):
        make_collator(AutoTokenizer.from_pretrained(tiny_bert_dir), 0.0, False, seed=0)
    with pytest.raises(ConfigError, match="max_steps"):
        pretrain(tiny_bert_dir, blank, tmp_path / "out", max_steps=0, progress=False)


def test_cli_pretrains_then_fills_masks(tiny_bert_dir, corpus, tmp_path):
    runner = CliRunner()
    output = tmp_path / "cli-mlm"
    args = ["pretrain", "-m", str(tiny_bert_dir), "--data", str(corpus), "-o", str(output), "--max-steps", "2"]
    result = runner.invoke(cli, [*args, "--batch-size", "4", "--whole-word-mask", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "new one was trained, tied" in result.output and "2 steps over 48 examples" in result.output
    filled = runner.invoke(cli, ["fill-mask", "-m", str(output), "the [MASK] was great"])
    assert filled.exit_code == 0, filled.output
