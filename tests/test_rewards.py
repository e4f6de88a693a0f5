"""Stage-3 reward: hand-computed table, configs for L != 3, bad inputs, property test, speed."""
from __future__ import annotations

import logging
import math
import time  # timings use process_time (CPU seconds): other jobs share these 2 cores

import pytest
from hypothesis import given, settings, strategies as st

from sidreasoner import rewards
from sidreasoner.rewards import RewardConfig, compute_reward, match_weight

GT = "<a_60><b_159><c_203>"
CAT = frozenset({GT, "<a_60><b_159><c_7>", "<a_1><b_2><c_3>", "<a_60><b_1><c_203>"})

# (completion, score, match_reward, valid_bonus, prefix_levels, parsed, think_closed)
TABLE = [
    # exact match, valid item
    (f"<think>ink again</think>\n\n{GT}", 1.1, 1.0, 0.1, 3, 1, 1),
    # non-thinking completion (no tags): the whole text is the answer
    (GT, 1.1, 1.0, 0.1, 3, 1, 0),
    # two levels match, the predicted SID is a real item / is not
    (f"</think>{'<a_60><b_159><c_7>'}", 0.6, 0.5, 0.1, 2, 1, 1),
    ("</think><a_60><b_159><c_8>", 0.5, 0.5, 0.0, 2, 1, 1),
    # one level: b mismatches; the matching c does not count after the first mismatch
    ("</think><a_60><b_1><c_203>", 0.35, 0.25, 0.1, 1, 1, 1),
    ("</think><a_60><b_2><c_203>", 0.25, 0.25, 0.0, 1, 1, 1),
    # mismatch at level 1: only the validity bonus is possible
    ("</think><a_1><b_2><c_3>", 0.1, 0.0, 0.1, 0, 1, 1),
    ("</think><a_2><b_159><c_203>", 0.0, 0.0, 0.0, 0, 1, 1),
    # a prefix only (not an item)
    ("</think><a_60><b_159>", 0.5, 0.5, 0.0, 2, 1, 1),
    # longer than the truth: a different item, partial credit for its 3 matching levels, never full
    ("</think><a_60><b_159><c_203><d_4>", 0.5, 0.5, 0.0, 3, 1, 1),
    # whitespace inside and between tokens
    ("</think> < a_60 >\n<b _ 159> <c_203 >", 1.1, 1.0, 0.1, 3, 1, 1),
    # text after the SID; a second SID after the first does not count
    (f"</think>{GT} (a pen). Or <a_1><b_2><c_3>.", 1.1, 1.0, 0.1, 3, 1, 1),
    ("</think><a_1><b_2><c_3> or " + GT, 0.1, 0.0, 0.1, 0, 1, 1),
    # <br>-like tags: around the SID harmless, inside it they end the run
    (f"</think><br>{GT}<br/>", 1.1, 1.0, 0.1, 3, 1, 1),
    ("</think><a_60><br><b_159><c_203>", 0.25, 0.25, 0.0, 1, 1, 1),
    # several </think>: the answer follows the LAST one
    (f"<think>a</think><a_1><b_2><c_3><think>b</think>{GT}", 1.1, 1.0, 0.1, 3, 1, 1),
    (f"<think>a</think>{GT}<think>b</think>no idea", 0.0, 0.0, 0.0, 0, 0, 1),
    # the SID only inside the reasoning: no credit
    (f"<think>it is {GT}</think>I cannot decide.", 0.0, 0.0, 0.0, 0, 0, 1),
    # unclosed reasoning (e.g. cut by the length limit): no credit
    (f"<think>it is {GT}", 0.0, 0.0, 0.0, 0, 0, 0),
    # malformed / empty
    ("</think>I don't know", 0.0, 0.0, 0.0, 0, 0, 1),
    ("<a_60 <b_159>", 0.0, 0.0, 0.0, 0, 0, 0),
    ("", 0.0, 0.0, 0.0, 0, 0, 0),
    (None, 0.0, 0.0, 0.0, 0, 0, 0),
]


@pytest.mark.parametrize("text, score, match, bonus, levels, parsed, closed", TABLE)
def test_reward_table(text, score, match, bonus, levels, parsed, closed):
    r = compute_reward(text, GT, CAT)
    assert r.score == pytest.approx(score)
    assert (r.match_reward, r.valid_bonus, r.prefix_levels, r.parsed, r.think_closed) == \
        (pytest.approx(match), pytest.approx(bonus), levels, bool(parsed), bool(closed))
    assert r.score == pytest.approx(r.match_reward + r.valid_bonus)
    assert not r.gt_error


def test_no_catalogue_means_no_bonus():
    assert compute_reward(GT, GT).score == 1.0
    assert compute_reward("<a_60><b_9>", GT, None).as_dict()["valid_bonus"] == 0.0


def test_as_dict_is_numbers_only():
    d = compute_reward(f"</think>{GT}", GT, CAT).as_dict()
    assert d == {"score": pytest.approx(1.1), "match_reward": 1.0, "valid_bonus": 0.1, "prefix_levels": 3,
                 "parsed": 1, "think_closed": 1, "exact": 1, "gt_error": 0}
    assert all(type(v) in (int, float) for v in d.values())


# (pred codes, truth codes, level_weights, expected match reward)
DEPTH_TABLE = [
    ((1, 2, 3), (1, 2, 3), (0.25, 0.5, 1.0), 1.0),
    ((1, 2, 9), (1, 2, 3), (0.25, 0.5, 1.0), 0.5),
    ((1, 9, 3), (1, 2, 3), (0.25, 0.5, 1.0), 0.25),
    ((9, 2, 3), (1, 2, 3), (0.25, 0.5, 1.0), 0.0),
    # L = 4 with the default weights: deeper partial depths reuse the deepest partial weight
    ((1, 2, 3, 4), (1, 2, 3, 4), (0.25, 0.5, 1.0), 1.0),
    ((1, 2, 3, 9), (1, 2, 3, 4), (0.25, 0.5, 1.0), 0.5),
    ((1, 2, 9, 9), (1, 2, 3, 4), (0.25, 0.5, 1.0), 0.5),
    ((1, 9, 9, 9), (1, 2, 3, 4), (0.25, 0.5, 1.0), 0.25),
    # shorter prediction than the truth: its matching levels count, never the full weight
    ((1, 2, 3), (1, 2, 3, 4), (0.25, 0.5, 1.0), 0.5),
    # L = 4 with four weights
    ((1, 2, 3, 9), (1, 2, 3, 4), (0.25, 0.5, 0.75, 1.0), 0.75),
    ((1, 2, 3), (1, 2, 3), (0.25, 0.5, 0.75, 1.0), 1.0),
    ((1, 2, 9), (1, 2, 3), (0.25, 0.5, 0.75, 1.0), 0.5),
    # L = 2
    ((1, 2), (1, 2), (0.25, 0.5, 1.0), 1.0),
    ((1, 9), (1, 2), (0.25, 0.5, 1.0), 0.25),
    # exact-only reward
    ((1, 2, 9), (1, 2, 3), (1.0,), 0.0),
    ((1, 2, 3), (1, 2, 3), (1.0,), 1.0),
]


@pytest.mark.parametrize("pred, truth, weights, expected", DEPTH_TABLE)
def test_match_weight_by_depth(pred, truth, weights, expected):
    assert match_weight(pred, truth, RewardConfig(level_weights=weights)) == expected


def test_require_think_closed():
    cfg = RewardConfig(require_think_closed=True)
    assert compute_reward(GT, GT, CAT, cfg).score == 0.0
    assert compute_reward(f"<think>x</think>{GT}", GT, CAT, cfg).score == pytest.approx(1.1)


def test_custom_bonus():
    assert compute_reward(GT, GT, CAT, RewardConfig(valid_bonus=0.0)).score == 1.0
    assert compute_reward("<a_1><b_2><c_3>", GT, CAT, RewardConfig(valid_bonus=0.3)).score == pytest.approx(0.3)


@pytest.mark.parametrize("kwargs, message", [
    ({"level_weights": ()}, "level_weights needs at least one weight (the exact-match weight)"),
    ({"level_weights": (0.5, 0.25, 1.0)}, "level_weights must not decrease with depth, got (0.5, 0.25, 1.0)"),
    ({"level_weights": (-0.1, 1.0)}, "level_weights must be finite and >= 0, got (-0.1, 1.0)"),
    ({"level_weights": (0.25, math.nan)}, "level_weights must be finite and >= 0, got (0.25, nan)"),
    ({"valid_bonus": -0.1}, "valid_bonus must be finite and >= 0, got -0.1"),
])
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(ValueError) as e:
        RewardConfig(**kwargs)
    assert str(e.value) == message


@pytest.mark.parametrize("truth", [["<a_60>", "<b_159>", "<c_203>"], f"  {GT}\n", GT.encode()])
def test_ground_truth_forms(truth):
    assert compute_reward(GT, truth, CAT).score == pytest.approx(1.1)


@pytest.mark.parametrize("truth", [None, "", "<a_60>junk", "<b_1><a_2>", 123, ["<b_1>"], [1, 2], {"sid": GT},
                                   b"\xff\xfe"])
def test_malformed_ground_truth_scores_zero_and_logs_once(truth, monkeypatch, caplog):
    monkeypatch.setattr(rewards, "_malformed_gt", {"count": 0})
    with caplog.at_level(logging.WARNING, logger="sidreasoner.rewards"):
        r1 = compute_reward(GT, truth, CAT)
        r2 = compute_reward(GT, truth, CAT)
    assert (r1.score, r1.gt_error, r1.parsed) == (0.0, True, True)
    assert r2.gt_error and rewards.malformed_ground_truth_count() == 2
    assert len([rec for rec in caplog.records if "malformed ground truth" in rec.message]) == 1


class _ExplodingSet(set):
    def __contains__(self, item):
        raise RuntimeError("boom")


def test_odd_catalogue_costs_only_the_bonus():
    assert compute_reward(GT, GT, _ExplodingSet()).score == 1.0


def _typical_response(i: int) -> str:
    """~2 KB: reasoning prose that mentions history SIDs, then the answer."""
    prose = (f"The user bought <a_{i % 256}><b_12><c_34> (gel pens) and <a_3><b_4><c_5> (ink), so they "
             "are restocking writing supplies; the next purchase is probably refills or paper. ")
    return "<think>\n" + prose * 12 + "\n</think>\n\n" + GT


def test_speed_on_huge_and_typical_responses():
    huge = "<think>" + "word " * 200_000 + "</think>" + GT  # 1 MB
    compute_reward(huge, GT, CAT)
    t0 = time.process_time()
    assert compute_reward(huge, GT, CAT).score == pytest.approx(1.1)
    assert time.process_time() - t0 < 0.05
    texts = [_typical_response(i) for i in range(2000)]
    assert 1800 < len(texts[0]) < 2300
    t0 = time.process_time()
    scores = [compute_reward(t, GT, CAT).score for t in texts]
    per_call = (time.process_time() - t0) / len(texts)
    assert scores == [pytest.approx(1.1)] * len(texts)
    assert per_call < 1e-3, f"{per_call * 1e6:.0f} us per 2 KB response"  # loose: measured ~10 us


PIECES = st.sampled_from(["<think>", "</think>", "<a_60>", "<b_159>", "<c_203>", "<a_1>", "<b_2>", "<c_3>",
                          "<d_0>", "< a_60 >", "<br>", " ", "\n", "<", ">", "x", "_"])


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.lists(PIECES, max_size=30).map("".join), st.text(), st.binary(), st.none()),
       truth=st.one_of(st.just(GT), st.just("<a_1><b_2>"), st.text(max_size=20), st.none(), st.integers()),
       use_catalogue=st.booleans())
def test_never_raises_and_stays_in_range(text, truth, use_catalogue):
    r = compute_reward(text, truth, CAT if use_catalogue else None)
    assert 0.0 <= r.score <= 1.1 + 1e-12
    assert r.score == pytest.approx(r.match_reward + r.valid_bonus)
