"""Stage 2 task: reasoning activation. History SIDs -> ``<think>\\n{reasoning_path}\\n</think>\\n\\n{SID}``.

The prompt is the evaluator's thinking-mode prompt (``next_sid_turns(history, think=True, style)``). Rows
come from the narrative CSV (``reasoning_path``; teacher ``<think>`` removed by the reader);
validation holds out the same hashed fraction of sequences as stage 1's narrative task.
"""
from __future__ import annotations

from . import prompts
from .base import SkipLog, Task, TaskData, TaskSplit, chat
from .corpus import KnownSIDs, corpus_skips, narrative_held_out, row_sids_known
from .sequence import UNKNOWN_SID, check_unknown_sids


class Reasoning(Task):
    name = "reasoning"
    description = "history SIDs -> <think>reasoning_path</think> + next SID"

    def __init__(self, valid_fraction: float = 0.05, style: str = "native"):
        self.valid_fraction, self.style = valid_fraction, prompts.check_style(style)

    def build(self, data: TaskData) -> TaskSplit:
        corpus = data.narratives
        if corpus is None:
            return TaskSplit([], [], note="off: narrative CSV with reasoning_path not found")
        skips: SkipLog = corpus_skips(corpus)
        train, valid, known = [], [], KnownSIDs(data.index)
        for row in corpus.records:
            source = f"{corpus.path} line {row.line}"
            if not row.history_sids:
                skips.skip("empty history", source)
            elif not row.reasoning_path:
                skips.skip("empty reasoning_path", source)
            elif not row_sids_known(row, data.index) or known.unknown_in(row.reasoning_path):
                skips.skip(UNKNOWN_SID, source)
            else:
                system, user = prompts.next_sid_turns(row.history_sids, think=True, style=self.style)
                ex = chat(self.name, user, row.item_sid, reasoning=row.reasoning_path, source=source, system=system)
                (valid if narrative_held_out(row, data, self.valid_fraction) else train).append(ex)
        check_unknown_sids(skips, len(corpus.records), corpus.path)
        return TaskSplit(train, valid, skips)
