"""The pipeline's steps stage by stage, each one of the project's Python entry points called with flags.

The stage scripts (``sft_Qwen3_enrich.sh``, ``sft_reasoning_activation.sh``, ``evaluate_Qwen3[_think].sh``,
``BACKEND=trl RL_training_script.sh``) stay the entry points on a cluster: each maps its environment knobs to
flags of ``sft.py``, ``evaluate.py``, ``rl/prepare_data.py`` and ``rl/trl_grpo.py``, with those flags' defaults
(``tests/test_script_defaults.py``). The pipeline calls the same entry points with the flags the scripts
would pass, so no setting travels in an environment variable: ``--threads`` (THREADS) goes to every step
that runs torch, and a step's output goes to its own log (``RESULTS_DIR/logs/<step>.log``).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import pipeline_categories as categories
from .data.records import ReleasePaths
from .paths import DEFAULT_PROMPT_STYLE, FINAL
from .pipeline_report import BASELINES
from .pipeline_steps import Step
from .ranges import UsageError

if TYPE_CHECKING:
    from .pipeline import PipelineConfig
    from .rl.knobs import RLKnobs


def _threads(cfg: PipelineConfig) -> list[str]:
    """``--threads`` of a step that runs torch (THREADS 0: none, torch's choice)."""
    return ["--threads", str(cfg.threads)] if cfg.threads else []


def _eval_step(cfg: PipelineConfig, name: str, mode: str, out: Path, model: Path, data: Path, split: str,
               limit: int, extra: tuple = ()) -> Step:
    """One ``evaluate.py`` run (``evaluate_Qwen3[_think].sh``'s flags) of ``model`` on the first ``limit``
    rows (0: all) of ``split``."""
    cmd = [sys.executable, "evaluate.py"] + (["--think"] if mode == "think" else [])
    cmd += ["--base_model", str(model), "--data_dir", str(data), "--category", cfg.category, "--split", split,
            "--num_beams", str(cfg.num_beams), "--batch_size", str(cfg.eval_batch_size), "--output_dir", str(out)]
    if mode == "think":
        cmd += ["--max_think_tokens", str(cfg.max_think_tokens),
                "--repetition_penalty", str(cfg.think_repetition_penalty)]
    # --resume: a rerun after a kill mid-evaluation continues the predictions (same settings checked)
    cmd += (["--limit", str(limit)] if limit else []) + _threads(cfg) + ["--resume"]
    return Step(name, out / "metrics.json", cmd + list(extra))


@categories.each_category  # several categories: once per category, in its own catalogue
def eval_steps(cfg: PipelineConfig, stage: str, model: Path, data: Path) -> list[Step]:
    """Non-thinking and thinking evaluation of one stage's model on the test split (the first N rows); the
    thinking one also counts the rows it helped or hurt against the non-thinking list."""
    res = Path(cfg.results_dir)
    return [_eval_step(cfg, f"eval_{stage}_nothink", "nothink", res / f"{stage}_nothink", model, data, "test",
                       cfg.eval_limit),
            _eval_step(cfg, f"eval_{stage}_think", "think", res / f"{stage}_think", model, data, "test",
                       cfg.think_eval_limit, ("--compare_nothink", str(res / f"{stage}_nothink")))]


@categories.each_category
def fusion_steps(cfg: PipelineConfig, stage: str, model: Path, data: Path) -> list[Step]:
    """Both modes on the first FUSION_VALID_ROWS valid rows and the model's empty-history SID prior,
    then the thinking-mode decoding that scores best there (``sidreasoner.eval.fusion --method best``:
    fusion, adaptive thinking or calibrated scores, each with its weight chosen there; fusion weight 0
    is non-thinking mode) applied to the test lists, into RESULTS_DIR/<stage>_fused."""
    if cfg.fusion_valid_rows <= 0:
        return []
    res, valid = Path(cfg.results_dir), Path(cfg.results_dir) / "valid"
    steps = [_eval_step(cfg, f"valid_{stage}_{mode}", mode, valid / f"{stage}_{mode}", model, data, "valid",
                        cfg.fusion_valid_rows) for mode in ("nothink", "think")]
    fused, prior = res / f"{stage}_fused", valid / f"{stage}_prior.json"
    steps.append(Step(f"prior_{stage}", prior, [sys.executable, "-m", "sidreasoner.eval.calibration",
                                                "--model_path", str(model), "--info_file",
                                                str(ReleasePaths(data, cfg.category).info), "--output", str(prior)]
                      + _threads(cfg)))
    steps.append(Step(f"fuse_{stage}", fused / "metrics.json",
                      [sys.executable, "-m", "sidreasoner.eval.fusion", "--method", "best", "--prior", str(prior),
                       "--valid", str(valid / f"{stage}_think"), str(valid / f"{stage}_nothink"),
                       "--test", str(res / f"{stage}_think"), str(res / f"{stage}_nothink"),
                       "--num_beams", str(cfg.num_beams), "--output_dir", str(fused)]))
    return steps


def baseline_step(cfg: PipelineConfig, name: str, data: Path) -> Step:
    if name not in BASELINES:
        raise UsageError(f"BASELINES: unknown baseline {name!r} (choose from {', '.join(BASELINES)})")
    out = Path(cfg.results_dir) / name
    cmd = [sys.executable, "-m", "sidreasoner.baselines", name, "--data_dir", str(data), "--category", cfg.category,
           "--output_dir", str(out), "--num_beams", str(cfg.num_beams)]
    if name == "sasrec":
        cmd += ["--seed", str(cfg.seed), "--no_progress"] + _threads(cfg)
    return Step(f"{name}_baseline", out / "metrics.json", cmd)


# -- SFT: stages 1 and 2 ------------------------------------------------------------------------------------
def _sft_length(steps: int, epochs: float, eval_steps: int) -> list[str]:
    """sft.py flags for a run of `steps` optimiser steps, or of `epochs` epochs when steps is negative."""
    length = ["--num_epochs", str(epochs), "--max_steps", "-1"] if steps < 0 else ["--max_steps", str(steps)]
    every = eval_steps or (150 if steps < 0 else max(steps // 3, 1))
    return length + ["--eval_steps", str(every)]


def _sft_cmd(cfg: PipelineConfig, stage: str, base: Path, out: Path, data: Path, lr: float) -> list[str]:
    """``sft.py --stage <stage>`` with what its stage script sets and what both stages share; the rest of
    sft.py's flags keep their defaults (the scripts' defaults too: num_epochs, cutoff_len per stage)."""
    return [sys.executable, "sft.py", "--stage", stage, "--base_model", str(base), "--data_dir", str(data),
            "--category", cfg.category, "--output_dir", str(out), "--batch_size", str(cfg.batch_size),
            "--micro_batch_size", str(cfg.micro_batch_size), "--learning_rate", str(lr), "--seed", str(cfg.seed),
            "--warmup_steps", str(cfg.warmup_steps), "--dropout", str(cfg.dropout),
            "--weight_decay", str(cfg.weight_decay), "--early_stopping_patience", str(cfg.early_stopping_patience),
            "--log_file", str(out / "train_log.jsonl")] + _threads(cfg)  # the log beside the run: never shared


def _next_sid_flags(cfg: PipelineConfig) -> list[str]:
    """How next_sid is trained, in stage 1 and when stage 2 replays it."""
    return ["--history_loss", str(cfg.history_loss), "--history_loss_weight", str(cfg.history_loss_weight),
            "--keep_covered_rows", str(cfg.keep_covered_rows), "--recent_crops", str(cfg.recent_crops)]


def stage1_steps(cfg: PipelineConfig, data: Path, base: Path, run: Path) -> list[Step]:
    """Stage 1, SID-language alignment, from the base model (+ evals)."""
    s1 = run / "stage1"
    cmd = _sft_cmd(cfg, "alignment", base, s1, data, cfg.stage1_lr)
    cmd += _sft_length(cfg.stage1_steps, cfg.stage1_epochs, cfg.stage1_eval_steps or cfg.sft_eval_steps)
    cmd += ["--prompt_style", cfg.prompt_style] + _next_sid_flags(cfg) + ["--rank_eval_rows", str(cfg.rank_eval_rows)]
    cmd += ["--tasks", cfg.stage1_tasks] if cfg.stage1_tasks else []
    cmd += ["--task_weights", cfg.stage1_task_weights] if cfg.stage1_task_weights else []
    return [Step("stage1_sft", s1 / FINAL / "config.json", cmd)] + eval_steps(cfg, "stage1", s1 / FINAL, data)


def stage2_steps(cfg: PipelineConfig, data: Path, run: Path) -> list[Step]:
    """The template teacher corpus, stage 2 from stage 1's model (+ evals). Stage 2 leaves --prompt_style
    at auto: the style recorded with stage 1's model."""
    corpus = run / "corpus"  # teacher corpus from the offline template teacher: stage 2's reasoning paths
    steps = categories.for_each(cfg, lambda c: [Step(
        "teacher_corpus", corpus / f"{c.category}.integrated_narrative.csv",
        [sys.executable, "scripts/synthesize_corpus.py", "--data_dir", str(data), "--category", c.category,
         "--output_dir", str(corpus), "--teacher", "template", "--seed", str(cfg.seed), "--no_progress"])])
    s2 = run / "stage2"  # reasoning activation, from stage 1's best model
    cmd = _sft_cmd(cfg, "reasoning", run / "stage1" / FINAL, s2, data, cfg.stage2_lr)
    cmd += ["--reasoning_train_file", str(categories.reasoning_source(cfg, corpus))]
    cmd += _sft_length(cfg.stage2_steps, cfg.stage2_epochs, cfg.sft_eval_steps)
    if cfg.stage2_replay > 0:  # stage 1's next_sid replayed beside the reasoning task: keeps non-thinking mode
        cmd += ["--tasks", "reasoning,next_sid", "--task_weights", f"next_sid={cfg.stage2_replay}"]
        cmd += _next_sid_flags(cfg) + ["--rank_eval_rows", str(cfg.rank_eval_rows), "--rank_eval_think_rows",
                                       str(cfg.stage2_think_probe_rows), "--select_on", cfg.stage2_select_on]
    steps.append(Step("stage2_sft", s2 / FINAL / "config.json", cmd))
    return steps + eval_steps(cfg, "stage2", s2 / FINAL, data) + fusion_steps(cfg, "stage2", s2 / FINAL, data)


# -- stage 3: GRPO on TRL ------------------------------------------------------------------------------------
def rl_knobs(cfg: PipelineConfig, data: Path, run: Path) -> RLKnobs:
    """Stage 3's knobs (what ``BACKEND=trl RL_training_script.sh`` would get as environment variables);
    the rest keep RLKnobs' defaults, the script's too."""
    from .rl.knobs import RLKnobs, default_info_file
    every = max(cfg.rl_steps // 2, 1)
    knobs = dict(
        category=cfg.category, data_dir=str(data), model_path=str(run / "stage2" / FINAL),
        rl_data_dir=str(run / f"rl_data_{cfg.rl_prompts_from}"),  # one per prompt source: never mixed
        info_file=default_info_file(str(data), cfg.category),  # several categories: A=path,B=path
        output_dir=str(run / "stage3"), rollout_n=cfg.rl_rollout_n, train_batch_size=cfg.rl_batch_size,
        micro_batch_size=cfg.rl_rollout_n, lr=cfg.rl_lr, max_response_length=cfg.rl_max_response_length,
        max_steps=cfg.rl_steps, save_freq=every, seed=cfg.seed, test_freq=every if cfg.rl_valid_rows else 0,
        rank_eval_rows=cfg.rl_valid_rows, val_max_rows=cfg.rl_valid_rows, sid_rollout=cfg.rl_sid_rollout,
        reward=cfg.rl_reward, target_prob_weight=cfg.rl_target_prob_weight, prompts_from=cfg.rl_prompts_from,
        valid_holdout=max(cfg.rank_eval_rows, cfg.fusion_valid_rows, 1),
        drop_zero_variance=cfg.rl_drop_zero_variance, temperature=cfg.rl_temperature, kl_coef=cfg.rl_kl_coef)
    if cfg.rl_sid_rollout != "free":  # the evaluator's reasoning budget and beams
        knobs.update(max_think_tokens=min(cfg.max_think_tokens, cfg.rl_max_response_length - 16),
                     rank_k=cfg.num_beams, rollout_repetition_penalty=cfg.think_repetition_penalty,
                     beam_sid_loss=cfg.rl_beam_sid_loss, answer_nll_weight=cfg.rl_answer_nll_weight)
    return RLKnobs(**knobs)


def _flag_text(value) -> str:
    return str(int(value)) if isinstance(value, bool) else str(value)


def rl_steps(cfg: PipelineConfig, data: Path, run: Path) -> list[Step]:
    """Stage 3 from stage 2's model, as ``BACKEND=trl RL_training_script.sh`` runs it: the RL data
    (``rl/prepare_data.py --if_missing``: rebuilt when its rows would differ), then ``rl/trl_grpo.py`` with
    every knob as its flag; then evals."""
    if cfg.rl_steps <= 0:
        return []
    k = rl_knobs(cfg, data, run)
    model = Path(k.output_dir) / FINAL
    prepare = [sys.executable, "rl/prepare_data.py", "--data_dir", k.data_dir, "--category", k.category,
               "--output_dir", k.rl_data_dir, "--think", _flag_text(k.think), "--prompt_style", DEFAULT_PROMPT_STYLE,
               "--model_path", k.model_path, "--info_file", k.info_file, "--train_from", k.prompts_from,
               "--valid_holdout", str(k.valid_holdout), "--if_missing"]  # auto: the style stage 2 recorded
    grpo = [sys.executable, "rl/trl_grpo.py"]
    for f in dataclasses.fields(k):
        grpo += [f"--{f.name}", _flag_text(getattr(k, f.name))]
    steps = [Step("stage3_data", Path(k.rl_data_dir) / "train.parquet", prepare,
                  skip_when=model / "config.json"),  # checked again until stage 3 is done
             Step("stage3_grpo", model / "config.json", grpo + _threads(cfg))]
    return steps + eval_steps(cfg, "stage3", model, data) + fusion_steps(cfg, "stage3", model, data)
