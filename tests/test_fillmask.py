"""Fill-mask on a tiny random BERT masked LM: mask spellings, several masks, targets, and the errors."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner
from transformers import pipeline

from lmtransfer import fill_mask
from lmtransfer.cli.main import cli
from lmtransfer.core.errors import ConfigError, DataError, ModelError
from lmtransfer.encoders.loading import ALIASES
from lmtransfer.encoders.masked_lm import load_masked_lm

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_lm(tiny_mlm_dir):
    """The tiny masked LM loaded once: (model, tokenizer)."""
    loaded = load_masked_lm(str(tiny_mlm_dir))
    assert loaded.new_head == []
    return loaded.model, loaded.tokenizer


def test_the_three_mask_spellings_agree(tiny_lm):
    found = [fill_mask(tiny_lm, f"the movie was {mask} !") for mask in ("[MASK]", "<mask>", "{mask}")]
    assert found[0] == found[1] == found[2]
    assert len(found[0]) == 1 and found[0][0][0]["sequence"].startswith("the movie was ")


def test_two_masks_give_two_lists(tiny_lm):
    masks = fill_mask(tiny_lm, "the [MASK] was {mask}", top_k=3)
    assert len(masks) == 2 and all(len(rows) == 3 for rows in masks)
    first, second = masks[0][0], masks[1][0]
    assert first["sequence"] == f"the {first['token']} was [MASK]"  # the other mask stays the model's own
    assert second["sequence"] == f"the [MASK] was {second['token']}"


def test_scores_are_sorted_probabilities(tiny_lm):
    rows = fill_mask(tiny_lm, "shares [MASK] in the market", top_k=7)[0]
    scores = [row["score"] for row in rows]
    assert len(rows) == 7 and all(0 < s <= 1 for s in scores)
    assert scores == sorted(scores, reverse=True)
    everything = fill_mask(tiny_lm, "shares [MASK] in the market", top_k=10_000)[0]
    assert len(everything) == tiny_lm[1].vocab_size
    assert math.isclose(sum(row["score"] for row in everything), 1.0, rel_tol=1e-4)


def test_agrees_with_the_transformers_pipeline(tiny_lm):
    reference = pipeline("fill-mask", model=tiny_lm[0], tokenizer=tiny_lm[1], device="cpu")
    expected = reference("the movie [MASK] great", top_k=5)
    rows = fill_mask(tiny_lm, "the movie {mask} great", top_k=5)[0]
    assert [row["token_id"] for row in rows] == [e["token"] for e in expected]
    assert [row["score"] for row in rows] == pytest.approx([e["score"] for e in expected], rel=1e-5)


def test_targets_restrict_and_keep_the_same_scores(tiny_lm):
    full = {row["token"]: row["score"] for row in fill_mask(tiny_lm, "a [MASK] day", top_k=10_000)[0]}
    rows = fill_mask(tiny_lm, "a [MASK] day", targets=["good", "bad", "great", "awful", "news", "day"], top_k=2)[0]
    assert sorted(row["token"] for row in rows) == sorted(["good", "bad", "great", "awful", "news", "day"])
    assert [row["score"] for row in rows] == sorted((full[row["token"]] for row in rows), reverse=True)


def test_a_target_of_several_pieces_is_an_error(tiny_lm):
    with pytest.raises(DataError, match="target 'xylophone' splits into x, ##y"):
        fill_mask(tiny_lm, "a [MASK] day", targets=["xylophone"])


def test_several_texts_give_one_result_each(tiny_lm):
    texts = ["the [MASK] was great", "[MASK] rose", "a [MASK] [MASK] day"]
    together = fill_mask(tiny_lm, texts, top_k=2)
    assert [len(masks) for masks in together] == [1, 1, 2]
    for text, masks in zip(texts, together):
        alone = fill_mask(tiny_lm, text, top_k=2)
        assert [r["token_id"] for rows in masks for r in rows] == [r["token_id"] for rows in alone for r in rows]
        scores = [r["score"] for rows in masks for r in rows]
        assert scores == pytest.approx([r["score"] for rows in alone for r in rows], rel=1e-5)


def test_a_text_without_a_mask_is_an_error(tiny_lm):
    with pytest.raises(DataError, match="text 2 has no mask"):
        fill_mask(tiny_lm, ["the [MASK] was great", "no mask here"])
    with pytest.raises(ConfigError, match="top_k"):
        fill_mask(tiny_lm, "the [MASK] was great", top_k=0)


def test_a_model_without_a_masked_lm_head_is_refused(tiny_bert_dir):
    with pytest.raises(ModelError, match=r"no masked-LM head .*lmtransfer pretrain") as caught:
        fill_mask(str(tiny_bert_dir), "the [MASK] was great")
    assert caught.value.path == str(tiny_bert_dir)


def test_an_alias_resolves_and_is_refused_without_a_head(tiny_bert_dir, monkeypatch):
    monkeypatch.setitem(ALIASES, "tiny", lambda: str(tiny_bert_dir))
    with pytest.raises(ModelError, match="no masked-LM head"):
        fill_mask("tiny", "the [MASK] was great")


def test_a_directory_loads(tiny_mlm_dir, tiny_lm):
    assert fill_mask(str(tiny_mlm_dir), "the [MASK] was great") == fill_mask(tiny_lm, "the [MASK] was great")


def test_cli_prints_one_json_line_per_text(tiny_mlm_dir):
    runner = CliRunner()
    args = ["fill-mask", "--model", str(tiny_mlm_dir), "--top-k", "3", "the [MASK] was great", "a <mask> {mask}"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["text"] for line in lines] == ["the [MASK] was great", "a <mask> {mask}"]
    assert [len(line["masks"]) for line in lines] == [1, 2] and len(lines[0]["masks"][0]) == 3
    targeted = runner.invoke(cli, ["fill-mask", "-m", str(tiny_mlm_dir), "--targets", "good, bad", "a [MASK] day"])
    assert targeted.exit_code == 0, targeted.output
    assert {row["token"] for row in json.loads(targeted.output)["masks"][0]} == {"good", "bad"}


def test_cli_refuses_a_model_without_a_head(tiny_bert_dir):
    result = CliRunner().invoke(cli, ["fill-mask", "-m", str(tiny_bert_dir), "the [MASK] was great"])
    assert isinstance(result.exception, ModelError)
