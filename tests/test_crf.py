"""The CRF against brute force: every one of the K^L tag paths of each sequence, enumerated in numpy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lmtransfer.nn.crf import CRF


def bio() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """O=0, B=1, I=2: I may not start a sequence or follow O."""
    follow = np.ones((3, 3), bool)
    follow[0, 2] = False
    return np.array([True, True, False]), follow, np.ones(3, bool)


def bioe() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """O=0, B=1, I=2, E=3: entities are B I* E; a sequence starts with O or B and ends with O or E."""
    follow = np.zeros((4, 4), bool)
    follow[0, [0, 1]] = follow[1, [2, 3]] = follow[2, [2, 3]] = follow[3, [0, 1]] = True
    return np.array([True, True, False, False]), follow, np.array([True, False, False, True])


CASES = [(2, None), (3, None), (4, None), (3, bio), (4, bioe)]
LENGTHS = [5, 3, 1, 4]


def random_crf(k: int, scheme, seed: int = 0) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(k, scheme() if scheme else None)
    with torch.no_grad():
        for p in (crf.start, crf.transitions, crf.end):
            p.copy_(torch.randn_like(p))
    return crf


def batch(k: int, lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    emissions = torch.randn(len(lengths), max(lengths), k) * 2  # (B, T, K)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    return emissions, mask


def all_paths(crf: CRF, emissions: np.ndarray, scheme) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every path of one unpadded (L, K) sequence: paths (P, L), raw scores (P,), allowed (P,)."""
    length, k = emissions.shape
    paths = np.array(list(itertools.product(range(k), repeat=length)))  # (P, L)
    start, trans, end = (p.detach().double().numpy() for p in (crf.start, crf.transitions, crf.end))
    scores = start[paths[:, 0]] + emissions[np.arange(length), paths].sum(1) + end[paths[:, -1]]  # (P,)
    scores += trans[paths[:, :-1], paths[:, 1:]].sum(1)  # (P,)
    ok = np.ones(len(paths), bool)  # (P,)
    if scheme:
        may_start, may_follow, may_end = scheme()
        ok = may_start[paths[:, 0]] & may_follow[paths[:, :-1], paths[:, 1:]].all(1) & may_end[paths[:, -1]]
    return paths, scores, ok


def logsumexp(x: np.ndarray) -> float:
    return float(x.max() + np.log(np.exp(x - x.max()).sum()))


@pytest.mark.parametrize(("k", "scheme"), CASES)
def test_log_partition_and_decode_match_brute_force(k, scheme):
    crf = random_crf(k, scheme)
    emissions, mask = batch(k, LENGTHS)
    log_z = crf.log_partition(emissions, mask)  # (B,)
    decoded = crf.decode(emissions, mask)
    for i, length in enumerate(LENGTHS):
        paths, scores, ok = all_paths(crf, emissions[i, :length].double().numpy(), scheme)
        assert log_z[i].item() == pytest.approx(logsumexp(scores[ok]), abs=1e-4)
        assert decoded[i] == paths[ok][scores[ok].argmax()].tolist()
        assert ok[np.all(paths == decoded[i], axis=1)].all()


@pytest.mark.parametrize(("k", "scheme"), CASES)
def test_nll_is_log_partition_minus_score_and_normalises(k, scheme):
    crf = random_crf(k, scheme)
    emissions, mask = batch(k, LENGTHS)
    tags = torch.randint(0, k, mask.shape)  # (B, T)
    nll = crf(emissions, tags, mask, reduction="none")  # (B,)
    torch.testing.assert_close(nll, crf.log_partition(emissions, mask) - crf.score(emissions, tags, mask))
    torch.testing.assert_close(crf(emissions, tags, mask), nll.sum())
    torch.testing.assert_close(crf(emissions, tags, mask, reduction="mean"), nll.mean())

    paths, _, ok = all_paths(crf, emissions[0].double().numpy(), scheme)  # the full-length sequence
    every = torch.from_numpy(paths)  # (P, T)
    prob = torch.exp(-crf(emissions[:1].expand(len(paths), -1, -1), every, reduction="none"))  # (P,)
    assert prob.sum().item() == pytest.approx(1.0, abs=1e-4)
    assert prob[torch.from_numpy(~ok)].sum().item() < 1e-30


def test_padding_changes_nothing():
    crf = random_crf(4, bioe)
    emissions, mask = batch(4, LENGTHS)
    tags = torch.randint(0, 4, mask.shape).masked_fill(~mask, -100)  # (B, T) ignore-index padding
    pad = 3
    torch.manual_seed(2)
    emissions_p = torch.cat([emissions, torch.randn(len(LENGTHS), pad, 4) * 1e3], dim=1)  # (B, T+3, K)
    emissions_p[1, -1, 2] = float("nan")
    emissions_p[:, :-pad][~mask] = 1e4
    mask_p = torch.cat([mask, torch.zeros(len(LENGTHS), pad, dtype=torch.bool)], dim=1)  # (B, T+3)
    tags_p = torch.cat([tags, torch.randint(0, 4, (len(LENGTHS), pad))], dim=1)  # (B, T+3)
    torch.testing.assert_close(crf.log_partition(emissions_p, mask_p), crf.log_partition(emissions, mask))
    torch.testing.assert_close(crf.score(emissions_p, tags_p, mask_p), crf.score(emissions, tags, mask))
    assert crf.decode(emissions_p, mask_p) == crf.decode(emissions, mask)
    for i, length in enumerate(LENGTHS):  # a batch equals each sequence alone
        alone = emissions[i : i + 1, :length]  # (1, L, K)
        torch.testing.assert_close(crf.log_partition(alone)[0], crf.log_partition(emissions, mask)[i])
        assert crf.decode(alone)[0] == crf.decode(emissions, mask)[i]


def test_length_one_sequences():
    crf = random_crf(3, bio)
    emissions = torch.randn(5, 1, 3)  # (B, 1, K)
    tags = torch.tensor([[0], [1], [1], [0], [1]])  # (B, 1)
    start, end = crf.start + crf.start_penalty, crf.end + crf.end_penalty  # (K,), (K,)
    want = (start + emissions[:, 0] + end).logsumexp(dim=1)  # (B,)
    torch.testing.assert_close(crf.log_partition(emissions), want)
    assert crf.decode(emissions) == [[t] for t in (start + emissions[:, 0] + end).argmax(dim=1).tolist()]
    assert torch.isfinite(crf(emissions, tags)).all()


def test_forbidden_paths_never_decoded_and_gradients_finite():
    crf = CRF(4, bioe())
    emissions = torch.zeros(3, 5, 4)  # (B, T, K)
    emissions[:, :, 2] = 50.0  # I everywhere scores best but may not start a sequence
    emissions.requires_grad_(True)
    may_start, may_follow, may_end = bioe()
    for path in crf.decode(emissions):
        assert may_start[path[0]] and may_end[path[-1]]
        assert all(may_follow[a, b] for a, b in itertools.pairwise(path))
    gold = torch.tensor([[0, 1, 2, 3, 0], [1, 3, 0, 0, 0], [2, 2, 2, 2, 2]])  # the last one is forbidden
    crf(emissions, gold).backward()
    for grad in (emissions.grad, crf.start.grad, crf.transitions.grad, crf.end.grad):
        assert grad is not None and torch.isfinite(grad).all()


def test_bf16_emissions_are_computed_in_float32():
    crf = random_crf(3, bio)
    emissions, mask = batch(3, LENGTHS)
    low = emissions.bfloat16()  # (B, T, K)
    got = crf.log_partition(low, mask)  # (B,)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, crf.log_partition(low.float(), mask))


def test_training_transitions_recovers_gold_tags():
    """The tag sequence follows t -> (t + 1) % K; emissions only tell the first tag, so the CRF must learn it."""
    torch.manual_seed(0)
    k, lengths = 3, [5, 4, 2, 5, 3, 1]
    first = torch.randint(0, k, (len(lengths),))  # (B,)
    gold = (first[:, None] + torch.arange(5)[None, :]) % k  # (B, T)
    emissions = torch.randn(len(lengths), 5, k) * 0.1  # (B, T, K) noise
    emissions[:, 0] += 3.0 * torch.nn.functional.one_hot(first, k)  # (B, K)
    mask = torch.arange(5)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    crf = CRF(k)
    opt = torch.optim.Adam(crf.parameters(), lr=0.1)
    first_loss = crf(emissions, gold, mask).item()
    for _ in range(200):
        opt.zero_grad()
        loss = crf(emissions, gold, mask, reduction="mean")
        loss.backward()
        opt.step()
    assert crf(emissions, gold, mask).item() < 0.1 * first_loss
    assert crf.decode(emissions, mask) == [g[:n] for g, n in zip(gold.tolist(), lengths)]


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="transition mask"):
        CRF(3, (np.ones(3, bool), np.ones((3, 2), bool), np.ones(3, bool)))
    crf = CRF(3)
    emissions = torch.randn(2, 4, 3)  # (B, T, K)
    with pytest.raises(ValueError, match="left-aligned"):
        crf.log_partition(emissions, torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1]]).bool())
    with pytest.raises(ValueError, match=r"mask\[:, 0\]"):
        crf.decode(emissions, torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]]).bool())
    with pytest.raises(ValueError, match="emissions must be"):
        crf.log_partition(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match="tags at real positions"):
        crf(emissions, torch.full((2, 4), 3))
    with pytest.raises(ValueError, match="reduction"):
        crf(emissions, torch.zeros(2, 4, dtype=torch.long), reduction="avg")
