"""The end-to-end pipeline behind ``make demo`` and ``run_pipeline.sh``.

    bash run_pipeline.sh                                   # the embedded demo: synthetic data, tiny model, CPU
    DATA_DIR=data/Amazon CATEGORY=Office_Products bash run_pipeline.sh     # real data (scripts/download_data.py)
    python -m sidreasoner.pipeline --help                  # every knob

Each step runs one of the project's Python entry points (``sft.py``, ``evaluate.py``, ``rl/trl_grpo.py``,
...: the ones the stage shell scripts call, with the flags those scripts would pass; ``pipeline_stages.py``)
as a subprocess with its settings as flags and the driver's environment as it is, logs to
``RESULTS_DIR/logs/<step>.log`` and is skipped when its output already exists, so a rerun after a kill
continues where it stopped. Knobs are flags (``--data_dir``, ``--stage1_steps`` ...); ``run_pipeline.sh``
(and so ``make demo``) maps the environment variables of the same names in upper case (``DATA_DIR CATEGORY
BASE_MODEL STAGE1_STEPS ...``) to them, and no Python reads the environment for a setting.
``STAGES=1`` or ``2`` stops after that stage's evaluations. The last step tables every evaluation and
baseline (stage x mode: HR@K, NDCG@K, invalid rate; and all of them on the same first test rows) in
``RESULTS_DIR/results.md`` with a chart, and writes the headline numbers (NDCG@10, HR@10, same-rows
NDCG@10, step seconds) to ``RESULTS_DIR/summary.json``.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

# BASELINES: python -m sidreasoner.baselines <name>; the rest is this module's API for its callers too
from . import pipeline_categories as categories
from . import pipeline_stages as stages
from .flags import add_dataclass_args, from_namespace, parse_bool
from .paths import NUM_BEAMS
from .pipeline_ranges import check_knobs, check_stage3
from .ranges import UsageError, exit_usage
from .pipeline_report import BASELINES, SUMMARY_FILE, TIMES_FILE, load_times, record_time, summarise  # noqa: F401
from .pipeline_steps import REPO, Step, last_line, run_steps  # noqa: F401

@dataclass
class PipelineConfig:
    """Knobs: each is the flag ``--name``; run_pipeline.sh sets it from the environment variable ``NAME``."""

    data_dir: str = field(default="", metadata={"help": "release data folder; empty: generate the demo data"})
    category: str = field(default="Demo", metadata={"help": "category name in the release layout"})
    base_model: str = field(default="", metadata={"help": "HF model folder/id; empty: build a tiny Qwen3"})
    tiny_untied: bool = field(default=True, metadata={
        "help": "the tiny Qwen3 gets output embeddings of its own (make_tiny_model.py --untied): more room to "
                "learn which item follows which"})
    run_dir: str = field(default="checkpoints/demo", metadata={"help": "where models of every stage go"})
    results_dir: str = field(default="results/demo", metadata={"help": "evaluations, table and chart"})
    seed: int = field(default=0, metadata={"help": "seed of the demo data and the training runs"})
    stages: int = field(default=3, metadata={"help": "stop after this stage and its evaluations: 1, 2 or 3"})
    batch_size: int = field(default=32, metadata={
        "help": "SFT examples per optimiser step. Demo stage 1, one epoch, 1 thread, valid probe NDCG@10: batch 16 "
                "lr 2e-3 0.126, 32 lr 2e-3 0.135, 64 lr 4e-3 0.114 (same examples per second at each size)"})
    micro_batch_size: int = field(default=8, metadata={
        "help": "SFT examples per forward pass: the step's examples are sorted by length into micro-batches, so "
                "smaller ones pad less, with the same optimisation. Demo, 1 thread: stage 2 (reasoning paths "
                "beside short next_sid rows) 40 steps in 47.7 s at 32, 20.8 s at 8, 22.1 s at 4; stage 1 one "
                "epoch 172 -> 144 s"})
    stage1_steps: int = field(default=-1, metadata={"help": "stage-1 optimiser steps (-1: STAGE1_EPOCHS epochs)"})
    stage1_epochs: float = field(default=1.0, metadata={
        "help": "stage-1 epochs when STAGE1_STEPS is -1. Demo (22,911 rows an epoch, batch 32, lr 2e-3 cosine), "
                "valid probe NDCG@10 at the end / training seconds: 0.75 epoch 0.122 / 107 s, 1 epoch 0.135 / "
                "144 s (1 thread); 3 epochs 0.160 / 416 s (THREADS=2, idle machine): 1 keeps `make demo` "
                "within 10 minutes"})
    stage1_eval_steps: int = field(default=240, metadata={
        "help": "stage-1 validation (and valid ranking) every N steps (0: as SFT_EVAL_STEPS); a 1,000-row "
                "ranking probe costs ~3.5 s on 1 thread: 240 gives 3 over the demo's 716 steps"})
    stage1_lr: float = field(default=2e-3, metadata={
        "help": "stage-1 learning rate (tiny models like it high). Demo, one epoch at batch 32, valid probe "
                "NDCG@10: 1.5e-3 0.132, 2e-3 0.135, 3e-3 0.126"})
    stage1_task_weights: str = field(default="", metadata={
        "help": "stage-1 task mixture, e.g. next_sid=2,title_history_to_title=0.25 (empty: sft.py's default)"})
    # the small-model recipe of stage 1 (README "Stage 1 at small scale"); sft.py's defaults are the paper's
    prompt_style: str = field(default="compact", metadata={
        "help": "prompt wording, chosen at stage 1 and inherited by the later stages and the evaluations: compact "
                "(history SIDs only, for a tiny model from scratch), native (system prompt + sentence) or "
                "release (the SIDReasoner release's texts, byte for byte)"})
    stage1_tasks: str = field(default="next_sid", metadata={
        "help": "comma-separated stage-1 tasks (empty: all of sft.py's alignment tasks)"})
    history_loss: bool = field(default=True, metadata={
        "help": "stage 1's next_sid also supervises the history SIDs (SASRec-style, sft.py --history_loss)"})
    history_loss_weight: float = field(default=0.3, metadata={
        "help": "weight of the history SIDs' loss relative to the answer's (sft.py --history_loss_weight)"})
    recent_crops: int = field(default=1, metadata={
        "help": "stage 1's next_sid also trains each row with its history cut to the last 1..N items (0: off)"})
    keep_covered_rows: bool = field(default=True, metadata={
        "help": "with HISTORY_LOSS, also train the rows that are prefixes of a longer row of the same user "
                "(their answer position; sft.py --keep_covered_rows)"})
    dropout: float = field(default=0.1, metadata={"help": "SFT dropout (embeddings, attention, MLP outputs)"})
    weight_decay: float = field(default=0.01, metadata={"help": "SFT AdamW weight decay"})
    rank_eval_rows: int = field(default=1000, metadata={
        "help": "valid rows ranked at every stage-1 evaluation; the checkpoint with the best valid NDCG@10 is "
                "kept and training stops early on it (0: select by validation loss)"})
    early_stopping_patience: int = field(default=4, metadata={
        "help": "SFT evaluations without a better selection metric before stopping (0: never)"})
    stage2_steps: int = field(default=100, metadata={
        "help": "stage-2 optimiser steps (-1: STAGE2_EPOCHS epochs); see STAGE2_REPLAY for the numbers"})
    stage2_epochs: float = field(default=1.0, metadata={"help": "stage-2 epochs when STAGE2_STEPS is -1"})
    stage2_lr: float = field(default=5e-4, metadata={
        "help": "stage-2 learning rate: a quarter of stage 1's. After the 1-epoch stage 1 a higher one costs "
                "non-thinking skill: 1e-3 teaches the reasoning faster (reasoning loss ~3.1 in 100 steps) but "
                "the demo's valid probe fell to 0.964x stage 1's and test NDCG@10 to 0.939x; see STAGE2_REPLAY"})
    stage2_replay: float = field(default=4.0, metadata={
        "help": "weight of stage 1's next_sid examples replayed in stage 2 beside the reasoning paths (0: "
                "reasoning only; 2: twice each of them per epoch); with it, stage 2 also selects its checkpoint "
                "on valid NDCG@10 (RANK_EVAL_ROWS). Demo after a 3-epoch stage 1 (probe 0.164), 160 steps, valid "
                "probe NDCG@10 / reasoning loss: replay 0.5 lr 2e-4 0.154 / 4.5; replay 2 lr 1e-3 0.160 / 1.8. "
                "After the 1-epoch stage 1 (probe 0.135), 100 steps: replay 2 lr 1e-3 0.119 / 2.7; replay 2 "
                "lr 5e-4 0.131 / 4.1; replay 3 lr 1e-3 0.125 / 2.9; replay 4 lr 7e-4 0.131 / 3.9; replay 4 lr "
                "1e-3 0.134 / 3.2 (140 steps: 0.126 / 2.3). From the pipeline's own 1-epoch stage 1 (probe "
                "0.133): replay 4 lr 5e-4 0.131 / 4.3, lr 7e-4 0.128 / 3.8, lr 1e-3 0.128 / 3.1; replay 8 lr "
                "1e-3 0.126 / 3.5 (and each replay unit adds ~5 s of tokenising)"})
    stage2_think_probe_rows: int = field(default=0, metadata={
        "help": "with STAGE2_REPLAY: the first N probe rows are also scored in thinking mode at every stage-2 "
                "evaluation (sft.py --rank_eval_think_rows; 0: off, it costs a reasoning pass per evaluation)"})
    stage2_select_on: str = field(default="nothink", metadata={
        "help": "what picks the stage-2 checkpoint: valid NDCG@10 in nothink mode, think mode (needs "
                "STAGE2_THINK_PROBE_ROWS) or both (their mean)"})
    sft_eval_steps: int = field(default=0, metadata={"help": "SFT validation every N steps (0: a third of the "
                                                             "steps, or 150 when training by epochs)"})
    warmup_steps: int = field(default=20, metadata={"help": "SFT linear warm-up steps (both stages)"})
    rl_steps: int = field(default=6, metadata={"help": "stage-3 GRPO steps (TRL backend; 0: skip stage 3)"})
    rl_rollout_n: int = field(default=16, metadata={
        "help": "stage-3 completions per prompt (the GRPO group). Demo stage-2 model, 6 steps of 128 completions, lr "
                "5e-5, paired change of thinking NDCG@10 on the first valid rows: 16 prompts x 8 -0.0059 +- 0.0065 "
                "(300 rows); 8 prompts x 16 +0.0054 +- 0.0038 (1,000 rows), +0.0126 +- 0.0041 with RL_BEAM_SID_LOSS "
                "0 (seed 1: +0.0147 +- 0.0043): a larger group gives each prompt a steadier baseline (rl/README.md)"})
    rl_batch_size: int = field(default=8, metadata={
        "help": "stage-3 prompts per step (x RL_ROLLOUT_N completions); see RL_ROLLOUT_N"})
    rl_lr: float = field(default=5e-5, metadata={"help": "stage-3 learning rate"})
    rl_max_response_length: int = field(default=224, metadata={
        "help": "stage-3 longest completion in tokens (room for the reasoning, the SID and the stop token)"})
    rl_sid_rollout: str = field(default="beam", metadata={
        "help": "stage-3 rollouts (RL_training_script.sh SID_ROLLOUT): beam = sampled reasoning, then the SID by "
                "trie-constrained beam search, as thinking-mode evaluation decodes it; constrained = the SID sampled "
                "inside the catalogue trie; free = the model samples the SID too (the paper)"})
    rl_reward: str = field(default="rank", metadata={
        "help": "stage-3 reward (REWARD): rank = the target's NDCG in the rollout's beam list + RL_TARGET_PROB_WEIGHT "
                "x its probability after the reasoning (needs RL_SID_ROLLOUT=beam); match = the release's reward"})
    rl_target_prob_weight: float = field(default=0.5, metadata={
        "help": "weight of the dense term of the rank reward (TARGET_PROB_WEIGHT)"})
    rl_prompts_from: str = field(default="valid", metadata={
        "help": "stage-3 train prompts (PROMPTS_FROM): valid = the valid rows after the first max(RANK_EVAL_ROWS, "
                "FUSION_VALID_ROWS), rows SFT never fitted (the first rows stay for the choices made on valid); "
                "train = the train split (the paper)"})
    rl_beam_sid_loss: bool = field(default=False, metadata={
        "help": "stage-3 beam rollouts: the searched SID tokens carry the policy-gradient loss too (BEAM_SID_LOSS; "
                "off: only the sampled reasoning does, since the SID is searched, not sampled); see RL_ROLLOUT_N"})
    rl_answer_nll_weight: float = field(default=0.0, metadata={
        "help": "stage-3 weight of the target SID's NLL after each rollout's own reasoning (ANSWER_NLL_WEIGHT). "
                "Demo, 6 steps of 16 prompts x 8, lr 5e-5, 300 valid rows, thinking NDCG@10 change: weight 1 "
                "-0.0081 +- 0.0052 (0: -0.0059 +- 0.0065); at lr 3e-4 KL reached 4.3 and both modes fell ~0.03"})
    rl_drop_zero_variance: bool = field(default=False, metadata={
        "help": "stage-3 dynamic sampling (DROP_ZERO_VARIANCE): leave groups of equal rewards out of the loss"})
    rl_valid_rows: int = field(default=0, metadata={
        "help": "stage-3 curves: before training and every RL_STEPS/2 steps, valid NDCG@10 in both modes and the "
                "sampled reward on the first N valid rows (RANK_EVAL_ROWS, VAL_MAX_ROWS; 0: off, the end-of-run "
                "diagnostics only)"})
    rl_temperature: float = field(default=0.7, metadata={
        "help": "stage-3 sampling temperature of the reasoning (with beam rollouts the reasoning is also sampled "
                "with THINK_REPETITION_PENALTY, near the greedy decoding evaluation uses)"})
    rl_kl_coef: float = field(default=0.01, metadata={"help": "stage-3 KL weight to the stage-2 model (KL_COEF)"})
    eval_limit: int = field(default=0, metadata={
        "help": "test rows per non-thinking evaluation (0: the whole split, the rows the baselines score)"})
    think_eval_limit: int = field(default=100, metadata={
        "help": "test rows per thinking evaluation (0: whole split); thinking is ~20x slower on CPU (demo "
                "stage-2 model, 1 thread: 100 rows ~16 s)"})
    eval_batch_size: int = field(default=32, metadata={
        "help": "rows per evaluation batch (the evaluation scripts' BATCH_SIZE; same metrics at any size). Demo, "
                "1 thread: all 1,525 test rows non-thinking 17.1 s at 8, 12.6 s at 32, 13.0 s at 64; 100 rows "
                "thinking 18.6 s at 8, 15.7 s at 32"})
    num_beams: int = field(default=NUM_BEAMS, metadata={"help": "beams = SIDs returned per row"})
    fusion_valid_rows: int = field(default=100, metadata={
        "help": "after stages 2 and 3: valid rows evaluated in both modes to choose the weight that fuses the "
                "thinking and non-thinking test lists (RESULTS_DIR/<stage>_fused; 0: no fusion; 100 rows: "
                "~8 + ~15 s a stage on 1 thread)"})
    think_repetition_penalty: float = field(default=1.3, metadata={
        "help": "repetition penalty of thinking-mode reasoning (evaluate.py --repetition_penalty; 1: off, as the "
                "release decodes): a tiny model reasoning greedily loops on a phrase, and 1.3 stops that "
                "(demo stage-2 model, 200 valid rows: thinking NDCG@10 0.032 -> 0.104)"})
    max_think_tokens: int = field(default=192, metadata={
        "help": "reasoning budget of thinking-mode evaluation in tokens (the demo's reasoning paths: p90 169)"})
    baselines: str = field(default="popularity,transitions", metadata={
        "help": f"comma-separated baselines to table beside the stages: {', '.join(BASELINES)}"})
    threads: int = field(default=1, metadata={
        "help": "torch CPU threads per process, each torch step's --threads (1 suits the tiny model and a busy "
                "CPU; 0: torch's choice). Demo stage 1, 2 cores: 2 threads ~7 steps/s on an idle machine but "
                "~0.15 steps/s beside another busy process; 1 thread ~5 steps/s either way"})


def _cast(default, text: str):
    """A command-line string as the type of the field's default (booleans: 1/0, true/false)."""
    if isinstance(default, bool):
        return parse_bool(text)
    return type(default)(text)


def _flag_type(name: str, default):
    """argparse type of a knob's flag; a bad value is answered naming the knob and the flag
    (``argument --stages: STAGES must be an integer, got 'x'``)."""
    def cast(text: str):
        try:
            return _cast(default, text)
        except (ValueError, argparse.ArgumentTypeError):
            kind = {bool: "a boolean (1/0, true/false)", int: "an integer", float: "a number"}.get(type(default),
                                                                                                "text")
            raise argparse.ArgumentTypeError(f"{name.upper()} must be {kind}, got {text!r}") from None
    return cast


def plan(cfg: PipelineConfig) -> list[Step]:
    """The ordered steps: data -> tiny model -> stage 1 -> corpus -> stage 2 -> stage 3, evals after each;
    the steps after stage ``cfg.stages``'s evaluations are left out."""
    if cfg.stages not in (1, 2, 3):
        raise UsageError(f"STAGES must be 1, 2 or 3 (stop after that stage and its evaluations), got {cfg.stages}")
    check_knobs(cfg)
    categories.check(cfg)
    py, run = sys.executable, Path(cfg.run_dir)
    data = Path(cfg.data_dir) if cfg.data_dir else Path("data/demo")
    steps: list[Step] = []
    # demo data (its SIDs come from the SID builder, sidreasoner.sid.build); real data is used as is
    if not cfg.data_dir:
        steps.append(Step("demo_data", categories.demo_done(cfg, data),
                          [py, "scripts/make_demo_data.py", "--output_dir", str(data), "--seed", str(cfg.seed),
                           "--category", cfg.category]))
    for name in cfg.baselines.split(","):  # baselines on the same split, in the evaluator's metrics format
        if name.strip():
            steps += categories.for_each(cfg, lambda c: [stages.baseline_step(c, name.strip(), data)])
    # base model: a tiny Qwen3 with a tokenizer trained on the catalogue, unless one is given
    base = Path(cfg.base_model) if cfg.base_model else run / "tiny"
    if not cfg.base_model:
        steps.append(Step("tiny_model", base / "config.json",
                          [py, "scripts/make_tiny_model.py", "--data_dir", str(data), "--category", cfg.category,
                           "--output_dir", str(base), "--seed", str(cfg.seed)]
                          + (["--untied"] if cfg.tiny_untied else [])))
    steps += stages.stage1_steps(cfg, data, base, run)
    if cfg.stages >= 2:
        steps += stages.stage2_steps(cfg, data, run)
    if cfg.stages >= 3:
        steps += stages.rl_steps(cfg, data, run)
    check_stage3(steps)
    return steps


def run(cfg: PipelineConfig) -> Path:
    """Run every unfinished step of the plan, then write and return RESULTS_DIR/results.md."""
    res = Path(cfg.results_dir)
    timings = run_steps(plan(cfg), res / "logs", res / TIMES_FILE)
    return (categories.summarise if categories.several(cfg) else summarise)(cfg, timings)


@dataclass
class PipelineRun:
    """How the command line runs the plan (not a knob of the pipeline itself)."""
    dry_run: bool = field(default=False, metadata={"help": "print the steps and their commands, run nothing",
                                                   "action": "store_true"})


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, PipelineConfig, type_for=lambda f, kind: _flag_type(f.name, f.default),
                       flag_help_suffix=lambda f: f" (run_pipeline.sh: {f.name.upper()}; default {f.default!r})")
    add_dataclass_args(parser, PipelineRun)
    args = parser.parse_args(argv)  # a knob of the wrong type: exit 2 naming it
    try:  # a knob out of range: exit 2 before the first step
        cfg = from_namespace(PipelineConfig, args)
        steps = plan(cfg)
    except UsageError as e:
        exit_usage("pipeline", e)
    if args.dry_run:
        for st in steps:
            skip = f"; skipped when {st.skip_when} exists" if st.skip_when else ""
            print(f"{st.name}: {shlex.join(map(str, st.cmd))}  [done when {st.done} exists{skip}]")
        return
    t0 = time.time()
    print(run(cfg).read_text())  # a failing step: SystemExit naming it and its log (exit 1)
    print(f"pipeline finished in {time.time() - t0:.0f} s; results in {cfg.results_dir}")


if __name__ == "__main__":
    main()
