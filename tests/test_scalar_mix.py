import numpy as np
import pytest
import torch

from lmtransfer.nn.scalar_mix import ScalarMix


def numpy_mix(h: np.ndarray, w: np.ndarray, gamma: float, layer_norm: bool) -> np.ndarray:
    """Reference: gamma * sum_l softmax(w)_l * h_l, with optional per-vector normalisation."""
    if layer_norm:
        mean = h.mean(axis=-1, keepdims=True)
        var = h.var(axis=-1, keepdims=True)
        h = (h - mean) / np.sqrt(var + 1e-5)
    s = np.exp(w - w.max()) / np.exp(w - w.max()).sum()
    return gamma * np.tensordot(h, s, axes=([-2], [0]))


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("shape", [(4, 3, 8), (2, 5, 3, 8)])
def test_scalar_mix_matches_numpy(layer_norm, shape):
    rng = np.random.default_rng(0)
    h = rng.normal(size=shape).astype(np.float32) * 3 + 1
    mix = ScalarMix(shape[-2], layer_norm=layer_norm)
    with torch.no_grad():
        mix.weights.copy_(torch.tensor(rng.normal(size=shape[-2])))
        mix.gamma.fill_(1.7)
    got = mix(torch.from_numpy(h)).detach().numpy()
    want = numpy_mix(h.astype(np.float64), mix.weights.detach().double().numpy(), 1.7, layer_norm)
    assert got.shape == shape[:-2] + shape[-1:]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_scalar_mix_starts_as_average_and_learns():
    h = torch.randn(6, 4, 5)
    mix = ScalarMix(4)
    torch.testing.assert_close(mix(h), h.mean(dim=1))
    mix(h).pow(2).sum().backward()
    assert mix.weights.grad is not None and mix.weights.grad.abs().sum() > 0
    assert mix.gamma.grad is not None
    weights = mix.layer_weights()
    assert len(weights["softmax"]) == 4 and abs(sum(weights["softmax"]) - 1) < 1e-6


def test_scalar_mix_rejects_wrong_layer_count():
    with pytest.raises(ValueError, match="expected 3 layers"):
        ScalarMix(3)(torch.randn(2, 4, 5))


def test_a_mix_can_start_at_the_last_layer():
    mix = ScalarMix(4, last_weight=0.9)
    share = mix.layer_weights()["softmax"]
    assert share[-1] == pytest.approx(0.9)
    assert share[:-1] == pytest.approx([0.1 / 3] * 3)
    assert ScalarMix(1, last_weight=0.9).layer_weights()["softmax"] == [1.0]
    with pytest.raises(ValueError, match="last_weight"):
        ScalarMix(3, last_weight=1.0)
