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
from dataclasses import asdict, dataclass, field, fields
from typing import AbstractSet, Optional

from .flags import add_dataclass_args, parse_bool
from .sid.answer import parse_answer
from .sid.spelling import format_sid, join_tokens, parse_sid

log = logging.getLogger(__name__)

_malformed_gt = {"count": 0}  # per process: log the first malformed ground truth, count them all


@dataclass(frozen=True)
class RewardConfig:
    """Every option of the reward, in one place. Each field is also the RL knob of the same name
    (``rl/knobs.py``: ``LEVEL_WEIGHTS`` ...), verl's ``reward_kwargs.<name>`` (``rl/verl_config.py`` passes
    :meth:`kwargs`), the TRL reward's settings (``SIDReward``) and a flag of ``rl/reward_eval.py``
    (:func:`add_reward_flags`): a new option is a field here and its use in :func:`compute_reward`, plus
    its knob."""

    level_weights: tuple[float, ...] = field(default=(0.25, 0.5, 1.0), metadata={
        "help": "weights of the SID levels: the last is an exact match's, the others those of 1, 2, ... matching "
                "leading levels (non-decreasing; the paper's 0.25,0.5,1.0)"})
    valid_bonus: float = field(default=0.1, metadata={
        "help": "added when the predicted SID is an item of the catalogue (INFO_FILE)"})
    require_think_closed: bool = field(default=False, metadata={
        "help": "reward 0 unless the reasoning was closed with </think>"})

    def __post_init__(self):
        w = parse_level_weights(self.level_weights)
        if not w:
            raise ValueError("level_weights needs at least one weight (the exact-match weight)")
        if any(not math.isfinite(x) or x < 0 for x in w):
            raise ValueError(f"level_weights must be finite and >= 0, got {w}")
        if any(b < a for a, b in zip(w, w[1:])):
            raise ValueError(f"level_weights must not decrease with depth, got {w}")
        bonus = float(self.valid_bonus)
        if not math.isfinite(bonus) or bonus < 0:
            raise ValueError(f"valid_bonus must be finite and >= 0, got {self.valid_bonus}")
        object.__setattr__(self, "level_weights", w)
        object.__setattr__(self, "valid_bonus", bonus)
        object.__setattr__(self, "require_think_closed", parse_flag(self.require_think_closed))

    @property
    def max_score(self) -> float:
        return self.level_weights[-1] + self.valid_bonus

    def kwargs(self) -> dict:
        """Every option as a keyword value (verl's ``reward_kwargs``; ``verl_reward.compute_score`` takes them),
        the weights as text (``"0.25,0.5,1.0"``: hydra would make a list a ListConfig)."""
        return {f.name: format_level_weights(v) if f.name == "level_weights" else v
                for f in fields(self) for v in [getattr(self, f.name)]}


def parse_level_weights(value) -> tuple[float, ...]:
    """``"0.25,0.5,1.0"`` (a knob, a flag, a hydra string) or a sequence of numbers -> a tuple of floats."""
    if isinstance(value, str):
        try:
            return tuple(float(x) for x in value.replace(" ", "").split(",") if x)
        except ValueError:
            raise ValueError(f"level_weights must be comma-separated numbers, got {value!r}") from None
    return tuple(float(x) for x in value)


def format_level_weights(weights) -> str:
    return ",".join(repr(float(w)) for w in weights)


def parse_flag(value) -> bool:
    """A boolean option as hydra (``true``/``false``) or a shell (``"0"``/``"1"``/``"False"``) passes it."""
    return parse_bool(value) if isinstance(value, str) else bool(value)


@functools.lru_cache(maxsize=32)
def _cached_config(*values) -> RewardConfig:
    return RewardConfig(*values)


def _option(default, value):
    if isinstance(default, bool):
        return parse_flag(value)
    if isinstance(default, tuple):
        return parse_level_weights(value)
    return type(default)(value)


def reward_config(**options) -> RewardConfig:
    """A RewardConfig from keyword values as they arrive (verl's ``reward_kwargs``, strings from a shell or a
    flag); an option left out (or None) keeps its default, names that are not options are ignored. Built once
    per distinct setting."""
    return _cached_config(*(_option(f.default, f.default if options.get(f.name) is None else options[f.name])
                            for f in fields(RewardConfig)))


def add_reward_flags(parser) -> None:
    """``--level_weights --valid_bonus --require_think_closed`` (defaults: RewardConfig's), as ``rl/reward_eval.py``
    takes them; :func:`config_from_args` reads them back."""
    add_dataclass_args(parser, RewardConfig,  # --level_weights stays text: reward_config parses it
                       defaults={"level_weights": format_level_weights(DEFAULT_CONFIG.level_weights)},
                       type_for=lambda f, kind: str if f.name == "level_weights" else None)


def config_from_args(args) -> RewardConfig:
    return reward_config(**{f.name: getattr(args, f.name) for f in fields(RewardConfig)})


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


# -- REWARD=rank: the rollout's ranked list (a trie-constrained beam search after its reasoning) ----------------

def rank_gain(target: str, ranked) -> float:
    """NDCG of one relevant item: ``1 / log2(rank + 2)`` for 0-based ``rank`` in ``ranked``, else 0."""
    try:
        return 1.0 / math.log2(list(ranked).index(target) + 2)
    except ValueError:
        return 0.0


def rank_reward(ground_truth, ranked, target_prob: float = 0.0, prob_weight: float = 0.0,
                think_closed: bool = True, require_think_closed: bool = False) -> dict:
    """``REWARD=rank`` for one rollout, as both backends score it (TRL's ``RankReward``, verl's
    ``compute_score`` from the agent loop's fields): ``rank_gain(target, ranked) + prob_weight x target_prob``
    (the target's per-token probability after the reasoning), 0 with ``require_think_closed`` and an unclosed
    reasoning. Numbers only (verl logs each key); a malformed ground truth scores 0 with ``gt_error=1``."""
    codes = _parse_ground_truth(ground_truth)
    if codes is None:
        _flag_malformed(ground_truth)
        return {"score": 0.0, "rank_ndcg": 0.0, "exact": 0, "in_list": 0, "target_prob": 0.0, "gt_error": 1}
    gain = rank_gain(format_sid(codes), ranked)
    score = gain + prob_weight * float(target_prob)
    if require_think_closed and not think_closed:
        score = 0.0
    return {"score": score, "rank_ndcg": gain, "exact": int(gain == 1.0), "in_list": int(gain > 0),
            "target_prob": float(target_prob), "gt_error": 0}
