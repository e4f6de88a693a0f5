"""python scripts/synthesize_corpus.py --data_dir data/Amazon --category Office_Products --teacher template

Writes the teacher corpora of one category: ``<Cat>.item_enhanced_v2.json`` (a passage
per item with its SID inline) and ``<Cat>.integrated_narrative.csv`` (per training row: a narrative
with SIDs inline and a reasoning path that ends at the target without its SID), plus the resolved
config and the statistics as JSON beside them.

Teachers: ``template`` (offline, from item metadata; what the demo uses) or ``openai`` (any
OpenAI-compatible chat-completions server: OpenAI, vLLM, SGLang, llama.cpp, ...):

    OPENAI_API_KEY=... python scripts/synthesize_corpus.py --data_dir data/Amazon --category Office_Products \\
        --teacher openai --teacher_url http://localhost:8000/v1 --teacher_model Qwen/Qwen3-32B --concurrency 16

Answers are cached in a JSONL file as they arrive: after a kill or failed requests, rerun the same
command and only the missing requests are sent. Exit status: 0 done, 1 some requests failed after
all retries (rerun to resume), 2 bad input or a non-retryable teacher error.
"""
# no `from __future__ import annotations`: tests load this script by path (outside sys.modules), where
# sidreasoner.flags could not resolve SynthesizeFlags' annotations written as text
import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from sidreasoner.data.formats import atomic_write_text
from sidreasoner.data.records import DataError, ReleasePaths
from sidreasoner.flags import add_dataclass_args, from_namespace
from sidreasoner.ranges import SEED, Range, above, at_least, optional, parse_checked
from sidreasoner.teacher.cache import ResponseCache
from sidreasoner.teacher.client import ChatClient, TeacherAPIError
from sidreasoner.teacher.synthesize import SynthesisConfig, synthesize


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class SynthesizeFlags:
    """The flags of synthesize_corpus.py."""
    data_dir: str = _f(None, "release folder (holds train/, index/, info/)", required=True)
    category: str = _f(None, "category name, e.g. Office_Products", required=True)
    output_dir: Optional[str] = _f(None, "where to write the corpora (default: <data_dir>/index, as the release)")
    teacher: str = _f("template", "'template': offline generator from item metadata; 'openai': an OpenAI-compatible "
                                  "chat endpoint", choices=("template", "openai"))
    teacher_url: Optional[str] = _f(None, "base URL of the chat-completions API, e.g. http://localhost:8000/v1")
    teacher_model: Optional[str] = _f(None, "model name sent to the teacher API")
    api_key_env: str = _f("OPENAI_API_KEY", "environment variable holding the API key (never logged; no key -> no "
                                            "Authorization header)")
    concurrency: int = _f(8, "requests in flight at once")
    max_retries: int = _f(5, "retries per request on 429/5xx/timeouts/connection errors")
    timeout: float = _f(120.0, "seconds to wait for one answer")
    backoff_base: float = _f(1.0, "first retry delay in seconds (doubles each retry, jittered)")
    backoff_max: float = _f(60.0, "longest retry delay in seconds (also caps Retry-After)")
    temperature: float = _f(0.7, "teacher sampling temperature")
    max_tokens: int = _f(1024, "teacher answer limit in tokens (a thinking teacher needs room for its <think> block "
                               "too)")
    max_items: Optional[int] = _f(None, "only the first N items of the index (default: all)")
    max_sequences: Optional[int] = _f(None, "only the first N rows of the split (default: all)")
    split: str = _f("train", "split whose rows get narratives (train: narratives of valid/test rows would leak "
                             "targets)", choices=("train", "valid", "test"))
    cache_path: Optional[str] = _f(None, "JSONL answer cache (default: <output_dir>/<Cat>.teacher_cache.jsonl)")
    seed: int = _f(0, "seed of the template teacher's wording and of retry jitter")
    max_words: int = _f(600, "reject any text longer than this many words")
    repair_rounds: int = _f(1, "follow-up turns asking the teacher to fix a rejected answer")
    target_sid_policy: str = _f("redact", "a reasoning path quoting the target SID: replace the quote by the "
                                          "target's title, or reject it", choices=("redact", "reject"))
    neighbours: int = _f(5, "co-purchased items shown to the teacher per item")
    no_progress: bool = _f(False, "hide the progress bars", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_dataclass_args(p, SynthesizeFlags)


#: numeric flags and the values they accept (sidreasoner.ranges)
_RANGES = {
    **dict.fromkeys(("concurrency", "max_words", "neighbours", "max_tokens"), at_least(1)),
    **dict.fromkeys(("max_items", "max_sequences"), optional(at_least(1))),
    **dict.fromkeys(("repair_rounds", "max_retries", "backoff_base", "backoff_max", "temperature"), at_least(0)),
    "timeout": Range(above(0).ok, "> 0 seconds"), "seed": SEED,
}


def make_client(args: SynthesizeFlags, cache_path: Path) -> ChatClient:
    params = {"temperature": args.temperature, "max_tokens": args.max_tokens}
    return ChatClient(args.teacher_url, args.teacher_model, api_key_env=args.api_key_env, timeout=args.timeout,
                      max_retries=args.max_retries, backoff_base=args.backoff_base, backoff_max=args.backoff_max,
                      params=params, cache=ResponseCache(cache_path), seed=args.seed)


def print_stats(stats: dict) -> None:
    for part in ("items", "sequences"):
        s = stats[part]
        print(f"{part}: {s['written']}/{s['requested']} written, {s['rejected']} rejected "
              f"{s['rejected_by_reason'] or ''}; counts {s['counts'] or '{}'}")
        for name, v in s["lengths"].items():
            print(f"  {name}: mean {v['mean']}, median {v['median']}, min {v['min']}, max {v['max']}")
        for ex in s["examples"]:
            print(f"  rejected {ex['where']}: {'; '.join(ex['problems'])}")
    if "requests" in stats:
        print(f"requests: {stats['requests']}; cache: {stats.get('cache')}")
    print(f"outputs: {stats['outputs']}; {stats['seconds']} s")


def main(argv=None) -> int:
    args = from_namespace(SynthesizeFlags, parse_checked(build_parser(), argv, _RANGES))
    if args.teacher == "openai" and not (args.teacher_url and args.teacher_model):
        build_parser().error("--teacher openai needs --teacher_url and --teacher_model")
    out_dir = Path(args.output_dir) if args.output_dir else ReleasePaths(Path(args.data_dir), args.category).index_json.parent
    cfg = SynthesisConfig(args.data_dir, args.category, str(out_dir), args.split, args.max_items, args.max_sequences,
                          args.seed, args.max_words, args.repair_rounds, args.target_sid_policy, args.neighbours,
                          args.concurrency)
    cache_path = Path(args.cache_path) if args.cache_path else out_dir / f"{args.category}.teacher_cache.jsonl"
    resolved = {"synthesis": asdict(cfg), "teacher": args.teacher, "teacher_url": args.teacher_url,
                "teacher_model": args.teacher_model, "api_key_env": args.api_key_env,
                "max_retries": args.max_retries, "timeout": args.timeout, "backoff_base": args.backoff_base,
                "backoff_max": args.backoff_max, "temperature": args.temperature, "max_tokens": args.max_tokens,
                "cache_path": str(cache_path) if args.teacher == "openai" else None}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / f"{args.category}.synthesis_config.json", json.dumps(resolved, indent=1) + "\n")
    try:
        client = make_client(args, cache_path) if args.teacher == "openai" else None
        if client is not None and not client.has_api_key:
            print(f"note: ${args.api_key_env} is not set; sending no Authorization header", file=sys.stderr)
        stats = synthesize(cfg, client, progress=not args.no_progress)
    except (DataError, TeacherAPIError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    atomic_write_text(out_dir / f"{args.category}.synthesis_stats.json", json.dumps(stats, indent=1) + "\n")
    print_stats(stats)
    failed = stats["items"]["rejected_by_reason"].get("failed", 0) + stats["sequences"]["rejected_by_reason"].get("failed", 0)
    if stats["empty"]:
        print(f"no accepted entries for {', '.join(stats['empty'])}: not written (stage 1 would train without "
              f"them); see the rejections above", file=sys.stderr)
    if failed or stats["empty"]:
        print(f"{failed} jobs failed after all retries; rerun the same command to resume from the cache",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
