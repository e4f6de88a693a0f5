"""Reading a model's answer: the ONE parser shared by the stage-3 reward and free-generation checks.

A completion is ``[<think>] reasoning </think> answer`` (the ``<think>`` may sit in the prompt, as in
Qwen3's thinking template) or, in non-thinking mode, just ``answer``. The rules, in order:

1. The answer region is the text after the LAST ``</think>``. With no ``</think>`` at all it is the
   whole text, unless a ``<think>`` opens somewhere: then the reasoning never closed and the
   answer is EMPTY. A ``<think>`` that re-opens after the last ``</think>`` likewise cuts the answer
   region at that tag.
2. The SID is the first run of SID tokens in the answer region (``spelling.scan_sid``: token-aware,
   tolerant of whitespace inside and between tokens and of any text before or after the run).

Why an unclosed ``<think>`` gives no answer (reward-hacking resistance): a policy rewarded for SIDs
found inside unfinished reasoning would learn to never close it (or to spray candidate SIDs while
"thinking" and rely on the length limit cutting it off). Only a committed, visible answer earns
reward, and a truncated generation (length limit hit mid-thought) earns nothing. For the same reason
only the FIRST run in the answer counts: listing several candidates gains nothing over one.

Tags are matched literally (``<think>``, ``</think>``): they are single tokens of the tokenizer and
decode to exactly that text. ``parse_answer`` never raises, whatever it is given.
"""
from __future__ import annotations

from dataclasses import dataclass

from .spelling import format_sid, scan_sid

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class Answer:
    """What a completion says. ``sid`` is the canonical spelling of ``codes`` (None when nothing parsed)."""

    sid: str | None
    codes: tuple[int, ...]
    think_closed: bool  # a </think> is present and no <think> re-opens after the last one
    reasoning: str      # inside the last think block (or before the last </think>), stripped
    answer_text: str    # the answer region (rule 1 above), stripped

    @property
    def parsed(self) -> bool:
        return self.sid is not None


EMPTY_ANSWER = Answer(sid=None, codes=(), think_closed=False, reasoning="", answer_text="")


def _as_text(text) -> str | None:
    """Strings pass; bytes are decoded leniently (UTF-8, bad bytes replaced); anything else is no text."""
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text).decode("utf-8", errors="replace")
    return None


def _split(text: str) -> tuple[str, str, bool]:
    """-> (reasoning, answer_region, think_closed) following the module's rules."""
    close = text.rfind(THINK_CLOSE)
    if close < 0:
        opened = text.find(THINK_OPEN)
        if opened >= 0:  # reasoning never closed: no answer at all
            return text[opened + len(THINK_OPEN):], "", False
        return "", text, False
    before, after = text[:close], text[close + len(THINK_CLOSE):]
    opened = before.rfind(THINK_OPEN)
    reasoning = before[opened + len(THINK_OPEN):] if opened >= 0 else before
    reopened = after.find(THINK_OPEN)
    if reopened >= 0:  # a new think block after the last close never closed: cut it off
        return reasoning, after[:reopened], False
    return reasoning, after, True


def parse_answer(text) -> Answer:
    """Parse a completion (str; bytes decoded; None or other types give an empty Answer). Never raises."""
    try:
        s = _as_text(text)
        if s is None:
            return EMPTY_ANSWER
        reasoning, answer, closed = _split(s)
        codes = scan_sid(answer)
        sid = format_sid(codes) if codes else None
        return Answer(sid=sid, codes=codes if sid else (), think_closed=closed,
                      reasoning=reasoning.strip(), answer_text=answer.strip())
    except Exception:  # a reward must never crash a training step; nothing parseable means no answer
        return EMPTY_ANSWER
