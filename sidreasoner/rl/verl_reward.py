"""The stage-3 reward as verl calls it (through ``verl_entry.py``) and as the TRL backend calls it.

verl 0.9.1 (``verl.experimental.reward_loop.reward_manager.naive``) calls, once per completion::

    compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=..., **reward_kwargs)

where ``solution_str`` is the response decoded with ``skip_special_tokens=True`` and ``reward_kwargs``
come from ``reward.custom_reward_function.reward_kwargs`` (set with ``+reward.custom_reward_function.
reward_kwargs.info_file=...``). A dict return is logged key by key; ``score`` is the reward.

Settings read from the keyword arguments (all optional):

* ``info_file``: the catalogue (``SID<TAB>title<TAB>item_id``), or one per category for RL data of several
  categories (``A=path,B=path``: each row checked against its own category's); without it the validity bonus is 0 and a
  warning is logged once per process. A path that does not exist is an error (a typo must not
  silently cost the bonus for a whole run).
* ``level_weights`` (``"0.25,0.5,1.0"`` or a list), ``valid_bonus``, ``require_think_closed``: the options of
  ``sidreasoner.rewards.RewardConfig``, the one config of the reward (``RewardConfig.kwargs()`` is what
  ``rl/verl_config.py`` passes here from the knobs ``LEVEL_WEIGHTS VALID_BONUS REQUIRE_THINK_CLOSED``, and the
  TRL backend's ``SIDReward`` passes the same).

The score itself never raises (``sidreasoner.rewards.compute_reward``). Rows of our parquet
(``sidreasoner/<Category>``) and of the release's (``rec/Amazon_mix3_IOV``, its extra_info layout) are
scored alike; any other ``data_source`` is logged once per name and scored by the same rule (a verl run
must not stop mid-way over a label).
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Optional

from ..data.formats import read_info
from ..data.records import DataError
from ..rewards import compute_reward, rank_reward, reward_config
from ..sid.spelling import format_sid, parse_sid
from .data import category_of, parse_info_files, source_kind

log = logging.getLogger(__name__)

_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


@functools.lru_cache(maxsize=8)
def load_catalogue(info_file: str) -> frozenset:
    """Canonical SID strings of an info file (read once per process and path); of ``A=path,B=path``, the
    union of those catalogues (what the tokenizer must know; rows are checked per category by
    :func:`catalogue_for`)."""
    several = _catalogues(info_file)
    if several is not None:
        return frozenset().union(*several.values())
    path = Path(info_file).expanduser()
    if not path.is_file():
        raise DataError(path, "catalogue (info_file of the SID reward) not found; set "
                              "+reward.custom_reward_function.reward_kwargs.info_file=<data_dir>/info/<Cat>_...txt")
    return frozenset(format_sid(parse_sid(r.sid)) for r in read_info(path))


@functools.lru_cache(maxsize=8)
def _catalogues(info_file: str) -> Optional[dict]:
    """``A=path,B=path`` -> ``{category: catalogue}`` (each read once per process), None for one path."""
    files = parse_info_files(info_file)
    return None if files is None else {c: load_catalogue(path) for c, path in files.items()}


def catalogue_for(info_file, data_source=None) -> Optional[frozenset]:
    """The catalogue a row is checked against. ``info_file`` is one catalogue for every row, or one per
    category (``A=path,B=path``: RL data of several categories, ``rl/prepare_data.py --category A,B``): a
    row of ours is then checked against its own category's, since the same SID can be an item of one
    catalogue and nothing (or another item) in the other; a release row (``rec/<mix>``, one data_source for
    the whole mix) against their union, as the release's single info file of the mix does. A category
    missing from the list is a ValueError: a run must not silently score a category without its bonus."""
    several = _catalogues(info_file) if isinstance(info_file, str) else None
    if several is not None:
        if source_kind(data_source) != "ours":
            return frozenset().union(*several.values())
        category = category_of(data_source)
        if category not in several:
            raise ValueError(f"SID reward: a row of category {category!r}, but the catalogues given (info_file) "
                             f"are those of {', '.join(several)}")
        return several[category]
    if info_file in (None, ""):
        warn_once("no_info_file", "SID reward: no info_file given, so the validity bonus is 0 for every completion "
                                  "(pass +reward.custom_reward_function.reward_kwargs.info_file=<catalogue> to verl, "
                                  "or --info_file to the TRL runner)")
        return None
    return load_catalogue(str(info_file))


def compute_score(data_source, solution_str, ground_truth, extra_info=None, info_file=None, reward="match",
                  target_prob_weight=0.0, **options) -> dict:
    """verl's reward entry point: ``{"score": float, ...components}`` (numbers only, same keys every call).
    ``options``: those of ``sidreasoner.rewards.RewardConfig`` by name (left out: its default; other names
    verl may pass are ignored). ``reward="rank"`` (``REWARD=rank``) scores the ranked list and target
    probability our agent loop (``verl_agent.py``, ``SID_ROLLOUT=beam`` or ``constrained``) left in
    ``extra_info``, by the rule the TRL backend uses (``sidreasoner.rewards.rank_reward``)."""
    if source_kind(data_source) == "unknown":
        warn_once(f"source:{data_source!r}", f"SID reward: unknown data_source {data_source!r} (neither "
                                             f"'sidreasoner/<Category>' nor the release's 'rec/<name>'); scored by "
                                             f"the same SID-match rule")
    config = reward_config(**options)
    if reward == "rank":
        return _rank_score(ground_truth, extra_info or {}, float(target_prob_weight), config)
    if reward != "match":
        raise ValueError(f"SID reward: reward must be match or rank, got {reward!r}")
    catalogue = catalogue_for(info_file, data_source)
    return compute_reward(solution_str, ground_truth, catalogue, config).as_dict()


def _rank_score(ground_truth, extra_info, prob_weight: float, config) -> dict:
    """``REWARD=rank`` from the agent loop's fields; a row without them is a setup error (REWARD=rank needs
    SID_ROLLOUT=beam or constrained, whose agent loop writes them), never a silent 0."""
    if "ranked_sids" not in extra_info:
        raise ValueError("SID reward: REWARD=rank needs the ranked list of our agent loop (extra_info['ranked_sids']); "
                         "run with SID_ROLLOUT=beam or constrained")
    ranked = json.loads(extra_info["ranked_sids"])
    return rank_reward(ground_truth, ranked, float(extra_info.get("target_prob") or 0.0), prob_weight,
                       bool(extra_info.get("think_closed", True)), config.require_think_closed)
