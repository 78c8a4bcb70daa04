"""Decoder-only (causal) LMs as encoders, the two classic ways, on a tiny Llama and a tiny GPT-2: they load as
encoders with a padding token and a pair separator, ``last`` pooling is the last real token's state (checked
against the model run on each text alone), mean pooling ignores padding, a feature-based run trains and reuses
its cache, fine-tuning and LoRA train and their run folders load back, and ``cls`` pooling is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lmtransfer import Run, load_config, train
from lmtransfer.core.errors import ConfigError
from lmtransfer.data.examples import TextPair
from lmtransfer.encoders.loading import load_encoder
from lmtransfer.features.inputs import encode
from lmtransfer.features.pooling import EncoderFeatures, FeatureSpec
from tests.conftest import SENTENCES, WORDS
from tests.task_data import task_overrides
from tests.tiny_decoders import build_tiny_gpt2, build_tiny_llama, write_tiny_gguf

pytestmark = pytest.mark.usefixtures("one_thread")
TEXTS = ["the movie was great", "awful", "shares rose in the market today", "news of the day"]


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), [*WORDS, "i", "for", "!"])


@pytest.fixture(scope="module")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), SENTENCES)


@pytest.fixture(params=["llama", "gpt2"])
def decoder_dir(request) -> Path:
    return request.getfixturevalue(f"tiny_{request.param}_dir")


def test_a_causal_lm_loads_as_an_encoder_without_its_lm_head(decoder_dir, tiny_bert_dir):
    encoder = load_encoder(str(decoder_dir))
    assert type(encoder.model).__name__ in ("LlamaModel", "GPT2Model") and encoder.causal
    assert encoder.tokenizer.pad_token == encoder.tokenizer.eos_token and encoder.tokenizer.padding_side == "right"
    assert encoder.num_layers == 2 and encoder.hidden_size == 16 and not encoder.model.config.use_cache
    assert not load_encoder(str(tiny_bert_dir)).causal


def test_a_pair_read_jointly_has_the_end_of_sequence_token_between_its_texts(decoder_dir):
    tokenizer = load_encoder(str(decoder_dir)).tokenizer
    first, second = (tokenizer(text)["input_ids"] for text in ("the movie", "was great"))
    assert tokenizer("the movie", "was great")["input_ids"] == [*first, tokenizer.eos_token_id, *second]
    cut = encode(tokenizer, [TextPair("the movie was great", "awful plot and bad acting")], max_length=6)
    assert len(cut.columns["input_ids"][0]) == 6  # truncation counts the separator


def features(encoder, texts, pooling: str) -> torch.Tensor:
    """Sentence features of ``texts`` batched with right padding, every hidden state: (B, L, H)."""
    spec = FeatureSpec(tuple(range(encoder.num_layers + 1)), pooling=pooling, max_length=32)
    batch = encode(encoder.tokenizer, texts, spec.max_length).pad(range(len(texts)), encoder.tokenizer.pad_token_id)
    assert batch["attention_mask"].sum(dim=1).unique().numel() > 1  # lengths differ: there is padding
    with torch.inference_mode():
        return EncoderFeatures(encoder.model, spec, encoder.uses_token_type_ids)(**batch)  # (B, L, H)


def test_last_pooling_is_each_texts_last_token_state_run_alone(decoder_dir):
    encoder = load_encoder(str(decoder_dir)).freeze()
    pooled = features(encoder, TEXTS, "last")  # (B, L, H)
    for b, text in enumerate(TEXTS):
        alone = encoder.tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            states = encoder.model(**alone, output_hidden_states=True).hidden_states  # L x (1, T, H)
        oracle = torch.stack([h[0, -1] for h in states])  # (L, H)
        torch.testing.assert_close(pooled[b], oracle, atol=1e-5, rtol=1e-5)


def test_mean_pooling_does_not_depend_on_the_padding(decoder_dir):
    encoder = load_encoder(str(decoder_dir)).freeze()
    batched = features(encoder, TEXTS, "mean")  # (B, L, H)
    for b, text in enumerate(TEXTS):
        alone = features(encoder, [text, TEXTS[2]], "mean")[0] if b != 2 else batched[2]
        torch.testing.assert_close(batched[b], alone, atol=1e-5, rtol=1e-5)


def run_overrides(model: Path, sentiment_files, folder: Path, *extra: str) -> list[str]:
    return [
        f"encoder.model={model}",
        "encoder.max_length=32",
        *(f"data.{split}={path}" for split, path in sentiment_files.items()),
        "train.epochs=2",
        "train.min_steps=0",
        "train.batch_size=8",
        f"cache_dir={folder / 'cache'}",
        f"output_dir={folder / 'run'}",
        *extra,
    ]


def test_a_feature_based_run_trains_on_last_token_features_and_reuses_its_cache(
    tiny_llama_dir, sentiment_files, tmp_path
):
    overrides = run_overrides(tiny_llama_dir, sentiment_files, tmp_path, "features.pooling=last")
    first = train(load_config(None, overrides), progress=False)
    assert first.config.features.pooling == "last" and first.costs.extraction.tokens > 0
    again = train(load_config(None, [*overrides, f"output_dir={tmp_path / 'again'}"]), progress=False)
    assert again.costs.extraction.tokens == 0 and again.costs.extraction.caches == first.costs.extraction.caches
    assert Run.load(again.directory).predict(["the movie was great"])[0]["label"] in ("pos", "neg", "biz")


@pytest.mark.parametrize("strategy", ["finetune", "lora"])
def test_fine_tuning_and_lora_train_a_causal_lm_and_its_run_loads_back(
    strategy, decoder_dir, sentiment_files, tmp_path
):
    overrides = run_overrides(decoder_dir, sentiment_files, tmp_path, f"strategy={strategy}", "features.pooling=last")
    result = train(load_config(None, [*overrides, "train.lr=1e-3", "lora.r=4"]), progress=False)
    trained = {name for name, p in result.model.features.encoder.named_parameters() if p.requires_grad}
    if strategy == "lora":  # peft's own targets for the model type: the query and value maps, GPT-2's fused c_attn
        targets = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trained}
        assert targets == ({"c_attn"} if "gpt2" in str(decoder_dir) else {"q_proj", "v_proj"})
    else:
        assert trained == {name for name, _ in result.model.features.encoder.named_parameters()}
    run = Run.load(result.directory)
    assert run.loaded.encoder.causal
    expected = trained_probabilities(result, SENTENCES[:3])
    np.testing.assert_allclose(run.predict_proba(SENTENCES[:3]), expected, atol=1e-4)


def trained_probabilities(result, examples) -> np.ndarray:
    """What the trained model, still in memory, gives ``examples``: (B, C) probabilities in label order."""
    tokenizer = load_encoder(str(result.directory / "encoder")).tokenizer
    encoding = encode(tokenizer, examples, result.config.encoder.max_length)
    batch = encoding.pad(range(len(examples)), tokenizer.pad_token_id)
    with torch.inference_mode():
        return torch.softmax(result.model.eval()(**batch), dim=-1).numpy()  # (B, C)


def test_a_pair_run_fine_tunes_jointly_and_predicts_the_same_after_loading(tiny_gpt2_dir, tmp_path):
    overrides = [*task_overrides("classification", tmp_path), f"encoder.model={tiny_gpt2_dir}", "train.epochs=1"]
    overrides += ["strategy=finetune", "encoder.max_length=32", "train.batch_size=8", "features.pooling=last"]
    result = train(load_config(None, [*overrides, f"output_dir={tmp_path / 'run'}"]), progress=False)
    assert result.config.features.pair == "joint"
    saved = load_encoder(str(result.directory / "encoder")).tokenizer
    assert saved("the movie", "was great")["input_ids"].count(saved.eos_token_id) == 1
    pairs = [("the movie was great", "i loved it"), ("shares fell", "shares fell")]
    expected = trained_probabilities(result, [TextPair(*pair) for pair in pairs])
    np.testing.assert_allclose(Run.load(result.directory).predict_proba(pairs), expected, atol=1e-4)


def test_cls_pooling_of_a_causal_lm_is_refused_naming_the_field(tiny_llama_dir, sentiment_files, tmp_path):
    overrides = run_overrides(tiny_llama_dir, sentiment_files, tmp_path, "features.pooling=cls")
    with pytest.raises(ConfigError, match=r"features\.pooling.*first token has seen nothing of the text"):
        train(load_config(None, overrides), progress=False)


def test_gguf_weights_load_as_an_encoder_whose_identity_is_the_file_and_its_weights(tmp_path):
    pytest.importorskip("gguf")
    from lmtransfer.features.cache.key import make_key

    first = write_tiny_gguf(tmp_path / "a" / "tiny.gguf", seed=0)
    other = write_tiny_gguf(tmp_path / "b" / "tiny.gguf", seed=1)
    encoder = load_encoder(str(first))
    assert type(encoder.model).__name__ == "LlamaModel" and encoder.causal and encoder.source == str(first)
    assert load_encoder(str(first.parent)).source == str(first)  # a folder holding one GGUF file
    spec = FeatureSpec((0, 1, 2), pooling="last")
    key = lambda e: make_key(e, spec, "float16", TEXTS)  # noqa: E731
    assert key(load_encoder(str(first))) == key(encoder)  # loaded again: the same weights, the same cache
    changed = load_encoder(str(other))
    assert changed.weights_hash() != encoder.weights_hash() and changed.tokenizer_hash() == encoder.tokenizer_hash()
    tokenizer = encoder.tokenizer
    assert tokenizer("the", "he")["input_ids"].count(tokenizer.eos_token_id) == 1  # a pair reads with a separator
    pooled = features(encoder.freeze(), TEXTS, "last")  # (B, L, H)
    assert pooled.shape == (len(TEXTS), 3, 16) and torch.isfinite(pooled).all()


def test_gguf_weights_are_read_once_then_from_their_float32_copy(tmp_path, monkeypatch):
    pytest.importorskip("gguf")
    import os

    from transformers import AutoModelForCausalLM

    from lmtransfer.encoders import gguf
    from lmtransfer.encoders.causal_lm import load_causal_lm

    monkeypatch.setenv("LMTRANSFER_CACHE", str(tmp_path / "cache"))
    weights = write_tiny_gguf(tmp_path / "w" / "tiny.gguf")
    direct = AutoModelForCausalLM.from_pretrained(weights.parent, gguf_file=weights.name, dtype=torch.float32)
    lm = load_causal_lm(str(weights))
    (copy,) = (tmp_path / "cache" / "gguf").iterdir()
    assert (copy / "model.safetensors").is_file() and (copy / "source.txt").read_text().strip() == str(weights)
    for name, tensor in direct.state_dict().items():  # the copy holds the weights as GGUF gave them
        assert torch.equal(lm.model.state_dict()[name], tensor), name
    assert lm.source == str(weights.parent) and lm.gguf_file == "tiny.gguf"  # its identity stays the file

    def read_again(path, into):
        raise AssertionError(f"{path} read from GGUF again")

    monkeypatch.setattr(gguf, "_convert", read_again)
    encoder = load_encoder(str(weights))  # the encoder (no LM head) from the same copy
    assert encoder.source == str(weights) and torch.equal(
        encoder.model.state_dict()["embed_tokens.weight"], direct.state_dict()["model.embed_tokens.weight"]
    )
    assert load_causal_lm(str(weights)).tokenizer.get_vocab() == lm.tokenizer.get_vocab()
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a changed file is read again
    with pytest.raises(AssertionError, match="read from GGUF again"):
        load_encoder(str(weights))
    assert [p.name for p in (tmp_path / "cache" / "gguf").iterdir()] == [copy.name]  # nothing half-written left

    monkeypatch.undo()  # two conversions of one file at once: the first copy stays, the second is dropped
    monkeypatch.setenv("LMTRANSFER_CACHE", str(tmp_path / "cache"))
    late = gguf.write_dir_once
    monkeypatch.setattr(gguf, "write_dir_once", lambda target, fill: (late(target, fill), late(target, fill))[0])
    again = gguf.converted(str(weights.parent), weights.name)
    assert (again / "config.json").is_file() and len(list(again.parent.iterdir())) == 2


@pytest.mark.parametrize("strategy", ["finetune", "lora"])
def test_a_causal_lm_read_from_gguf_fine_tunes_and_its_run_saves(strategy, sentiment_files, tmp_path):
    pytest.importorskip("gguf")
    weights = write_tiny_gguf(tmp_path / "gguf" / "tiny.gguf")
    assert getattr(load_encoder(str(weights)).model, "hf_quantizer", None) is None  # plain weights, which save
    overrides = run_overrides(weights, sentiment_files, tmp_path, f"strategy={strategy}", "features.pooling=last")
    result = train(load_config(None, [*overrides, "encoder.max_length=16", "lora.r=4"]), progress=False)
    saved = load_encoder(str(result.directory / "encoder"))
    assert saved.causal and (result.directory / "encoder" / "model.safetensors").is_file()
    np.testing.assert_allclose(
        Run.load(result.directory).predict_proba(SENTENCES[:2]), trained_probabilities(result, SENTENCES[:2]), atol=1e-4
    )
