"""python benchmarks/bench_sft_throughput.py [--model DIR] [--examples 2048] [--micro_batch_size 8] [--threads 1]

SFT training throughput: real (non-padding) tokens per second of our batching vs plain
pad-to-longest over random micro-batches, on the same model and the same stage-1 examples, in one
run. Modes: ``pad`` (the baseline: random micro-batches padded to their longest example), ``group``
(our default: each optimiser step's random examples sorted by length into micro-batches, then padded)
and ``pack`` (one packed row per micro-batch, position ids restarting per example). Each micro-batch
is a full training step (forward, backward, AdamW). The modes run interleaved in rounds on separate
copies of one initial model so machine noise hits them alike. Prints a table and, last, one JSON line
with ``throughput_ratio`` (group / pad) and ``pack_ratio`` (pack / pad).

Data: the stage-1 task mixture of Office_Products (``--data_dir``/``--category``) when present, else
the synthetic demo catalogue. Model: ``--model`` or a tiny random Qwen3 (hidden 128, 4 layers) with a
BPE tokenizer trained on the catalogue text, built here.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from sidreasoner.flags import add_dataclass_args
from sidreasoner.paths import DEFAULT_DATA_DIR
from sidreasoner.ranges import SEED, at_least, parse_checked

REPO = Path(__file__).resolve().parents[1]
OFFICE = REPO / DEFAULT_DATA_DIR  # python scripts/download_data.py fills it
MODES = ("pad", "group", "pack")


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class SFTBenchFlags:
    """The flags of bench_sft_throughput.py."""
    model: Optional[str] = _f(None, "model folder with SID tokens (default: build a tiny Qwen3 for the catalogue)")
    data_dir: str = _f(str(OFFICE), "release data folder")
    category: str = _f("Office_Products", "category in --data_dir")
    examples: int = _f(2048, "stage-1 examples drawn (seeded) from the mixture")
    micro_batch_size: int = _f(8, "examples per forward pass")
    batch_size: int = _f(1024, "examples per optimiser step (the grouping window)")
    rounds: int = _f(4, "interleaved rounds (each runs 1/rounds of every mode)")
    threads: int = _f(1, "torch CPU threads (1 is steadiest on a shared CPU)")
    attn: str = _f("sdpa", "attention implementation")
    seed: int = _f(0, "seed for sampling and model init")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    return add_dataclass_args(p, SFTBenchFlags)


def office_data(data_dir: Path, category: str):
    from sidreasoner.data.records import ReleasePaths
    from sidreasoner.tasks.sources import DataPaths, load_task_data
    rp = ReleasePaths(data_dir, category)
    if not rp.index_json.is_file():
        return None
    names = ["next_sid", "sid_to_title", "title_to_sid", "sid_history_to_title", "title_history_to_title",
             "title_history_to_sid", "item_text", "narrative"]
    paths = DataPaths(str(rp.index_json), str(rp.item_json), str(rp.split("train")), str(rp.split("valid")),
                      str(rp.item_enhanced), str(rp.narrative))
    data, _ = load_task_data(paths, names)
    from sidreasoner.data.formats import read_item_json
    return data, names, read_item_json(rp.item_json), f"{category} ({data_dir})"


def demo_data():
    from sidreasoner.data.demo import DemoConfig, generate_demo, split_rows
    from sidreasoner.sid.index import SIDIndex
    from sidreasoner.sid.spelling import format_sid
    from sidreasoner.tasks.base import TaskData
    demo = generate_demo(DemoConfig(n_items=600, n_users=800))
    items = demo.items()
    sids = {i: format_sid((k // 64, (k // 8) % 8, k % 8)) for k, i in enumerate(items)}
    data = TaskData(SIDIndex(sids, {i: it.title for i, it in items.items()}),
                    split_rows(demo.splits["train"], items, sids), split_rows(demo.splits["valid"], items, sids))
    names = ["next_sid", "sid_to_title", "title_to_sid", "sid_history_to_title", "title_history_to_title",
             "title_history_to_sid"]
    return data, names, items, "synthetic demo catalogue"


def build_model(args, items, index):
    if args.model:
        from sidreasoner.model.model_factory import load_model_and_tokenizer
        return load_model_and_tokenizer(args.model, dtype=torch.float32)
    from sidreasoner.model.model_factory import make_tiny_qwen3
    from sidreasoner.train.tokenizer import catalogue_texts, train_catalogue_tokenizer
    tok = train_catalogue_tokenizer(catalogue_texts(items), sid_tokens=index.tokens())
    return make_tiny_qwen3(tok, hidden_size=128, num_layers=4, seed=args.seed), tok


def micro_batches(mode: str, lengths, args) -> list[list[int]]:
    from sidreasoner.train.collate import StepGroupedSampler
    if mode == "group":
        order = list(StepGroupedSampler(lengths, args.micro_batch_size, args.batch_size, args.seed))
    else:
        order = list(range(len(lengths)))
        random.Random(args.seed).shuffle(order)
    m = args.micro_batch_size
    return [order[i:i + m] for i in range(0, len(order), m)]


def train_steps(model, opt, collate, dataset, batches) -> tuple[float, int, int]:
    """(seconds, real tokens, token slots incl. padding) of full training steps on ``batches``."""
    real = slots = 0
    start = time.perf_counter()
    for idx in batches:
        batch = collate([dataset[i] for i in idx])
        real += sum(len(dataset[i]["input_ids"]) for i in idx)
        slots += batch["input_ids"].numel()
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start, real, slots


def run(args) -> dict:
    from sidreasoner.tasks.mixture import build_mixture, make_tasks
    from sidreasoner.train.collate import make_collator
    from sidreasoner.train.sft_data import ExampleEncoder, TokenizedDataset
    torch.set_num_threads(args.threads)
    setup = office_data(Path(args.data_dir), args.category) or demo_data()
    data, names, items, source = setup
    mix = build_mixture(make_tasks(names), data, seed=args.seed, max_valid_per_task=1)
    examples = random.Random(args.seed).sample(mix.train, min(args.examples, len(mix.train)))
    model, tok = build_model(args, items, data.index)
    model.set_attn_implementation(args.attn)
    model.config.use_cache = False
    dataset = TokenizedDataset(ExampleEncoder(tok, cutoff_len=4096).encode_all(examples, show=False))
    print(f"data: {source}; {len(dataset)} examples, {sum(dataset.lengths)} tokens "
          f"(mean {sum(dataset.lengths) / len(dataset):.0f}, max {max(dataset.lengths)}); "
          f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, {args.threads} thread(s)")
    state = {}
    for mode in MODES:
        m = copy.deepcopy(model).train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        collate = make_collator(mode, tok.pad_token_id, args.attn)
        batches = micro_batches(mode, dataset.lengths, args)
        train_steps(m, opt, collate, dataset, batches[:3])  # warm-up, untimed
        state[mode] = dict(model=m, opt=opt, collate=collate, batches=batches, seconds=0.0, real=0, slots=0)
    for r in range(args.rounds):
        for mode in MODES:
            s = state[mode]
            n = len(s["batches"])
            chunk = s["batches"][r * n // args.rounds:(r + 1) * n // args.rounds]
            sec, real, slots = train_steps(s["model"], s["opt"], s["collate"], dataset, chunk)
            s["seconds"] += sec
            s["real"] += real
            s["slots"] += slots
    return {mode: {k: state[mode][k] for k in ("seconds", "real", "slots")} | {"steps": len(state[mode]["batches"])}
            for mode in MODES}


def report(res: dict) -> dict:
    base = res["pad"]["real"] / res["pad"]["seconds"]
    print(f"{'mode':<7}{'steps':>7}{'real tokens':>13}{'token slots':>13}{'padding':>9}{'seconds':>9}"
          f"{'real tok/s':>12}{'vs pad':>8}")
    for mode, r in res.items():
        tps = r["real"] / r["seconds"]
        print(f"{mode:<7}{r['steps']:>7}{r['real']:>13}{r['slots']:>13}{1 - r['real'] / r['slots']:>9.1%}"
              f"{r['seconds']:>9.1f}{tps:>12.0f}{tps / base:>8.2f}")
    tps = {m: r["real"] / r["seconds"] for m, r in res.items()}
    return {"throughput_ratio": round(tps["group"] / tps["pad"], 3), "pack_ratio": round(tps["pack"] / tps["pad"], 3),
            "tokens_per_s": {m: round(v) for m, v in tps.items()},
            "padding_fraction": {m: round(1 - r["real"] / r["slots"], 4) for m, r in res.items()}}


def main(argv=None) -> int:
    args = parse_checked(build_parser(), argv, {"seed": SEED, **{n: at_least(1) for n in (
        "examples", "micro_batch_size", "batch_size", "rounds", "threads")}})
    summary = report(run(args))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
