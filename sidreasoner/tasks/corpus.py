"""Teacher-corpus LM tasks of stage 1: plain language modelling on text with SIDs interleaved.

``item_text``: per-item enriched text (``<Cat>.item_enhanced_v2.json``, field ``llm_stage2``);
validation = the held-out items. ``narrative``: per-sequence narratives
(``<Cat>.integrated_narrative.csv``, ``integrated_narrative``); validation = a hashed fraction of
sequences (the same sequences stage 2 holds out, see :func:`narrative_held_out`).
Both are read with ``sidreasoner.data.corpora`` (teacher ``<think>`` removed there).
"""
from __future__ import annotations

from ..data.corpora import Corpus, NarrativeRow
from ..sid.index import SIDIndex
from ..sid.spelling import find_sids, parse_sid
from .base import SkipLog, Task, TaskData, TaskSplit, TextExample, held_out
from .sequence import UNKNOWN_SID, check_unknown_sids


def corpus_skips(corpus: Corpus) -> SkipLog:
    """The reader's own exclusions (missing field, empty after removing <think>, malformed rows)."""
    log = SkipLog()
    for reason, keys in corpus.skipped.items():
        for key in keys:
            log.skip(reason, f"{corpus.path} {key}")
    return log


class KnownSIDs:
    """Which SIDs a teacher text may mention: catalogue SIDs and their proper prefixes (teachers
    talk about groups of items, e.g. a first-level code). Built once per task build."""

    def __init__(self, index: SIDIndex):
        full = {parse_sid(s) for s in index.unique_sids()}
        self.allowed = full | {c[:k] for c in full for k in range(1, len(c))}

    def unknown_in(self, text: str) -> bool:
        return any(m.codes not in self.allowed for m in find_sids(text))


def narrative_key(row: NarrativeRow) -> str:
    return ",".join(row.history_sids) + "->" + row.item_sid


def narrative_held_out(row: NarrativeRow, data: TaskData, fraction: float) -> bool:
    """Stage 1's narrative LM task and stage 2's reasoning task hold out the same sequences."""
    return held_out(narrative_key(row), fraction, data.seed)


def row_sids_known(row: NarrativeRow, index: SIDIndex) -> bool:
    return index.is_valid_sid(row.item_sid) and all(index.is_valid_sid(s) for s in row.history_sids)


class ItemText(Task):
    name = "item_text"
    description = "item-level enriched text (llm_stage2), plain LM"

    def build(self, data: TaskData) -> TaskSplit:
        corpus = data.item_corpus
        if corpus is None:
            return TaskSplit([], [], note="off: item-enriched corpus (--llm_generated_data_path) not found")
        skips, train, valid, known = corpus_skips(corpus), [], [], KnownSIDs(data.index)
        for rec in corpus.records:
            source = f"{corpus.path} item {rec.item_id}"
            if rec.item_id not in data.index:
                skips.skip(f"{UNKNOWN_SID} (item id not in index.json)", source)
            elif known.unknown_in(rec.text):
                skips.skip(UNKNOWN_SID, source)
            else:
                ex = TextExample(self.name, rec.text, source)
                (valid if rec.item_id in data.valid_items else train).append(ex)
        check_unknown_sids(skips, len(corpus.records), corpus.path, "texts")
        return TaskSplit(train, valid, skips)


class Narrative(Task):
    name = "narrative"
    description = "sequence narratives (integrated_narrative), plain LM"

    def __init__(self, valid_fraction: float = 0.05):
        self.valid_fraction = valid_fraction

    def build(self, data: TaskData) -> TaskSplit:
        corpus = data.narratives
        if corpus is None:
            return TaskSplit([], [], note="off: narrative corpus (--llm_generated_sequence_path) not found")
        skips, train, valid, known = corpus_skips(corpus), [], [], KnownSIDs(data.index)
        for row in corpus.records:
            source = f"{corpus.path} line {row.line}"
            if not row.integrated_narrative:
                skips.skip("empty integrated_narrative", source)
            elif not row_sids_known(row, data.index) or known.unknown_in(row.integrated_narrative):
                skips.skip(UNKNOWN_SID, source)
            else:
                ex = TextExample(self.name, row.integrated_narrative, source)
                (valid if narrative_held_out(row, data, self.valid_fraction) else train).append(ex)
        check_unknown_sids(skips, len(corpus.records), corpus.path)
        return TaskSplit(train, valid, skips)
