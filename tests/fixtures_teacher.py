"""Test helpers for the teacher: a tiny release folder and a real local chat-completions server.

``ChatServer`` listens on 127.0.0.1 (ephemeral port) and implements ``POST /v1/chat/completions``;
each request's reply comes from a responder function, so tests can serve canned answers, a tiny model,
or injected failures (HTTP errors with headers, a dropped connection, a slow answer, malformed JSON).
It records every request (body and headers) and stops when the ``with`` block ends.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional, Union

from sidreasoner.data.formats import write_index_json, write_info, write_item_json, write_split_csv
from sidreasoner.data.records import InfoRow, Item, ReleasePaths, SequenceRow
from sidreasoner.sid.spelling import find_sids, format_sid
from sidreasoner.teacher.prompts import NARRATIVE_TAG, SequenceDraft, format_sequence_answer

CATEGORY = "Tiny"

# id -> (SID, title, brand, description)
CATALOGUE = {
    "1": ("<a_1><b_1><c_1>", "Inkwell Printer, Black", "Inkwell", "['Prints documents at home.']"),
    "2": ("<a_1><b_2><c_1>", "Inkwell Ink Cartridge, Black", "Inkwell", "['Refills an Inkwell printer.']"),
    "3": ("<a_2><b_1><c_1>", "Paperline Copy Paper, 500 sheets", "Paperline", "['Bright white copy paper.']"),
    "4": ("<a_2><b_2><c_1>", "Deskmate Stapler, Red", "Deskmate", "['<b>Binds</b> pages together.']"),
    "5": ("<a_2><b_2><c_2>", "Deskmate Staples, 1000 count", "Deskmate", "[]"),
    "6": ("<a_3><b_1><c_1>", "Scribewell Ballpoint Pen, Blue", "Scribewell", "['Writes smoothly.']"),
    "7": ("<a_3><b_1><c_2>", "Scribewell Notebook, A5", "Scribewell", "['Keeps notes.']"),
    "8": ("<a_3><b_2><c_1>", "Clipwise Highlighter, Yellow", "Clipwise", ""),
}

# user -> purchase sequence; each prefix -> next item is one train row (as the release builds them)
SEQUENCES = {"u1": ["1", "2", "3", "2"], "u2": ["4", "5", "3"], "u3": ["6", "7", "8", "6"], "u4": ["1", "3", "2"]}


def sequence_rows() -> list[SequenceRow]:
    rows = []
    for user, seq in SEQUENCES.items():
        for k in range(1, len(seq)):
            hist = seq[:k]
            rows.append(SequenceRow(user, tuple(hist), tuple(CATALOGUE[i][1] for i in hist),
                                    tuple(CATALOGUE[i][0] for i in hist), seq[k], CATALOGUE[seq[k]][1],
                                    CATALOGUE[seq[k]][0]))
    return rows


def write_tiny_release(root, rows: Optional[list[SequenceRow]] = None) -> ReleasePaths:
    """A release folder (index, item.json, info, train/valid/test) for the tiny catalogue."""
    paths = ReleasePaths(root, CATEGORY)
    write_index_json(paths.index_json, {i: v[0] for i, v in CATALOGUE.items()})
    write_item_json(paths.item_json, {i: Item(i, v[1], v[3], v[2], "Office Products") for i, v in CATALOGUE.items()})
    write_info(paths.info, [InfoRow(v[0], v[1], i) for i, v in CATALOGUE.items()])
    rows = sequence_rows() if rows is None else rows
    for split in ("train", "valid", "test"):
        write_split_csv(paths.split(split), rows)
    return paths


# -- the chat server --------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int = 200
    body: Union[bytes, str, dict, None] = None  # dict -> JSON; str/bytes sent as is
    headers: dict = field(default_factory=dict)
    drop: bool = False    # close the connection without answering
    delay: float = 0.0    # seconds to wait before answering (timeouts)


def completion(content: str, finish_reason: str = "stop") -> dict:
    return {"id": "cmpl-test", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}]}


def request_id(body: dict) -> str:
    """Which logical request this is (its messages), to script per-request failures and count resends."""
    return hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest()[:16]


class ChatServer:
    def __init__(self, responder: Callable[[dict, dict], Reply]):
        self.responder = responder
        self.requests: list[dict] = []   # {"body", "headers", "path"}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body_raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/chat/completions":
                    return self._send(Reply(404, {"error": {"message": f"no route {self.path}"}}))
                body = json.loads(body_raw)
                with server.lock:
                    server.requests.append({"body": body, "headers": dict(self.headers), "path": self.path})
                reply = server.responder(body, dict(self.headers))
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                self._send(reply)

            def _send(self, reply: Reply):
                payload = reply.body
                if isinstance(payload, dict) or payload is None:
                    payload = json.dumps(payload or {}).encode()
                elif isinstance(payload, str):
                    payload = payload.encode()
                try:
                    self.send_response(reply.status)
                    for k, v in {"Content-Type": "application/json", **reply.headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "ChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def ids(self) -> list[str]:
        with self.lock:
            return [request_id(r["body"]) for r in self.requests]


# -- canned teacher answers ---------------------------------------------------------------------------
def canned_text(body: dict) -> str:
    """A valid answer built from the request: the item prompt's first SID is the item; the sequence
    prompt lists the history SIDs, then the target (its last SID mention)."""
    user = body["messages"][1]["content"]
    sids = [format_sid(m.codes) for m in find_sids(user)]
    if NARRATIVE_TAG not in user:
        return f"The item {sids[0]} is handy. Office buyers keep {sids[0]} on their desk."
    target = sids[-1]
    hist = [s for s in dict.fromkeys(sids) if s != target]
    return format_sequence_answer(SequenceDraft(
        "They bought " + ", then ".join(hist) + f", and next {target}.",
        "The history " + " and ".join(hist) + " points to a related office item: the next one."))


def canned(body: dict, headers: dict) -> Reply:
    return Reply(body=completion(canned_text(body)))


def scripted(plan: Callable[[dict, int], Optional[Reply]], fallback=canned) -> Callable[[dict, dict], Reply]:
    """Responder that asks ``plan(body, attempt)`` first (attempt = how many times this same request was
    seen before); ``None`` from the plan means answer normally."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def respond(body: dict, headers: dict) -> Reply:
        rid = request_id(body)
        with lock:
            attempt = seen.get(rid, 0)
            seen[rid] = attempt + 1
        return plan(body, attempt) or fallback(body, headers)
    return respond
