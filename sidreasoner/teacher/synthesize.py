"""Teacher-corpus synthesis: which items and sequences, asking the teacher, checking its answers, writing.

Per item (index order, ``max_items`` first) the teacher writes a passage with the item's SID inline;
per row of the training split (file order, ``max_sequences`` first) a narrative and a reasoning path.
Every answer, from either teacher, goes through the same checks before it is written:

- the teacher's own ``<think>`` block is removed (``corpora.strip_think``) and counted;
- every SID written must be a full catalogue SID: a stray token, a prefix, a disordered or unknown
  SID is a problem ("unknown_sid"); SIDs spelled loosely (``<a_1> <b_2>``) are respelled canonically;
- a passage must name its own item's SID, a narrative at least one SID;
- the reasoning path must not quote the target's SID. Policy ``redact`` (default) replaces each
  quote with the target's short title in quotes and counts it (repeat purchases make a history SID
  equal the target SID, and the rest of such a path is fine); ``reject`` treats it as a problem;
- empty texts and texts over ``max_words`` words (or cut at the teacher's max_tokens) are problems.

An LLM answer with problems gets ``repair_rounds`` follow-up turns naming them; what still fails is
rejected. Every rejection is counted by reason and the first few are kept as examples; failed requests
(retries exhausted) are counted too. Nothing is dropped silently.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, median
from typing import Callable, Optional, Sequence

from ..data.corpora import NarrativeRow, has_think, strip_think, write_item_enhanced, write_narratives
from ..data.formats import read_item_json, read_sid_index, read_split_csv
from ..data.records import DataError, ReleasePaths, SequenceRow
from ..sid.index import SIDIndex
from ..sid.spelling import find_sid_runs, format_sid, run_codes
from .client import ChatClient, map_bounded
from .prompts import (ItemBrief, ItemBriefs, ItemContext, SequenceContext, SequenceDraft, item_messages,
                      parse_sequence_answer, repair_messages, sequence_messages)
from .leakage import quotes_target
from .template import TemplateTeacher, short_title

N_EXAMPLES = 5  # rejected answers kept per corpus to show in the statistics


@dataclass
class SynthesisConfig:
    data_dir: str
    category: str
    output_dir: Optional[str] = None    # default: the release's index folder, beside index.json
    split: str = "train"
    max_items: Optional[int] = None
    max_sequences: Optional[int] = None
    seed: int = 0
    max_words: int = 600                # per text; longer answers are rejected
    repair_rounds: int = 1              # follow-up turns for an LLM answer with problems
    target_sid_policy: str = "redact"   # or "reject"
    neighbours: int = 5                 # co-purchased items given per item
    concurrency: int = 8

    def paths(self) -> ReleasePaths:
        return ReleasePaths(Path(self.data_dir), self.category)

    def corpus_paths(self) -> tuple[Path, Path]:
        """(item_enhanced_v2.json, integrated_narrative.csv) under output_dir, or beside index.json."""
        rp = self.paths()
        if self.output_dir is None:
            return rp.item_enhanced, rp.narrative
        return Path(self.output_dir) / rp.item_enhanced.name, Path(self.output_dir) / rp.narrative.name


@dataclass
class Outcome:
    """One job's result: the accepted text(s) or the problems that rejected it."""

    value: Optional[object] = None            # str (passage) or SequenceDraft
    problems: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    preview: str = ""


# -- inputs ---------------------------------------------------------------------------------------
def check_rows(rows: Sequence[SequenceRow], index: SIDIndex, path) -> None:
    """Input rows must use catalogue SIDs: a clear error naming the row (file line if one line per row)."""
    for i, r in enumerate(rows):
        for name, sids in (("history_item_sid", r.history_sids), ("item_sid", (r.item_sid,))):
            for sid in sids:
                if not index.is_valid_sid(sid):
                    raise DataError(path, f"SID {sid} is not in the index (data row {i + 1}, user {r.user_id})",
                                    i + 2, name)


def transitions(rows: Sequence[SequenceRow]) -> tuple[dict[str, Counter], dict[str, list[str]]]:
    """(follows, neighbours): ``follows[a][b]`` counts rows whose last history item is ``a`` and whose
    target is ``b``; ``neighbours[a]`` lists the items seen right before or after ``a``, most frequent
    first. Only the last history item counts: train rows are prefixes of the same user sequences, so
    counting every consecutive pair would count one purchase many times."""
    follows: dict[str, Counter] = {}
    either: dict[str, Counter] = {}
    for r in rows:
        a, b = (r.history_item_ids[-1], r.item_id) if r.history_item_ids else (None, None)
        if a is None or a == b:
            continue
        follows.setdefault(a, Counter())[b] += 1
        either.setdefault(a, Counter())[b] += 1
        either.setdefault(b, Counter())[a] += 1
    near = {k: [i for i, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))] for k, c in either.items()}
    return follows, near


def build_jobs(cfg: SynthesisConfig):
    """Read the release; return (index, item contexts, sequence contexts, follows, successors' briefs by
    item id, rows skipped)."""
    paths = cfg.paths()
    index = read_sid_index(paths.index_json)
    brief = ItemBriefs(read_item_json(paths.item_json))
    split_path = paths.split(cfg.split)
    rows = read_split_csv(split_path)
    check_rows(rows, index, split_path)
    follows, near = transitions(rows)
    item_ids = list(index.item_to_sid)[:cfg.max_items] if cfg.max_items is not None else list(index.item_to_sid)
    item_jobs = [ItemContext(brief(i, index.sid(i)),
                             tuple(brief(n, index.sid(n)) for n in near.get(i, [])[:cfg.neighbours]
                                   if n in index)) for i in item_ids]
    seq_jobs, skipped = [], Counter()
    for i, r in enumerate(rows[:cfg.max_sequences] if cfg.max_sequences is not None else rows):
        if not r.history_sids:
            skipped["empty_history"] += 1
            continue
        hist = tuple(brief(h, s, t) for h, s, t in zip(r.history_item_ids, r.history_sids, r.history_titles))
        seq_jobs.append((r, SequenceContext(f"{split_path.name} row {i + 1}", hist,
                                            brief(r.item_id, r.item_sid, r.item_title))))
    successors = {b: brief(b, index.sid(b)) for after in follows.values() for b in after if b in index}
    return index, item_jobs, seq_jobs, follows, successors, skipped


# -- checks ---------------------------------------------------------------------------------------
def check_text(text: str, index: SIDIndex, max_words: int, counts: Counter) -> tuple[str, list[str], list[str]]:
    """(respelled text, problems, catalogue SIDs mentioned). Loosely spelled real SIDs are respelled."""
    problems, found, out, pos = [], [], [], 0
    for start, end, toks in find_sid_runs(text):
        codes = run_codes(toks)
        sid = format_sid(codes) if codes else text[start:end]
        if codes and index.is_valid_sid(sid):
            found.append(sid)
            counts["respelled"] += sid != text[start:end]
        else:
            problems.append(f"unknown_sid: {text[start:end]!r} is not a catalogue SID")
        out += [text[pos:start], sid]
        pos = end
    text = "".join(out) + text[pos:]
    n_words = len(text.split())
    if n_words == 0:
        problems.append("empty: no text")
    elif n_words > max_words:
        problems.append(f"overlong: {n_words} words > {max_words}")
    return text, problems, found


def redact_target(text: str, target: ItemBrief) -> tuple[str, int]:
    """Replace every quote of the target's SID with its short title in quotes; (text, quotes replaced)."""
    out, pos, n = [], 0, 0
    for start, end, toks in find_sid_runs(text):
        codes = run_codes(toks)
        if codes and format_sid(codes) == target.sid:
            out += [text[pos:start], f"\"{short_title(target.title, 8)}\""]
            pos, n = end, n + 1
    return "".join(out) + text[pos:], n


def vet_item(raw: str, ctx: ItemContext, index: SIDIndex, cfg: SynthesisConfig, finish: Optional[str]) -> Outcome:
    o = Outcome(preview=raw[:200])
    o.counts["think_removed"] += has_think(raw)
    text, o.problems, found = check_text(strip_think(raw), index, cfg.max_words, o.counts)
    if text and ctx.item.sid not in found:
        o.problems.append(f"missing_own_sid: the passage never writes {ctx.item.sid}")
    if finish == "length":
        o.problems.append("truncated: the teacher stopped at max_tokens")
    o.value = text
    return o


def vet_sequence(raw: str, ctx: SequenceContext, index: SIDIndex, cfg: SynthesisConfig,
                 finish: Optional[str], draft: Optional[SequenceDraft] = None) -> Outcome:
    o = Outcome(preview=raw[:200])
    o.counts["think_removed"] += has_think(raw)
    draft = draft or parse_sequence_answer(strip_think(raw))
    if draft is None:
        o.problems.append("unparseable: expected <narrative>...</narrative> and <reasoning_path>...</reasoning_path>")
        return o
    narrative, p1, found = check_text(draft.narrative, index, cfg.max_words, o.counts)
    reasoning = draft.reasoning_path
    if cfg.target_sid_policy == "redact":
        reasoning, n = redact_target(reasoning, ctx.target)
        o.counts["target_sid_redacted"] += n
    reasoning, p2, quoted = check_text(reasoning, index, cfg.max_words, o.counts)
    for fact, said in quotes_target(reasoning, ctx).items():  # the answer given away (see teacher.leakage)
        o.counts[f"target_{fact}_quoted"] += said
    o.problems += [f"narrative {p}" for p in p1] + [f"reasoning_path {p}" for p in p2]
    if narrative and not found:
        o.problems.append("no_sid: the narrative writes no SID")
    if ctx.target.sid in quoted:
        o.problems.append(f"target_sid_in_reasoning: the reasoning path quotes the target SID {ctx.target.sid}")
    if finish == "length":
        o.problems.append("truncated: the teacher stopped at max_tokens")
    o.value = SequenceDraft(narrative, reasoning)
    return o


# -- teachers -------------------------------------------------------------------------------------
def ask_llm(client: ChatClient, messages: list[dict], vet: Callable[[str, Optional[str]], Outcome],
            rounds: int) -> Outcome:
    """Ask, check, and ask again with the problems named (up to ``rounds`` follow-ups). Counts
    ``repair_requests`` (follow-ups sent) and ``repaired`` (answers accepted after a follow-up)."""
    for r in range(rounds + 1):
        res = client.complete(messages)
        o = vet(res.text, res.finish_reason)
        o.counts["repair_requests"] += r
        if not o.problems:
            o.counts["repaired"] += r > 0
            return o
        messages = repair_messages(messages, strip_think(res.text), o.problems)
    return o


def _run(jobs: list, fn: Callable, client: Optional[ChatClient], cfg: SynthesisConfig, desc: str,
         progress: bool) -> list[Outcome]:
    from tqdm.auto import tqdm
    results: list[Outcome] = [Outcome() for _ in jobs]
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, unit="job")
    if client is None:  # the template teacher is pure Python: no threads needed
        for i, job in enumerate(jobs):
            results[i] = fn(job)
            bar.update()
    else:
        for i, res, err in map_bounded(fn, jobs, cfg.concurrency, on_done=bar.update):
            results[i] = res if err is None else Outcome(problems=[f"failed: {err}"])
    bar.close()
    return results


def synthesize(cfg: SynthesisConfig, client: Optional[ChatClient] = None, progress: bool = False) -> dict:
    """Write both corpora for ``cfg`` with the LLM ``client`` (or the template teacher when None);
    return the statistics."""
    if cfg.target_sid_policy not in ("redact", "reject"):
        raise ValueError(f"target_sid_policy must be 'redact' or 'reject', got {cfg.target_sid_policy!r}")
    t0 = time.perf_counter()
    index, item_jobs, seq_jobs, follows, successors, skipped = build_jobs(cfg)
    template = TemplateTeacher(cfg.seed, follows, items=successors)
    if client is None:
        item_fn = lambda c: vet_item(template.item_passage(c), c, index, cfg, None)  # noqa: E731
        seq_fn = lambda j: vet_sequence("", j[1], index, cfg, None, template.sequence(j[1]))  # noqa: E731
    else:
        item_fn = lambda c: ask_llm(client, item_messages(c), lambda t, f: vet_item(t, c, index, cfg, f),  # noqa: E731
                                    cfg.repair_rounds)
        seq_fn = lambda j: ask_llm(client, sequence_messages(j[1]),  # noqa: E731
                                   lambda t, f: vet_sequence(t, j[1], index, cfg, f), cfg.repair_rounds)
    item_out = _run(item_jobs, item_fn, client, cfg, "item passages", progress)
    seq_out = _run(seq_jobs, seq_fn, client, cfg, "sequence narratives", progress)

    enhanced_path, narrative_path = cfg.corpus_paths()
    texts = {c.item.item_id: o.value for c, o in zip(item_jobs, item_out) if not o.problems}
    rows = [NarrativeRow(r.history_sids, r.item_sid, o.value.narrative, o.value.reasoning_path,
                         extra={"user_id": r.user_id, "item_id": r.item_id})
            for (r, _), o in zip(seq_jobs, seq_out) if not o.problems]
    # a corpus with no accepted entry is not written: an empty file at the final path would turn
    # stage 1's corpus tasks off without a word; the statistics name it instead ("empty")
    empty = [name for name, jobs, got in (("item_enhanced", item_jobs, texts), ("narrative", seq_jobs, rows))
             if jobs and not got]
    if "item_enhanced" not in empty:
        write_item_enhanced(enhanced_path, texts, {c.item.item_id: {"title": c.item.title, "sid": c.item.sid}
                                                   for c in item_jobs})
    if "narrative" not in empty:
        write_narratives(narrative_path, rows)
    stats = {"teacher": "template" if client is None else f"openai:{client.model}",
             "items": _stats(item_jobs, item_out, lambda c: f"item {c.item.item_id}", _item_measures),
             "sequences": _stats([c for _, c in seq_jobs], seq_out, lambda c: c.label, _seq_measures),
             "outputs": {"item_enhanced": str(enhanced_path), "narrative": str(narrative_path)}, "empty": empty}
    stats["sequences"]["skipped"] = dict(skipped)
    seq = stats["sequences"]  # paths that state the target's title / brand the history lacks (teacher.leakage)
    seq["target_quoted_share"] = {fact: round(seq["counts"].get(f"target_{fact}_quoted", 0) / max(len(seq_jobs), 1), 4)
                                  for fact in ("title", "brand")}
    if client is not None:
        stats["requests"] = dict(client.counts)
        if client.cache is not None:
            stats["cache"] = client.cache.stats()
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    return stats


# -- statistics -----------------------------------------------------------------------------------
def _words(t: str) -> int:
    return len(t.split())


def _sids(t: str) -> int:
    return sum(1 for *_, toks in find_sid_runs(t) if run_codes(toks))


def _item_measures(v: str) -> dict:
    return {"words": _words(v), "sids": _sids(v)}


def _seq_measures(v: SequenceDraft) -> dict:
    return {"narrative_words": _words(v.narrative), "reasoning_words": _words(v.reasoning_path),
            "narrative_sids": _sids(v.narrative), "reasoning_sids": _sids(v.reasoning_path)}


def _summary(xs: list[int]) -> dict:
    if not xs:
        return {"mean": 0.0, "median": 0.0, "min": 0, "max": 0}
    return {"mean": round(mean(xs), 2), "median": float(median(xs)), "min": min(xs), "max": max(xs)}


def _stats(jobs: list, outcomes: list[Outcome], where: Callable, measure: Callable) -> dict:
    kept = [o for o in outcomes if not o.problems]
    reasons: Counter = Counter()
    examples = []
    for job, o in zip(jobs, outcomes):
        if o.problems:
            reasons.update({p.split(":")[0] for p in o.problems})
            if len(examples) < N_EXAMPLES:
                examples.append({"where": where(job), "problems": o.problems[:3], "answer": o.preview})
    counts = sum((o.counts for o in outcomes), Counter())
    per = [measure(o.value) for o in kept]
    lengths = {k: _summary([m[k] for m in per]) for k in (per[0] if per else {})}
    return {"requested": len(jobs), "written": len(kept), "rejected": len(jobs) - len(kept),
            "rejected_by_reason": dict(sorted(reasons.items())), "counts": dict(counts),
            "lengths": lengths, "examples": examples}
