"""Stage 3 on one machine (CPU or one GPU): the verl recipe's data, reward and settings on TRL's GRPOTrainer.

``run_trl_grpo(knobs)`` reads the same parquet files as verl, renders each prompt with the shared chat
renderer (the string the evaluator and SFT use), scores completions with the same reward function
verl loads (``verl_reward.compute_score``), and maps the knobs onto ``GRPOConfig``:

==========================  =======================================================================
knob                         TRL
==========================  =======================================================================
rollout_n                    ``num_generations`` (the group)
train_batch_size             prompts per optimiser step: ``gradient_accumulation_steps`` =
                             train_batch_size x rollout_n / (micro_batch_size x processes)
micro_batch_size             ``per_device_train_batch_size`` (completions per forward)
lr, epochs, max_steps        ``learning_rate`` (constant), ``num_train_epochs``, ``max_steps``
kl_coef                      ``beta`` (TRL's KL term is the k3 estimator, verl's ``low_var_kl``)
max_response_length          ``max_completion_length``; prompts over max_prompt_length are left out
save_freq, test_freq         ``save_steps``; every test_freq steps the sampled mean reward on
                             val_max_rows validation prompts is logged (``val/reward_mean``)
==========================  =======================================================================

The model is passed to TRL as its folder path (with ``kl_coef > 0`` TRL rebuilds the reference model
from it). A killed run resumes from its last complete checkpoint; the result is an ordinary HF folder
``OUTPUT_DIR/final_checkpoint`` (tokenizer included) that ``evaluate.py`` loads.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..data.formats import atomic_write_text
from ..rewards import DEFAULT_CONFIG, RewardConfig
from .data import parse_info_files
from .knobs import RLKnobs
from .preflight import check_data, check_model
from .reward_eval import evaluate_reward, first_rows, render_records
from .verl_reward import compute_score, load_catalogue

FINAL_DIR = "final_checkpoint"
CONFIG_NAME = "grpo_config.json"
SUMMARY_NAME = "grpo_summary.json"
LOGGED_COMPONENTS = ("exact", "prefix_levels", "valid_bonus", "parsed", "think_closed")


class SIDReward:
    """TRL reward function: the SID-match reward of each completion (TRL passes dataset columns as lists),
    through verl's entry with the same options verl gets (``RewardConfig.kwargs()``)."""

    __name__ = "sid_reward"  # TRL names the reward in its logs after this

    def __init__(self, info_file: str, config: RewardConfig = DEFAULT_CONFIG):
        self.info_file, self.config = info_file, config

    def __call__(self, prompts, completions, ground_truth, data_source, log_metric=None, **unused) -> list[float]:
        options = self.config.kwargs()
        results = [compute_score(src, text, truth, info_file=self.info_file, **options)
                   for text, truth, src in zip(completions, ground_truth, data_source)]
        if log_metric is not None and results:
            for key in LOGGED_COMPONENTS:
                log_metric(f"sid/{key}", sum(r[key] for r in results) / len(results))
        return [r["score"] for r in results]


def rl_dataset(records: Sequence[dict], tokenizer, think: bool, max_prompt_length: int):
    """``datasets.Dataset`` of (prompt text, ground_truth, data_source); overlong prompts left out, counted."""
    from datasets import Dataset
    prompts = render_records(tokenizer, records, think)
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    keep = [i for i, n in enumerate(lengths) if n <= max_prompt_length]
    rows = {"prompt": [prompts[i] for i in keep],
            "ground_truth": [records[i]["reward_model"]["ground_truth"] for i in keep],
            "data_source": [records[i]["data_source"] for i in keep]}
    return Dataset.from_dict(rows), len(records) - len(keep)


def use_cpu(device: str) -> bool:
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"DEVICE must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("DEVICE=cuda but no CUDA device is available")
    return device == "cpu" or not torch.cuda.is_available()


def grpo_args(k: RLKnobs, cpu: bool, world_size: int = 1):
    """``GRPOConfig`` for resolved knobs (one optimiser step = train_batch_size prompts x rollout_n)."""
    from trl import GRPOConfig
    completions = k.train_batch_size * k.rollout_n
    per_step = k.micro_batch_size * world_size
    if completions % per_step:
        raise ValueError(f"TRAIN_BATCH_SIZE x ROLLOUT_N ({completions} completions per step) must be a multiple of "
                         f"MICRO_BATCH_SIZE x processes ({per_step})")
    loggers = {x.strip() for x in k.logger.split(",")} & {"wandb", "tensorboard"}
    return GRPOConfig(
        output_dir=k.output_dir, seed=k.seed, data_seed=k.seed, use_cpu=cpu,
        bf16=not cpu and torch.cuda.is_bf16_supported(), model_init_kwargs={"dtype": "float32"},
        per_device_train_batch_size=k.micro_batch_size, gradient_accumulation_steps=completions // per_step,
        num_generations=k.rollout_n, temperature=k.temperature, top_p=1.0, top_k=0,
        max_completion_length=k.max_response_length, learning_rate=k.lr, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.01, max_grad_norm=1.0, beta=k.kl_coef, epsilon=0.2, loss_type="dapo",
        scale_rewards="group", num_train_epochs=k.epochs, max_steps=k.max_steps or -1,
        save_strategy="steps", save_steps=k.save_freq, logging_steps=k.logging_steps,
        gradient_checkpointing=not cpu, disable_dropout=True, remove_unused_columns=False,
        dataloader_num_workers=0, report_to=sorted(loggers) or "none", eval_strategy="no",
        log_completions=k.log_completions, num_completions_to_print=k.rollout_n if k.log_completions else None,
    )


def ranking_probe(k: RLKnobs, tokenizer):
    """Both-mode valid NDCG@10 on the first RANK_EVAL_ROWS valid rows (None when 0)."""
    if not k.rank_eval_rows:
        return None
    from ..data.formats import read_info_index, read_split_csv
    from ..data.records import ReleasePaths
    from ..model.chat import model_prompt_style
    from ..train.rank_eval import RankingProbe
    index = read_info_index(k.info_file)
    rows = [r for r in read_split_csv(ReleasePaths(Path(k.data_dir), k.category).split("valid"))[:k.rank_eval_rows]
            if r.history_sids and index.is_valid_sid(r.item_sid)]
    return RankingProbe(rows, tokenizer, index, model_prompt_style(k.model_path), max(k.rank_k, 10),
                        batch_size=max(k.micro_batch_size, 16), think_rows=len(rows), think_tokens=k.think_budget)


def _reward_eval_callback(k: RLKnobs, records, catalogue, tokenizer, log):
    """Every test_freq steps: sampled mean reward on the validation prompts (val/reward_*) and, with
    RANK_EVAL_ROWS, valid NDCG@10 in both modes (val/ndcg10, val/think_ndcg10; also before step 1)."""
    from transformers import TrainerCallback
    probe = ranking_probe(k, tokenizer)

    def measure(model, step: int, reward: bool) -> None:
        entry = {"step": step}
        if reward:
            res = evaluate_reward(model, tokenizer, records, k.think, catalogue, 1, k.temperature,
                                  k.max_response_length, k.seed, k.micro_batch_size, config=k.reward_config())
            entry.update({"val/reward_mean": res.mean_reward, **{f"val/{c}": v for c, v in res.components.items()}})
        if probe is not None:
            entry.update({f"val/{key}": v for key, v in probe(model).items() if key in ("ndcg10", "think_ndcg10")})
        log(entry)

    class RewardEval(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            if probe is not None and state.global_step == 0 and state.is_world_process_zero:
                measure(model, 0, reward=False)

        def on_step_end(self, args, state, control, model=None, **kw):
            if k.test_freq and state.global_step % k.test_freq == 0 and state.is_world_process_zero:
                measure(model, state.global_step, reward=True)
    return RewardEval()


def save_final(trainer, tokenizer, out_dir: Path, prompt_style: str = "native") -> Path:
    """Policy + tokenizer (+ the prompt style of its RL data) as one HF folder, swapped in atomically
    (a kill never leaves half a model)."""
    from ..model.chat import write_prompt_style
    from ..model.model_factory import save_tokenizer
    final, partial = out_dir / FINAL_DIR, out_dir / (FINAL_DIR + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    trainer.save_model(str(partial))
    save_tokenizer(tokenizer, partial)
    write_prompt_style(partial, prompt_style)
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    return final


def _measure(k: RLKnobs, model, tokenizer, records, catalogue) -> Optional[dict]:
    if not records:
        return None
    res = evaluate_reward(model, tokenizer, records, k.think, catalogue, k.eval_samples, k.temperature,
                          k.max_response_length, k.seed, k.micro_batch_size, config=k.reward_config())
    return dataclasses.asdict(res)


def _inputs(k: RLKnobs, say):
    """Checked data, catalogue, stage-2 model and tokenizer, and the train dataset (overlong prompts counted)."""
    from ..model.model_factory import load_model_and_tokenizer
    data = check_data(k)
    catalogue = load_catalogue(k.info_file)
    model, tokenizer = load_model_and_tokenizer(k.model_path, dtype="float32")
    check_model(k, catalogue, data["train"][0], tokenizer)
    train, dropped = rl_dataset(data["train"], tokenizer, k.think, k.max_prompt_length)
    if len(train) == 0:
        raise ValueError(f"every train prompt is longer than MAX_PROMPT_LENGTH={k.max_prompt_length} tokens")
    say(f"train prompts: {len(train)}" + (f" ({dropped} over {k.max_prompt_length} tokens left out)" if dropped else ""))
    return data, catalogue, model, tokenizer, train, dropped


def _reward_and_rollout(k: RLKnobs, tokenizer, catalogue):
    """(reward function, rollout function or None) for SID_ROLLOUT and REWARD."""
    if k.sid_rollout == "free":
        return SIDReward(k.info_file, k.reward_config()), None
    from ..model.chat import model_prompt_style, stop_token_id
    from ..eval.beam import catalogue_trie
    from .rollout import BeamRollout, RankReward, source_tries
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func: experimental in TRL 1.16, pinned
    stop = stop_token_id(tokenizer)
    trie = catalogue_trie(tokenizer, catalogue, stop, source=f"info file {k.info_file}")
    # several categories (INFO_FILE=A=path,B=path): each row's SID is searched in its own catalogue
    several = parse_info_files(k.info_file) is not None
    rollout = BeamRollout(tokenizer, trie, stop, model_prompt_style(k.model_path), k.rank_k, k.think_budget,
                          k.temperature, k.rollout_repetition_penalty, batch_size=k.micro_batch_size,
                          sid_loss=k.beam_sid_loss, trie_for=source_tries(tokenizer, k.info_file, stop) if several else None,
                          sid_search="sample" if k.sid_rollout == "constrained" else "beam")
    if k.reward == "match":  # the release's reward on the constrained SID (always a catalogue SID)
        return SIDReward(k.info_file, k.reward_config()), rollout
    return RankReward(tokenizer, stop, k.target_prob_weight, k.rollout_n, k.require_think_closed,
                      batch_size=k.micro_batch_size), rollout


def _trainer(k: RLKnobs, cpu: bool, train, tokenizer, valid_records, catalogue, log_file: Path):
    from trl import GRPOTrainer
    from ..runs import JsonlLogCallback, append_jsonl
    from .rollout import RankReward, filtering_trainer
    callbacks = [JsonlLogCallback(log_file)]
    if k.test_freq:
        callbacks.append(_reward_eval_callback(k, first_rows(valid_records, k.val_max_rows), catalogue, tokenizer,
                                               lambda entry: append_jsonl(log_file, entry)))
    reward, rollout = _reward_and_rollout(k, tokenizer, catalogue)
    trainer = filtering_trainer(GRPOTrainer)(
        model=str(Path(k.model_path).expanduser()), reward_funcs=[reward],
        args=grpo_args(k, cpu, int(os.environ.get("WORLD_SIZE", "1"))), train_dataset=train,
        processing_class=tokenizer, callbacks=callbacks, rollout_func=rollout)
    trainer.drop_zero_variance, trainer.answer_nll_weight = k.drop_zero_variance, k.answer_nll_weight
    if isinstance(reward, RankReward):
        reward.bind(trainer)  # its dense term runs the current policy
    return trainer


def run_trl_grpo(knobs: RLKnobs, say=print) -> dict:
    """Train with GRPO on TRL; returns (and writes) the summary, with before/after rewards when eval_rows > 0."""
    from ..runs import last_complete_checkpoint
    k = knobs.resolved("trl")
    cpu = use_cpu(k.device)
    data, catalogue, model, tokenizer, train, dropped = _inputs(k, say)
    out = Path(k.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG_NAME, json.dumps(dataclasses.asdict(k), indent=1) + "\n")
    eval_records = first_rows(data["valid"], k.eval_rows) if k.eval_rows else []
    t0 = time.perf_counter()
    before = _measure(k, model.to("cpu" if cpu else "cuda"), tokenizer, eval_records, catalogue)
    del model  # TRL loads the policy (and, with a KL term, the reference) from the folder path
    trainer = _trainer(k, cpu, train, tokenizer, data["valid"], catalogue, out / "grpo_log.jsonl")
    resume = last_complete_checkpoint(out)
    say(f"resuming from {resume}" if resume else "starting GRPO from the stage-2 model")
    t_train = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - t_train
    from ..model.chat import model_prompt_style
    final = save_final(trainer, tokenizer, out, model_prompt_style(k.model_path))
    after = _measure(k, trainer.model, tokenizer, eval_records, catalogue)
    summary = {"final_checkpoint": str(final), "train_prompts": len(train), "prompts_left_out": dropped,
               "steps": trainer.state.global_step, "train_seconds": train_seconds,
               "total_seconds": time.perf_counter() - t0, "train_metrics": result.metrics,
               "reward_before": before, "reward_after": after,
               "rewards_logged": [h.get("reward") for h in trainer.state.log_history if "reward" in h]}
    atomic_write_text(out / SUMMARY_NAME, json.dumps(summary, indent=1, default=str) + "\n")
    if trainer.is_world_process_zero():
        from .diagnostics import describe, write_diagnostics
        say(f"stage-3 diagnostics ({out / 'diagnostics.json'}, .png):\n{describe(write_diagnostics(out))}")
    say(f"saved {final} after {trainer.state.global_step} steps ({train_seconds:.0f} s of training)")
    if before and after:
        say(f"mean sampled reward on {before['prompts']} validation prompts x {k.eval_samples}: "
            f"{before['mean_reward']:.4f} -> {after['mean_reward']:.4f}")
    return summary
