"""python -m sidreasoner.rl.reward_eval --model_path checkpoints/grpo_trl_Demo/final_checkpoint --data_file data/rl/Demo/valid.parquet --info_file data/demo/info/Demo_5_2016-10-2018-11.txt

Mean stage-3 reward of SAMPLED completions on a set of RL prompts: what GRPO optimises, measured the
same way before and after training (same rows, samples per prompt, temperature, token budget and
seed). Completions are decoded with ``skip_special_tokens=True``, as verl and TRL do before the reward.
Writes a JSON report with ``--output``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..flags import add_dataclass_args, from_namespace
from ..ranges import SEED, at_least, either, optional, parse_checked
from ..rewards import RewardConfig, add_reward_flags, compute_reward, config_from_args
from .data import user_and_system

#: reward components averaged in the report (booleans as rates)
COMPONENTS = ("match_reward", "valid_bonus", "prefix_levels", "parsed", "think_closed", "exact")


@dataclass
class RewardEvalResult:
    prompts: int
    samples_per_prompt: int
    mean_reward: float
    components: dict
    seconds: float


def render_records(tokenizer, records: Sequence[dict], think: bool) -> list[str]:
    """The generation prompts of RL rows, through the one renderer training and evaluation share."""
    from ..model.chat import render_prompt
    out = []
    for rec in records:
        user, system = user_and_system(rec["prompt"])
        out.append(render_prompt(tokenizer, user, think, system=system))
    return out


@torch.no_grad()
def sample_completions(model, tokenizer, prompts: Sequence[str], samples: int, temperature: float,
                       max_new_tokens: int, seed: int, batch_size: int = 8, progress: bool = False) -> list[list[str]]:
    """``samples`` sampled completions per prompt (text after the prompt, special tokens skipped);
    temperature 0 decodes greedily (free generation without sampling; then samples must be 1)."""
    if temperature <= 0 and samples != 1:
        raise ValueError(f"greedy decoding (temperature 0) gives one completion per prompt; got samples={samples}")
    from ..model.chat import stop_token_id
    stop, pad = stop_token_id(tokenizer), tokenizer.pad_token_id
    device = next(model.parameters()).device
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc="generating", unit="batch", disable=not progress):
            batch = tokenizer(list(prompts[start:start + batch_size]), return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))  # one draw per batch: repeatable
            decode = dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0) if temperature > 0 else \
                dict(do_sample=False)
            seqs = model.generate(**batch, **decode,
                                  max_new_tokens=max_new_tokens, num_return_sequences=samples,
                                  eos_token_id=stop, pad_token_id=pad)
            texts = tokenizer.batch_decode(seqs[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            out += [texts[i:i + samples] for i in range(0, len(texts), samples)]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def score_completions(records: Sequence[dict], completions: Sequence[Sequence[str]], catalogue,
                      config: Optional[RewardConfig] = None) -> tuple[float, dict]:
    """Mean reward over every (row, sample) and the mean of each reward component; with a catalogue also
    ``closed_and_valid``: the share whose think block is closed AND whose answer is a catalogue SID."""
    results = [compute_reward(c, rec["reward_model"]["ground_truth"], catalogue, config).as_dict()
               for rec, texts in zip(records, completions) for c in texts]
    if not results:
        raise ValueError("no completions to score")
    mean = sum(r["score"] for r in results) / len(results)
    comps = {k: sum(r[k] for r in results) / len(results) for k in COMPONENTS}
    if catalogue is not None and (config or RewardConfig()).valid_bonus > 0:  # the bonus marks catalogue SIDs
        good = sum(bool(r["think_closed"]) and r["valid_bonus"] > 0 for r in results)
        comps["closed_and_valid"] = good / len(results)
    return mean, comps


def evaluate_reward(model, tokenizer, records: Sequence[dict], think: bool, catalogue, samples: int = 4,
                    temperature: float = 1.0, max_new_tokens: int = 512, seed: int = 0, batch_size: int = 8,
                    config: Optional[RewardConfig] = None, progress: bool = False) -> RewardEvalResult:
    t0 = time.perf_counter()
    prompts = render_records(tokenizer, records, think)
    completions = sample_completions(model, tokenizer, prompts, samples, temperature, max_new_tokens, seed, batch_size,
                                     progress)
    mean, comps = score_completions(records, completions, catalogue, config)
    return RewardEvalResult(len(records), samples, mean, comps, time.perf_counter() - t0)


def first_rows(records: Sequence[dict], n: int) -> list[dict]:
    """The first ``n`` rows (all when ``n`` is 0): the same prompts for every model compared."""
    return list(records[:n] if n > 0 else records)


#: numeric flags and the values they accept (sidreasoner.ranges)
_RANGES = {"rows": at_least(0, "0: all"), "samples": at_least(1), "temperature": at_least(0, "0: greedy"),
           "max_new_tokens": at_least(1), "batch_size": at_least(1), "seed": SEED, "valid_bonus": at_least(0),
           "threads": optional(either(0, at_least(1), "torch's choice"))}


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class RewardEvalFlags:
    """The flags of ``python -m sidreasoner.rl.reward_eval`` besides the reward's (RewardConfig's)."""
    model_path: str = _f(None, "model folder to sample from", required=True)
    data_file: str = _f(None, "RL parquet (rl/prepare_data.py), e.g. valid.parquet", required=True)
    info_file: str = _f("", "catalogue for the validity bonus (empty: no bonus)")
    rows: int = _f(200, "first N rows of --data_file (0: all)")
    samples: int = _f(4, "sampled completions per prompt")
    temperature: float = _f(1.0, "sampling temperature (0: greedy, one completion per prompt)")
    max_new_tokens: int = _f(512, "completion budget in tokens")
    batch_size: int = _f(8, "prompts per generate call")
    seed: int = _f(0, "sampling seed")
    threads: Optional[int] = _f(None, "torch CPU threads")
    output: str = _f("", "write the result as JSON here")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_dataclass_args(p, RewardEvalFlags)
    add_reward_flags(p)  # the reward's options (RewardConfig; RL_training_script.sh's knobs of the same names)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    ns = parse_checked(parser, argv, _RANGES)
    args = from_namespace(RewardEvalFlags, ns)
    try:
        config = config_from_args(ns)
    except ValueError as e:  # "level_weights must ...": named as the flag
        parser.error(f"--{e}")
    if args.threads:
        torch.set_num_threads(args.threads)
    from ..data.records import DataError
    from ..model.model_factory import ModelLoadError, load_model_and_tokenizer
    from .data import read_rl_parquet, think_mode
    from .verl_reward import load_catalogue
    try:
        records = first_rows(read_rl_parquet(args.data_file), args.rows)
        catalogue = load_catalogue(args.info_file) if args.info_file else None
        model, tokenizer = load_model_and_tokenizer(args.model_path, dtype="float32",
                                                    device="cuda" if torch.cuda.is_available() else "cpu")
        res = evaluate_reward(model, tokenizer, records, think_mode(records, args.data_file), catalogue, args.samples,
                              args.temperature, args.max_new_tokens, args.seed, args.batch_size, config, progress=True)
    except (DataError, ModelLoadError, ValueError) as e:
        print(f"reward_eval: error: {e}", file=sys.stderr)
        return 2
    report = {"model_path": args.model_path, **asdict(res), "settings": vars(ns)}
    print(json.dumps(report, indent=1))
    if args.output:
        from ..data.formats import atomic_write_text
        atomic_write_text(args.output, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
