"""Stage 1 / stage 2 SFT on the Hugging Face Trainer.

``run_sft(cfg)``: read the data the stage's tasks need, load the model (stage 1 adds the SID tokens;
stage 2 checks they are there), build the task mixture, tokenise with answer-only labels, and train
with length-grouped (or packed) batches, per-task validation losses (``eval_<task>_loss``; their
mean is ``eval_loss``, which selects the best checkpoint and drives early stopping), checkpoints
that a killed run resumes from, and the best model saved to ``OUTPUT_DIR/final_checkpoint`` with
its tokenizer and the resolved config. Multi-GPU: launch with ``torchrun``/``accelerate``; the
Trainer reads the distributed environment, ``--deepspeed``/``--fsdp`` are passed through.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional

import torch
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

from ..data.formats import atomic_write_text
from ..runs import JsonlLogCallback, is_main_process, resolve_resume, say
from ..tasks.mixture import STAGE_TASKS, build_mixture, format_table, make_tasks, parse_task_values
from . import categories
from ..model.chat import write_prompt_style
from .collate import StepGroupedSampler, make_collator
from .dropout import add_dropout
from .loss import supervised_loss
from .rank_eval import SELECT_METRICS, RankingProbe, pick_rows
from .sft_config import SFTConfig, resolve
from .sft_data import EncodeStats, ExampleEncoder, TokenizedDataset

FINAL_DIR = "final_checkpoint"
CONFIG_NAME = "sft_config.json"
SUMMARY_NAME = "sft_summary.json"


#: fields that may differ between a killed run and its resumption without changing what is trained
_RUNTIME_FIELDS = {"resume_from_checkpoint", "dry_run", "dataloader_num_workers", "threads", "wandb_project",
                   "wandb_run_name", "report_to", "log_file", "logging_steps"}


def warn_config_changes(path: Path, cfg: SFTConfig) -> None:
    """Before overwriting a previous run's config in the same output_dir, say what changed: a resumed
    run continues from checkpoints made under the old settings."""
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return
    new = json.loads(cfg.to_json())
    changed = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new.items() if k not in _RUNTIME_FIELDS and old.get(k) != v]
    if changed:
        say(f"warning: {path} was written by a run with other settings; checkpoints in {path.parent} "
            f"come from that run:\n  " + "\n  ".join(changed))


# -- model ------------------------------------------------------------------------------------
def require_sid_tokens(tokenizer, sids, base_model: str) -> None:
    """Stage 2 needs a stage-1 model: every SID token must already be one token of the vocabulary."""
    from ..model.chat import check_sid_tokens
    try:
        check_sid_tokens(tokenizer, sids)
    except ValueError as e:
        raise ValueError(f"base model {base_model} cannot start stage 2: {e} (sft_Qwen3_enrich.sh, then "
                         f"--base_model <its output_dir>/final_checkpoint)") from None


def load_model(cfg: SFTConfig, index):
    from transformers import AutoConfig, AutoModelForCausalLM
    from ..model.model_factory import add_sid_tokens, load_model_and_tokenizer
    # fp32 master weights; on GPU the Trainer runs the forward/backward in bf16 autocast
    model, tokenizer = load_model_and_tokenizer(cfg.base_model, dtype=torch.float32,
                                                trust_remote_code=cfg.trust_remote_code)
    if cfg.train_from_scratch:
        config = AutoConfig.from_pretrained(cfg.base_model, trust_remote_code=cfg.trust_remote_code)
        torch.manual_seed(cfg.seed)
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=cfg.trust_remote_code)
        say(f"training from scratch: random initialisation from {cfg.base_model}'s config")
    if cfg.attn_implementation:
        model.set_attn_implementation(cfg.attn_implementation)
    if cfg.stage == "alignment":
        tokens = index.tokens()
        added = add_sid_tokens(model, tokenizer, tokens, seed=cfg.seed)
        say(f"SID tokens: {added} added to the vocabulary ({len(tokens)} used by the index); "
            f"vocabulary {len(tokenizer)}")
    else:
        require_sid_tokens(tokenizer, index.unique_sids(), cfg.base_model)
    if add_dropout(model, cfg.dropout):
        say(f"dropout {cfg.dropout} on embeddings, attention and MLP outputs (training only)")
    model.config.use_cache = False
    return model, tokenizer


# -- data -------------------------------------------------------------------------------------
def task_names(cfg: SFTConfig) -> list[str]:
    return [t.strip() for t in cfg.tasks.split(",") if t.strip()] or list(STAGE_TASKS[cfg.stage])


def build_datasets(cfg: SFTConfig, data, tokenizer):
    """Mixture -> tokenised train dataset and per-task validation datasets; prints the task table."""
    names = task_names(cfg)
    if isinstance(data, categories.CategoryData):
        mix = categories.mixture(cfg, data, names, say)
    else:
        tasks = make_tasks(names, cfg.valid_fraction, cfg.general_max_samples, cfg.prompt_style,
                           cfg.history_loss, cfg.keep_covered_rows, cfg.recent_crops, cfg.category)
        mix = build_mixture(tasks, data, parse_task_values(cfg.task_weights, "--task_weights"),
                            parse_task_values(cfg.task_caps, "--task_caps", int), cfg.max_valid_per_task, cfg.seed)
        say(format_table(mix.table, mix.skips))
    encoder = ExampleEncoder(tokenizer, cfg.cutoff_len, mask_prompt=cfg.mask_assistant)
    stats = EncodeStats()
    train = TokenizedDataset(encoder.encode_all(mix.train, "tokenising train", stats=stats, show=is_main_process()))
    valid, valid_stats = {}, EncodeStats()
    for task, examples in mix.valid.items():
        enc = encoder.encode_all(examples, f"tokenising valid {task}", stats=valid_stats, show=False)
        if enc:  # evaluation order does not matter: sorted by length, batches barely pad
            valid[task] = TokenizedDataset(sorted(enc, key=lambda e: len(e.input_ids)))
    for line in stats.lines(cfg.cutoff_len):
        say(f"overlong (train): {line}")
    for line in valid_stats.lines(cfg.cutoff_len):
        say(f"overlong (validation): {line}")
    if len(train) == 0:
        raise ValueError("no training examples: every task is off or empty (see the table above)")
    say(f"train: {len(train)} examples, {sum(train.lengths)} tokens; validation: "
        + ", ".join(f"{k} {len(v)}" for k, v in valid.items()))
    return train, valid, mix


# -- trainer ----------------------------------------------------------------------------------
class SIDSFTTrainer(Trainer):
    """Trainer with the step-grouped sampler, one validation loss per task, the loss over supervised
    positions only (``sidreasoner.train.loss``) and valid ranking metrics (``rank_eval``)."""

    def __init__(self, *args, group_sampler: Optional[StepGroupedSampler] = None, sparse_logits: bool = False,
                 mean_answer_tokens: Optional[float] = None, probe: Optional[RankingProbe] = None,
                 history_weight: float = 1.0, label_smoothing: float = 0.0, **kwargs):
        self.group_sampler, self.sparse_logits, self.probe = group_sampler, sparse_logits, probe
        self.mean_answer_tokens, self.history_weight = mean_answer_tokens, history_weight
        self.label_smoothing = label_smoothing
        super().__init__(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.sparse_logits:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = supervised_loss(model, inputs, num_items_in_batch, self.mean_answer_tokens, self.history_weight,
                               self.label_smoothing)
        return (loss, {"loss": loss}) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        return self.group_sampler if self.group_sampler is not None else super()._get_train_sampler(train_dataset)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        sets = eval_dataset if eval_dataset is not None else self.eval_dataset
        if not isinstance(sets, dict):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        # per-task evaluations must not each trigger early stopping / best-model logic or log a line
        # of their own: callbacks and the log see the merged metrics once, below
        handler, metrics = self.callback_handler, {}
        handler.on_evaluate = lambda args, state, control, *rest, **kw: control
        self.log = lambda logs, *rest, **kw: None
        try:
            for name, ds in sets.items():
                metrics.update(super().evaluate(ds, ignore_keys, f"{metric_key_prefix}_{name}"))
        finally:
            del handler.on_evaluate, self.log  # back to the class methods
        losses = [metrics[f"{metric_key_prefix}_{n}_loss"] for n in sets]
        metrics[f"{metric_key_prefix}_loss"] = sum(losses) / len(losses)
        if self.probe is not None:
            metrics.update({f"{metric_key_prefix}_{k}": v for k, v in self.probe(self.model).items()})
        metrics[f"{metric_key_prefix}_runtime"] = sum(metrics.pop(f"{metric_key_prefix}_{n}_runtime", 0) for n in sets)
        metrics = {k: v for k, v in metrics.items() if not k.endswith(("_per_second", "epoch"))}
        self.log(metrics)
        self.control = handler.on_evaluate(self.args, self.state, self.control, metrics=metrics)
        return metrics


def run_train_loss(log_history: list) -> Optional[float]:
    """Mean training loss over the whole run, from the logged losses weighted by the steps each covers.
    (The Trainer's own ``train_loss`` divides this process's loss sum by all steps, so a resumed run
    reports a wrong value.)"""
    total, last, steps = 0.0, 0, 0
    for h in log_history:
        if "loss" in h and "step" in h:
            n = h["step"] - last
            total, last, steps = total + h["loss"] * n, h["step"], steps + n
    return total / steps if steps else None


def training_arguments(cfg: SFTConfig, has_valid: bool, sparse: Optional[bool] = None
                       ) -> tuple[TrainingArguments, int]:
    """``sparse``: whether the supervised-positions loss runs (``use_sparse_logits``; decided here when None)."""
    sparse = use_sparse_logits(cfg) if sparse is None else sparse
    world = int(os.environ.get("WORLD_SIZE", "1"))
    accum = max(1, round(cfg.batch_size / (cfg.micro_batch_size * world)))
    if accum * cfg.micro_batch_size * world != cfg.batch_size:
        say(f"note: batch {cfg.batch_size} is not micro {cfg.micro_batch_size} x {world} processes x an integer; "
            f"using {accum * cfg.micro_batch_size * world} per step")
    cuda = torch.cuda.is_available()
    strategy = "steps" if cfg.eval_steps > 0 else "epoch"
    args = TrainingArguments(
        output_dir=cfg.output_dir, run_name=cfg.run_name(), seed=cfg.seed,
        per_device_train_batch_size=cfg.micro_batch_size, per_device_eval_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=accum, num_train_epochs=cfg.num_epochs, max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay, optim="adamw_torch",
        # the model's own loss path (no --sparse_logits) smooths through the Trainer's label smoother
        label_smoothing_factor=0.0 if sparse else cfg.label_smoothing, logging_steps=cfg.logging_steps,
        eval_strategy=strategy if has_valid else "no", save_strategy=strategy,
        eval_steps=cfg.eval_steps or None, save_steps=cfg.eval_steps or None,
        save_total_limit=cfg.save_total_limit, load_best_model_at_end=has_valid,
        metric_for_best_model=(f"eval_{SELECT_METRICS[cfg.select_on]}" if cfg.rank_eval_rows else "eval_loss")
        if has_valid else None,
        greater_is_better=bool(cfg.rank_eval_rows),
        bf16=cuda and torch.cuda.is_bf16_supported(), use_cpu=not cuda, dataloader_pin_memory=cuda,
        dataloader_num_workers=cfg.dataloader_num_workers, remove_unused_columns=False,
        gradient_checkpointing=cfg.gradient_checkpointing, ddp_find_unused_parameters=False,
        report_to=cfg.reporters() or "none",
        deepspeed=cfg.deepspeed or None, fsdp=cfg.fsdp or None, fsdp_config=cfg.fsdp_config or None,
    )
    return args, accum * cfg.micro_batch_size * world


def save_final(trainer: Trainer, tokenizer, cfg: SFTConfig, summary: dict) -> str:
    """Best model (loaded at the end of training) + tokenizer + config, swapped in atomically."""
    from ..model.model_factory import save_tokenizer
    final = Path(cfg.output_dir) / FINAL_DIR
    partial = final.with_name(FINAL_DIR + ".partial")
    if trainer.is_world_process_zero() and partial.exists():
        shutil.rmtree(partial)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(partial))  # collective under FSDP/DeepSpeed
    if trainer.is_world_process_zero():
        save_tokenizer(tokenizer, partial)
        atomic_write_text(partial / CONFIG_NAME, cfg.to_json() + "\n")
        write_prompt_style(partial, cfg.prompt_style)
        atomic_write_text(partial / SUMMARY_NAME, json.dumps(summary, indent=1, default=str) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
    trainer.accelerator.wait_for_everyone()
    return str(final)


def use_sparse_logits(cfg: SFTConfig) -> bool:
    """The supervised-positions loss calls the decoder directly, which DDP/DeepSpeed/FSDP wrappers
    would bypass: only for a single process without them."""
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1 and not (cfg.deepspeed or cfg.fsdp)
    if cfg.sparse_logits and not single:
        say("note: --sparse_logits is for a single process; using the model's own loss")
    for bad, what in ((cfg.loss_norm == "example", "--loss_norm example"),
                      (cfg.history_loss_weight != 1.0, "--history_loss_weight other than 1")):
        if bad and not (cfg.sparse_logits and single):
            raise ValueError(f"{what} needs --sparse_logits on a single process")
    return cfg.sparse_logits and single


def make_probe(cfg: SFTConfig, data, tokenizer) -> Optional[RankingProbe]:
    """The valid-ranking probe of ``--rank_eval_rows`` (None when 0)."""
    if not cfg.rank_eval_rows:
        return None
    if isinstance(data, categories.CategoryData):  # a probe per category, in its own catalogue
        return categories.make_probes(cfg, data, tokenizer, say)
    from ..data.formats import read_split_csv
    valid_rows = data.valid_rows or (read_split_csv(cfg.eval_file) if cfg.eval_file else [])
    if not valid_rows:
        raise ValueError(f"--rank_eval_rows needs the valid split: {cfg.eval_file or '--eval_file'} has no rows")
    rows = [r for r in pick_rows(valid_rows, cfg.rank_eval_rows, cfg.seed) if data.index.is_valid_sid(r.item_sid)]
    think = min(cfg.rank_eval_think_rows, len(rows))
    say(f"ranking probe: {len(rows)} valid rows ({think} also in thinking mode), {cfg.rank_eval_beams} beams, "
        f"selects on valid NDCG@10 ({cfg.select_on})")
    return RankingProbe(rows, tokenizer, data.index, cfg.prompt_style, cfg.rank_eval_beams,
                        think_rows=think, think_tokens=cfg.rank_eval_think_tokens)


def run_sft(cfg: SFTConfig) -> dict:
    """Train one stage; returns the summary written to final_checkpoint (dry run: the data summary)."""
    cfg = resolve(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    names = task_names(cfg)
    make_tasks(names)  # unknown task names fail before any file is read
    data = categories.load(cfg, names, say)
    model, tokenizer = load_model(cfg, data.index)
    train, valid, mix = build_datasets(cfg, data, tokenizer)
    out = Path(cfg.output_dir)
    if is_main_process():
        warn_config_changes(out / CONFIG_NAME, cfg)
        atomic_write_text(out / CONFIG_NAME, cfg.to_json() + "\n")
    summary = {"stage": cfg.stage, "tasks": mix.table, "train_examples": len(train),
               "train_tokens": sum(train.lengths), "valid_examples": {k: len(v) for k, v in valid.items()}}
    if cfg.dry_run:
        say(f"dry run: config written to {out / CONFIG_NAME}")
        return summary
    if cfg.wandb_project:
        os.environ.setdefault("WANDB_PROJECT", cfg.wandb_project)
    sparse = use_sparse_logits(cfg)
    args, step_size = training_arguments(cfg, bool(valid), sparse)
    sampler = (StepGroupedSampler(train.lengths, cfg.micro_batch_size, step_size, cfg.seed)
               if cfg.batching == "group" else None)
    probe = make_probe(cfg, data, tokenizer)
    callbacks = [JsonlLogCallback(cfg.log_file)]
    if valid and cfg.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = SIDSFTTrainer(
        model=model, args=args, train_dataset=train, eval_dataset=valid or None, processing_class=tokenizer,
        data_collator=make_collator(cfg.batching, pad_id, cfg.attn_implementation,
                                    8 if torch.cuda.is_available() else 1),
        callbacks=callbacks, group_sampler=sampler, probe=probe, sparse_logits=sparse,
        mean_answer_tokens=train.mean_answer_tokens() if cfg.loss_norm == "example" else None,
        history_weight=cfg.history_loss_weight, label_smoothing=cfg.label_smoothing)
    resume = resolve_resume(cfg.resume_from_checkpoint, cfg.output_dir)
    say(f"resuming from {resume}" if resume else "starting fresh (no checkpoint to resume from)")
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = {**result.metrics, "train_loss": run_train_loss(trainer.state.log_history)}
    summary.update(train_metrics=metrics, best_metric=trainer.state.best_metric,
                   best_checkpoint=trainer.state.best_model_checkpoint,
                   eval_history=[h for h in trainer.state.log_history if "eval_loss" in h],
                   select_metric=args.metric_for_best_model)
    summary["final_checkpoint"] = save_final(trainer, tokenizer, cfg, summary)
    say(f"best model saved to {summary['final_checkpoint']} (best {args.metric_for_best_model} "
        f"{trainer.state.best_metric})")
    return summary
