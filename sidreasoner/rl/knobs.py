"""The stage-3 run settings, shared by both backends (verl on clusters, TRL on one machine).

Every field is a knob with the same name in three places: the variable ``FIELD_NAME`` of
``RL_training_script.sh`` (its environment interface), the flag ``--field_name`` the script passes to
``rl/trl_grpo.py`` and ``python -m sidreasoner.rl.verl_config``, and the attribute here. No Python reads
the knobs from the environment: the script maps each variable to its flag. Defaults are the paper's GRPO
settings (16 rollouts at T=1.0, 256 prompts per step, lr 5e-7, low-variance KL 0.001 to the stage-2 model,
10 epochs, a checkpoint every 100 steps).
Fields marked "verl:" or "trl:" are read by that backend only.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, get_type_hints

from ..data.records import ReleasePaths, parse_categories
from ..flags import BOOL_TEXT, add_dataclass_args, from_namespace, parse_bool
from ..paths import (BACKENDS, DEFAULT_CATEGORY, DEFAULT_DATA_DIR, DEFAULT_SEED, final_checkpoint, stage2_dir,
                     stage3_dir)
from ..ranges import SEED, above, at_least, between, check_ranges, knob
from ..rewards import RewardConfig

def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


def _reward_help(name: str) -> str:
    return next(f.metadata["help"] for f in dataclasses.fields(RewardConfig) if f.name == name)


@dataclass
class RLKnobs:
    # -- data and model ---------------------------------------------------------------------------
    category: str = _f(DEFAULT_CATEGORY, "category: names the release files and the rows' data_source")
    data_dir: str = _f(DEFAULT_DATA_DIR, "release-layout data folder (split CSVs and the info file)")
    model_path: str = _f("", f"stage-2 model folder (default {final_checkpoint(stage2_dir('<category>'))}, the "
                             "output of sft_reasoning_activation.sh)")
    rl_data_dir: str = _f("", "folder of the RL data train.parquet and valid.parquet (default data/rl/<category>; "
                              "built from data_dir by rl/prepare_data.py when missing)")
    info_file: str = _f("", "catalogue for the reward's validity bonus (default <data_dir>/info/<category>_...txt)")
    output_dir: str = _f("", "checkpoints and the final model (default "
                             f"{stage3_dir('<category>').parent}/grpo_<backend>_<category>)")
    think: bool = _f(True, "thinking-mode prompts and chat template (False: non-thinking, empty think block)")
    max_prompt_length: int = _f(1024, "longest prompt in tokens; longer prompts are left out and counted")
    max_response_length: int = _f(1024, "longest completion in tokens (reasoning + SID + stop token)")
    # -- GRPO -------------------------------------------------------------------------------------
    rollout_n: int = _f(16, "completions sampled per prompt (the GRPO group)")
    temperature: float = _f(1.0, "sampling temperature of the rollouts")
    train_batch_size: int = _f(256, "prompts per training step (x rollout_n completions)")
    micro_batch_size: int = _f(8, "completions per forward/backward pass per device")
    lr: float = _f(5e-7, "actor learning rate (constant)")
    kl_coef: float = _f(0.001, "weight of the low-variance (k3) KL loss to the stage-2 model (0: no KL, no ref model)")
    epochs: int = _f(10, "passes over the train prompts")
    max_steps: int = _f(0, "stop after this many training steps (0: run the epochs)")
    save_freq: int = _f(100, "save a checkpoint every N steps")
    test_freq: int = _f(100, "score the validation prompts every N steps (0: never during training; TRL: one "
                             "sample per prompt, logged as val/reward_mean)")
    rank_eval_rows: int = _f(0, "trl: at every TEST_FREQ step and before the first, valid NDCG@10 in both modes (the "
                                "evaluator's decoding: greedy reasoning, repetition penalty 1.3, RANK_K beams) on the "
                                "first N rows of the valid split, logged as val/ndcg10 and val/think_ndcg10 (0: off)")
    val_max_rows: int = _f(0, "validation prompts used (0: every row of valid.parquet)")
    # the reward's options: the fields of sidreasoner.rewards.RewardConfig, same names (reward_config())
    level_weights: str = _f("0.25,0.5,1.0", "REWARD=match: " + _reward_help("level_weights"))
    valid_bonus: float = _f(0.1, "REWARD=match: " + _reward_help("valid_bonus"))
    require_think_closed: bool = _f(False, _reward_help("require_think_closed"))
    # -- rollouts, reward, prompts (the paper: free, match, train) ----------------------------------
    sid_rollout: str = _f("free", "free: the model samples reasoning and SID (the paper); constrained (both "
                                  "backends): the reasoning is sampled, closed as evaluation closes it, then the SID "
                                  "is sampled token by token inside the catalogue trie (verl: an agent loop with "
                                  "vLLM's allowed_token_ids); beam (both backends): the SID is the best of a "
                                  "trie-constrained beam search of RANK_K beams, as thinking-mode evaluation decodes "
                                  "it (verl: the agent loop scores the beams with vLLM's prompt log-probabilities)")
    reward: str = _f("match", "match: the release's SID-match reward (levels matched + validity bonus); rank (needs "
                              "SID_ROLLOUT=beam, or constrained: a list of one): the target's NDCG in the rollout's "
                              "beam list + TARGET_PROB_WEIGHT x its per-token probability after the reasoning (dense: "
                              "few zero-variance groups)")
    rank_k: int = _f(10, "SID_ROLLOUT=beam: beams per rollout = length of the ranked list REWARD=rank scores")
    target_prob_weight: float = _f(0.5, "REWARD=rank: weight of the target's per-token probability after the "
                                        "reasoning (0: NDCG only)")
    answer_nll_weight: float = _f(0.0, "SID_ROLLOUT=beam (TRL only): weight of the target SID's negative "
                                       "log-likelihood after each rollout's own reasoning, added to the GRPO loss "
                                       "(the reasoning is rewarded for making the target likely, and the answer is "
                                       "trained after the reasoning the model writes, not the teacher's; 0: off)")
    beam_sid_loss: bool = _f(True, "SID_ROLLOUT=beam/constrained: the SID tokens of each rollout carry the "
                                   "policy-gradient loss too (0: only the sampled reasoning does; a searched SID is "
                                   "not a sample)")
    max_think_tokens: int = _f(0, "SID_ROLLOUT=beam/constrained: reasoning budget in tokens (0: MAX_RESPONSE_LENGTH "
                                  "minus 16, room for the closer, the SID and the stop token)")
    rollout_repetition_penalty: float = _f(1.0, "SID_ROLLOUT=beam/constrained: repetition penalty of the sampled "
                                                "reasoning (1: off)")
    drop_zero_variance: bool = _f(False, "dynamic sampling: groups whose rewards are all equal teach nothing; TRL "
                                         "leaves them out of the loss and its normaliser, verl resamples them "
                                         "(algorithm.filter_groups)")
    prompts_from: str = _f("train", "split of the RL train prompts: train (the paper) or valid: the valid rows "
                                    "after the first VALID_HOLDOUT (rows SFT never fitted); those first rows stay "
                                    "the validation prompts")
    valid_holdout: int = _f(1000, "PROMPTS_FROM=valid: the first N valid rows, kept out of RL training")
    seed: int = _f(DEFAULT_SEED, "seed of data order and sampling")
    # -- verl only --------------------------------------------------------------------------------
    ngpus: int = _f(8, "verl: GPUs per node")
    nnodes: int = _f(1, "verl: nodes")
    ppo_mini_batch_size: int = _f(0, "verl: prompts per actor update (0: train_batch_size, one update per step)")
    log_prob_micro_batch_size: int = _f(16, "verl: completions per log-prob forward per GPU (actor and ref)")
    rollout_engine: str = _f("vllm", "verl: rollout engine (vllm, sglang, trtllm)")
    tensor_parallel: int = _f(1, "verl: tensor-parallel size of the rollout engine")
    gpu_memory_utilization: float = _f(0.6, "verl: share of GPU memory the rollout engine may take")
    logger: str = _f("console", "comma-separated loggers: console, wandb, tensorboard (TRL reports to the last two)")
    project_name: str = _f("sidreasoner", "verl: tracking project name")
    experiment_name: str = _f("", "verl: run name (default grpo_<category>)")
    # -- TRL only ---------------------------------------------------------------------------------
    device: str = _f("auto", "trl: cpu, cuda or auto (cuda when available)")
    logging_steps: int = _f(1, "trl: log every N steps")
    log_completions: bool = _f(False, "trl: print a table of sampled completions and their rewards at every log "
                                      "step and send it to wandb when LOGGER has it (TRL's log_completions)")
    eval_rows: int = _f(0, "trl: validation prompts scored by sampling before and after training (0: skip)")
    eval_samples: int = _f(4, "trl: samples per prompt in that before/after score")

    def resolved(self, backend: str) -> "RLKnobs":
        """Fill the empty paths from category/data_dir; check values (ValueError naming the knob)."""
        if backend not in BACKENDS:
            raise ValueError(f"BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}")
        check(self)
        if backend == "verl" and self.answer_nll_weight:
            raise ValueError("ANSWER_NLL_WEIGHT runs on BACKEND=trl only: it adds a loss term over sequences the "
                             "rollout does not contain, and verl's actor loss takes none (no patch of verl)")
        k = dataclasses.replace(self)
        release = ReleasePaths(Path(k.data_dir), k.category)
        k.model_path = k.model_path or str(final_checkpoint(stage2_dir(k.category)))
        k.rl_data_dir = k.rl_data_dir or str(Path("data") / "rl" / k.category)
        k.info_file = k.info_file or default_info_file(k.data_dir, k.category)
        k.output_dir = k.output_dir or str(stage3_dir(k.category, backend))
        k.experiment_name = k.experiment_name or f"grpo_{k.category}"
        return k

    def reward_config(self) -> RewardConfig:
        """The reward's options from the knobs of the same names (what both backends and reward_eval score with)."""
        return RewardConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(RewardConfig)})

    @property
    def categories(self) -> list[str]:
        return parse_categories(self.category)

    @property
    def think_budget(self) -> int:
        """Reasoning tokens of a beam rollout: MAX_THINK_TOKENS, or the response budget less 16."""
        return self.max_think_tokens or max(self.max_response_length - 16, 1)

    @property
    def train_file(self) -> str:
        return str(Path(self.rl_data_dir) / "train.parquet")

    @property
    def val_file(self) -> str:
        """Validation prompts: built from the valid split (never test)."""
        return str(Path(self.rl_data_dir) / "valid.parquet")


#: numeric knobs and the values they accept (sidreasoner.ranges; NaN and infinities never)
RANGES = {
    **dict.fromkeys(("rank_k", "max_prompt_length", "max_response_length", "rollout_n", "train_batch_size",
                     "micro_batch_size", "epochs", "save_freq", "ngpus", "nnodes", "log_prob_micro_batch_size",
                     "tensor_parallel", "logging_steps", "eval_samples"), at_least(1)),
    **dict.fromkeys(("rank_eval_rows", "target_prob_weight", "answer_nll_weight", "max_think_tokens", "valid_holdout",
                     "kl_coef", "valid_bonus", "max_steps", "test_freq", "val_max_rows", "ppo_mini_batch_size",
                     "eval_rows"), at_least(0)),
    "temperature": above(0), "lr": above(0), "gpu_memory_utilization": between(0, 1, lo_open=True),
    "rollout_repetition_penalty": above(0, "1: off"), "seed": SEED,
}


def default_info_file(data_dir: str, category: str) -> str:
    """The release info file of a category; of several (``A,B``), ``A=path,B=path`` (each row's reward and
    beam search use its own category's catalogue)."""
    from .data import format_info_files
    paths = {c: str(ReleasePaths(Path(data_dir), c).info) for c in parse_categories(category)}
    return next(iter(paths.values())) if len(paths) == 1 else format_info_files(paths)


def check(k: RLKnobs) -> None:
    if not k.category:
        raise ValueError("CATEGORY is empty")
    check_ranges(k, RANGES, label=knob)
    try:
        k.reward_config()
    except ValueError as e:  # "level_weights must ...": named as the knob
        name, _, rest = str(e).partition(" ")
        raise ValueError(f"{name.upper()} {rest}") from None
    if k.rollout_n < 2:
        raise ValueError(f"ROLLOUT_N must be >= 2: GRPO compares completions of the same prompt, got {k.rollout_n}")
    _check_rollout(k)
    if len(k.categories) > 1 and k.rank_eval_rows:
        raise ValueError(f"RANK_EVAL_ROWS must be 0 with several categories ({k.category}): the valid ranking "
                         f"curve reads one category's valid split")
    if k.ppo_mini_batch_size > k.train_batch_size:
        raise ValueError(f"PPO_MINI_BATCH_SIZE ({k.ppo_mini_batch_size}) exceeds TRAIN_BATCH_SIZE ({k.train_batch_size})")
    for name, value in dataclasses.asdict(k).items():
        if isinstance(value, str) and ("\n" in value or "\r" in value):
            raise ValueError(f"{name.upper()} contains a line break")


def _check_rollout(k: RLKnobs) -> None:
    for name, allowed in (("sid_rollout", ("free", "constrained", "beam")), ("reward", ("match", "rank")),
                          ("prompts_from", ("train", "valid"))):
        if getattr(k, name) not in allowed:
            choices = ", ".join(allowed[:-1]) + " or " + allowed[-1]
            raise ValueError(f"{name.upper()} must be {choices}, got {getattr(k, name)!r}")
    if k.reward == "rank" and k.sid_rollout == "free":
        raise ValueError("REWARD=rank scores the ranked list of a beam rollout: set SID_ROLLOUT=beam (or constrained, "
                         "a list of one)")
    if k.answer_nll_weight > 0 and k.sid_rollout == "free":
        raise ValueError("ANSWER_NLL_WEIGHT trains the target after a beam rollout's reasoning: set SID_ROLLOUT=beam")
    if k.sid_rollout != "free" and not k.think:
        raise ValueError(f"SID_ROLLOUT={k.sid_rollout} samples the reasoning before the SID: it needs THINK=1")
    if k.prompts_from == "valid" and k.rank_eval_rows > k.valid_holdout:
        raise ValueError(f"RANK_EVAL_ROWS ({k.rank_eval_rows}) exceeds VALID_HOLDOUT ({k.valid_holdout}): with "
                         f"PROMPTS_FROM=valid the rows after the holdout are trained on")
    if k.sid_rollout != "free" and k.max_think_tokens >= k.max_response_length:
        raise ValueError(f"MAX_THINK_TOKENS ({k.max_think_tokens}) must leave room in MAX_RESPONSE_LENGTH "
                         f"({k.max_response_length}) for the closer, the SID and the stop token")


# -- command line ------------------------------------------------------------------------------------
def _convert(name: str, kind, raw: str):
    try:
        return parse_bool(raw) if kind is bool else kind(raw)
    except ValueError:
        what = {bool: BOOL_TEXT, int: "an integer", float: "a number"}.get(kind, "text")
        raise ValueError(f"{name.upper()} must be {what}, got {raw!r}") from None


def _kinds() -> dict:
    return get_type_hints(RLKnobs)


def knobs_from_names(values: Mapping[str, str], base: Optional[RLKnobs] = None) -> RLKnobs:
    """Knobs from text values keyed by the script's variable names (upper case; unset or empty: the default),
    converted as the flags convert them: for a caller holding RL_training_script.sh's variables (the tests'
    table of bad knobs). Not a reader of the process environment."""
    converted = {}
    for name, kind in _kinds().items():
        raw = values.get(name.upper())
        if raw is not None and raw != "":
            converted[name] = _convert(name, kind, raw)
    return dataclasses.replace(base or RLKnobs(), **converted)


def add_knob_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--field`` flags for every knob (defaults: the dataclass's). A value of the wrong type is answered
    naming the knob and its flag: ``argument --ngpus: NGPUS must be an integer, got 'two'``."""
    def type_for(f, kind):
        def conv(raw):
            try:
                return _convert(f.name, kind, raw)
            except ValueError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
        return conv
    return add_dataclass_args(p, RLKnobs, type_for=type_for)


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The knobs' command line (``rl/trl_grpo.py``)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    return add_knob_flags(p)


def knobs_from_args(args: argparse.Namespace) -> RLKnobs:
    """The knobs among parsed flags (other attributes of ``args`` ignored)."""
    return from_namespace(RLKnobs, args)
