"""The SID-match reward for verl: load it by file path, never copy verl.

    python -m verl.trainer.main_ppo ... \\
        reward.custom_reward_function.path=$PWD/rl/reward.py \\
        reward.custom_reward_function.name=compute_score \\
        +reward.custom_reward_function.reward_kwargs.info_file=$PWD/data/Amazon/info/Office_Products_5_2016-10-2018-11.txt

(verl 0.9.1 also accepts the older top-level ``custom_reward_function.*`` names and moves them there.)
The logic lives in ``sidreasoner.rl.verl_reward`` (and ``sidreasoner.rewards``); this file only gives
verl the function under the name it looks for. Ray workers import it in their own processes: the
``sidreasoner`` package must be installed there (``pip install -e .``); when it is not, the
repository this file sits in is put on ``sys.path``.
"""
from __future__ import annotations

import sys
from pathlib import Path

try:
    from sidreasoner.rl.verl_reward import compute_score as _compute_score
except ImportError:  # not installed in this worker's environment: use the checkout this file belongs to
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sidreasoner.rl.verl_reward import compute_score as _compute_score


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """Score one completion: ``{"score": ..., "match_reward", "valid_bonus", "prefix_levels", "parsed",
    "think_closed", "exact", "gt_error"}``. Keyword arguments: see ``sidreasoner.rl.verl_reward``."""
    return _compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)
