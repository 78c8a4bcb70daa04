"""Loading: local directories, aliases, refusal of weightless or pickle-only directories."""

from __future__ import annotations

import shutil

import pytest

from lmtransfer.core.errors import ModelError
from lmtransfer.encoders.loading import ALIASES, load_encoder, resolve_model


def test_directory_without_weights(tiny_bert_dir, tmp_path):
    target = tmp_path / "no-weights"
    shutil.copytree(tiny_bert_dir, target)
    (target / "model.safetensors").unlink()
    with pytest.raises(ModelError) as info:
        load_encoder(str(target))
    assert str(info.value) == f"{target}: no model weights (*.safetensors) in this directory"


def test_pickle_only_directory_is_refused(tiny_bert_dir, tmp_path):
    target = tmp_path / "pickled"
    shutil.copytree(tiny_bert_dir, target)
    (target / "model.safetensors").rename(target / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"found only pytorch_model\.bin: lmtransfer loads safetensors weights only"):
        load_encoder(str(target))


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(ModelError, match="no such model directory"):
        load_encoder(str(tmp_path / "nowhere"))


def test_unreachable_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="not a local directory, an alias"):
        load_encoder("some-org/not-a-cached-model")


def test_aliases():
    assert "minilm" in ALIASES and resolve_model("mpnet").endswith("all-mpnet-base-v2")
    assert resolve_model("/some/dir") == "/some/dir"


def test_weights_hash_is_stable_and_sensitive(tiny_encoder):
    import torch

    first = tiny_encoder.weights_hash()
    assert (
        first
        == type(tiny_encoder)(
            tiny_encoder.name, tiny_encoder.source, tiny_encoder.model, tiny_encoder.tokenizer
        ).weights_hash()
    )
    with torch.no_grad():
        next(tiny_encoder.model.parameters()).add_(1e-3)
    changed = type(tiny_encoder)(tiny_encoder.name, tiny_encoder.source, tiny_encoder.model, tiny_encoder.tokenizer)
    assert changed.weights_hash() != first


def test_tokenizer_hash_ignores_call_settings(tiny_encoder):
    before = tiny_encoder.tokenizer_hash()
    tiny_encoder.tokenizer(["the movie"], truncation=True, max_length=5, padding="max_length")
    assert tiny_encoder.tokenizer_hash() == before


@pytest.mark.slow
def test_minilm_alias_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = load_encoder("minilm")
    assert (encoder.num_layers, encoder.hidden_size) == (6, 384) and encoder.uses_token_type_ids
