"""verl's own trainer config from our overrides: ``compose`` builds it with hydra exactly as
``python -m verl.trainer.main_ppo`` does, ``validate`` runs verl's checks on it. Below both
``verl_config`` (the knobs -> overrides and its command line) and ``preflight`` (the checks before a run)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

CONFIG_NAME = "ppo_trainer"


def verl_config_dir() -> str:
    import verl
    return str(Path(verl.__file__).resolve().parent / "trainer" / "config")


def compose(overrides: Sequence[str]):
    """verl's trainer config (DictConfig) with ``overrides`` applied, as ``main_ppo``'s hydra entry builds it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=verl_config_dir(), version_base=None):
        return hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))


def validate(cfg) -> None:
    """verl's own checks of a composed config (batch sizes against GPUs, micro-batch settings, dataclasses)."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    with warnings.catch_warnings():  # GRPO has no critic by design; verl says so on every call
        warnings.filterwarnings("ignore", message="Disabled critic as algorithm.adv_estimator")
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
