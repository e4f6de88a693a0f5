"""Optional general chat / reasoning data (``--general_reasoning_path``), mixed into stage 1 so the
model keeps its general abilities.

Accepted files: JSONL (one object per line with a ``messages`` field, or a bare message list), a
JSON array of such objects, parquet, a Hugging Face ``.arrow`` file, or a ``save_to_disk`` folder.
``messages`` is a list of ``{"role", "content"}`` (content a string or a list of ``{"text": ...}``
parts); a JSON or Python-literal *string* of that list is accepted too (the reference's files store
it that way; parsed with ``json``/``ast.literal_eval``, never ``eval``). The last assistant turn is
the target; a ``<think>...</think>`` block in it (or a ``reasoning_content`` field) becomes the
example's reasoning, so the rendering matches Qwen3's thinking format.
"""
from __future__ import annotations

import ast
import json
import random
from pathlib import Path
from typing import Iterator, Optional

from ..data.records import DataError
from .base import ChatExample, SkipLog, Task, TaskData, TaskSplit, held_out

ROLES = ("system", "user", "assistant")


def _is_json_text(path: Path) -> bool:
    """JSON text whatever the suffix (the reference's ``sampled_data.arrow`` is JSON lines)."""
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    return head[:1] in (b"{", b"[")


def _load_rows(path: Path) -> Iterator[tuple[str, object]]:
    """(where, raw row) pairs; raw rows are dicts or lists as stored."""
    if path.is_dir() or (path.suffix in (".arrow", ".parquet") and not _is_json_text(path)):
        import datasets
        try:
            if path.is_dir():
                ds = datasets.load_from_disk(str(path))
            elif path.suffix == ".arrow":
                ds = datasets.Dataset.from_file(str(path))
            else:
                ds = datasets.Dataset.from_parquet(str(path))
        except Exception as e:  # datasets raises many types; say which file and why
            raise DataError(path, f"cannot read as a Hugging Face dataset: {type(e).__name__}: {e}") from None
        for i, rec in enumerate(ds):
            yield f"row {i + 1}", rec
        return
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):  # one JSON array, or JSON lines that are each a message list
        try:
            rows = json.loads(text)
        except json.JSONDecodeError:
            rows = None
        if rows is not None:
            for i, rec in enumerate(rows):
                yield f"item {i + 1}", rec
            return
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield f"line {n}", json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, f"invalid JSON: {e.msg}", n) from None


def _content(value) -> Optional[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # multimodal-style parts: keep the text parts
        parts = [p.get("text") for p in value if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return None


def _messages(raw) -> list:
    msgs = raw.get("messages", raw.get("conversations")) if isinstance(raw, dict) else raw
    if isinstance(msgs, str):
        try:
            msgs = json.loads(msgs)
        except json.JSONDecodeError:
            msgs = ast.literal_eval(msgs)  # ValueError/SyntaxError handled by the caller
    if not isinstance(msgs, list):
        raise ValueError("no 'messages' list")
    return msgs


def split_think(text: str) -> tuple[Optional[str], str]:
    """``"<think>\\nR\\n</think>\\n\\nA"`` -> ``("R", "A")``; text without ``</think>`` -> ``(None, text)``."""
    if "</think>" not in text:
        return None, text.strip()
    head, answer = text.rsplit("</think>", 1)
    return head.split("<think>", 1)[-1].strip(), answer.strip()


def to_example(raw, source: str, task: str = "general") -> tuple[Optional[ChatExample], str]:
    """One stored row -> (example, "") or (None, why it cannot be used)."""
    try:
        msgs = _messages(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
        return None, f"unreadable messages ({type(e).__name__})"
    turns, reasoning_field = [], None
    for m in msgs:
        role = m.get("role", m.get("from")) if isinstance(m, dict) else None
        text = _content(m.get("content", m.get("value"))) if isinstance(m, dict) else None
        if role not in ROLES or text is None:
            return None, f"unsupported message (role {role!r})"
        turns.append((role, text))
        reasoning_field = m.get("reasoning_content") if role == "assistant" else reasoning_field
    last = max((i for i, (r, _) in enumerate(turns) if r == "assistant"), default=None)
    if last is None or not any(r == "user" for r, _ in turns[:last]):
        return None, "no user turn followed by an assistant turn"
    reasoning, answer = split_think(turns[last][1])
    if reasoning is None and isinstance(reasoning_field, str) and reasoning_field.strip():
        reasoning = reasoning_field.strip()
    if not answer:
        return None, "empty assistant answer"
    return ChatExample(task, tuple(turns[:last]), answer, reasoning, source), ""


class GeneralChat(Task):
    name = "general"
    description = "general chat / reasoning data (messages), sampled to a cap"

    def __init__(self, max_samples: int = 60000, valid_fraction: float = 0.01):
        self.max_samples, self.valid_fraction = max_samples, valid_fraction

    def build(self, data: TaskData) -> TaskSplit:
        if not data.general_path:
            return TaskSplit([], [], note="off: no --general_reasoning_path")
        path = Path(data.general_path)
        if not path.exists():
            raise DataError(path, "file not found (--general_reasoning_path)")
        rows, note = list(_load_rows(path)), ""
        if self.max_samples and len(rows) > self.max_samples:
            note = f"sampled {self.max_samples} of {len(rows)} rows"
            rows = random.Random(data.seed).sample(rows, self.max_samples)
        skips, train, valid = SkipLog(), [], []
        for where, raw in rows:
            source = f"{path.name} {where}"
            ex, why = to_example(raw, source, self.name)
            if ex is None:
                skips.skip(why, source)
            else:
                (valid if held_out(where, self.valid_fraction, data.seed) else train).append(ex)
        if rows and not (train or valid):
            raise DataError(path, f"no usable chat rows among {len(rows)}: " + "; ".join(skips.lines()[:3]))
        return TaskSplit(train, valid, skips, note)
