"""The SFT run's configuration: one dataclass (every field has help text), its command line, and
resolution of defaults (paths from ``--data_dir/--category``, per-stage paper defaults).

Flag names follow the reference scripts (``--base_model --train_file ... --resume_from_checkpoint``)
so their command lines keep working; booleans accept ``--flag``, ``--flag True`` and ``--flag False``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..data.records import SPLIT_SUFFIX, ReleasePaths
from ..flags import add_dataclass_args, from_namespace
from ..paths import CUTOFF_LEN, DEFAULT_DATA_DIR, DEFAULT_PROMPT_STYLE, DEFAULT_SEED, sft_dir
from ..ranges import SEED, above, at_least, between, check_ranges, either, optional
from ..model.chat import model_prompt_style

STAGES = ("alignment", "reasoning")
LOSS_NORMS = ("token", "example")
#: prompt styles (sidreasoner.tasks.prompts.PROMPT_STYLES) plus "auto": the base model's recorded style
PROMPT_STYLE_CHOICES = ("auto", "native", "compact", "release")
#: how micro-batches are formed (sidreasoner.train.collate); kept here so --help imports no torch
BATCHING_MODES = ("group", "pack", "pad")
#: the paper's settings per stage (Qwen3-1.7B, global batch 1024; cutoff from sidreasoner.paths)
STAGE_DEFAULTS = {"alignment": {"learning_rate": 3e-4, "num_epochs": 10.0, "cutoff_len": CUTOFF_LEN["alignment"]},
                  "reasoning": {"learning_rate": 1e-5, "num_epochs": 5.0, "cutoff_len": CUTOFF_LEN["reasoning"]}}


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class SFTConfig:
    stage: str = _f("alignment", "alignment (stage 1: multi-task SID-language SFT, SID tokens added) or reasoning "
                                 "(stage 2: <think>reasoning</think> + SID)", choices=STAGES)
    base_model: str = _f("", "model folder (or hub id) to start from; stage 2: the stage-1 final_checkpoint")
    output_dir: str = _f("", "where checkpoints and final_checkpoint go (default checkpoints/sft_enrich_Qwen3_<category> "
                             "for alignment, checkpoints/sft_reasoning_Qwen3_<category> for reasoning)")
    data_dir: str = _f(DEFAULT_DATA_DIR, "release-layout data folder; fills every path flag left empty")
    category: str = _f("", "category, e.g. Office_Products (names the files under --data_dir); several, "
                           "comma-separated (A,B): every category's files, one catalogue each, SID tokens shared")
    train_file: str = _f("", f"train split CSV (default <data_dir>/train/<category>{SPLIT_SUFFIX}.csv)")
    eval_file: str = _f("", "valid split CSV: validation rows of the sequence tasks")
    sid_index_path: str = _f("", "<category>.index.json: item id -> SID tokens")
    item_meta_path: str = _f("", "<category>.item.json: item titles")
    llm_generated_data_path: str = _f("", "item-enriched teacher corpus <category>.item_enhanced_v2.json "
                                          "(item_text task; off when absent)")
    llm_generated_sequence_path: str = _f("", "narrative teacher corpus <category>.integrated_narrative.csv "
                                              "(stage 1 narrative task; stage 2 reasoning_path)")
    reasoning_train_file: str = _f("", "stage 2 alias of --llm_generated_sequence_path (reference flag name)")
    general_reasoning_path: str = _f("", "optional general chat data (JSONL/JSON/parquet/arrow of messages)")
    tasks: str = _f("", "comma-separated tasks to train (default: all of the stage's tasks)")
    task_weights: str = _f("", "per-task weights TASK=W,...: W scales the task's examples per epoch "
                               "(0 off, 0.5 half, 2 twice)")
    task_caps: str = _f("", "per-task caps TASK=N,...: at most N training examples per epoch")
    prompt_style: str = _f(DEFAULT_PROMPT_STYLE, "wording of the history -> next-SID prompt: native (system prompt + sentence), "
                                   "compact (history SIDs only, for small models trained from scratch) or "
                                   "release (the SIDReasoner release's prompts of every task, byte for byte); "
                                   "auto: the base model's recorded style, else native. Saved with the model "
                                   "so the evaluator asks in the same words", choices=PROMPT_STYLE_CHOICES)
    history_loss: bool = _f(False, "next_sid also supervises the history SIDs in its prompts (every item "
                                   "predicted from the ones before it, as SASRec trains); train rows that are "
                                   "prefixes of a longer row of the same user are then left out (counted)")
    history_loss_weight: float = _f(1.0, "weight of the history SIDs' loss relative to the answer's (with "
                                         "--history_loss; < 1 leaves more of the gradient to the answer "
                                         "position, where the model is asked at test time)")
    label_smoothing: float = _f(0.0, "label smoothing of the SFT cross-entropy (0: off): the target keeps 1 - e of "
                                     "the probability mass, the rest is spread over the vocabulary")
    recent_crops: int = _f(0, "next_sid also trains every train row with its history cut to the last 1..N items "
                              "(what follows an item whatever came before it; 0: off)")
    keep_covered_rows: bool = _f(False, "with --history_loss, keep those prefix rows too (their answer position "
                                        "stays supervised; more compute per epoch)")
    general_max_samples: int = _f(60000, "general chat rows sampled from --general_reasoning_path")
    valid_item_fraction: float = _f(0.05, "share of items held out of the item tasks for validation")
    valid_fraction: float = _f(0.05, "share of narrative sequences held out (narrative and reasoning tasks)")
    max_valid_per_task: int = _f(500, "cap on validation examples per task (0 = no cap)")
    batch_size: int = _f(1024, "examples per optimiser step over all processes (gradient accumulation fills it)")
    micro_batch_size: int = _f(8, "examples per forward pass per process")
    num_epochs: Optional[float] = _f(None, "epochs (default: 10 for alignment, 5 for reasoning)")
    max_steps: int = _f(-1, "stop after this many optimiser steps (-1: run the epochs)")
    learning_rate: Optional[float] = _f(None, "peak learning rate (default: 3e-4 alignment, 1e-5 reasoning)")
    lr_scheduler_type: str = _f("cosine", "transformers scheduler name")
    warmup_steps: int = _f(20, "linear warm-up steps")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    dropout: float = _f(0.0, "dropout on embeddings, attention probabilities and attention/MLP outputs while "
                             "training (Qwen3 has none of its own; small models from scratch overfit without "
                             "it). The saved model is plain Qwen3")
    loss_norm: str = _f("token", "token: every answer token weighs the same (long answers dominate); example: "
                                 "every example weighs the same (its tokens share the mean answer length)",
                        choices=LOSS_NORMS)
    sparse_logits: bool = _f(True, "compute the output layer only where a label is supervised (a single process "
                                   "without DeepSpeed/FSDP); False: the model's own loss over every position")
    rank_eval_rows: int = _f(0, "valid rows scored by constrained beam search (non-thinking) at every "
                                "evaluation; > 0: the best checkpoint and early stopping follow valid NDCG@10 "
                                "instead of the mean validation loss")
    rank_eval_beams: int = _f(10, "beams of that search (>= 10)")
    rank_eval_think_rows: int = _f(0, "with --rank_eval_rows: the first N of those rows are also scored in "
                                      "thinking mode (greedy reasoning, then the search), logged as "
                                      "eval_think_ndcg10 / eval_think_hr10 (0: off)")
    rank_eval_think_tokens: int = _f(192, "reasoning budget of that thinking probe in tokens")
    select_on: str = _f("nothink", "with --rank_eval_rows, the valid NDCG@10 that picks the checkpoint and "
                                   "stops early: nothink, think (needs --rank_eval_think_rows) or both (their "
                                   "mean: a model good in both modes)", choices=("nothink", "think", "both"))
    cutoff_len: Optional[int] = _f(None, f"longest example in tokens; longer ones are left out and counted "
                                         f"(default: {CUTOFF_LEN['alignment']} alignment, "
                                         f"{CUTOFF_LEN['reasoning']} reasoning)")
    seed: int = _f(DEFAULT_SEED, "seed for sampling, held-out splits, shuffling and initialisation")
    train_from_scratch: bool = _f(False, "random initialisation from the base model's config")
    mask_assistant: bool = _f(True, "loss on assistant answers only (False: on the whole chat text)")
    batching: str = _f("group", "group: length-grouped micro-batches inside each optimiser step; pack: one "
                                "packed row per micro-batch; pad: plain pad-to-longest", choices=BATCHING_MODES)
    attn_implementation: str = _f("sdpa", "attention kernel: sdpa, eager or flash_attention_2")
    gradient_checkpointing: bool = _f(False, "recompute activations in backward (less memory, ~30%% slower)")
    eval_steps: int = _f(0, "evaluate and save every N optimiser steps (0: at the end of every epoch)")
    early_stopping_patience: int = _f(3, "stop after this many evaluations without a better validation loss "
                                         "(0: never stop early)")
    save_total_limit: int = _f(2, "checkpoints kept besides the best one")
    logging_steps: int = _f(10, "log the training loss every N optimiser steps")
    resume_from_checkpoint: str = _f("auto", "auto: continue from the last complete checkpoint in output_dir if "
                                             "any; none: start fresh; or a checkpoint folder")
    report_to: str = _f("", "where the Trainer reports: none, wandb, tensorboard or a comma-separated mix "
                            "(tensorboard writes under OUTPUT_DIR/runs; empty: wandb when --wandb_project is set, "
                            "else none)")
    wandb_project: str = _f("", "log to this wandb project (off when empty)")
    wandb_run_name: str = _f("", "wandb run name (default: output_dir's name)")
    log_file: str = _f("", "JSON-lines log of every training/eval log event (default logs/<run name>.jsonl)")
    deepspeed: str = _f("", "DeepSpeed JSON config, passed to the HF Trainer")
    fsdp: str = _f("", "FSDP options for the HF Trainer, e.g. 'full_shard auto_wrap'")
    fsdp_config: str = _f("", "FSDP config JSON for the HF Trainer")
    dataloader_num_workers: int = _f(0, "data-loading worker processes")
    threads: int = _f(0, "torch CPU threads of this process (0: torch's choice; 1 on a busy shared CPU)")
    trust_remote_code: bool = _f(False, "allow model code from the model folder (off: never executes it)")
    dry_run: bool = _f(False, "build and tokenise the data, print the task table, write the config, then stop")

    # -- derived ----------------------------------------------------------------------------
    def run_name(self) -> str:
        return self.wandb_run_name or Path(self.output_dir).name

    def reporters(self) -> list[str]:
        """The Trainer's ``report_to`` (ValueError naming an unknown one)."""
        names = [x.strip() for x in self.report_to.split(",") if x.strip()]
        bad = [x for x in names if x not in REPORTERS]
        if bad:
            raise ValueError(f"--report_to: unknown {', '.join(bad)} (choose from {', '.join(REPORTERS)})")
        if not names:
            return ["wandb"] if self.wandb_project else []
        return [x for x in names if x != "none"]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=False)


def build_parser(description: str = "") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    return add_dataclass_args(p, SFTConfig)


def parse_config(argv=None) -> SFTConfig:
    return from_namespace(SFTConfig, build_parser().parse_args(argv))


def _fill(value: str, default: Path) -> str:
    return value or str(default)


#: numeric flags and the values they accept (sidreasoner.ranges; NaN and infinities never)
_RANGES = {
    "recent_crops": at_least(0), "dropout": between(0, 1, hi_open=True),
    "label_smoothing": between(0, 1, hi_open=True), "history_loss_weight": at_least(0),
    "num_epochs": optional(above(0, "an untrained model is not a result")),
    "max_steps": either(-1, above(0), "run the epochs"),
    "learning_rate": optional(above(0)), "warmup_steps": at_least(0),
    "weight_decay": at_least(0), "cutoff_len": optional(at_least(8)),
    "eval_steps": at_least(0), "early_stopping_patience": at_least(0),
    "save_total_limit": at_least(1), "logging_steps": at_least(1),
    "general_max_samples": at_least(0), "max_valid_per_task": at_least(0),
    "valid_fraction": between(0, 1, hi_open=True), "valid_item_fraction": between(0, 1, hi_open=True),
    "dataloader_num_workers": at_least(0), "threads": at_least(0, "0: torch's choice"), "seed": SEED,
}


REPORTERS = ("none", "wandb", "tensorboard")


def check_numbers(cfg: SFTConfig) -> None:
    """ValueError naming the first numeric flag outside the values it accepts."""
    check_ranges(cfg, _RANGES)


def resolve(cfg: SFTConfig) -> SFTConfig:
    """Fill paths from data_dir/category and the stage's defaults; check flag combinations."""
    if not cfg.base_model:
        raise ValueError("--base_model is required (a model folder, e.g. the output of scripts/make_tiny_model.py)")
    check_numbers(cfg)
    cfg.reporters()
    for bad, what in ((cfg.loss_norm == "example", "--loss_norm example"),
                      (cfg.history_loss_weight != 1.0, "--history_loss_weight other than 1")):
        if bad and cfg.batching == "pack":
            raise ValueError(f"{what} needs example boundaries in the batch: use --batching group or pad")
    if cfg.rank_eval_think_rows < 0 or cfg.rank_eval_think_tokens < 1:
        raise ValueError(f"--rank_eval_think_rows must be >= 0 and --rank_eval_think_tokens >= 1, got "
                         f"{cfg.rank_eval_think_rows} and {cfg.rank_eval_think_tokens}")
    if cfg.select_on != "nothink" and not (cfg.rank_eval_rows and cfg.rank_eval_think_rows):
        raise ValueError(f"--select_on {cfg.select_on} needs the thinking probe: set --rank_eval_rows and "
                         f"--rank_eval_think_rows")
    if cfg.rank_eval_rows < 0 or (cfg.rank_eval_rows and cfg.rank_eval_beams < 10):
        raise ValueError(f"--rank_eval_rows must be >= 0 and --rank_eval_beams >= 10, got {cfg.rank_eval_rows} "
                         f"and {cfg.rank_eval_beams}")
    if cfg.batch_size < 1 or cfg.micro_batch_size < 1:
        raise ValueError(f"--batch_size ({cfg.batch_size}) and --micro_batch_size ({cfg.micro_batch_size}) must be >= 1")
    c = dataclasses.replace(cfg)
    c.prompt_style = model_prompt_style(c.base_model, c.prompt_style)
    for key, value in STAGE_DEFAULTS[c.stage].items():
        if getattr(c, key) is None:
            setattr(c, key, value)
    if c.reasoning_train_file and not c.llm_generated_sequence_path:
        c.llm_generated_sequence_path = c.reasoning_train_file
    from .categories import check_flags, several
    if several(c):  # every category's files from the release layout (sidreasoner.train.categories)
        check_flags(c)
    elif c.category:
        rp = ReleasePaths(Path(c.data_dir), c.category)
        c.train_file = _fill(c.train_file, rp.split("train"))
        c.eval_file = _fill(c.eval_file, rp.split("valid"))
        c.sid_index_path = _fill(c.sid_index_path, rp.index_json)
        c.item_meta_path = _fill(c.item_meta_path, rp.item_json)
        c.llm_generated_data_path = _fill(c.llm_generated_data_path, rp.item_enhanced)
        c.llm_generated_sequence_path = _fill(c.llm_generated_sequence_path, rp.narrative)
    if not c.sid_index_path and not several(c):
        raise ValueError("give --category (with --data_dir) or --sid_index_path and the other data paths")
    if not c.output_dir:
        c.output_dir = str(sft_dir(c.stage, c.category))
    if not c.log_file:
        c.log_file = str(Path("logs") / f"{c.run_name()}.jsonl")
    return c
