"""scripts/download_data.py and scripts/download_checkpoints.py: the offline errors (HF_HUB_OFFLINE=1, a refused
loopback endpoint), the local-folder and archive paths into the release layout with validation, the hub path
(snapshot_download replaced by a local copy), a resumed HTTP download from a loopback server, and a tiny
model folder installed as a "downloaded" checkpoint and evaluated by evaluate.py unchanged."""
from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fixtures_model import REPO_ROOT, tiny_catalogue, tiny_model_dir, write_catalogue  # noqa: F401
from sidreasoner.data.formats import write_split_csv
from sidreasoner.data.records import SPLITS, ReleasePaths, SequenceRow
from sidreasoner.release.checkpoints import DEFAULT_REPO
from sidreasoner.release.data import DRIVE_VIEW_URL

CAT = "Tiny"
REFUSED = "http://127.0.0.1:9"  # loopback discard port: connection refused, nothing leaves the machine
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
ENV.pop("HF_HUB_OFFLINE", None)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dd = load_script("download_data")
dc = load_script("download_checkpoints")


def run_script(name: str, *args, env=None, timeout=300):
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, env={**ENV, **(env or {})}, cwd=REPO_ROOT, timeout=timeout)


def layout_lines(out: Path, cat: str = CAT) -> list[str]:
    p = ReleasePaths(out, cat)
    return [f"    {p.split(s)}" for s in SPLITS] + [f"    {p.index_json}", f"    {p.item_json}", f"    {p.info}"]


def make_release(root: Path, n_rows: int = 6) -> Path:
    """A valid release folder of the tiny catalogue (the one the tiny model knows) under ``root``."""
    items, index = tiny_catalogue()
    write_catalogue(root, CAT, items, index)
    rnd, ids = random.Random(5), sorted(items)
    for split in SPLITS:
        rows = []
        for u in range(n_rows):
            hist, t = rnd.sample(ids, 3), rnd.choice(ids)
            rows.append(SequenceRow(f"u{u}", tuple(hist), tuple(items[i].title for i in hist),
                                    tuple(index.sid(i) for i in hist), t, items[t].title, index.sid(t)))
        write_split_csv(ReleasePaths(root, CAT).split(split), rows)
    return root


@pytest.fixture(autouse=True)
def online_by_default(monkeypatch):
    """In-process calls must not inherit an HF_HUB_OFFLINE=1 of the caller's shell (subprocesses set it explicitly)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return make_release(tmp_path_factory.mktemp("release") / "data" / "Amazon")


# -- download_data.py: offline -------------------------------------------------------------------------
def test_data_offline_mode_names_the_link_and_the_layout(tmp_path):
    out = tmp_path / "Amazon"
    res = run_script("download_data", "--output_dir", out, "--category", CAT, env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "download_data.py: error: cannot reach the data source (HF_HUB_OFFLINE is set).",
        f"Download the release by hand from {DRIVE_VIEW_URL}",
        "then install it with",
        f"    python scripts/download_data.py --from_local PATH_TO_DOWNLOAD --output_dir {out} --category {CAT}",
        "or put the files in this layout yourself:",
        *layout_lines(out),
        f"and check them with: python scripts/check_data.py --data_dir {out} --category {CAT}"]
    assert not (out / "index").exists()


def test_data_refused_hub_endpoint_exits_2(tmp_path):
    res = run_script("download_data", "--output_dir", tmp_path, "--category", CAT, "--repo_id", "someone/release",
                     env={"HF_ENDPOINT": REFUSED})
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert lines[0].startswith("download_data.py: error: cannot reach the data source (") and "refused" in lines[0]
    assert lines[1] == f"Download the release by hand from {REFUSED}/datasets/someone/release/tree/main"


def test_data_refused_url_exits_2(tmp_path, capsys):
    url = f"{REFUSED}/release.zip"
    assert dd.main(["--output_dir", str(tmp_path), "--category", CAT, "--url", url]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"download_data.py: error: cannot reach the data source ({url}: ")
    assert err[1] == f"Download the release by hand from {url}"


# -- download_data.py: local folder, archive, hub (replaced), HTTP resume -------------------------------
def test_data_from_local_folder_installs_and_verifies(release, tmp_path, capsys):
    out = tmp_path / "Amazon"
    assert dd.main(["--output_dir", str(out), "--category", CAT, "--from_local", str(release.parent.parent)]) == 0
    text = capsys.readouterr().out
    assert f"installed 6 file(s) of {CAT} from local folder" in text and "RESULT: OK" in text
    record = json.loads((out / f"download_{CAT}.json").read_text())
    for rel, info in record["files"].items():
        assert (out / rel).read_bytes() == (release / rel).read_bytes()
        assert info["sha256"] == hashlib.sha256((out / rel).read_bytes()).hexdigest()
    assert sorted(record["files"]) == sorted(str(p.relative_to(release)) for p in release.rglob("*") if p.is_file())
    assert dd.main(["--output_dir", str(out), "--category", CAT, "--from_local", "/nonexistent"]) == 0  # installed
    assert "(already installed; --force to fetch again)" in capsys.readouterr().out


def test_data_from_local_link_and_zip(release, tmp_path):
    linked = tmp_path / "linked"
    assert dd.main(["--output_dir", str(linked), "--category", CAT, "--from_local", str(release), "--link"]) == 0
    assert ReleasePaths(linked, CAT).info.is_symlink()
    archive = tmp_path / "release.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in release.rglob("*"):
            z.write(p, Path("SIDReasoner_data") / p.relative_to(release.parent.parent))
    out = tmp_path / "from_zip"
    assert dd.main(["--output_dir", str(out), "--category", CAT, "--from_local", str(archive)]) == 0
    assert ReleasePaths(out, CAT).split("test").read_bytes() == ReleasePaths(release, CAT).split("test").read_bytes()


def test_data_wrong_category_and_unsafe_zip(release, tmp_path, capsys):
    assert dd.main(["--output_dir", str(tmp_path / "o"), "--category", "Games", "--from_local", str(release)]) == 2
    err = capsys.readouterr().err
    assert (f"download_data.py: error: {release}: no index/Games.index.json in the download "
            f"(categories found: {CAT})") in err
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../escaped.txt", "x")
    assert dd.main(["--output_dir", str(tmp_path / "o"), "--category", CAT, "--from_local", str(evil)]) == 2
    assert "member '../escaped.txt' would be written outside" in capsys.readouterr().err
    assert not (tmp_path / "o" / ".download" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_data_with_errors_exits_1(release, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(release, bad)
    info = ReleasePaths(bad, CAT).info
    info.write_text(info.read_text().replace("\tI000\n", "\tI999\n"))
    assert dd.main(["--output_dir", str(tmp_path / "o"), "--category", CAT, "--from_local", str(bad)]) == 1
    assert "RESULT: INVALID" in capsys.readouterr().out


def test_data_hub_path_fetches_only_the_category(release, tmp_path, monkeypatch):
    """snapshot_download is replaced by a copy of a fake repo that honours allow_patterns."""
    repo = tmp_path / "repo"
    shutil.copytree(release, repo / "data" / "Amazon")
    (repo / "data" / "Amazon" / "index" / "Other.index.json").write_text("{}")
    calls = []

    def fake_snapshot_download(repo_id, *, repo_type, revision, local_dir, allow_patterns):
        calls.append((repo_id, repo_type, revision, allow_patterns))
        for p in repo.rglob("*"):
            rel = str(p.relative_to(repo))
            if p.is_file() and any(fnmatch.fnmatch(rel, pat) for pat in allow_patterns):
                (Path(local_dir) / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(p, Path(local_dir) / rel)
        return str(local_dir)

    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    out = tmp_path / "Amazon"
    assert dd.main(["--output_dir", str(out), "--category", CAT, "--repo_id", "org/data", "--revision", "v1"]) == 0
    assert calls == [("org/data", "dataset", "v1", [f"*{CAT}.*", f"*{CAT}_*"])]
    assert not list((out / ".download").rglob("Other.index.json"))
    assert sorted(p.name for p in (out / "index").iterdir()) == [f"{CAT}.index.json", f"{CAT}.item.json"]


class _RangeHandler(BaseHTTPRequestHandler):
    """Serves ``body`` with HTTP Range support (what a resumed download asks for); ``html`` mimics a web page."""

    body, html, ranges = b"", False, []

    def do_GET(self):  # noqa: N802 (http.server's name)
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        data = self.body[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Type", "text/html" if self.html else "application/zip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_data_url_download_resumes_a_partial_file(release, tmp_path, server):
    archive = tmp_path / "release.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in release.rglob("*"):
            z.write(p, p.relative_to(release))
    body = archive.read_bytes()
    _RangeHandler.body, _RangeHandler.html, _RangeHandler.ranges = body, False, []
    out = tmp_path / "Amazon"
    part = out / ".download" / "release_archive.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:1000])  # an interrupted earlier run of the same URL
    url = f"http://127.0.0.1:{server.server_address[1]}/release.zip"
    (out / ".download" / "release_archive.part.source").write_text(url)
    sha = hashlib.sha256(body).hexdigest()
    assert dd.main(["--output_dir", str(out), "--category", CAT, "--url", url, "--sha256", sha]) == 0
    assert _RangeHandler.ranges == ["bytes=1000-"]
    assert (out / ".download" / "release_archive").read_bytes() == body and not part.exists()
    assert ReleasePaths(out, CAT).info.is_file()


class _TrickleHandler(_RangeHandler):
    """The first (whole-file) request trickles, so a download can be killed half-way; ranges come at once."""

    def do_GET(self):  # noqa: N802
        if self.headers.get("Range"):
            return super().do_GET()
        type(self).ranges.append(None)
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        try:
            for i in range(0, len(self.body), 1 << 16):
                self.wfile.write(self.body[i:i + (1 << 16)])
                self.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed: what the test does
            return


def test_data_download_killed_mid_file_resumes_where_it_stopped(release, tmp_path):
    """kill -9 of download_data.py in the middle of the archive; the rerun asks only for the missing bytes
    and installs the same release (sha256 checked)."""
    import signal
    archive = tmp_path / "release.zip"
    with zipfile.ZipFile(archive, "w") as z:  # + 3 MiB of noise: the downloader writes 1 MiB at a time
        for p in release.rglob("*"):
            z.write(p, p.relative_to(release))
        z.writestr("NOISE.bin", random.Random(0).randbytes(3 << 20))
    body = archive.read_bytes()
    _TrickleHandler.body, _TrickleHandler.html, _TrickleHandler.ranges = body, False, []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _TrickleHandler)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        out, url = tmp_path / "Amazon", f"http://127.0.0.1:{srv.server_address[1]}/release.zip"
        argv = ["--output_dir", str(out), "--category", CAT, "--url", url, "--sha256", hashlib.sha256(body).hexdigest()]
        part = out / ".download" / "release_archive.part"
        proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "download_data.py"), *argv],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline and not (part.is_file() and part.stat().st_size >= 1 << 20):
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        got = part.stat().st_size
        assert 1 << 20 <= got < len(body) and not ReleasePaths(out, CAT).info.is_file()
        assert dd.main(argv) == 0
        resumed = int(_TrickleHandler.ranges[-1].split("=")[1].split("-")[0])
        assert _TrickleHandler.ranges[0] is None and resumed == got  # only the missing tail is fetched
        assert (out / ".download" / "release_archive").read_bytes() == body and ReleasePaths(out, CAT).info.is_file()
    finally:
        srv.shutdown()
        srv.server_close()


def _zip_of(release, path: Path, extra: str = "") -> bytes:
    with zipfile.ZipFile(path, "w") as z:
        for p in release.rglob("*"):
            z.write(p, p.relative_to(release))
        if extra:
            z.writestr("NOTE.txt", extra)
    return path.read_bytes()


def test_data_url_partial_of_another_url_and_force_refetch(release, tmp_path, server):
    """A .part left by another URL is not spliced into this one; --force with a new URL downloads it, and
    the record names the source that was installed, with the archive's sha256."""
    port = server.server_address[1]
    old, new = f"http://127.0.0.1:{port}/old.zip", f"http://127.0.0.1:{port}/new.zip"
    body = _zip_of(release, tmp_path / "a.zip")
    _RangeHandler.body, _RangeHandler.html, _RangeHandler.ranges = body, False, []
    out = tmp_path / "Amazon"
    cache = out / ".download"
    cache.mkdir(parents=True)
    (cache / "release_archive.part").write_bytes(b"garbage from another server" * 50)
    (cache / "release_archive.part.source").write_text("http://elsewhere/other.zip")
    assert dd.main(["--output_dir", str(out), "--category", CAT, "--url", old]) == 0
    assert _RangeHandler.ranges == [None] and (cache / "release_archive").read_bytes() == body
    assert json.loads((out / f"download_{CAT}.json").read_text())["source"] == (
        f"url {old} (sha256 {hashlib.sha256(body).hexdigest()})")
    body2 = _zip_of(release, tmp_path / "b.zip", extra="second release")
    _RangeHandler.body, _RangeHandler.ranges = body2, []
    assert dd.main(["--output_dir", str(out), "--category", CAT, "--url", new]) == 0  # installed: nothing fetched
    assert _RangeHandler.ranges == [] and json.loads((out / f"download_{CAT}.json").read_text())["source"].startswith(
        f"url {old} ")  # the record still names what is installed
    assert dd.main(["--output_dir", str(out), "--category", CAT, "--url", new, "--force"]) == 0
    assert _RangeHandler.ranges == [None] and (cache / "release_archive").read_bytes() == body2
    assert (cache / "unpacked" / "NOTE.txt").read_text() == "second release"  # unpacked again, not reused
    assert json.loads((out / f"download_{CAT}.json").read_text())["source"] == (
        f"url {new} (sha256 {hashlib.sha256(body2).hexdigest()})")


def test_data_truncated_or_unsafe_tar_is_a_message_not_a_traceback(release, tmp_path, capsys):
    import io
    import tarfile
    good = tmp_path / "r.tar"
    with tarfile.open(good, "w") as t:
        t.add(release, arcname="data")
    truncated = tmp_path / "t.tar"
    truncated.write_bytes(good.read_bytes()[:3000])
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as t:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    for archive in (truncated, evil):
        assert dd.main(["--output_dir", str(tmp_path / "o"), "--category", CAT, "--from_local", str(archive)]) == 2
        err = capsys.readouterr().err
        assert f"download_data.py: error: {archive}: " in err and "Traceback" not in err
    assert not (tmp_path / "outside.txt").exists()


def test_data_url_web_page_is_refused(tmp_path, server, capsys):
    _RangeHandler.body, _RangeHandler.html = b"<html>confirm</html>", True
    url = f"http://127.0.0.1:{server.server_address[1]}/release.zip"
    assert dd.main(["--output_dir", str(tmp_path), "--category", CAT, "--url", url]) == 2
    assert f"download_data.py: error: {url} answered with a web page, not the archive" in capsys.readouterr().err


# -- download_checkpoints.py ------------------------------------------------------------------------
def test_checkpoints_offline_and_refused(tmp_path):
    out = tmp_path / "released"
    res = run_script("download_checkpoints", "--output_dir", out, env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 2
    assert res.stderr.splitlines()[:3] == [
        "download_checkpoints.py: error: cannot reach the Hugging Face hub (HF_HUB_OFFLINE is set).",
        f"Download the checkpoints by hand from https://huggingface.co/{DEFAULT_REPO}/tree/main",
        f"  (on a machine with network: hf download {DEFAULT_REPO} --local-dir DIR)"]
    assert f"--from_local DIR --output_dir {out}" in res.stderr
    res = run_script("download_checkpoints", "--output_dir", out, "--repo_id", "org/model", "--revision", "r2",
                     env={"HF_ENDPOINT": REFUSED})
    assert res.returncode == 2 and "refused" in res.stderr.splitlines()[0]
    assert f"Download the checkpoints by hand from {REFUSED}/org/model/tree/r2" in res.stderr


def test_both_scripts_help():
    for name in ("download_data", "download_checkpoints"):
        res = run_script(name, "--help")
        assert res.returncode == 0 and "--from_local" in res.stdout and "--output_dir" in res.stdout


def test_downloaded_checkpoint_is_checked_and_evaluated_unchanged(tiny_model_dir, release, tmp_path, monkeypatch,
                                                                  capsys):
    model_dir, _ = tiny_model_dir
    out = tmp_path / "checkpoints" / "released"
    info = ReleasePaths(release, CAT).info
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert dc.main(["--from_local", str(model_dir), "--output_dir", str(out), "--info_file", str(info)]) == 0
    shown = capsys.readouterr().out
    assert f"OK   {out}  (qwen3, " in shown and "full check, SID tokens ok" in shown
    assert json.loads((out / "download_checkpoints.json").read_text())["folders"][0]["sid_tokens"] == "ok"
    ev = subprocess.run([sys.executable, str(REPO_ROOT / "evaluate.py"), "--base_model", str(out), "--data_dir",
                         str(release), "--category", CAT, "--limit", "5", "--num_beams", "3", "--threads", "1",
                         "--output_dir", str(tmp_path / "eval")], capture_output=True, text=True,
                        env={**ENV, "HF_HUB_OFFLINE": "1"}, cwd=REPO_ROOT, timeout=300)
    assert ev.returncode == 0, ev.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 5 and metrics["invalid_rate"] == 0.0


@pytest.mark.parametrize("damage, message", [
    ("shard", "1 of 2 shards missing (e.g. model-00002-of-00002.safetensors): rerun to resume the download"),
    ("sids", "checkpoint has no SID tokens"),
    ("weights", "no weights (*.safetensors or pytorch_model*.bin): incomplete download?"),
])
def test_checkpoint_checks_fail_clearly(tiny_model_dir, tmp_path, capsys, damage, message):
    model_dir, _ = tiny_model_dir
    src = tmp_path / "src"
    shutil.copytree(model_dir, src)
    argv = ["--from_local", str(src), "--output_dir", str(tmp_path / "out"), "--check", "config"]
    if damage == "shard":
        (src / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
            "a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    elif damage == "weights":
        for p in src.glob("*.safetensors"):
            p.unlink()
    else:
        other = tmp_path / "other.txt"  # a catalogue whose codes the tiny tokenizer never saw
        other.write_text("<a_200><b_200><c_200>\tOther\tX1\n")
        argv += ["--info_file", str(other)]
    assert dc.main(argv) == 1
    assert message in capsys.readouterr().out


def test_checkpoint_missing_some_sid_tokens_is_reported_and_scored_on_what_it_can_write(
        tiny_model_dir, release, tmp_path, capsys):
    """A released checkpoint whose tokenizer lacks the tokens of 3 catalogue SIDs (as the public Office index
    has for the released stage-3 model): download_checkpoints reports it (exit 0), and the evaluator scores
    on the other SIDs, counting the row whose target it cannot write as a miss."""
    from sidreasoner.data.formats import read_split_csv
    model_dir, _ = tiny_model_dir
    data = tmp_path / "data"
    shutil.copytree(release, data)
    paths = ReleasePaths(data, CAT)
    extra = ["<a_7><b_1><c_1>", "<a_7><b_1><c_2>", "<a_1><b_9><c_1>"]  # codes beyond the tiny codebooks
    with open(paths.info, "a", encoding="utf-8") as f:
        f.writelines(f"{sid}\tExtra item {k}\tX{k}\n" for k, sid in enumerate(extra))
    rows = read_split_csv(paths.split("test"))[:6]
    rows[2] = SequenceRow(rows[2].user_id, rows[2].history_item_ids, rows[2].history_titles, rows[2].history_sids,
                          "X0", "Extra item 0", extra[0])
    write_split_csv(paths.split("test"), rows)
    assert dc.main(["--from_local", str(model_dir), "--output_dir", str(tmp_path / "ck"), "--info_file",
                    str(paths.info), "--check", "config"]) == 0
    shown = capsys.readouterr().out
    assert "3 of 43 catalogue SIDs not writable (tokens missing: <a_7>, <b_9>)" in shown
    record = json.loads((tmp_path / "ck" / "download_checkpoints.json").read_text())["folders"][0]
    assert record["sid_tokens"] == "partial" and record["sid_coverage"]["inexpressible"] == 3
    ev = subprocess.run([sys.executable, str(REPO_ROOT / "evaluate.py"), "--base_model", str(tmp_path / "ck"),
                         "--data_dir", str(data), "--category", CAT, "--num_beams", "5", "--threads", "1",
                         "--output_dir", str(tmp_path / "eval")], capture_output=True, text=True,
                        env={**ENV, "HF_HUB_OFFLINE": "1"}, cwd=REPO_ROOT, timeout=300)
    assert ev.returncode == 0, ev.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert (metrics["n"], metrics["catalogue_sids_inexpressible"], metrics["targets_inexpressible"]) == (6, 3, 1)
    assert "targets_inexpressible" in ev.stdout and "cannot write 3 of the 43 catalogue SIDs" in ev.stderr
    preds = [json.loads(l) for l in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert not {s for p in preds for s in p["ranked"]} & set(extra)
