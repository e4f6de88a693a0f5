"""Append-only JSONL cache of teacher responses, so a killed synthesis run resumes where it stopped.

One line per completed request: ``{"key": <sha256 hex>, "response": <raw text>, "finish_reason": ...}``.
The key hashes (model, messages, params), so changing the prompt wording, the model or a sampling
parameter re-asks the teacher, while rerunning the same command skips every cached request.

A kill can leave the last line half written; it is counted (``truncated_lines``), cut off the file so
new appends start on a clean line, and reported. A malformed line anywhere else means the file was
edited or mixed up: that is a :class:`DataError` naming the line, never a silent skip.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..data.records import DataError


def request_key(model: str, messages: Sequence[Mapping[str, str]], params: Mapping[str, Any]) -> str:
    """Stable hash of one chat request (what the teacher would answer to)."""
    blob = json.dumps({"model": model, "messages": list(messages), "params": dict(params)},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedResponse:
    response: str
    finish_reason: Optional[str] = None


class ResponseCache:
    """Thread-safe append-only cache. ``get`` / ``put`` by :func:`request_key`."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, CachedResponse] = {}
        self.loaded = 0           # entries read from disk at start
        self.truncated_lines = 0  # half-written last lines cut off (a killed run)
        self.appended = 0         # entries written by this process
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        pos, line_no = 0, 0
        while pos < len(raw):
            nl = raw.find(b"\n", pos)
            end = len(raw) if nl == -1 else nl + 1
            line_no += 1
            line = raw[pos:end].strip()
            if line:
                # Only a final line without its newline can be half written (each entry is one write
                # ending in a newline); anything else that does not parse is a damaged file.
                rec = self._parse(line, line_no, tail=nl == -1)
                if rec is None:
                    self.truncated_lines += 1
                    self._repair_tail(pos)
                    return
                self._entries[rec[0]] = rec[1]
                self.loaded += 1
            pos = end
        if raw and not raw.endswith(b"\n"):
            self._repair_tail(len(raw))

    def _parse(self, line: bytes, line_no: int, tail: bool):
        try:
            rec = json.loads(line.decode("utf-8"))
            key, resp = rec["key"], rec["response"]
            if not isinstance(key, str) or not isinstance(resp, str):
                raise TypeError("'key' and 'response' must be strings")
        except (ValueError, KeyError, TypeError) as e:
            if tail:
                return None
            raise DataError(self.path, f"malformed cache line ({type(e).__name__}: {e}); "
                                       "only a last line without its newline can come from a kill", line_no) from None
        return key, CachedResponse(resp, rec.get("finish_reason"))

    def _repair_tail(self, keep: int) -> None:
        """Cut the file to ``keep`` bytes and end it with a newline, so the next append starts clean."""
        with open(self.path, "r+b") as f:
            f.truncate(keep)
            if keep:
                f.seek(keep - 1)
                if f.read(1) != b"\n":
                    f.write(b"\n")

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> Optional[CachedResponse]:
        return self._entries.get(key)

    def put(self, key: str, response: str, finish_reason: Optional[str] = None) -> None:
        line = json.dumps({"key": key, "response": response, "finish_reason": finish_reason},
                          ensure_ascii=False) + "\n"
        with self._lock:
            if key in self._entries:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write of a whole line, flushed at once: a kill loses at most this line.
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._entries[key] = CachedResponse(response, finish_reason)
            self.appended += 1

    def stats(self) -> dict:
        return {"path": str(self.path), "loaded": self.loaded, "appended": self.appended,
                "truncated_lines": self.truncated_lines}
