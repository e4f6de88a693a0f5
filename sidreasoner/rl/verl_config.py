"""Knobs -> hydra overrides of ``python -m verl.trainer.main_ppo`` (verl 0.9.1, config ``ppo_trainer``).

``verl_overrides(knobs)`` is the whole verl recipe: GRPO advantages, ``rollout_n`` samples per prompt,
the low-variance KL loss to the reference (stage-2) model, our parquet files, and the SID reward
loaded by file path with its catalogue passed through ``reward_kwargs``. ``verl_compose.compose(overrides)``
builds verl's own trainer config from them with hydra, exactly as ``main_ppo`` does, so a test (and
``check`` before a run) sees every key exist and every value typed before any GPU is touched.

Command line (the stage script calls it with every knob as its flag, ``--rollout_n 16 ...``; hydra
overrides of the run after ``--``)::

    python -m sidreasoner.rl.verl_config overrides [KNOB FLAGS...]               # one override per line
    python -m sidreasoner.rl.verl_config check [KNOB FLAGS...] [-- EXTRA...]     # files, SID tokens, verl's checks
    python -m sidreasoner.rl.verl_config run-dir [KNOB FLAGS...] [-- EXTRA...]   # default_local_dir after EXTRA
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..flags import add_dataclass_args
from .knobs import RLKnobs, add_knob_flags, knobs_from_args
from .verl_agent import AGENT_NAME, agent_loop_yaml
from .verl_log import ROLLOUT_DIR_NAME, VERL_LOG_NAME

#: the reward entry verl loads by path: a file of the installed package (rl/verl_entry.py), not of a checkout
REWARD_FILE = Path(__file__).resolve().with_name("verl_entry.py")
#: characters hydra reads as part of a plain (unquoted) override value
_PLAIN = re.compile(r"^[A-Za-z0-9_./\-+:~@%]+$")


def hydra_value(value) -> str:
    """A Python value as a hydra override value: bools lower-case, strings quoted when hydra would split them
    (commas make a sweep, spaces or brackets a parse error)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    s = str(value)
    if _PLAIN.match(s) and s.lower() not in ("true", "false", "null") and not _numeric(s):
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _numeric(s: str) -> bool:
    """Text hydra would read as a number (a run named "2024" must stay a string)."""
    try:
        float(s)
    except ValueError:
        return False
    return True


def _abs(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def _abs_info(info_file: str) -> str:
    """The reward's catalogue as an absolute path; one per category (``A=path,B=path``) each made absolute."""
    from .data import format_info_files, parse_info_files
    several = parse_info_files(info_file)
    if several is None:
        return _abs(info_file)
    return format_info_files({c: _abs(p) for c, p in several.items()})


def _model_path(path: str) -> str:
    """Local folders become absolute (Ray workers run elsewhere); hub ids stay as they are."""
    from ..model.model_factory import looks_local
    return _abs(path) if looks_local(path) else path


def agent_loop_file(k: RLKnobs) -> Path:
    """``OUTPUT_DIR/sid_agent_loop.yaml``: our agent loop and its arguments (the catalogue of the reward, the
    reasoning budget and penalty, sampled or searched SID, beams, SID loss, target probability), written when
    the overrides are made."""
    path = Path(_abs(k.output_dir)) / "sid_agent_loop.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(agent_loop_yaml(_abs_info(k.info_file), k.think_budget,
                                    sid_search="beam" if k.sid_rollout == "beam" else "sample", num_beams=k.rank_k,
                                    sid_loss=k.beam_sid_loss,
                                    target_prob=k.reward == "rank" and k.target_prob_weight > 0,
                                    repetition_penalty=k.rollout_repetition_penalty))
    return path


#: vLLM's default cap on requested log-probabilities (``max_logprobs``); beam rollouts probe ``2 x RANK_K``
VLLM_MAX_LOGPROBS = 20


def _agent_settings(k: RLKnobs) -> dict:
    """SID_ROLLOUT=constrained/beam: our agent loop (sidreasoner/rl/verl_agent.py), from the YAML verl reads;
    REWARD=rank: the reward reads the list and probability the loop leaves in extra_info."""
    if k.sid_rollout == "free":
        return {}
    s = {"actor_rollout_ref.rollout.agent.agent_loop_config_path": str(agent_loop_file(k)),
         "actor_rollout_ref.rollout.agent.default_agent_loop": AGENT_NAME}
    if k.sid_rollout == "beam" and 2 * k.rank_k > VLLM_MAX_LOGPROBS:
        s["+actor_rollout_ref.rollout.engine_kwargs.vllm.max_logprobs"] = 2 * k.rank_k
    if k.reward == "rank":
        s["+reward.custom_reward_function.reward_kwargs.reward"] = "rank"
        s["+reward.custom_reward_function.reward_kwargs.target_prob_weight"] = k.target_prob_weight
    return s


def _settings(k: RLKnobs) -> dict:
    """Override key -> value (``+`` marks keys verl's config does not define, so hydra must add them)."""
    s = {
        "algorithm.adv_estimator": "grpo",
        "algorithm.use_kl_in_reward": False,
        "data.train_files": _abs(k.train_file),
        "data.val_files": _abs(k.val_file),
        "data.val_max_samples": k.val_max_rows or -1,
        "data.prompt_key": "prompt",
        "data.reward_fn_key": "data_source",
        "data.train_batch_size": k.train_batch_size,
        "data.max_prompt_length": k.max_prompt_length,
        "data.max_response_length": k.max_response_length,
        "data.filter_overlong_prompts": True,
        "data.truncation": "error",
        "data.seed": k.seed,
        "+data.apply_chat_template_kwargs.enable_thinking": k.think,
        "actor_rollout_ref.model.path": _model_path(k.model_path),
        "actor_rollout_ref.model.use_remove_padding": True,
        "actor_rollout_ref.model.enable_gradient_checkpointing": True,
        "actor_rollout_ref.actor.optim.lr": k.lr,
        "actor_rollout_ref.actor.ppo_mini_batch_size": k.ppo_mini_batch_size or k.train_batch_size,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": k.micro_batch_size,
        "actor_rollout_ref.actor.use_kl_loss": k.kl_coef > 0,
        "actor_rollout_ref.actor.kl_loss_coef": k.kl_coef,
        "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
        "actor_rollout_ref.actor.entropy_coeff": 0,
        "actor_rollout_ref.rollout.name": k.rollout_engine,
        "actor_rollout_ref.rollout.n": k.rollout_n,
        "actor_rollout_ref.rollout.temperature": k.temperature,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": k.tensor_parallel,
        "actor_rollout_ref.rollout.gpu_memory_utilization": k.gpu_memory_utilization,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": k.log_prob_micro_batch_size,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": k.log_prob_micro_batch_size,
        "reward.custom_reward_function.path": str(REWARD_FILE),
        "reward.custom_reward_function.name": "compute_score",
        "+reward.custom_reward_function.reward_kwargs.info_file": _abs_info(k.info_file),
        # every option of the reward (RewardConfig: level_weights, valid_bonus, require_think_closed)
        **{f"+reward.custom_reward_function.reward_kwargs.{name}": value
           for name, value in k.reward_config().kwargs().items()},
        "trainer.n_gpus_per_node": k.ngpus,
        "trainer.nnodes": k.nnodes,
        "trainer.total_epochs": k.epochs,
        "trainer.save_freq": k.save_freq,
        "trainer.test_freq": k.test_freq or -1,
        "trainer.val_before_train": k.test_freq > 0,
        "trainer.default_local_dir": _abs(k.output_dir),
        "trainer.project_name": k.project_name,
        "trainer.experiment_name": k.experiment_name,
        # diagnostics (sidreasoner.rl.verl_log): every rollout of a step (groups: zero-variance share) and the
        # metrics in a JSON-lines file; verl's FileLogger takes its path from the environment of its Ray actors
        "trainer.rollout_data_dir": str(Path(_abs(k.output_dir)) / ROLLOUT_DIR_NAME),
        "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH":
            str(Path(_abs(k.output_dir)) / VERL_LOG_NAME),
    }
    s.update(_agent_settings(k))
    if k.drop_zero_variance:  # DAPO's dynamic sampling: groups of equal rewards are replaced by new ones
        s["algorithm.filter_groups.enable"] = True
        s["algorithm.filter_groups.metric"] = "reward"
    if k.max_steps:
        s["trainer.total_training_steps"] = k.max_steps
    return s


def verl_overrides(knobs: RLKnobs) -> list[str]:
    """The hydra overrides for ``main_ppo`` (``knobs`` already resolved for the verl backend)."""
    names = [x.strip() for x in knobs.logger.split(",") if x.strip()]
    names += [] if "file" in names else ["file"]  # verl_log.jsonl, read by the diagnostics
    loggers = "[" + ",".join(hydra_value(x) for x in names) + "]"
    return [f"{key}={hydra_value(value)}" for key, value in _settings(knobs).items()] + [f"trainer.logger={loggers}"]


def run_dir(knobs: RLKnobs, extra: Sequence[str] = ()) -> str:
    """Where verl saves ``global_step_*``: ``trainer.default_local_dir`` after the extra overrides."""
    value = _abs(knobs.output_dir)
    for item in extra:
        key, sep, val = item.lstrip("+~").partition("=")
        if sep and key == "trainer.default_local_dir":
            value = _abs(val.strip("'\""))
    return value


COMMANDS = ("overrides", "check", "run-dir")


@dataclass
class VerlCommand:
    """What ``python -m sidreasoner.rl.verl_config`` does with the knobs (the flags of RLKnobs follow it)."""
    command: str = field(default=None, metadata={
        "help": "overrides: print them; check: pre-flight checks; run-dir: where verl saves the checkpoints",
        "positional": True, "choices": COMMANDS})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sidreasoner.rl.verl_config", description=__doc__.split("\n\n")[0],
                                usage="%(prog)s {" + ",".join(COMMANDS) + "} [KNOB FLAGS...] [-- EXTRA OVERRIDES...]",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_dataclass_args(p, VerlCommand)
    return add_knob_flags(p)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)  # after --: hydra overrides of the run, as main_ppo gets them
    parser = build_parser()
    args = parser.parse_args(argv[:cut])
    args.extra = argv[cut + 1:]
    from ..data.records import DataError
    try:
        knobs = knobs_from_args(args).resolved("verl")
        if args.command == "overrides":
            print("\n".join(verl_overrides(knobs)))
        elif args.command == "run-dir":
            print(run_dir(knobs, args.extra))
        else:
            from .preflight import preflight
            preflight(knobs, verl_overrides(knobs) + args.extra)
    except (ValueError, DataError, OSError) as e:
        print(f"RL (verl): error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
