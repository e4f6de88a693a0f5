"""python benchmarks/bench_sparse_logits.py [--model DIR] [--style native|compact] [--examples 1024] [--threads 1]

Training-step time of the SFT loss over supervised positions only (``sidreasoner.train.loss``, the
default of ``sft.py --sparse_logits``) vs the model's own loss, which computes the output layer at
every position. Same model, same next-SID examples (answer-only labels), same micro-batches; each
micro-batch is a full step (forward, backward, AdamW) on separate copies of one initial model, the
two run interleaved in rounds so machine noise hits both alike. Prints a table and, last, one JSON
line with ``sparse_logits_ratio`` (examples/s of ours / of the model's own loss) and both losses of
the first micro-batch (they must agree: same objective).

Data: Office_Products next-SID rows from ``--data_dir`` when present, else the synthetic demo data.
Model: ``--model`` or a tiny random Qwen3 (hidden 128, 4 layers) built here for the catalogue.
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from sidreasoner.data.records import ReleasePaths
from sidreasoner.flags import add_dataclass_args
from sidreasoner.paths import DEFAULT_DATA_DIR
from sidreasoner.ranges import at_least, parse_checked

REPO = Path(__file__).resolve().parents[1]
OFFICE = REPO / DEFAULT_DATA_DIR  # python scripts/download_data.py fills it


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class SparseBenchFlags:
    """The flags of bench_sparse_logits.py."""
    model: Optional[str] = _f(None, "model folder (default: build a tiny Qwen3 for the catalogue)")
    data_dir: str = _f(str(OFFICE), "release data folder (falls back to the demo data)")
    category: str = _f("Office_Products", "category in --data_dir")
    style: str = _f("native", "prompt style of the examples", choices=["native", "compact"])
    examples: int = _f(1024, "next-SID train rows used")
    micro_batch_size: int = _f(32, "examples per step")
    rounds: int = _f(4, "interleaved rounds")
    threads: int = _f(1, "torch CPU threads")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    return add_dataclass_args(p, SparseBenchFlags)


def release(args, tmp: Path) -> tuple[Path, str]:
    if ReleasePaths(Path(args.data_dir), args.category).info.is_file():
        return Path(args.data_dir), args.category
    import subprocess
    import sys
    subprocess.run([sys.executable, str(REPO / "scripts/make_demo_data.py"), "--output_dir", str(tmp / "demo"),
                    "--category", "Demo"], check=True, capture_output=True)
    return tmp / "demo", "Demo"


def setup(args, tmp: Path):
    """(model, tokenizer, encoded examples)."""
    from sidreasoner.data.records import ReleasePaths
    from sidreasoner.tasks.mixture import make_tasks
    from sidreasoner.tasks.sources import DataPaths, load_task_data
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    from sidreasoner.train.sft_data import ExampleEncoder
    data_dir, cat = release(args, tmp)
    model_dir = args.model
    if not model_dir:
        import subprocess
        import sys
        model_dir = str(tmp / "tiny")
        subprocess.run([sys.executable, str(REPO / "scripts/make_tiny_model.py"), "--data_dir", str(data_dir),
                        "--category", cat, "--output_dir", model_dir], check=True, capture_output=True)
    rp = ReleasePaths(data_dir, cat)
    data, _ = load_task_data(DataPaths(str(rp.index_json), str(rp.item_json), str(rp.split("train")),
                                       str(rp.split("valid")), "", ""), ["next_sid"])
    split = make_tasks(["next_sid"], prompt_style=args.style)[0].build(data)
    model, tok = load_model_and_tokenizer(model_dir, dtype=torch.float32)
    enc = ExampleEncoder(tok, 1024).encode_all(split.train[:args.examples], show=False)
    return model, tok, enc


def step_time(model, opt, batches, sparse: bool) -> float:
    from sidreasoner.train.loss import supervised_loss
    t0 = time.perf_counter()
    for b in batches:
        loss = supervised_loss(model, b) if sparse else model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    args = parse_checked(build_parser(), argv, {n: at_least(1) for n in ("examples", "micro_batch_size", "rounds",
                                                                         "threads")})
    torch.set_num_threads(args.threads)
    from sidreasoner.train.collate import PadCollator
    with tempfile.TemporaryDirectory() as tmp:
        model, tok, enc = setup(args, Path(tmp))
    collate = PadCollator(tok.pad_token_id if tok.pad_token_id is not None else 0)
    batches = [collate([{"input_ids": e.input_ids, "labels": e.labels} for e in enc[i:i + args.micro_batch_size]])
               for i in range(0, len(enc), args.micro_batch_size)]
    from sidreasoner.train.loss import supervised_loss
    with torch.no_grad():
        check = (float(supervised_loss(model, batches[0])), float(model(**batches[0]).loss))
    runs = {name: copy.deepcopy(model).train() for name in ("full", "sparse")}
    opts = {n: torch.optim.AdamW(m.parameters(), lr=1e-3) for n, m in runs.items()}
    secs = {"full": 0.0, "sparse": 0.0}
    per_round = max(1, len(batches) // args.rounds)
    for r in range(args.rounds):
        chunk = batches[r * per_round:(r + 1) * per_round]
        for name in ("full", "sparse"):
            secs[name] += step_time(runs[name], opts[name], chunk, name == "sparse")
    n = per_round * args.rounds * args.micro_batch_size
    rate = {k: n / v for k, v in secs.items()}
    mean_len = sum(len(e.input_ids) for e in enc) / len(enc)
    print(f"{len(enc)} next-SID examples ({args.style} prompts, mean {mean_len:.0f} tokens), "
          f"micro-batch {args.micro_batch_size}, {args.threads} thread(s)")
    print(f"{'loss':<28}{'examples/s':>12}")
    print(f"{'model own (all positions)':<28}{rate['full']:>12.1f}\n{'supervised positions only':<28}{rate['sparse']:>12.1f}")
    print(json.dumps({"sparse_logits_ratio": round(rate["sparse"] / rate["full"], 3),
                      "examples_per_s": {k: round(v, 1) for k, v in rate.items()},
                      "first_batch_loss": {"sparse": round(check[0], 5), "full": round(check[1], 5)},
                      "style": args.style, "mean_tokens": round(mean_len, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
