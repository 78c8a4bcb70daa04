"""The ways that train nothing: ``strategy: prompt`` (a causal LM scoring each label's words after an
instruction and k demonstrations) and ``strategy: zero-shot`` (the nearest label description by an encoder's
embeddings): their scores against direct computations, their run folders loaded back, their refusals, and a
prompt row in a comparison beside trained rows, with intervals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lmtransfer import api, compare, load_config
from lmtransfer.cli.main import cli
from lmtransfer.compare.results import read_rows
from lmtransfer.config.variants import jobs, search_plans
from lmtransfer.core.errors import ConfigError, ModelError
from lmtransfer.encoders.causal_lm import load_causal_lm
from lmtransfer.features.label_scores import naive_label_scores
from lmtransfer.runs.kinds import load_run
from lmtransfer.runs.loaded import Run
from lmtransfer.runs.prompt_run import PromptRun
from lmtransfer.runs.zero_shot_run import SCALE, ZeroShotRun
from lmtransfer.tasks.prompts import ClassificationPrompt, nearest_demos, tokenised
from tests.test_causal_lm import WORDS as VOCABULARY
from tests.tiny_decoders import build_tiny_llama

pytestmark = pytest.mark.usefixtures("one_thread")
WORDS = "{pos: great, neg: awful, biz: review}"  # words the tiny Llama's vocabulary holds


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("llama"), VOCABULARY)


@pytest.fixture
def prompt_overrides(llama_dir, sentiment_files, tmp_path) -> list[str]:
    return [
        "strategy=prompt",
        f"encoder.model={llama_dir}",
        f"data.train={sentiment_files['train']}",
        f"data.dev={sentiment_files['dev']}",
        f"data.test={sentiment_files['test']}",
        f"prompt.verbalizer={WORDS}",
        f"output_dir={tmp_path / 'run'}",
    ]


def _normalised(scores: np.ndarray) -> np.ndarray:
    return scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)


@pytest.mark.parametrize("score", ["sum", "mean"])
def test_a_prompt_run_scores_each_label_as_a_direct_forward_pass(prompt_overrides, llama_dir, sentiment_files, score):
    words = "prompt.verbalizer={pos: great movie, neg: awful, biz: review .}"  # 2, 1 and 2 tokens: sum != mean
    overrides = [*prompt_overrides, words, "prompt.shots=3", f"prompt.score={score}"]
    result = api.train(load_config(None, overrides), progress=False)
    run = load_run(result.directory)
    assert isinstance(run, PromptRun) and len(run.demos) == 3 and not run.model_info["chat"]
    assert {word for _, word in run.demos} == {"great movie", "awful", "review ."}  # balanced: one of each
    # the same scores from the prompt written out by hand, one whole forward pass per text and label
    lm = load_causal_lm(str(llama_dir))
    dev = [line.split(",")[0] for line in sentiment_files["dev"].read_text().splitlines()[1:]]
    prompt = ClassificationPrompt(("review .", "awful", "great movie"), run.demos)  # labels sorted: biz, neg, pos
    assert prompt.prefix().startswith("Classify each text as review ., awful or great movie.\n\nText: ")
    tokens = tokenised(lm.tokenizer, prompt, dev)
    naive = naive_label_scores(lm.model, tokens.prefix, tokens.items, tokens.labels, normalise=score == "mean")
    expected = _normalised(naive)
    found = run.outputs(run.prepare(api_split(sentiment_files["dev"], run)))
    assert found.shape == (6, 3) and np.abs(found - expected).max() < 1e-4
    assert result.dev["accuracy"] == pytest.approx(np.mean(expected.argmax(1) == [2, 1, 2, 1, 0, 0]))
    costs = json.loads((result.directory / "metrics.json").read_text())["costs"]
    assert costs["train_seconds"] == 0 and costs["trainable_parameters"] == 0 and costs["shots"] == 3
    assert costs["prompt_tokens_per_example"] > len(tokens.prefix) and costs["prompt_examples_per_second"] > 0
    files = sorted(p.name for p in result.directory.iterdir())
    assert "prompt.json" in files and "model.safetensors" not in files and "encoder" not in files
    card = (result.directory / "README.md").read_text()
    assert "- Prompt: 3 demonstrations from train (the same balanced set for every text), written as plain text" in card


def api_split(path: Path, run):
    return run.task.read(path)


def test_a_prompt_run_predicts_from_its_folder_and_knows_its_model(prompt_overrides, llama_dir, tmp_path):
    result = api.train(load_config(None, [*prompt_overrides, "prompt.shots=2"]), progress=False)
    loaded = Run.load(result.directory)
    found = loaded.predict(["the movie was great", "awful"])
    assert [set(row["probabilities"]) for row in found] == [{"biz", "neg", "pos"}] * 2
    out = CliRunner().invoke(cli, ["predict", str(result.directory), "the movie was great"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.strip().splitlines()[-1])["label"] == found[0]["label"]
    # the same name, other weights: the run says so rather than prompting another model
    other = build_tiny_llama(tmp_path / "other", VOCABULARY, seed=1)
    moved = tmp_path / "moved-run"
    shutil.copytree(result.directory, moved)
    config_text = (moved / "config.yaml").read_text().replace(str(llama_dir), str(other))
    (moved / "config.yaml").write_text(config_text)
    with pytest.raises(ModelError, match="not the model this run was made with"):
        Run.load(moved).predict(["great"])


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (["task=regression"], "strategy", "'prompt' scores label words: it takes task classification"),
        (["encoder.model=tfidf"], "encoder.model", "needs a pretrained transformer"),
        (["encoder.long_text=windows"], "encoder.long_text", "reads each text once"),
    ],
)
def test_what_prompting_cannot_do_is_refused_naming_the_field(prompt_overrides, overrides, field, message):
    with pytest.raises(ConfigError, match=message) as found:
        load_config(None, [*prompt_overrides, *overrides])
    assert field in str(found.value)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (["prompt.verbalizer={pos: great, neg: awful}"], "prompt.verbalizer", "no words for 'biz'"),
        (["prompt.verbalizer={pos: great, neg: great, biz: review}"], "prompt.verbalizer", "words of its own"),
        (["prompt.shots=100"], "prompt.shots", "100 demonstrations, but train holds 48"),
        (["prompt.chat_template=true"], "prompt.chat_template", "has no chat template"),
    ],
)
def test_a_prompt_the_data_or_model_cannot_make_is_refused_before_anything_is_written(
    prompt_overrides, tmp_path, overrides, field, message
):
    with pytest.raises(ConfigError, match=message) as found:
        api.train(load_config(None, [*prompt_overrides, *overrides]), progress=False)
    assert field in str(found.value) and not (tmp_path / "run").exists()


def test_an_encoder_is_no_model_to_prompt(prompt_overrides, tiny_bert_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"is a bert model, not a causal \(decoder-only\) language model") as found:
        api.train(load_config(None, [*prompt_overrides, f"encoder.model={tiny_bert_dir}"]), progress=False)
    assert "encoder.model" in str(found.value) and not (tmp_path / "run").exists()


def test_the_chat_template_frames_the_prompt_and_scores_as_the_whole_rendered_text(llama_dir):
    lm = load_causal_lm(str(llama_dir))
    lm.tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} </s> {% endfor %}"
        "{% if add_generation_prompt %}<assistant> {% endif %}"
    )
    prompt = ClassificationPrompt(("awful", "great"), (("the movie was great", "great"),))
    parts = prompt.parts(lm.tokenizer)
    assert parts.prefix == (
        "<system> Classify each text as awful or great. </s> <user> Text: the movie was great </s> "
        "<assistant> great </s> <user> "
    )
    assert parts.after_item == " </s> <assistant> " and parts.label_lead == ""
    tokens = tokenised(lm.tokenizer, prompt, ["awful review ."], chat=True)
    whole = [
        lm.tokenizer(parts.prefix + "Text: awful review ." + parts.after_item + word, add_special_tokens=False)
        for word in ("awful", "great")
    ]
    assert [tokens.prefix + tokens.items[0] + label for label in tokens.labels] == [w["input_ids"] for w in whole]


def test_similar_demonstrations_are_the_nearest_and_never_the_text_itself():
    similarity = np.array([[0.9, 0.1, 0.5, 0.99], [0.2, 0.8, 0.3, 0.1]])  # (N=2, T=4)
    same = np.array([[False, False, False, True], [False, False, False, False]])  # item 0 is train's 3rd
    chosen = nearest_demos(similarity, same, 2)
    assert chosen.tolist() == [[2, 0], [2, 1]]  # most similar last, nearest the text; never index 3 for item 0


def test_similar_demonstrations_through_a_run_leave_out_the_evaluated_text(
    prompt_overrides, tiny_bert_dir, sentiment_files, monkeypatch
):
    seen: list[tuple] = []
    original = PromptRun._scored

    def spy(self, demos, items, batch_size, advance):
        seen.append((tuple(demos), tuple(items)))
        return original(self, demos, items, batch_size, advance)

    monkeypatch.setattr(PromptRun, "_scored", spy)
    extra = ["prompt.shots=2", "prompt.demos=similar", f"prompt.demo_encoder={tiny_bert_dir}"]
    api.train(load_config(None, [*prompt_overrides, *extra]), progress=False)
    assert len(seen) == 12  # a prompt per dev and test text
    for demos, (item,) in seen:  # every dev text is in train too (four times): never shown as its own demo
        assert len(demos) == 2 and item not in {text for text, _ in demos}


def test_zero_shot_goes_to_the_nearest_label_description(tiny_bert_dir, sentiment_files, tmp_path):
    from lmtransfer.encoders.loading import load_encoder
    from lmtransfer.features.embeddings import sentence_embeddings

    overrides = [
        "strategy=zero-shot",
        f"encoder.model={tiny_bert_dir}",
        f"data.train={sentiment_files['train']}",
        f"data.dev={sentiment_files['dev']}",
        f"data.test={sentiment_files['test']}",
        "prompt.verbalizer={pos: a good film, neg: a bad film, biz: business news}",
        f"output_dir={tmp_path / 'zs'}",
    ]
    result = api.train(load_config(None, overrides), progress=False)
    run = load_run(result.directory)
    assert isinstance(run, ZeroShotRun) and run.descriptions == ("business news", "a bad film", "a good film")
    encoder = load_encoder(str(tiny_bert_dir))
    dev = [line.split(",")[0] for line in sentiment_files["dev"].read_text().splitlines()[1:]]
    texts, labels = (sentence_embeddings(encoder, items, 256) for items in (dev, run.descriptions))
    # the oracle: mean of the last layer over the real tokens, unit length, cosine by hand
    import torch

    batch = encoder.tokenizer(dev[:1], return_tensors="pt")
    with torch.no_grad():
        last = encoder.model(**batch).last_hidden_state[0]
    assert np.allclose(texts[0], (last.mean(0) / last.mean(0).norm()).numpy(), atol=1e-5)
    found = run.outputs(run.prepare(api_split(sentiment_files["dev"], run)))
    assert np.allclose(found, SCALE * texts @ labels.T, atol=1e-5)
    assert result.costs.train_seconds == 0 and result.costs.trainable_parameters == 0
    assert Run.load(result.directory).predict(["shares fell"])[0]["label"] in {"pos", "neg", "biz"}


def test_prompt_and_zero_shot_rows_run_once_beside_every_size_of_a_comparison(
    prompt_overrides, run_overrides, tiny_bert_dir, llama_dir, tmp_path
):
    variants = (
        f"compare.variants=[{{name: mix}}, {{name: prompt-2, encoders: false, set: {{strategy: prompt, "
        f"encoder.model: '{llama_dir}', prompt.shots: 2, prompt.verbalizer: {WORDS}}}}},"
        f" {{name: zero, set: {{strategy: zero-shot, prompt.verbalizer: {WORDS}}}}}]"
    )
    config = load_config(
        None,
        [
            *run_overrides, "train.lr=0.05", "train.epochs=20", "train.eval_steps=1", "train.patience=5",
            f"compare.output_dir={tmp_path / 'cmp'}",
            "compare.seeds=[1]", "compare.extensions=0", "compare.train_sizes=[12, all]", variants,
            "compare.search={trials: 2}",
        ],
    )  # fmt: skip
    found = jobs(config)
    assert [(j.variant, j.train_size) for j in found] == [
        ("mix", 12), ("prompt-2", None), ("zero", None), ("mix", "all"),
    ]  # fmt: skip
    assert {plan.variant for plan in search_plans(config)} == {"mix"}  # nothing to tune where nothing trains
    config = config.model_copy(update={"compare": config.compare.model_copy(update={"search": None})})
    result = compare(config, progress=False, isolate=False)
    rows = read_rows(result.directory / "results.jsonl")
    prompt_row = next(r for r in rows if r.variant == "prompt-2")
    assert prompt_row.ok and prompt_row.train_size is None and prompt_row.strategy == "prompt"
    assert prompt_row.units["dev"] and prompt_row.inference["examples_per_second"] > 0
    kinds = {s.variant: s.kind for s in result.report.summaries}
    assert kinds == {"mix": "feature-based", "prompt-2": "prompting", "zero": "zero-shot"}
    verdict = result.report.verdict
    assert f"Prompting (prompt-2 on {llama_dir}, 2 labelled examples, no training, " in verdict
    assert " prompt tokens an example, " in verdict and " examples/s to predict: 33.3 dev accuracy)" in verdict
    assert " at 12 training examples" in verdict and " at 48 training examples" in verdict
    assert f"| prompt-2 | {llama_dir} | prompting | 2 | 1 |" in result.report.markdown
    page = (result.directory / "report.html").read_text()
    assert "prompt-2" in page and "against the number of training examples" in page


def test_a_prompt_run_is_served_like_any_run(prompt_overrides):
    from fastapi.testclient import TestClient

    from lmtransfer.serve.app import build_app
    from lmtransfer.serve.served import ServedRun

    result = api.train(load_config(None, [*prompt_overrides, "prompt.shots=2"]), progress=False)
    expected = Run.load(result.directory).predict(["the movie was great", "shares fell"])
    with TestClient(build_app([ServedRun.load("prompted", result.directory)], [])) as client:
        response = client.post("/v1/predict/prompted", json={"inputs": ["the movie was great", "shares fell"]})
    assert response.status_code == 200, response.text
    found = response.json()["outputs"]
    assert [row["label"] for row in found] == [row["label"] for row in expected]
    for served, direct in zip(found, expected, strict=True):
        assert served["probabilities"] == pytest.approx(direct["probabilities"], abs=1e-5)


def test_a_prompt_run_reads_a_causal_lm_from_a_gguf_file(prompt_overrides, tmp_path):
    pytest.importorskip("gguf")
    from tests.tiny_decoders import write_tiny_gguf

    weights = write_tiny_gguf(tmp_path / "gguf" / "tiny.gguf")
    overrides = [*prompt_overrides, f"encoder.model={weights}", "prompt.instruction=label {words}"]
    with pytest.raises(ConfigError, match="past the 64 the model reads: fewer shots") as refused:
        api.train(load_config(None, [*overrides, "prompt.shots=3"]), progress=False)
    assert "prompt.shots" in str(refused.value) and not (tmp_path / "run").exists()
    result = api.train(load_config(None, [*overrides, "encoder.max_length=8"]), progress=False)  # texts cut
    lm = load_causal_lm(str(weights))
    assert lm.gguf_file == "tiny.gguf" and type(lm.model).__name__ == "LlamaForCausalLM"
    run = load_run(result.directory)
    assert run.model_info["gguf_file"] == "tiny.gguf" and run.model_info["weights_sha256"]
    assert np.isfinite(run.outputs(run.prepare(api_split(Path(run.config.data.dev), run)))).all()


def test_pairs_are_prompted_as_two_texts_and_refused_by_zero_shot(llama_dir, tiny_bert_dir, tmp_path):
    from tests.task_data import task_overrides

    pairs = [*task_overrides("classification", tmp_path), "prompt.shots=2", f"output_dir={tmp_path / 'run'}"]
    result = api.train(load_config(None, [*pairs, "strategy=prompt", f"encoder.model={llama_dir}"]), progress=False)
    run = load_run(result.directory)
    assert all(isinstance(item, tuple) and len(item) == 2 for item, _ in run.demos)
    assert ClassificationPrompt.item(run.demos[0][0]).startswith(
        "Text 1: "
    ) and "\nText 2: " in ClassificationPrompt.item(run.demos[0][0])
    assert result.dev["accuracy"] >= 0 and Run.load(result.directory).predict([("the movie", "was great")])
    zero = [*pairs, "strategy=zero-shot", f"encoder.model={tiny_bert_dir}", f"output_dir={tmp_path / 'zero'}"]
    with pytest.raises(ConfigError, match="'zero-shot' sets one text against each label's description"):
        api.train(load_config(None, zero), progress=False)
    assert not (tmp_path / "zero").exists()
