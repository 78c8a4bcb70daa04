"""Pooling against direct computation, padding invariance, word alignment, MPNet without token_type_ids."""

import numpy as np
import pytest
import torch

from lmtransfer.features.extraction import extract
from lmtransfer.features.pooling import EncoderFeatures, FeatureSpec, pool_sentence, pool_words
from tests.conftest import SENTENCES


def test_pool_sentence_ignores_padding():
    h = torch.randn(2, 3, 5, 4)  # (B, L, T, H)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    mean = pool_sentence(h, mask, "mean")
    torch.testing.assert_close(mean[0], h[0, :, :3].mean(dim=1))
    torch.testing.assert_close(mean[1], h[1].mean(dim=1))
    top = pool_sentence(h, mask, "max")
    torch.testing.assert_close(top[0], h[0, :, :3].amax(dim=1))
    torch.testing.assert_close(pool_sentence(h, mask, "cls"), h[:, :, 0])


def test_pool_words_first_last_mean():
    h = torch.arange(2 * 1 * 6 * 1, dtype=torch.float32).reshape(2, 1, 6, 1)  # (B, L, T, H)
    word_ids = [[None, 0, 0, 1, None, None], [None, 0, 1, 1, 1, None]]
    first = pool_words(h, word_ids, "first")
    last = pool_words(h, word_ids, "last")
    mean = pool_words(h, word_ids, "mean")
    assert first[0][:, 0, 0].tolist() == [1.0, 3.0]
    assert last[0][:, 0, 0].tolist() == [2.0, 3.0]
    assert mean[0][:, 0, 0].tolist() == [1.5, 3.0]
    assert first[1][:, 0, 0].tolist() == [7.0, 8.0]
    assert last[1][:, 0, 0].tolist() == [7.0, 10.0]
    assert mean[1][:, 0, 0].tolist() == [7.0, 9.0]


def test_sentence_features_do_not_depend_on_batch_padding(tiny_encoder):
    spec = FeatureSpec(layers=(0, 1, 2), pooling="mean", max_length=32)
    live = EncoderFeatures(tiny_encoder.freeze().model, spec, tiny_encoder.uses_token_type_ids)
    tok = tiny_encoder.tokenizer
    with torch.inference_mode():
        alone = live(**tok([SENTENCES[2]], return_tensors="pt"))
        padded = live(**tok([SENTENCES[2], SENTENCES[9]], return_tensors="pt", padding=True))
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("granularity", "pooling"), [("word", "first"), ("word", "last"), ("word", "mean"), ("token", "mean")]
)
def test_word_and_token_rows(tiny_encoder, tmp_path, granularity, pooling):
    texts = ["the movie", "antidisestablishment was awful", "shares rose"]
    spec = FeatureSpec(layers=(2,), granularity=granularity, pooling=pooling, max_length=32)
    cache = extract(tiny_encoder, texts, spec, tmp_path, dtype="float32", progress=False).cache
    tok = tiny_encoder.tokenizer
    for i, text in enumerate(texts):
        enc = tok([text])
        want = len(enc["input_ids"][0]) if granularity == "token" else len(text.split())
        assert cache.example(i).shape == (want, 1, 32)
    # the first subword of a word equals that token's row in the token-level features
    if pooling == "first":
        tokens = extract(
            tiny_encoder, texts, FeatureSpec((2,), "token", "mean", 32), tmp_path, dtype="float32", progress=False
        ).cache
        ids = tok([texts[1]]).word_ids(0)
        first_of_word = [ids.index(w) for w in range(3)]
        np.testing.assert_allclose(cache.example(1), tokens.example(1)[first_of_word], atol=1e-6)


def test_pre_split_words(tiny_encoder, tmp_path):
    words = [["the", "movie", "was", "antidisestablishment"], ["shares", "rose"]]
    cache = extract(tiny_encoder, words, FeatureSpec((0, 2), "word", "mean", 32), tmp_path, progress=False).cache
    assert [cache.example(i).shape[0] for i in range(2)] == [4, 2]


def test_mpnet_has_no_token_type_ids(tiny_mpnet_dir, tmp_path):
    from lmtransfer.encoders.loading import load_encoder

    encoder = load_encoder(str(tiny_mpnet_dir))
    assert not encoder.uses_token_type_ids
    cache = extract(encoder, SENTENCES[:5], FeatureSpec((0, 1, 2), max_length=32), tmp_path, progress=False).cache
    assert len(cache) == 5 and cache.example(0).shape == (1, 3, 32)


def test_truncation_is_counted(tiny_encoder, tmp_path):
    texts = ["the movie was great and the plot was good", "shares"]
    spec = FeatureSpec((2,), "sentence", "mean", max_length=6)
    result = extract(tiny_encoder, texts, spec, tmp_path, progress=False)
    assert result.truncated == 1
    assert result.cache.manifest["shards"][0]["truncated"] == 1
