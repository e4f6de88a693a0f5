"""python benchmarks/bench_beam_search.py [--model DIR] [--rows 64] [--batch_size 8] [--beams 10,50]

Constrained beam search, ours (``sidreasoner.eval.beam``: prefill once, tree attention over the trie's
allowed tokens) vs the reference path (HF ``generate`` + ``prefix_allowed_tokens_fn``), on the same
model and the same Office_Products test rows, at 10 and 50 beams. Prints rows/s of both, the speedup,
and the share of rows whose ranked SID lists are identical (exactly, and up to swaps of near-tied
scores, |diff| < 1e-5), as a table and, last, one JSON line.

The model is ``--model`` (a folder, e.g. from scripts/make_tiny_model.py) or, by default, a tiny
random Qwen3 (hidden 128, 4 layers) with a BPE tokenizer trained on the Office catalogue text, built
here in a few seconds. Without the Office data it falls back to a synthetic catalogue and rows.
Timings on a shared CPU are noisy: both paths run interleaved on the same batches, and the ratio is
reported from one run (``--repeats`` takes the best of several).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from sidreasoner.flags import add_dataclass_args
from sidreasoner.paths import DEFAULT_DATA_DIR
from sidreasoner.ranges import at_least, check_list, parse_checked

REPO = Path(__file__).resolve().parents[1]
OFFICE = REPO / DEFAULT_DATA_DIR  # python scripts/download_data.py fills it


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class BeamBenchFlags:
    """The flags of bench_beam_search.py."""
    model: Optional[str] = _f(None, "model folder (default: build a tiny Qwen3 for the catalogue)")
    data_dir: str = _f(str(OFFICE), "release data folder with Office_Products")
    category: str = _f("Office_Products", "category in --data_dir")
    rows: int = _f(64, "test rows to decode (the first N)")
    batch_size: int = _f(8, "rows per batch (same for both paths)")
    beams: str = _f("10,50", "comma-separated beam counts")
    threads: int = _f(1, "torch CPU threads (1 is steadiest on a shared CPU)")
    repeats: int = _f(1, "time each path this many times, keep the fastest")
    beam_mode: str = _f("auto", "our beam layout", choices=["auto", "tree", "expand"])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    return add_dataclass_args(p, BeamBenchFlags)


def office_setup(data_dir: Path, category: str, n_rows: int):
    """(rows, SIDIndex, item texts) from the release data, or None when it is absent."""
    from sidreasoner.data.formats import read_info_index, read_item_json, read_split_csv
    from sidreasoner.data.records import ReleasePaths
    paths = ReleasePaths(data_dir, category)
    if not paths.info.is_file():
        return None
    from sidreasoner.train.tokenizer import catalogue_texts
    index = read_info_index(paths.info)
    texts = catalogue_texts(read_item_json(paths.item_json)) if paths.item_json.is_file() else list(index.titles.values())
    return read_split_csv(paths.split("test"))[:n_rows], index, texts


def synthetic_setup(n_rows: int, n_items: int = 2000):
    from sidreasoner.data.records import SequenceRow
    from sidreasoner.sid.index import SIDIndex
    from sidreasoner.sid.spelling import format_sid
    rnd = random.Random(0)
    codes = set()
    while len(codes) < n_items:
        codes.add((rnd.randrange(64), rnd.randrange(64), rnd.randrange(64)))
    sids = {str(i): format_sid(c) for i, c in enumerate(sorted(codes))}
    index = SIDIndex(sids, {i: f"office item number {i}" for i in sids})
    ids = list(sids)
    rows = []
    for u in range(n_rows):
        hist = [rnd.choice(ids) for _ in range(rnd.randint(1, 10))]
        t = rnd.choice(ids)
        rows.append(SequenceRow(f"u{u}", tuple(hist), tuple("" for _ in hist), tuple(sids[i] for i in hist),
                                t, "", sids[t]))
    return rows, index, list(index.titles.values())


def load_model(args, index, texts):
    if args.model:
        from sidreasoner.model.model_factory import load_model_and_tokenizer
        return load_model_and_tokenizer(args.model, dtype=torch.float32)
    from sidreasoner.model.model_factory import make_tiny_qwen3
    from sidreasoner.train.tokenizer import train_catalogue_tokenizer
    tok = train_catalogue_tokenizer(texts, sid_tokens=index.tokens())
    return make_tiny_qwen3(tok), tok


def time_path(fn, batches, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        res = [r for ids, mask in batches for r in fn(ids, mask)]
        best, out = min(best, time.perf_counter() - t), res
    return best, out


def main(argv=None) -> int:
    parser = build_parser()
    args = parse_checked(parser, argv, {n: at_least(1) for n in ("rows", "batch_size", "threads", "repeats")})
    try:
        beams = [int(b) for b in args.beams.split(",")]
    except ValueError:
        parser.error(f"--beams expects comma-separated integers, got {args.beams!r}")
    try:
        check_list("beams", beams, at_least(1))
    except ValueError as e:
        parser.error(str(e))
    torch.set_num_threads(args.threads)
    from sidreasoner.eval.beam import constrained_beam_search, same_ranking
    from sidreasoner.eval.reference import reference_beam_search
    from sidreasoner.eval.padding import encode_left_padded
    from sidreasoner.eval.runner import make_batches
    from sidreasoner.sid.trie import SIDTrie
    from sidreasoner.tasks.prompts import next_sid_prompt
    from sidreasoner.model.chat import render_prompt, stop_token_id
    setup = office_setup(Path(args.data_dir), args.category, args.rows)
    source = f"{args.category} test rows" if setup else "synthetic rows (Office data not found)"
    rows, index, texts = setup or synthetic_setup(args.rows)
    t0 = time.perf_counter()
    model, tok = load_model(args, index, texts)
    model.eval()
    stop = stop_token_id(tok)
    trie = SIDTrie.from_index(index, tok, stop)
    build_s = time.perf_counter() - t0
    batches = []
    for batch in make_batches(list(enumerate(rows)), args.batch_size):
        texts_b = [render_prompt(tok, next_sid_prompt(r.history_sids), think=False) for _, r in batch]
        batches.append(encode_left_padded(tok, texts_b, stop, "cpu"))
    n = sum(ids.shape[0] for ids, _ in batches)
    mean_len = sum(int(m.sum()) for _, m in batches) / n
    print(f"# {n} {source}, batch {args.batch_size}, mean prompt {mean_len:.0f} tokens, catalogue {len(trie)} SIDs, "
          f"vocab {model.get_output_embeddings().weight.shape[0]}, threads {args.threads}, "
          f"model/tokenizer built in {build_s:.1f} s")
    summary = {}
    print(f"{'beams':>5} {'ours rows/s':>12} {'ref rows/s':>11} {'speedup':>8} {'identical':>10} {'ident~ties':>10}")
    for K in [int(k) for k in args.beams.split(",")]:
        ours_s, ours = time_path(lambda i, m: constrained_beam_search(model, i, m, trie, K, mode=args.beam_mode),
                                 batches, args.repeats)
        ref_s, ref = time_path(lambda i, m: reference_beam_search(model, i, m, trie, K), batches, args.repeats)
        ident = sum(a.sids == b.sids for a, b in zip(ours, ref)) / n
        ident_t = sum(same_ranking(a, b) for a, b in zip(ours, ref)) / n
        summary.update({f"speedup_at_{K}": round(ref_s / ours_s, 2), f"identical_at_{K}": round(ident, 4),
                        f"identical_up_to_ties_at_{K}": round(ident_t, 4),
                        f"rows_per_s_ours_at_{K}": round(n / ours_s, 2), f"rows_per_s_ref_at_{K}": round(n / ref_s, 2)})
        print(f"{K:>5} {n / ours_s:>12.2f} {n / ref_s:>11.2f} {ref_s / ours_s:>7.1f}x {ident:>10.3f} {ident_t:>10.3f}")
    summary.update({"rows": n, "batch_size": args.batch_size, "threads": args.threads, "source": source})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
