"""The values the pipeline's numeric knobs accept (``sidreasoner.pipeline``), checked when the plan is made.

A bad knob stops the pipeline before its first step with exit status 2 (a usage error, as a bad flag; a failing
step exits 1), naming the knob, its flag and the values it accepts (``pipeline: error: STAGE1_LR (--stage1_lr)
must be > 0, got -0.001``), instead of failing the step that uses it minutes later; the stage-3 step's
flags are parsed and checked as ``rl/trl_grpo.py`` parses and checks them (``sidreasoner.rl.grpo_cli``).
"""
from __future__ import annotations

from .ranges import SEED, UsageError, above, at_least, between, check_ranges, either, knob_and_flag

#: every numeric knob of PipelineConfig but STAGES (checked by ``plan``) and the values it accepts
RANGES = {
    "seed": SEED, "batch_size": at_least(1), "micro_batch_size": at_least(1),
    "stage1_steps": either(-1, above(0), "STAGE1_EPOCHS epochs"), "stage1_epochs": above(0),
    "stage1_eval_steps": at_least(0, "0: as SFT_EVAL_STEPS"), "stage1_lr": above(0),
    "history_loss_weight": at_least(0), "recent_crops": at_least(0, "0: off"), "dropout": between(0, 1, hi_open=True),
    "weight_decay": at_least(0), "rank_eval_rows": at_least(0), "early_stopping_patience": at_least(0, "0: never"),
    "stage2_steps": either(-1, above(0), "STAGE2_EPOCHS epochs"), "stage2_epochs": above(0), "stage2_lr": above(0),
    "stage2_replay": at_least(0), "stage2_think_probe_rows": at_least(0), "sft_eval_steps": at_least(0),
    "warmup_steps": at_least(0),
    "rl_steps": at_least(0, "0: skip stage 3"), "rl_rollout_n": at_least(2, "GRPO compares completions of a prompt"),
    "rl_batch_size": at_least(1), "rl_lr": above(0), "rl_max_response_length": at_least(1),
    "rl_target_prob_weight": at_least(0), "rl_answer_nll_weight": at_least(0), "rl_valid_rows": at_least(0),
    "rl_temperature": above(0), "rl_kl_coef": at_least(0),
    "eval_limit": at_least(0, "0: the whole split"), "think_eval_limit": at_least(0, "0: the whole split"),
    "eval_batch_size": at_least(1), "num_beams": at_least(1), "fusion_valid_rows": at_least(0, "0: no fusion"),
    "think_repetition_penalty": above(0, "1: off"), "max_think_tokens": at_least(1),
    "threads": at_least(0, "0: torch's choice"),
}


def check_knobs(cfg) -> None:
    """UsageError naming the first numeric knob of ``cfg`` (a PipelineConfig) outside the values it accepts."""
    try:
        check_ranges(cfg, RANGES, label=knob_and_flag)
    except ValueError as e:
        raise UsageError(str(e)) from None


def check_stage3(steps) -> None:
    """The stage-3 step's flags through ``rl/trl_grpo.py``'s own parser and the RL knobs' checks (UsageError
    naming the stage-3 knob), so a bad combination stops the pipeline before stage 1, not after stage 2."""
    from .rl.grpo_cli import build_parser
    from .rl.knobs import knobs_from_args
    for st in steps:
        if st.name == "stage3_grpo":
            parser = build_parser()

            def refuse(message: str):
                raise UsageError(f"stage 3 (rl/trl_grpo.py): {message}")
            parser.error = refuse  # a flag it does not know or cannot read: a usage error here, not an exit
            try:
                knobs_from_args(parser.parse_args([str(c) for c in st.cmd[2:]])).resolved("trl")
            except ValueError as e:
                refuse(str(e))
