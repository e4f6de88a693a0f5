"""Client for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, SGLang, llama.cpp, ...).

Standard library only (``urllib``), so the teacher needs no extra package. What it adds over a bare
POST: retries with exponential backoff and jitter on 429 / 5xx / timeouts / dropped connections /
malformed bodies (``Retry-After`` honoured), a clear error on non-retryable 4xx (bad key, unknown
model, bad request), an optional :class:`~sidreasoner.teacher.cache.ResponseCache` so reruns skip
answered requests, and :func:`map_bounded` to run many requests with bounded concurrency.

The API key is read from the environment variable named by ``api_key_env`` and only ever placed in
the ``Authorization`` header: it is not stored in configs, logs, errors or ``repr``, and a redirect to
another host never carries it. ``timeout`` bounds the whole answer, not each socket read, so a server
that trickles bytes cannot hold a request open.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence
from urllib.parse import urlparse

from .cache import ResponseCache, request_key

#: statuses worth retrying: rate limits, timeouts and server-side failures
RETRYABLE_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


class TeacherAPIError(RuntimeError):
    """A request failed for good. ``retryable`` is False for client errors (4xx) that retrying cannot fix."""

    def __init__(self, message: str, status: Optional[int] = None, retryable: bool = False):
        super().__init__(message)
        self.status, self.retryable = status, retryable


class _Transient(Exception):
    """One attempt failed in a way a retry may fix; ``retry_after`` in seconds when the server said."""

    def __init__(self, kind: str, reason: str, retry_after: Optional[float] = None):
        super().__init__(reason)
        self.kind, self.reason, self.retry_after = kind, reason, retry_after


@dataclass(frozen=True)
class ChatResult:
    text: str                     # the assistant message content ("" when the server sent none)
    finish_reason: Optional[str]  # "stop", "length" (hit max_tokens), ...
    cached: bool
    attempts: int                 # HTTP attempts made for this call (0 when served from the cache)


def chat_endpoint(base_url: str) -> str:
    """``http://host:8000/v1`` (OpenAI's base_url) or the full ``.../chat/completions`` URL -> the latter."""
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"teacher URL must be http(s)://host[:port]/..., got {base_url!r}")
    url = base_url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """``Retry-After`` header -> seconds (it is either delta-seconds or an HTTP date); None if absent/odd."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _read_message(payload: bytes) -> tuple[str, Optional[str]]:
    """Response body -> (content, finish_reason); raises _Transient when the body is not a chat completion."""
    try:
        data = json.loads(payload.decode("utf-8"))
        choice = data["choices"][0]
        content = choice["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise _Transient("malformed", f"malformed response body ({type(e).__name__}): {payload[:120]!r}") from None
    if content is not None and not isinstance(content, str):
        raise _Transient("malformed", f"message content is {type(content).__name__}, expected a string")
    return content or "", choice.get("finish_reason")


class _NoCredentialsElsewhere(urllib.request.HTTPRedirectHandler):
    """Follows redirects as urllib does, but drops ``Authorization`` when the target is another host."""

    def __init__(self, host: str):
        self.host = host

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlparse(newurl).netloc != self.host:
            for name in [k for k in new.headers if k.lower() == "authorization"]:
                del new.headers[name]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


def read_within(resp, deadline: float, chunk: int = 65536) -> bytes:
    """The response body, or ``TimeoutError`` once ``deadline`` (``time.monotonic``) has passed."""
    parts = []
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the answer was still arriving at the deadline")
        part = resp.read1(chunk)
        if not part:
            return b"".join(parts)
        parts.append(part)


class ChatClient:
    """Chat completions with retries and an optional cache. Safe to call from many threads."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 120.0, max_retries: int = 5, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, params: Optional[Mapping[str, Any]] = None,
                 cache: Optional[ResponseCache] = None, sleep: Callable[[float], None] = time.sleep,
                 seed: Optional[int] = None):
        if max_retries < 0 or timeout <= 0:
            raise ValueError(f"need max_retries >= 0 and timeout > 0, got {max_retries}, {timeout}")
        self.url, self.model = chat_endpoint(base_url), model
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) or None
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self.params = dict(params or {})
        self.cache, self._sleep = cache, sleep
        self._rng = random.Random(seed)  # jitter only; seeded so tests see reproducible delays
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        # sent, cached, retries, failed, and error_<kind> per failed attempt (http_429, timeout, ...)
        self.counts: Counter = Counter()
        self._opener = urllib.request.build_opener(_NoCredentialsElsewhere(urlparse(self.url).netloc))

    def __repr__(self) -> str:  # never shows the key
        return (f"ChatClient(url={self.url!r}, model={self.model!r}, api_key_env={self.api_key_env!r}, "
                f"key_set={self._api_key is not None})")

    @property
    def has_api_key(self) -> bool:
        return self._api_key is not None

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def backoff(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Delay before retry ``attempt`` (0-based): base * 2^attempt with jitter in [50%, 100%], capped;
        never shorter than the server's Retry-After (itself capped at backoff_max)."""
        with self._lock:
            jitter = self._rng.uniform(0.5, 1.0)
        delay = min(self.backoff_max, self.backoff_base * (2 ** attempt)) * jitter
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def complete(self, messages: Sequence[Mapping[str, str]]) -> ChatResult:
        """One chat completion; served from the cache when this exact request was answered before."""
        key = request_key(self.model, messages, self.params)
        if self.cache is None:
            return self._send(messages)
        with self._key_lock(key):  # identical requests in flight (same history, other user) are sent once
            hit = self.cache.get(key)
            if hit is not None:
                self._count("cached")
                return ChatResult(hit.response, hit.finish_reason, cached=True, attempts=0)
            res = self._send(messages)
            self.cache.put(key, res.text, res.finish_reason)
            return res

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _send(self, messages: Sequence[Mapping[str, str]]) -> ChatResult:
        """POST with retries; raises TeacherAPIError when the request fails for good."""
        body = json.dumps({"model": self.model, "messages": list(messages), **self.params}).encode("utf-8")
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
            try:
                self._count("sent")
                text, finish = self._post(body)
            except _Transient as e:
                last = e.reason
                self._count(f"error_{e.kind}")
                if attempt < self.max_retries:
                    self._sleep(self.backoff(attempt, e.retry_after))
                continue
            return ChatResult(text, finish, cached=False, attempts=attempt + 1)
        self._count("failed")
        raise TeacherAPIError(f"{self.url}: request failed after {self.max_retries + 1} attempts; last error: {last}",
                              retryable=True)

    def _post(self, body: bytes) -> tuple[str, Optional[str]]:
        """One HTTP attempt. Raises _Transient (retry) or TeacherAPIError (give up)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        deadline = time.monotonic() + self.timeout
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                payload = read_within(resp, deadline)
        except urllib.error.HTTPError as e:
            detail = _error_detail(e)
            if e.code in RETRYABLE_STATUS:
                raise _Transient(f"http_{e.code}", f"HTTP {e.code}: {detail}", parse_retry_after(e.headers.get("Retry-After"))) from None
            hint = " (check the API key in $" + self.api_key_env + ")" if e.code in (401, 403) else ""
            raise TeacherAPIError(f"{self.url}: HTTP {e.code} from the teacher{hint}: {detail}",
                                  status=e.code, retryable=False) from None
        except (socket.timeout, TimeoutError) as e:
            raise _Transient("timeout", f"timeout: no answer within {self.timeout:g} s ({e})") from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, OSError) as e:
            raise _Transient("connection", f"connection error: {type(e).__name__}: {e}") from None
        return _read_message(payload)


def _error_detail(e: urllib.error.HTTPError) -> str:
    try:
        text = e.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        text = ""
    try:
        msg = json.loads(text)["error"]["message"]
        return str(msg)[:300]
    except (ValueError, KeyError, TypeError):
        return text[:300] or (e.reason if isinstance(e.reason, str) else "")


def map_bounded(fn: Callable[[Any], Any], jobs: Iterable[Any], concurrency: int,
                on_done: Optional[Callable[[], None]] = None) -> Iterator[tuple[int, Any, Optional[BaseException]]]:
    """Run ``fn(job)`` on a thread pool with at most ``concurrency`` jobs in flight (so a kill loses at
    most that many answers; the rest are in the cache). Yields ``(index, result, error)`` in completion
    order; a :class:`TeacherAPIError` that is not retryable (bad key, bad request) stops everything and
    is raised, any other error is yielded for the caller to count."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    it = iter(enumerate(jobs))
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pending: dict[Future, int] = {}

        def fill() -> None:
            while len(pending) < concurrency:
                nxt = next(it, None)
                if nxt is None:
                    return
                pending[pool.submit(fn, nxt[1])] = nxt[0]

        fill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                idx = pending.pop(fut)
                err = fut.exception()
                if isinstance(err, TeacherAPIError) and not err.retryable:
                    for other in pending:
                        other.cancel()
                    raise err
                if on_done is not None:
                    on_done()
                yield idx, (None if err else fut.result()), err
            fill()
