"""The file verl loads the SID reward from (``reward.custom_reward_function.path``, name ``compute_score``).

verl imports it by file path, as a module outside any package, in each Ray worker: so it uses absolute imports
and finds the logic in the installed ``sidreasoner`` package (``pip install .``), never in a checkout.
``sidreasoner.rl.verl_config.REWARD_FILE`` is this file's path. (``rl/reward.py`` in the repository is the same
entry for a hand-written verl command run from a checkout.)
"""
from sidreasoner.rl.verl_reward import compute_score

__all__ = ["compute_score"]
