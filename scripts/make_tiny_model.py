"""python scripts/make_tiny_model.py --data_dir data/Amazon --category Office_Products --output_dir checkpoints/tiny_qwen3

Build the tiny offline base model: a byte-level BPE tokenizer trained on the
catalogue text with Qwen3's special tokens, chat template, ``<think>``/``</think>`` and every SID token
of the index (ordinary added tokens, one id each), and a randomly initialised Qwen3-architecture
model sized to it. Reads ``index/<Cat>.item.json`` and ``index/<Cat>.index.json``; writes an ordinary
Hugging Face folder (model, tokenizer, generation_config.json, and ``sidreasoner_model.json`` with the
resolved config and the numbers printed) that ``AutoModelForCausalLM`` / ``AutoTokenizer`` load offline.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

from sidreasoner.data.formats import read_item_json, read_sid_index, read_split_csv
from sidreasoner.data.records import DataError, ReleasePaths, parse_categories
from sidreasoner.flags import add_dataclass_args, from_namespace
from sidreasoner.tasks.prompts import next_sid_prompt
from sidreasoner.model.chat import render_prompt
from sidreasoner.ranges import SEED, at_least, optional, parse_checked
from sidreasoner.train.tokenizer import DEFAULT_VOCAB_SIZE, MIN_VOCAB, catalogue_texts, train_catalogue_tokenizer

#: rows of a split used to measure prompt length (enough for a stable mean, fast to tokenise)
PROMPT_SAMPLE = 1000


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


def _required(help: str):
    return field(metadata={"help": help, "required": True})


@dataclass
class TinyModelConfig:
    data_dir: str = _required("release folder holding index/<Cat>.index.json and .item.json")
    category: str = _required("category name, e.g. Office_Products; several, comma-separated, share one tokenizer")
    output_dir: str = _required("folder to write the model and tokenizer to")
    vocab_size: int = _f(DEFAULT_VOCAB_SIZE, "BPE vocabulary size incl. 256 bytes and 3 special tokens; think tags "
                                             "and SID tokens come on top (default %(default)s)")
    hidden_size: int = _f(128, "model width (default %(default)s)")
    num_layers: int = _f(4, "transformer layers (default %(default)s)")
    num_heads: int = _f(4, "attention heads; head_dim = hidden_size / num_heads (default %(default)s)")
    num_kv_heads: int = _f(2, "key/value heads (grouped-query attention, default %(default)s)")
    intermediate_size: Optional[int] = _f(None, "MLP width (default 3 x hidden_size)")
    max_position_embeddings: int = _f(2048, "longest sequence (default %(default)s)")
    untied: bool = _f(False, "separate output embeddings (tied by default, as Qwen3-1.7B): more parameters for the "
                             "item-to-item mapping of a model trained from scratch")
    seed: int = _f(0, "seed of the random initialisation (default %(default)s)")
    overwrite: bool = _f(False, "replace --output_dir if it exists and is not empty")


#: numeric flags and the values they accept (sidreasoner.ranges)
_RANGES = {"vocab_size": at_least(MIN_VOCAB, "256 bytes + 3 special tokens"), "seed": SEED,
           "intermediate_size": optional(at_least(1)),
           **dict.fromkeys(("hidden_size", "num_layers", "num_heads", "num_kv_heads", "max_position_embeddings"),
                           at_least(1))}


def parse_args(argv=None) -> TinyModelConfig:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(p, TinyModelConfig)
    args = parse_checked(p, argv, _RANGES)
    if args.hidden_size % args.num_heads or args.num_heads % args.num_kv_heads:  # before the tokenizer is trained
        p.error(f"--hidden_size ({args.hidden_size}) must divide by --num_heads ({args.num_heads}), and --num_heads "
                f"by --num_kv_heads ({args.num_kv_heads})")
    return from_namespace(TinyModelConfig, args)


def prompt_token_stats(tokenizer, paths: ReleasePaths) -> dict:
    """Mean/max tokens of the history -> next-SID prompt in both modes, on the first rows of a split."""
    for split in ("test", "valid", "train"):
        if paths.split(split).is_file():
            rows = read_split_csv(paths.split(split))[:PROMPT_SAMPLE]
            break
    else:
        return {}
    if not rows:
        return {}
    out = {"split": split, "rows": len(rows)}
    for think in (False, True):
        texts = [render_prompt(tokenizer, next_sid_prompt(r.history_sids, think=think), think) for r in rows]
        lens = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        mode = "think" if think else "no_think"
        out[f"{mode}_mean"] = round(statistics.fmean(lens), 1)
        out[f"{mode}_max"] = max(lens)
    return out


def _catalogues(cfg: TinyModelConfig):
    """(paths of the first category, items, indexed items, SID tokens) of ``--category`` (several: A,B).
    Several categories share one tokenizer: the BPE learns every catalogue's text and the SID tokens are
    the union, so one model can be trained on all of them (the prompt statistics use the first)."""
    categories = parse_categories(cfg.category)
    if len(categories) == 1:
        categories = [cfg.category]  # one category: exactly as before
    items, indexed, tokens = {}, 0, set()
    for category in categories:
        paths = ReleasePaths(cfg.data_dir, category)
        # item ids are per category (the same id may be two items): keyed by category too when several
        found = read_item_json(paths.item_json)
        items.update(found if len(categories) == 1 else {f"{category}/{k}": v for k, v in found.items()})
        index = read_sid_index(paths.index_json, paths.item_json)
        indexed += len(index)
        tokens.update(index.tokens())
    # SIDIndex.tokens()'s order (level, then code): one category gets exactly its own list
    return ReleasePaths(cfg.data_dir, categories[0]), items, indexed, sorted(tokens, key=lambda t: (t[1], int(t[3:-1])))


def run(cfg: TinyModelConfig) -> dict:
    t0 = time.time()
    cfg.intermediate_size = cfg.intermediate_size or 3 * cfg.hidden_size
    paths, items, indexed, sid_tokens = _catalogues(cfg)
    from sidreasoner.model.model_factory import check_output_dir, count_parameters, make_tiny_qwen3, save_model_dir
    check_output_dir(cfg.output_dir, cfg.overwrite)  # before the work, not after it
    texts = catalogue_texts(items)
    tokenizer = train_catalogue_tokenizer(texts, cfg.vocab_size, sid_tokens,
                                          model_max_length=cfg.max_position_embeddings)
    model = make_tiny_qwen3(tokenizer, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                            num_heads=cfg.num_heads, num_kv_heads=cfg.num_kv_heads,
                            intermediate_size=cfg.intermediate_size,
                            max_position_embeddings=cfg.max_position_embeddings, seed=cfg.seed,
                            tie_embeddings=not cfg.untied)
    stats = {
        "items": len(items), "indexed_items": indexed, "texts": len(texts), "sid_tokens": len(sid_tokens),
        "tokenizer_size": len(tokenizer), "parameters": count_parameters(model),
        "prompt_tokens": prompt_token_stats(tokenizer, paths),
    }
    stats["seconds"] = round(time.time() - t0, 2)
    save_model_dir(cfg.output_dir, model, tokenizer, meta={"config": asdict(cfg), "stats": stats},
                   overwrite=cfg.overwrite)
    return stats


def main(argv=None) -> int:
    cfg = parse_args(argv)
    try:
        stats = run(cfg)
    except (DataError, FileExistsError, ValueError) as e:
        print(f"make_tiny_model: error: {e}", file=sys.stderr)
        return 2
    pt = stats["prompt_tokens"]
    print(f"items {stats['items']} ({stats['indexed_items']} with a SID), {stats['sid_tokens']} SID tokens")
    print(f"vocab size {stats['tokenizer_size']}, parameters {stats['parameters']:,}, time {stats['seconds']:.1f} s")
    if pt:
        print(f"prompt tokens ({pt['split']}, {pt['rows']} rows): non-thinking mean {pt['no_think_mean']} "
              f"max {pt['no_think_max']}; thinking mean {pt['think_mean']} max {pt['think_max']}")
    print(f"saved to {cfg.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
