"""Quantisers and collision resolution: hand-computed cases and behaviour on small synthetic data."""
from __future__ import annotations

import numpy as np
import pytest

from sidreasoner.sid.collisions import (collision_stats, resolve_collisions, resolve_extra_level,
                                        resolve_reassign)
from sidreasoner.sid.quantize import (balanced_assign, balanced_kmeans, capacity, kmeans, residual_kmeans,
                                      sq_dists)


def blobs(sizes, dim=8, spread=0.05, seed=0):
    """Gaussian blobs around random unit centres -> (x [N, dim] float32, labels [N])."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.concatenate([c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes)])
    return x.astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


def test_sq_dists_hand_computed():
    x = np.array([[0, 0], [1, 1], [3, 4]], dtype=np.float32)
    c = np.array([[1, 0], [0, 0]], dtype=np.float32)
    np.testing.assert_allclose(sq_dists(x, c), [[1, 0], [1, 2], [20, 25]])


@pytest.mark.parametrize("n, k, slack, cap", [(100, 4, 0.0, 25), (100, 4, 0.25, 32), (10, 3, 0.0, 4),
                                              (3459, 256, 0.25, 17), (5, 5, 0.0, 1)])
def test_capacity(n, k, slack, cap):
    assert capacity(n, k, slack) == cap


@pytest.mark.parametrize("d, cap, expected", [
    ([[0, 5], [0, 5], [0, 5], [5, 0]], 2, [0, 0, 1, 1]),  # three want column 0: the two first rows win the tie
    ([[1, 2], [0, 3], [3, 0]], 2, [0, 0, 1]),  # room for everyone's first choice
    ([[1, 2], [0, 3], [0.5, 9]], 1, None),  # 3 rows, 2 x 1 places: impossible
    # all want column 0; row 1 is closest and gets it; then row 0 -> column 1, row 2 -> column 2
    ([[1, 2, 9], [0, 3, 9], [0.5, 9, 8]], 1, [1, 0, 2]),
])
def test_balanced_assign(d, cap, expected):
    d = np.array(d, dtype=np.float32)
    if expected is None:
        with pytest.raises(ValueError, match="capacity 1 x 2 codes cannot hold 3 items"):
            balanced_assign(d, cap)
        return
    assert balanced_assign(d, cap).tolist() == expected


def test_kmeans_recovers_separated_blobs():
    x, labels = blobs([30, 20, 10])
    _, assign = kmeans(x, 3, seed=0)
    # same partition up to renaming the clusters
    pairs = {(int(a), int(b)) for a, b in zip(labels, assign)}
    assert len(pairs) == 3 and len({a for a, _ in pairs}) == 3 and len({b for _, b in pairs}) == 3


def test_balanced_kmeans_caps_cluster_sizes():
    # one dense blob of 90 points and one of 10: plain k-means gives the dense blob's clusters more than N/K
    x, _ = blobs([90, 10], spread=0.3, seed=1)
    k, cap = 4, capacity(100, 4, 0.0)
    _, plain = kmeans(x, k, seed=0)
    _, bal = balanced_kmeans(x, k, slack=0.0, seed=0)
    assert np.bincount(plain, minlength=k).max() > cap
    assert np.bincount(bal, minlength=k).tolist() == [25, 25, 25, 25]
    _, loose = balanced_kmeans(x, k, slack=0.2, seed=0)
    assert np.bincount(loose, minlength=k).max() <= capacity(100, 4, 0.2) == 30


def test_residual_levels_reduce_reconstruction_error():
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    for balanced in (False, True):
        r = residual_kmeans(x, levels=3, k=8, balanced=balanced, seed=0)
        assert r.codes.shape == (300, 3) and r.codes.min() >= 0 and r.codes.max() < 8
        assert all(a > b for a, b in zip(r.errors, r.errors[1:])), r.errors
        # the reported errors are those of the sum of the chosen codewords
        recon = sum(cb[r.codes[:, level]] for level, cb in enumerate(r.codebooks))
        assert r.errors[-1] == pytest.approx(float(((x - recon) ** 2).sum(1).mean()), rel=1e-4)
        assert r.errors[0] == pytest.approx(float((x ** 2).sum(1).mean()), rel=1e-5)


def test_residual_kmeans_is_deterministic_given_seed():
    x, _ = blobs([40, 40, 40], spread=0.3)
    a = residual_kmeans(x, 2, 6, seed=3).codes
    assert np.array_equal(a, residual_kmeans(x, 2, 6, seed=3).codes)
    assert not np.array_equal(a, residual_kmeans(x, 2, 6, seed=4).codes)


# -- collisions: 1-D hand-built codebooks -------------------------------------------------------
CODEBOOKS = [np.array([[0.0], [10.0]]), np.array([[0.0], [1.0], [-1.0]])]


def _case(values):
    """All items start on code (0, 0); residual 0 is the value, residual 1 is value - 0."""
    x = np.array(values, dtype=np.float64)[:, None]
    return np.zeros((len(values), 2), dtype=np.int64), [x, x.copy()]


def test_reassign_moves_to_nearest_free_last_level_code():
    codes, residuals = _case([0.1, 0.9, -0.8])
    res = resolve_reassign(codes, CODEBOOKS, residuals)
    # item 0 fits (0, 0) best and keeps it; 0.9 -> codeword 1.0, -0.8 -> codeword -1.0
    assert res.codes.tolist() == [[0, 0], [0, 1], [0, 2]]
    assert res.moved_at_level == {1: 2}


def test_reassign_changes_a_coarser_level_when_the_prefix_is_full():
    codes, residuals = _case([0.1, 0.9, -0.8, 0.5])
    res = resolve_reassign(codes, CODEBOOKS, residuals)
    # prefix (0,) has 3 completions, all taken: 0.5 moves to first-level code 1 (10.0), then the
    # nearest codeword to 0.5 - 10 = -9.5 at level 1 is -1.0 (code 2)
    assert res.codes.tolist() == [[0, 0], [0, 1], [0, 2], [1, 2]]
    assert res.moved_at_level == {0: 1, 1: 2}


def test_reassign_refuses_more_items_than_sids():
    codes, residuals = _case([0.0] * 7)
    with pytest.raises(ValueError, match="7 items cannot get distinct SIDs from 2 x 3 codes"):
        resolve_reassign(codes, CODEBOOKS, residuals)


def test_extra_level_numbers_items_by_fit():
    codes, residuals = _case([0.1, 0.9, -0.8])
    res = resolve_extra_level(codes, CODEBOOKS, residuals)
    # squared errors 0.01, 0.81, 0.64 -> ranks 0, 2, 1
    assert res.codes.tolist() == [[0, 0, 0], [0, 0, 2], [0, 0, 1]]
    assert res.extra_level_size == 3


def test_extra_level_is_not_added_without_collisions():
    codes = np.array([[0, 0], [0, 1]])
    res = resolve_extra_level(codes, CODEBOOKS, [np.zeros((2, 1)), np.zeros((2, 1))])
    assert res.codes.tolist() == [[0, 0], [0, 1]] and res.extra_level_size == 0


def test_collision_stats_hand_computed():
    codes = np.array([[0, 0], [0, 0], [0, 0], [1, 0], [1, 0], [2, 2]])
    assert collision_stats(codes) == {"groups": 2, "items": 5, "pairs": 4, "largest": 3}
    assert collision_stats(codes[3:]) == {"groups": 1, "items": 2, "pairs": 1, "largest": 2}
    assert collision_stats(codes[4:]) == {"groups": 0, "items": 0, "pairs": 0, "largest": 1}


@pytest.mark.parametrize("strategy", ["reassign", "extra_level"])
def test_duplicated_embeddings_get_unique_sids(strategy):
    # 6 distinct points, each repeated 5 times: every copy gets the same codes from k-means
    base, _ = blobs([1] * 6, dim=8, seed=2)
    x = np.repeat(base, 5, axis=0)
    q = residual_kmeans(x, levels=3, k=4, balanced=False, seed=0)
    assert collision_stats(q.codes)["largest"] >= 5
    res = resolve_collisions(q.codes, q.codebooks, q.residuals, strategy)
    assert collision_stats(res.codes)["items"] == 0
    assert len({tuple(r) for r in res.codes.tolist()}) == 30
    if strategy == "reassign":
        # 5 copies fit under one 2-level prefix (4 x 4 = 16 completions): first-level codes are kept
        assert np.array_equal(res.codes[:, 0], q.codes[:, 0])


def test_unknown_strategy():
    with pytest.raises(ValueError, match="unknown collision strategy 'merge'"):
        resolve_collisions(np.zeros((2, 2), dtype=np.int64), CODEBOOKS, [np.zeros((2, 1))] * 2, "merge")


def test_rqvae_trains_and_returns_codes():
    from sidreasoner.sid.rqvae import RQVAEConfig, train_rqvae
    x, labels = blobs([50, 50, 50, 50], dim=16, spread=0.1)
    cfg = RQVAEConfig(latent_dim=8, hidden_dim=32, steps=80, batch_size=128, seed=0)
    r = train_rqvae(x, levels=2, k=4, cfg=cfg)
    assert r.codes.shape == (200, 2) and r.codes.min() >= 0 and r.codes.max() < 4
    assert np.mean(r.losses[-10:]) < np.mean(r.losses[:10])
    assert [c.shape for c in r.codebooks] == [(4, 8), (4, 8)] and r.residuals[0].shape == (200, 8)
    # the four blobs land on four different first-level codes
    assert len({(int(a), int(b)) for a, b in zip(labels, r.codes[:, 0])}) == 4
    assert np.array_equal(r.codes, train_rqvae(x, levels=2, k=4, cfg=cfg).codes)
