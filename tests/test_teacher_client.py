"""Teacher client against a real local HTTP server (tests/fixtures_teacher.ChatServer on 127.0.0.1):
real requests and JSON, injected failures, the answer cache, kill-and-resume of a synthesis run."""
from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest

from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from fixtures_teacher import ChatServer, Reply, canned, completion, scripted, write_tiny_release
from sidreasoner.data.corpora import read_item_enhanced, read_narratives
from sidreasoner.data.records import DataError
from sidreasoner.teacher.cache import ResponseCache, request_key
from sidreasoner.teacher.client import ChatClient, TeacherAPIError, chat_endpoint, map_bounded, parse_retry_after
from sidreasoner.teacher.synthesize import SynthesisConfig, synthesize

MSGS = [{"role": "system", "content": "s"}, {"role": "user", "content": "Item: <a_1><b_1><c_1> Printer"}]


def client_for(server, sleeps=None, **kw) -> ChatClient:
    kw.setdefault("max_retries", 5)
    kw.setdefault("timeout", 5.0)
    return ChatClient(server.url, "teacher-x", api_key_env="SIDR_TEST_KEY", backoff_base=0.01, backoff_max=2.0,
                      sleep=(sleeps.append if sleeps is not None else (lambda s: None)), seed=0, **kw)


def test_request_shape_key_header_and_no_key_leak(monkeypatch):
    monkeypatch.setenv("SIDR_TEST_KEY", "sk-secret-123")
    with ChatServer(canned) as srv:
        c = client_for(srv, params={"temperature": 0.3, "max_tokens": 64})
        res = c.complete(MSGS)
    assert res.text == "The item <a_1><b_1><c_1> is handy. Office buyers keep <a_1><b_1><c_1> on their desk."
    assert (res.finish_reason, res.cached, res.attempts) == ("stop", False, 1)
    req = srv.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["body"] == {"model": "teacher-x", "messages": MSGS, "temperature": 0.3, "max_tokens": 64}
    assert req["headers"]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in repr(c) and "key_set=True" in repr(c)


def test_no_key_sends_no_authorization(monkeypatch):
    monkeypatch.delenv("SIDR_TEST_KEY", raising=False)
    with ChatServer(canned) as srv:
        c = client_for(srv)
        c.complete(MSGS)
    assert not c.has_api_key and "Authorization" not in srv.requests[0]["headers"]


class _Recorder:
    """A bare HTTP server on 127.0.0.1: ``handler(h)`` answers each request; ``seen`` keeps the headers."""

    def __init__(self, handler):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.seen = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.seen.append(dict(self.headers))
                handler(self)

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_redirect_to_another_host_never_carries_the_key(monkeypatch):
    monkeypatch.setenv("SIDR_TEST_KEY", "sk-secret-123")

    def elsewhere(h):
        h.send_response(404)
        h.send_header("Content-Length", "0")
        h.end_headers()
    other = _Recorder(elsewhere)  # "localhost" vs "127.0.0.1": another host name for the same machine
    target = other.url.replace("127.0.0.1", "localhost") + "/v1/chat/completions"

    def redirect(h):
        h.rfile.read(int(h.headers.get("Content-Length", 0)))
        h.send_response(302)
        h.send_header("Location", target)
        h.send_header("Content-Length", "0")
        h.end_headers()
    first = _Recorder(redirect)
    try:
        with pytest.raises(TeacherAPIError):
            ChatClient(first.url + "/v1", "m", api_key_env="SIDR_TEST_KEY", max_retries=0, timeout=5).complete(MSGS)
    finally:
        first.close()
        other.close()
    assert first.seen[0]["Authorization"] == "Bearer sk-secret-123"  # the configured host gets it
    assert len(other.seen) == 1 and not any(k.lower() == "authorization" for k in other.seen[0])


def test_a_trickling_answer_times_out_as_a_whole():
    body = json.dumps(completion("slow")).encode()

    def trickle(h):
        h.rfile.read(int(h.headers.get("Content-Length", 0)))
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            for b in body:  # one byte every 50 ms: each read is quick, the whole answer takes ~5 s
                h.wfile.write(bytes([b]))
                h.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
    srv = _Recorder(trickle)
    try:
        c = ChatClient(srv.url + "/v1", "m", api_key_env="SIDR_TEST_KEY", max_retries=0, timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(TeacherAPIError, match="timeout"):
            c.complete(MSGS)
        assert time.monotonic() - t0 < 2.0
    finally:
        srv.close()


def test_retries_every_transient_failure_then_succeeds():
    failures = [Reply(500, {"error": {"message": "boom"}}), Reply(429, {}, {"Retry-After": "1"}),
                Reply(drop=True), Reply(200, "{not json"), Reply(200, {"choices": []}), Reply(503, "busy")]
    sleeps: list[float] = []
    with ChatServer(scripted(lambda body, n: failures[n] if n < len(failures) else None)) as srv:
        c = client_for(srv, sleeps, max_retries=6)
        res = c.complete(MSGS)
    assert res.attempts == 7 and srv.count() == 7 and res.text.startswith("The item <a_1><b_1><c_1>")
    assert c.counts == {"sent": 7, "retries": 6, "error_http_500": 1, "error_http_429": 1, "error_connection": 1,
                        "error_malformed": 2, "error_http_503": 1}
    # exponential backoff with jitter in [50%, 100%] of 0.01 * 2^attempt; Retry-After: 1 wins on the 429
    assert sleeps[1] == 1.0
    for attempt in (0, 2, 3, 4, 5):
        assert 0.005 * 2 ** attempt <= sleeps[attempt] <= 0.01 * 2 ** attempt


def test_timeout_is_retried():
    with ChatServer(scripted(lambda body, n: Reply(body=completion("late"), delay=0.6) if n == 0 else None)) as srv:
        c = client_for(srv, timeout=0.2)
        res = c.complete(MSGS)
    assert res.attempts == 2 and c.counts["error_timeout"] == 1


def test_gives_up_after_max_retries_with_the_last_error():
    with ChatServer(lambda body, h: Reply(502, {"error": {"message": "bad gateway"}})) as srv:
        c = client_for(srv, max_retries=2)
        with pytest.raises(TeacherAPIError, match=re.escape(
                f"{srv.url}/chat/completions: request failed after 3 attempts; last error: HTTP 502: bad gateway")) as e:
            c.complete(MSGS)
    assert e.value.retryable and srv.count() == 3 and c.counts["failed"] == 1


def test_non_retryable_4xx_fails_at_once_and_names_the_key_variable(monkeypatch):
    monkeypatch.setenv("SIDR_TEST_KEY", "sk-wrong")
    with ChatServer(lambda body, h: Reply(401, {"error": {"message": "invalid api key"}})) as srv:
        with pytest.raises(TeacherAPIError, match=re.escape(
                f"{srv.url}/chat/completions: HTTP 401 from the teacher (check the API key in $SIDR_TEST_KEY): "
                "invalid api key")) as e:
            client_for(srv).complete(MSGS)
    assert (e.value.status, e.value.retryable, srv.count()) == (401, False, 1)
    assert "sk-wrong" not in str(e.value)


def test_connection_refused_is_retried_then_reported():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c = ChatClient(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, timeout=2, sleep=lambda s: None)
    with pytest.raises(TeacherAPIError, match="request failed after 2 attempts; last error: connection error"):
        c.complete(MSGS)


@pytest.mark.parametrize("url, want", [
    ("http://h:1/v1", "http://h:1/v1/chat/completions"), ("http://h:1/v1/", "http://h:1/v1/chat/completions"),
    ("https://api.x.com/v1/chat/completions", "https://api.x.com/v1/chat/completions")])
def test_chat_endpoint(url, want):
    assert chat_endpoint(url) == want


def test_chat_endpoint_rejects_non_http():
    with pytest.raises(ValueError, match=re.escape("teacher URL must be http(s)://host[:port]/..., got 'localhost:8000'")):
        chat_endpoint("localhost:8000")


@pytest.mark.parametrize("value, want", [("3", 3.0), ("0.5", 0.5), ("-2", 0.0), (None, None), ("soon", None),
                                         ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_parse_retry_after(value, want):
    assert parse_retry_after(value) == want


# -- cache ---------------------------------------------------------------------------------------------
def test_cache_round_trip_and_key_depends_on_model_messages_params(tmp_path):
    k = request_key("m", MSGS, {"temperature": 0.5})
    assert k != request_key("m2", MSGS, {"temperature": 0.5}) != request_key("m", MSGS, {"temperature": 0.6})
    assert k == request_key("m", [dict(m) for m in MSGS], {"temperature": 0.5})
    cache = ResponseCache(tmp_path / "c.jsonl")
    cache.put(k, "answer é", "stop")
    back = ResponseCache(tmp_path / "c.jsonl")
    assert (back.get(k).response, back.get(k).finish_reason, back.loaded, back.truncated_lines) == ("answer é", "stop", 1, 0)


def test_cache_cuts_a_half_written_last_line(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = ResponseCache(path)
    cache.put("k1", "a")
    cache.put("k2", "b")
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"key": "k3", "respo')  # killed mid-write
    back = ResponseCache(path)
    assert (len(back), back.truncated_lines) == (2, 1)
    back.put("k4", "d")
    again = ResponseCache(path)
    assert (sorted(again._entries), again.truncated_lines) == (["k1", "k2", "k4"], 0)


def test_cache_malformed_middle_line_is_an_error(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"key": "k1", "response": "a"}\nnot json\n{"key": "k2", "response": "b"}\n')
    with pytest.raises(DataError, match=re.escape(
            f"{path}, line 2: malformed cache line (JSONDecodeError: Expecting value: line 1 column 1 (char 0)); "
            "only a last line without its newline can come from a kill")):
        ResponseCache(path)


def test_cached_request_is_not_resent(tmp_path):
    with ChatServer(canned) as srv:
        c = client_for(srv, cache=ResponseCache(tmp_path / "c.jsonl"))
        first, second = c.complete(MSGS), c.complete(MSGS)
    assert srv.count() == 1 and (first.cached, second.cached) == (False, True) and first.text == second.text


def test_identical_requests_in_flight_are_sent_once(tmp_path):
    with ChatServer(lambda b, h: Reply(body=completion("same"), delay=0.1)) as srv:
        c = client_for(srv, cache=ResponseCache(tmp_path / "c.jsonl"))
        results = [r for _, r, _ in map_bounded(c.complete, [MSGS] * 4, 4)]
    assert srv.count() == 1 and sorted(r.cached for r in results) == [False, True, True, True]


# -- bounded concurrency -------------------------------------------------------------------------------
def test_map_bounded_keeps_at_most_n_in_flight_and_yields_errors():
    active, peak, lock = [0], [0], threading.Lock()

    def job(x):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        if x == 3:
            raise TeacherAPIError("gave up", retryable=True)
        return x * 10

    out = {i: (r, e) for i, r, e in map_bounded(job, range(12), 3)}
    assert peak[0] <= 3 and sorted(out) == list(range(12))
    assert out[5] == (50, None) and out[3][0] is None and str(out[3][1]) == "gave up"


def test_map_bounded_stops_on_non_retryable_error():
    def job(x):
        if x == 1:
            raise TeacherAPIError("HTTP 401", status=401, retryable=False)
        return x
    with pytest.raises(TeacherAPIError, match="HTTP 401"):
        list(map_bounded(job, range(100), 2))


# -- synthesis through the server ----------------------------------------------------------------------
def _cfg(tmp_path, **kw) -> SynthesisConfig:
    return SynthesisConfig(str(tmp_path / "data"), "Tiny", output_dir=str(tmp_path / "out"), concurrency=3, **kw)


def _bad_answers(body: dict, attempt: int):
    """Per request: a 500 first, then for some requests a bad answer the pipeline must catch."""
    user = body["messages"][1]["content"]
    if attempt == 0:
        return Reply(500, {"error": {"message": "overloaded"}})
    if user.startswith("Item: <a_1><b_2><c_1>") and len(body["messages"]) == 2:
        return Reply(body=completion("Item <a_1><b_2><c_1> fits <a_9><b_9><c_9> printers."))  # unknown SID
    if user.startswith("Item: <a_2><b_1><c_1>"):
        return Reply(body=completion("<think>plan: mention <a_7><b_7><c_7></think>Paper <a_2><b_1><c_1> for all."))
    if "1. <a_2><b_2><c_1>" in user and len(body["messages"]) == 2:  # u2's rows: quote the target in the reasoning
        return Reply(body=completion("<narrative>Bought <a_2><b_2><c_1>.</narrative>"
                                     "<reasoning_path>Stapler <a_2><b_2><c_1> needs <a_2><b_2><c_2>.</reasoning_path>"))
    return None


def test_synthesis_survives_failures_and_checks_answers(tmp_path):
    write_tiny_release(tmp_path / "data")
    with ChatServer(scripted(_bad_answers)) as srv:
        c = client_for(srv, cache=ResponseCache(tmp_path / "cache.jsonl"))
        stats = synthesize(_cfg(tmp_path), c)
    items, seqs = stats["items"], stats["sequences"]
    assert (items["written"], items["rejected"], seqs["written"], seqs["rejected"]) == (8, 0, 10, 0)
    assert items["counts"] == {"think_removed": 1, "repaired": 1, "repair_requests": 1}
    assert seqs["counts"]["target_sid_redacted"] == 1  # u2's row 4 -> 5 quoted its target once
    enhanced = {r.item_id: r.text for r in read_item_enhanced(tmp_path / "out" / "Tiny.item_enhanced_v2.json").records}
    assert enhanced["3"] == "Paper <a_2><b_1><c_1> for all."          # the teacher's <think> is gone
    assert enhanced["2"].startswith("The item <a_1><b_2><c_1>")          # repaired answer, not the unknown SID
    narr = read_narratives(tmp_path / "out" / "Tiny.integrated_narrative.csv").records
    assert all(r.item_sid not in r.reasoning_path for r in narr)
    assert [r.reasoning_path for r in narr if r.extra["user_id"] == "u2"] == [
        'Stapler <a_2><b_2><c_1> needs "Deskmate Staples".', "Stapler <a_2><b_2><c_1> needs <a_2><b_2><c_2>."]
    # one 500 per distinct request, then the answer; the repair turn is a new request (500 first too)
    assert stats["requests"]["error_http_500"] == stats["requests"]["sent"] - stats["requests"]["error_http_500"]


def test_empty_and_overlong_answers_are_rejected_counted_and_shown(tmp_path):
    write_tiny_release(tmp_path / "data")
    answers = {"Item: <a_1><b_1><c_1>": "<think>all thought, no answer</think>",
               "Item: <a_1><b_2><c_1>": "Ink <a_1><b_2><c_1> " + "very " * 700}
    with ChatServer(lambda b, h: Reply(body=completion(answers.get(b["messages"][1]["content"][:21], "x")))) as srv:
        stats = synthesize(_cfg(tmp_path, max_items=2, max_sequences=0, repair_rounds=1), client_for(srv))
    assert stats["items"]["rejected_by_reason"] == {"empty": 1, "overlong": 1} and stats["items"]["written"] == 0
    assert stats["items"]["examples"] == [
        {"where": "item 1", "problems": ["empty: no text"], "answer": "<think>all thought, no answer</think>"},
        {"where": "item 2", "problems": ["overlong: 702 words > 600"], "answer": ("Ink <a_1><b_2><c_1> " + "very " * 700)[:200]}]
    assert stats["items"]["counts"] == {"think_removed": 1, "repair_requests": 2} and srv.count() == 4


def test_kill_and_resume_sends_only_missing_requests(tmp_path):
    write_tiny_release(tmp_path / "data")
    cache_path = tmp_path / "cache.jsonl"
    with ChatServer(canned) as srv:
        synthesize(_cfg(tmp_path, max_items=3, max_sequences=4), client_for(srv, cache=ResponseCache(cache_path)))
        first = srv.ids()
        assert len(first) == 7
        with open(cache_path, "a", encoding="utf-8") as f:
            f.write('{"key": "half-writ')  # the run was killed while appending
        stats = synthesize(_cfg(tmp_path), client_for(srv, cache=ResponseCache(cache_path)))
        second = srv.ids()[7:]
        again = synthesize(_cfg(tmp_path), client_for(srv, cache=ResponseCache(cache_path)))
    assert len(second) == 8 + 10 - 7 and not set(first) & set(second)
    assert stats["cache"] == {"path": str(cache_path), "loaded": 7, "appended": 11, "truncated_lines": 1}
    assert stats["requests"] == {"cached": 7, "sent": 11}
    assert again["requests"] == {"cached": 18} and srv.count() == 18
    assert (again["items"]["written"], again["sequences"]["written"]) == (8, 10)


def test_every_request_failing_is_counted_not_fatal(tmp_path):
    write_tiny_release(tmp_path / "data")
    with ChatServer(lambda b, h: Reply(503, "down")) as srv:
        stats = synthesize(_cfg(tmp_path, max_items=2, max_sequences=1), client_for(srv, max_retries=1))
    assert stats["items"]["rejected_by_reason"] == {"failed": 2} and stats["sequences"]["rejected_by_reason"] == {"failed": 1}
    assert srv.count() == 6 and stats["items"]["examples"][0]["problems"][0].startswith("failed: ")
    assert stats["empty"] == ["item_enhanced", "narrative"]  # nothing accepted: no (empty) corpus files
    assert not (tmp_path / "out" / "Tiny.item_enhanced_v2.json").exists()
    assert not (tmp_path / "out" / "Tiny.integrated_narrative.csv").exists()


# -- a tiny model behind the same chat API ---------------------------------------------------------------
def model_responder(path):
    """Serve greedy generations of the tiny Qwen3 at ``path`` (the request's max_tokens, default 8)."""
    import torch

    from sidreasoner.model.chat import stop_token_id
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    model, tok = load_model_and_tokenizer(path)
    model.eval()
    lock = threading.Lock()

    def generate(messages, max_tokens):
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
        ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
        with lock, torch.no_grad():
            out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, eos_token_id=stop_token_id(tok),
                                 pad_token_id=tok.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        finish = "stop" if new and new[-1] == stop_token_id(tok) else "length"
        return tok.decode(new, skip_special_tokens=True), finish

    def respond(body, headers):
        return Reply(body=completion(*generate(body["messages"], int(body.get("max_tokens", 8)))))
    return respond, generate


def test_tiny_model_served_through_the_chat_api(tiny_model_dir, tmp_path):
    respond, generate = model_responder(tiny_model_dir[0])
    write_tiny_release(tmp_path / "data")
    with ChatServer(respond) as srv:
        c = client_for(srv, params={"max_tokens": 6, "temperature": 0.0})
        res = c.complete(MSGS)
        stats = synthesize(_cfg(tmp_path, max_items=2, max_sequences=1, repair_rounds=0), c)
    assert (res.text, res.finish_reason) == generate(MSGS, 6) and len(res.text) > 0
    # a random-weight model cannot follow the rules: every answer is checked, rejected and counted
    assert srv.count() == 4 and stats["requests"] == {"sent": 4}
    for part, n in (("items", 2), ("sequences", 1)):
        assert stats[part]["requested"] == n == stats[part]["written"] + stats[part]["rejected"]
        assert sum(stats[part]["rejected_by_reason"].values()) >= stats[part]["rejected"]
    enhanced = tmp_path / "out" / "Tiny.item_enhanced_v2.json"
    if stats["items"]["written"]:
        assert len(read_item_enhanced(enhanced).records) == stats["items"]["written"]
    else:  # nothing accepted: no empty corpus file at the final path
        assert "item_enhanced" in stats["empty"] and not enhanced.exists()


# -- the script against the server ------------------------------------------------------------------------
def _script(*args, env_key="sk-script-secret"):
    import os
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "scripts" / "synthesize_corpus.py"
    env = {**os.environ, "SIDR_TEST_KEY": env_key}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=120)


def test_script_openai_teacher_retries_and_writes_everything(tmp_path):
    write_tiny_release(tmp_path / "data")
    flaky = scripted(lambda body, n: Reply(429, {}, {"Retry-After": "0"}) if n == 0 else None)
    with ChatServer(flaky) as srv:
        res = _script("--data_dir", str(tmp_path / "data"), "--category", "Tiny", "--output_dir", str(tmp_path / "out"),
                      "--teacher", "openai", "--teacher_url", srv.url, "--teacher_model", "m",
                      "--api_key_env", "SIDR_TEST_KEY", "--backoff_base", "0.01", "--concurrency", "4", "--no_progress")
    assert res.returncode == 0, res.stderr
    assert "items: 8/8 written, 0 rejected" in res.stdout and "sequences: 10/10 written, 0 rejected" in res.stdout
    assert srv.count() == 36 and all(r["headers"]["Authorization"] == "Bearer sk-script-secret" for r in srv.requests)
    written = "".join(p.read_text() for p in (tmp_path / "out").iterdir()) + res.stdout + res.stderr
    assert "sk-script-secret" not in written
    stats = json.loads((tmp_path / "out" / "Tiny.synthesis_stats.json").read_text())
    assert stats["requests"] == {"sent": 36, "retries": 18, "error_http_429": 18}
    assert stats["cache"]["appended"] == 18 and (tmp_path / "out" / "Tiny.teacher_cache.jsonl").is_file()


def test_script_exit_status_when_requests_fail_and_resume(tmp_path):
    write_tiny_release(tmp_path / "data")
    args = ("--data_dir", str(tmp_path / "data"), "--category", "Tiny", "--output_dir", str(tmp_path / "out"),
            "--teacher", "openai", "--teacher_model", "m", "--max_retries", "0", "--max_items", "2",
            "--max_sequences", "1", "--no_progress")
    down = scripted(lambda body, n: Reply(500, "down") if "<a_1><b_2><c_1>" in body["messages"][1]["content"][:30]
                    else None)
    with ChatServer(down) as srv:
        res = _script(*args, "--teacher_url", srv.url)
    assert res.returncode == 1
    assert "1 jobs failed after all retries; rerun the same command to resume from the cache" in res.stderr
    with ChatServer(canned) as srv:
        res = _script(*args, "--teacher_url", srv.url)
    assert res.returncode == 0 and srv.count() == 1  # only the failed item is asked again
