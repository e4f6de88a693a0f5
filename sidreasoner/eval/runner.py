"""Evaluation runner: split rows -> prompts -> (reasoning) -> constrained SID search -> predictions + metrics.

Outputs in ``output_dir``: ``predictions.jsonl`` (one line per row, appended per batch),
``metrics.json`` (``sidreasoner.eval.metrics.compute_metrics`` plus counts), ``config.json`` (the
resolved config) and ``run.json`` (timing). With ``shard=(i, n)`` the run takes rows i, i+n, ... and
writes ``predictions.shard{i}of{n}.jsonl`` / ``config.shard{i}of{n}.json``; when the last shard finishes
(or on ``evaluate.py --merge_shards``) the shards are merged and the metrics computed.

Batches are fixed chunks of the (length-sorted) rows, so a resumed run recomputes an interrupted
batch with exactly the same companions and reproduces the uninterrupted predictions.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..data.formats import atomic_write_text, read_info_index, read_sid_index, read_split_csv
from ..data.records import DataError, SequenceRow
from ..sid.index import SIDIndex
from ..sid.trie import SIDTrie
from . import predictions as P
from .config import RESULT_FIELDS, EvalConfig
from .beam import BeamResult, constrained_beam_search
from .padding import encode_left_padded, left_pad  # noqa: F401  left_pad: rl/rollout.py's old import
from .reference import reference_beam_search
from .thinking import (hf_reasoning, pick_backend, reasoning_prompt, search_prompt, stop_texts_of,
                       vllm_reasoning)

log = logging.getLogger(__name__)

#: the catalogue SIDs the model cannot write (``build_trie``), read back by ``finalize``
COVERAGE_FILE = "sid_coverage.json"


def select_rows(rows: Sequence[SequenceRow], limit: Optional[int], shard) -> list[tuple[int, SequenceRow]]:
    """``(row index, row)`` pairs: the first ``limit`` rows, then every n-th starting at shard i."""
    picked = list(enumerate(rows))[:limit] if limit is not None else list(enumerate(rows))
    return picked[shard[0]::shard[1]] if shard else picked


def merge_paths(results: Sequence[BeamResult], k: int) -> BeamResult:
    """Beams of several reasoning paths of one row -> best score per SID, top ``k`` by score."""
    best: dict[str, float] = {}
    for res in results:
        for sid, s in zip(res.sids, res.scores):
            if sid not in best or s > best[sid]:
                best[sid] = s
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:k]
    return BeamResult([s for s, _ in ranked], [v for _, v in ranked])


class Evaluator:
    """Holds the model, tokenizer and trie; turns a batch of rows into prediction records."""

    def __init__(self, cfg: EvalConfig, model, tokenizer, trie: SIDTrie, stop_id: int):
        self.cfg, self.model, self.tokenizer, self.trie, self.stop_id = cfg, model, tokenizer, trie, stop_id
        self.backend = pick_backend(cfg.reasoning_backend) if cfg.think else None
        self.bias, self.prior = None, None
        self._paths: dict = {}  # row -> reasoning paths generated ahead (prefetch)
        self.index: Optional[SIDIndex] = None  # set: records name the items of each ranked SID
        if cfg.calibrate:
            from .calibration import edge_prior, sid_prior
            edge = edge_prior(model, tokenizer, trie, cfg.prompt_style)
            self.bias, self.prior = cfg.calibrate * edge, sid_prior(trie, edge)

    def prompt(self, row: SequenceRow) -> str:
        """The generation prompt of a row (thinking mode: the one the reasoning is generated from)."""
        from ..model.chat import next_sid_prompt_text
        text = next_sid_prompt_text(self.tokenizer, row.history_sids, self.cfg.think, self.cfg.prompt_style)
        return reasoning_prompt(text, self.cfg.prompt_style) if self.cfg.think else text

    def search(self, texts: Sequence[str]) -> list[BeamResult]:
        ids, mask = encode_left_padded(self.tokenizer, texts, self.stop_id, self.model.device)
        c = self.cfg
        if c.search == "reference":
            return reference_beam_search(self.model, ids, mask, self.trie, c.num_beams, c.length_penalty)
        return constrained_beam_search(self.model, ids, mask, self.trie, c.num_beams, c.length_penalty,
                                       mode=c.beam_mode, bias=self.bias)

    def reason(self, prompts: Sequence[str], seed: int):
        c = self.cfg
        if self.backend == "vllm":
            return vllm_reasoning(c.base_model, prompts, stop_texts_of(self.tokenizer, self.stop_id),
                                  c.max_think_tokens, c.num_reasoning_paths, c.temperature, seed,
                                  repetition_penalty=c.repetition_penalty)
        return hf_reasoning(self.model, self.tokenizer, prompts, self.stop_id, c.max_think_tokens,
                            c.num_reasoning_paths, c.temperature, seed, repetition_penalty=c.repetition_penalty)

    def prefetch(self, picked: Sequence[tuple[int, SequenceRow]]) -> None:
        """vLLM: the reasoning of every row to evaluate in ONE call (vLLM schedules the whole split
        itself; a call per batch would leave the GPU idle between batches). HF generates per batch."""
        self._paths = {}
        if self.backend == "vllm" and picked:
            log.info("generating the reasoning of %d rows in one vLLM call", len(picked))
            paths = self.reason([self.prompt(r) for _, r in picked], seed=self.cfg.seed)
            self._paths = {i: ps for (i, _), ps in zip(picked, paths)}

    def run_batch(self, batch: Sequence[tuple[int, SequenceRow]], catalogue) -> list[dict]:
        prompts = [self.prompt(r) for _, r in batch]
        records = [{"row": i, "user_id": r.user_id, "target": r.item_sid,
                    "target_in_catalogue": r.item_sid in catalogue} for i, r in batch]
        if not self.cfg.think:
            results = self.search(prompts)
        else:
            paths = ([self._paths[i] for i, _ in batch] if all(i in self._paths for i, _ in batch)
                     else self.reason(prompts, seed=self.cfg.seed + batch[0][0]))
            n = self.cfg.num_reasoning_paths
            flat = self.search([search_prompt(p, r.text) for p, ps in zip(prompts, paths) for r in ps])
            results = [merge_paths(flat[i * n:(i + 1) * n], self.cfg.num_beams) for i in range(len(batch))]
            for rec, ps in zip(records, paths):
                rec["reasoning"] = ps[0].text
                rec["think_closed"] = ps[0].closed if n == 1 else [p.closed for p in ps]
                if n > 1:
                    rec["reasoning_paths"] = [p.text for p in ps]
        for rec, res in zip(records, results):
            rec["ranked"], rec["scores"] = res.sids, [round(s, 6) for s in res.scores]
            if self.prior is not None:  # scores are calibrated: plain = score + calibrate * prior
                rec["prior"] = [round(self.prior[s], 6) for s in res.sids]
            if self.index is not None:
                rec.update(P.item_fields(res.sids, self.index.sid_to_items, self.index.titles))
        return records


def _resolve_device_dtype(cfg: EvalConfig) -> tuple[str, torch.dtype]:
    device = cfg.device
    if device == "auto":  # under torchrun each process takes its own GPU
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}, but no CUDA device is available here (use --device cpu or auto)")
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if cfg.dtype == "auto":
        return device, torch.bfloat16 if device.startswith("cuda") else torch.float32
    if cfg.dtype not in names:
        raise ValueError(f"--dtype must be auto, {', '.join(names)}; got {cfg.dtype!r}")
    return device, names[cfg.dtype]


def read_catalogue(cfg: EvalConfig) -> SIDIndex:
    """The info file's catalogue, checked against the flags before any model is loaded."""
    index = read_info_index(cfg.info_file)
    depth = max(index.level_counts())
    if cfg.max_new_tokens is not None and cfg.max_new_tokens < depth + 1:
        raise ValueError(f"--max_new_tokens {cfg.max_new_tokens} cannot hold a {depth}-token SID "
                         f"plus the stop token; use at least {depth + 1}")
    return index


def check_info_matches_index(info_file, index_json) -> None:
    """DataError naming the first info-file line whose item has another SID in ``index.json`` (a catalogue
    of another SID build: the model would be scored against SIDs its training data never used)."""
    from ..data.formats import read_info
    index = read_sid_index(index_json)
    for row in read_info(info_file):
        sid = index.item_to_sid.get(row.item_id)
        if sid is not None and sid != row.sid:
            raise DataError(info_file, f"item {row.item_id} has SID {row.sid} here but {sid} in {index_json} (the "
                                       f"info file and the SID index come from different SID builds)", row.line,
                            "sid")


def build_trie(cfg: EvalConfig, index: SIDIndex, tokenizer, stop_id: int) -> tuple[SIDTrie, dict]:
    """The trie over the catalogue SIDs the tokenizer can write, and the coverage (``sid_coverage``).

    A released checkpoint may lack a few SID tokens of the public index: it is scored on the SIDs it can
    express, and rows whose target it cannot write count as misses (both counts go to metrics.json).
    A tokenizer with none of the catalogue's SIDs is refused (a base model before stage 1)."""
    from ..model.chat import usable_sid_coverage
    try:
        coverage = usable_sid_coverage(tokenizer, index.unique_sids())
    except ValueError as e:
        raise ValueError(f"{cfg.base_model}: {e} (SIDs of {cfg.info_file})") from None
    if coverage["inexpressible"]:
        log.warning("%s cannot write %d of the %d catalogue SIDs (tokens not in its vocabulary as single tokens, "
                    "e.g. %s): scoring on the %d it can; rows whose target is one of them count as misses",
                    cfg.base_model, len(coverage["inexpressible"]), coverage["sids"],
                    ", ".join(coverage["bad_tokens"][:5]), coverage["expressible"])
    bad = set(coverage["inexpressible"])
    trie = SIDTrie.from_sids([s for s in index.unique_sids() if s not in bad], tokenizer, stop_id,
                             source=f"info file {cfg.info_file}")
    if cfg.num_beams > len(trie):
        log.warning("num_beams=%d exceeds the %d distinct SIDs of the catalogue: every row returns %d SIDs",
                    cfg.num_beams, len(trie), len(trie))
    elif cfg.num_beams > trie.n_first:
        log.info("num_beams=%d > %d first-level SID tokens: beams fill up at deeper levels",
                 cfg.num_beams, trie.n_first)
    return trie, coverage


def _check_resume(cfg: EvalConfig, config_path: Path, pred_path: Path) -> None:
    if not pred_path.exists():
        return
    if not cfg.resume:
        raise FileExistsError(f"{pred_path} already exists: pass --resume to continue it, "
                              f"or choose another --output_dir")
    if config_path.is_file():
        old = json.loads(config_path.read_text(encoding="utf-8"))
        now = json.loads(json.dumps(asdict(cfg)))
        diff = [k for k in RESULT_FIELDS if old.get(k) != now.get(k)]
        if diff:
            raise ValueError(f"--resume with settings that differ from {config_path}: "
                             + ", ".join(f"{k}: {old.get(k)!r} -> {now.get(k)!r}" for k in diff))


def make_batches(picked, batch_size: int) -> list[list[tuple[int, SequenceRow]]]:
    """Fixed chunks of rows sorted by history length (the prompt length), longest first: less padding,
    and an out-of-memory error shows up in the first batch."""
    order = sorted(picked, key=lambda ir: (-len(ir[1].history_sids), ir[0]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def run_evaluation(cfg: EvalConfig, model=None, tokenizer=None) -> dict:
    """Evaluate (resuming if asked) and return the metrics, or ``{}`` for a shard whose siblings are unfinished."""
    from tqdm import tqdm
    from ..model.chat import stop_token_id
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred_path = P.predictions_path(out, cfg.shard)
    config_path = out / f"config{cfg.suffix()}.json"
    from ..model.chat import model_prompt_style
    cfg.prompt_style = model_prompt_style(cfg.base_model, cfg.prompt_style)  # auto: as the model was trained
    _check_resume(cfg, config_path, pred_path)
    rows = read_split_csv(cfg.test_data_path)
    picked = select_rows(rows, cfg.limit, cfg.shard)
    if not picked:
        raise DataError(cfg.test_data_path, f"no rows to evaluate (limit={cfg.limit}, shard={cfg.shard})")
    index = read_catalogue(cfg)
    device, dtype = _resolve_device_dtype(cfg)
    if model is None:
        from ..model.model_factory import load_model_and_tokenizer
        model, tokenizer = load_model_and_tokenizer(cfg.base_model, dtype=dtype, device=device)
    model.eval()
    _check_think_budget(cfg, model)
    stop_id = stop_token_id(tokenizer)
    trie, coverage = build_trie(cfg, index, tokenizer, stop_id)
    atomic_write_text(out / COVERAGE_FILE, json.dumps({k: coverage[k] for k in ("sids", "expressible", "inexpressible",
                                                                                  "bad_tokens")}, indent=1) + "\n")
    catalogue = set(index.unique_sids())
    _report_unknown_targets(cfg, picked, catalogue)
    atomic_write_text(config_path, json.dumps(asdict(cfg), indent=1) + "\n")
    done = P.load_for_resume(pred_path) if cfg.resume else {}
    ev = Evaluator(cfg, model, tokenizer, trie, stop_id)
    ev.index = index
    if cfg.think:
        ev.prefetch([(i, r) for i, r in picked if i not in done])
    t0, n_new = time.time(), 0
    bar = tqdm(total=len(picked), desc="evaluate", unit="row", initial=sum(1 for i, _ in picked if i in done))
    for batch in make_batches(picked, cfg.batch_size):
        if all(i in done for i, _ in batch):
            continue
        records = [r for r in ev.run_batch(batch, catalogue) if r["row"] not in done]
        P.append_records(pred_path, records)
        n_new += len(records)
        bar.update(len(records))
    bar.close()
    secs = time.time() - t0
    run = {"rows": len(picked), "rows_resumed": len(picked) - n_new, "rows_evaluated": n_new,
           "seconds": round(secs, 3), "rows_per_s": round(n_new / secs, 3) if secs > 0 else None,
           "device": device, "dtype": str(dtype), "search": cfg.search,
           "beam_mode": cfg.beam_mode, "reasoning_backend": ev.backend}
    atomic_write_text(out / f"run{cfg.suffix()}.json", json.dumps(run, indent=1) + "\n")
    log.info("evaluated %d rows (%d resumed) in %.1f s", n_new, len(picked) - n_new, secs)
    if cfg.shard is not None:
        if not _all_shards_done(out, cfg.shard[1]):
            log.info("shard %d/%d done; merge when all shards finish: evaluate.py --merge_shards %s",
                     cfg.shard[0], cfg.shard[1], out)
            return {}
        P.merge_shards(out, cfg.shard[1])
    return finalize(out, cfg.info_file, cfg.num_beams, cfg.ks, cfg.result_json_data, cfg.test_data_path)


def _check_think_budget(cfg: EvalConfig, model) -> None:
    """A reasoning budget beyond the model's context runs for minutes per row and then fails: refuse it."""
    text_cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    context = getattr(text_cfg, "max_position_embeddings", None)
    if cfg.think and context and cfg.max_think_tokens >= context:
        raise ValueError(f"--max_think_tokens {cfg.max_think_tokens} does not fit the model's context of {context} "
                         f"tokens (max_position_embeddings of {cfg.base_model}); use fewer")


def _report_unknown_targets(cfg: EvalConfig, picked, catalogue) -> None:
    bad = [i for i, r in picked if r.item_sid not in catalogue]
    if bad:
        log.warning("%d of %d rows have a target SID that is not in the catalogue %s (they can never be hit "
                    "and count as misses); first rows (0-based): %s", len(bad), len(picked), cfg.info_file, bad[:5])


def _all_shards_done(out: Path, n: int) -> bool:
    """Each shard's predictions exist and its run record says it covered all its rows."""
    for i in range(n):
        run = out / f"run.shard{i}of{n}.json"
        if not run.is_file() or not P.predictions_path(out, (i, n)).is_file():
            return False
        info = json.loads(run.read_text(encoding="utf-8"))
        if len(P.read_records(P.predictions_path(out, (i, n)))) != info["rows"]:
            return False
    return True


def finalize(out: Path, info_file: str, num_beams: int, ks=None, result_json: Optional[str] = None,
             test_data_path: Optional[str] = None) -> dict:
    """metrics.json from ``predictions.jsonl`` (all rows, sorted by row), the reference-format JSON,
    and ``examples.md`` (a few rows with titles, for people to read; needs the split CSV for histories)."""
    from .metrics import compute_metrics
    from .report import write_examples_page
    records = sorted(P.read_records(Path(out) / P.PREDICTIONS), key=lambda r: r["row"])
    index = read_info_index(info_file)
    catalogue = set(index.unique_sids())
    metrics = compute_metrics(records, ks, catalogue=catalogue, num_beams=num_beams,
                              source=Path(out) / P.PREDICTIONS)
    metrics["targets_not_in_catalogue"] = sum(1 for r in records if r["target"] not in catalogue)
    cov_path = Path(out) / COVERAGE_FILE
    if cov_path.is_file():  # rows the model could never hit: their target SID has a token it lacks
        cov = json.loads(cov_path.read_text(encoding="utf-8"))
        bad = set(cov["inexpressible"])
        metrics["catalogue_sids_inexpressible"] = len(bad)
        metrics["targets_inexpressible"] = sum(1 for r in records if r["target"] in bad)
    if any("think_closed" in r for r in records):
        closed = [c for r in records for c in (r["think_closed"] if isinstance(r["think_closed"], list)
                                               else [r["think_closed"]])]
        metrics["think_closed_rate"] = sum(closed) / len(closed)
    atomic_write_text(Path(out) / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    if result_json:
        ref = [{"user_id": r["user_id"], "output": r["target"], "predict": r["ranked"]} for r in records]
        atomic_write_text(Path(result_json), json.dumps(ref, indent=1) + "\n")
    if records:
        rows = read_split_csv(test_data_path) if test_data_path else None
        write_examples_page(out, records, rows=rows, titles=index)
    return metrics
