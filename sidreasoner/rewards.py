"""Stage-3 reward: hierarchical SID prefix match + a validity bonus. Pure Python.

``score = match_reward + valid_bonus`` where, for a completion parsed by ``sid.answer.parse_answer``
(the SID = first run of SID tokens after the last ``</think>``; unclosed reasoning = no answer):

* ``prefix_levels`` k = leading levels equal to the ground truth's, stopping at the first mismatch.
* ``match_reward``, with ``w = config.level_weights`` (default ``(0.25, 0.5, 1.0)``, the paper's):
  - exact match (same codes, same length) -> ``w[-1]``, the full weight, whatever the SID depth L;
  - otherwise k >= 1 -> ``w[min(k, len(w) - 1) - 1]``: the last weight is reserved for an exact match
    and depths deeper than the configured partial weights reuse the deepest partial weight. So with
    the default, L=3 gives 0.25 / 0.5 / 1.0 (the paper), L=4 gives 0.25 / 0.5 / 0.5 / 1.0, L=2 gives
    0.25 / 1.0; a 4-weight config ``(0.25, 0.5, 0.75, 1.0)`` gives L=4 0.25 / 0.5 / 0.75 / 1.0. A
    prediction LONGER than the truth that contains it as a prefix is a different item: partial credit
    for k = L, never the full weight;
  - k = 0 -> 0.
* ``valid_bonus`` = ``config.valid_bonus`` (0.1) when the predicted SID is a catalogue SID (a set of
  SID strings); 0 without a catalogue or when nothing parsed.
* 0 when nothing parses; with ``config.require_think_closed`` also 0 unless the reasoning was closed.

``compute_reward`` never raises: a malformed ground truth scores 0 with ``gt_error=1`` (logged once
per process, counted in ``malformed_ground_truth_count()``).
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import asdict, dataclass
from typing import AbstractSet, Optional

from .sid.answer import parse_answer
from .sid.spelling import join_tokens, parse_sid

log = logging.getLogger(__name__)

_malformed_gt = {"count": 0}  # per process: log the first malformed ground truth, count them all


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the reward. ``level_weights[-1]`` is the exact-match weight; the rest are partial depths."""

    level_weights: tuple[float, ...] = (0.25, 0.5, 1.0)
    valid_bonus: float = 0.1
    require_think_closed: bool = False  # thinking-mode RL: no closed </think> -> score 0

    def __post_init__(self):
        w = tuple(float(x) for x in self.level_weights)
        if not w:
            raise ValueError("RewardConfig.level_weights needs at least one weight (the exact-match weight)")
        if any(not math.isfinite(x) or x < 0 for x in w):
            raise ValueError(f"RewardConfig.level_weights must be finite and >= 0, got {w}")
        if any(b < a for a, b in zip(w, w[1:])):
            raise ValueError(f"RewardConfig.level_weights must not decrease with depth, got {w}")
        if not math.isfinite(self.valid_bonus) or self.valid_bonus < 0:
            raise ValueError(f"RewardConfig.valid_bonus must be finite and >= 0, got {self.valid_bonus}")
        object.__setattr__(self, "level_weights", w)

    @property
    def max_score(self) -> float:
        return self.level_weights[-1] + self.valid_bonus


DEFAULT_CONFIG = RewardConfig()


@dataclass(frozen=True)
class RewardResult:
    score: float
    match_reward: float
    valid_bonus: float
    prefix_levels: int
    parsed: bool
    think_closed: bool
    exact: bool
    gt_error: bool

    def as_dict(self) -> dict:
        """Numbers only (bools as 0/1): verl averages and logs every extra key."""
        return {k: (int(v) if isinstance(v, bool) else v) for k, v in asdict(self).items()}


def _zero(parsed=False, think_closed=False, gt_error=False) -> RewardResult:
    return RewardResult(0.0, 0.0, 0.0, 0, parsed, think_closed, False, gt_error)


# GRPO scores every ground truth once per sample (16 per prompt): parse each distinct string once.
_parse_sid_cached = functools.lru_cache(maxsize=65536)(parse_sid)


def _parse_ground_truth(ground_truth) -> Optional[tuple[int, ...]]:
    """A SID string (or index.json-style token list, or bytes) -> codes; None when malformed."""
    try:
        if isinstance(ground_truth, (bytes, bytearray)):
            ground_truth = bytes(ground_truth).decode("utf-8")
        if isinstance(ground_truth, (list, tuple)):
            ground_truth = join_tokens(ground_truth)
        return _parse_sid_cached(ground_truth) if isinstance(ground_truth, str) else parse_sid(ground_truth)
    except Exception:  # SIDFormatError, bad bytes, odd types: a bad truth only scores 0
        return None


def _flag_malformed(ground_truth) -> None:
    _malformed_gt["count"] += 1
    if _malformed_gt["count"] == 1:
        log.warning("reward: malformed ground truth %.200r scores 0 (logged once; see "
                    "sidreasoner.rewards.malformed_ground_truth_count())", ground_truth)


def malformed_ground_truth_count() -> int:
    return _malformed_gt["count"]


def prefix_levels(pred: tuple[int, ...], truth: tuple[int, ...]) -> int:
    """Leading levels that agree, stopping at the first mismatch."""
    k = 0
    for p, t in zip(pred, truth):
        if p != t:
            break
        k += 1
    return k


def match_weight(pred: tuple[int, ...], truth: tuple[int, ...], config: RewardConfig = DEFAULT_CONFIG) -> float:
    """The hierarchical part of the reward (rules in the module docstring)."""
    w = config.level_weights
    if pred == truth:
        return w[-1]
    k = prefix_levels(pred, truth)
    if k == 0 or len(w) == 1:
        return 0.0
    return w[min(k, len(w) - 1) - 1]


def compute_reward(solution_str, ground_truth, catalogue: Optional[AbstractSet[str]] = None,
                   config: Optional[RewardConfig] = None) -> RewardResult:
    """Score one completion against the ground-truth SID. Never raises (see the module docstring)."""
    config = config or DEFAULT_CONFIG
    answer = parse_answer(solution_str)
    truth = _parse_ground_truth(ground_truth)
    if truth is None:
        _flag_malformed(ground_truth)
        return _zero(answer.parsed, answer.think_closed, gt_error=True)
    if not answer.parsed or (config.require_think_closed and not answer.think_closed):
        return _zero(answer.parsed, answer.think_closed)
    match = match_weight(answer.codes, truth, config)
    try:
        valid = catalogue is not None and answer.sid in catalogue
    except Exception:  # an odd container must not crash training; it only costs the bonus
        valid = False
    bonus = config.valid_bonus if valid else 0.0
    return RewardResult(score=match + bonus, match_reward=match, valid_bonus=bonus,
                        prefix_levels=prefix_levels(answer.codes, truth), parsed=True,
                        think_closed=answer.think_closed, exact=answer.codes == truth, gt_error=False)
