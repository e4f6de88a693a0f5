"""Running the pipeline's steps: each a subprocess with its own log, skipped when its output exists,
timed, and watched (a line a minute while it runs). A finished step's log holds each progress bar's final
state only (``sidreasoner.logfilter``). A step is its command line: its settings are its flags, and it runs
with the driver's environment as it is (no knob travels in an environment variable)."""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .logfilter import collapse, collapse_file
from .pipeline_report import record_time

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Step:
    name: str
    done: Path                     # what it makes: skipped when this exists, failed when missing after the run
    cmd: list                      # the program and its flags
    skip_when: Optional[Path] = None  # skipped when this exists instead (default: done)


def _wait(proc: subprocess.Popen, seconds: float):
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def last_line(log: Path, width: int = 100) -> str:
    """The log's last non-empty line, as a terminal would show it (tqdm's carriage-return redraws: the
    last one), cut to ``width`` characters."""
    try:
        with open(log, "rb") as f:
            f.seek(max(f.seek(0, 2) - 4096, 0))
            tail = f.read()
    except OSError:
        return "(no log yet)"
    lines = [ln.strip() for ln in collapse(tail).decode("utf-8", errors="replace").split("\n") if ln.strip()]
    return (lines[-1][:width] if lines else "(log empty)")


def run_steps(steps: list[Step], log_dir: Path, times_file: Optional[Path] = None,
              heartbeat_s: float = 60.0) -> list[dict]:
    """Run the steps in order, skipping finished ones; stop at the first failure (its log is named).
    Each finished step's seconds go into ``times_file`` at once, so a killed run keeps the times; while a
    step runs, a line every ``heartbeat_s`` seconds gives its elapsed time and last log line."""
    log_dir.mkdir(parents=True, exist_ok=True)
    timings = []
    for i, st in enumerate(steps, 1):
        head = f"[{i}/{len(steps)}] {st.name}"
        if (st.skip_when or st.done).exists():
            print(f"{head}: done already ({st.skip_when or st.done}), skipped", flush=True)
            timings.append({"step": st.name, "seconds": None, "status": "skipped"})
            continue
        log = log_dir / f"{st.name}.log"
        print(f"{head}: running (log {log})", flush=True)
        t0 = time.time()
        with open(log, "w") as f:
            proc = subprocess.Popen(st.cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
            try:
                while _wait(proc, heartbeat_s) is None:  # a line a minute: the step is alive, and where it is
                    print(f"{head}: {time.time() - t0:.0f} s, {last_line(log)}", flush=True)
            except BaseException:  # Ctrl-C or a kill of the driver: the step must not run on unseen
                proc.kill()
                proc.wait()
                raise
            finally:
                collapse_file(log)  # the file keeps each progress bar's final state, not every redraw
        secs = round(time.time() - t0, 1)
        if proc.returncode != 0 or not st.done.exists():
            tail = "".join(open(log, errors="replace").readlines()[-15:])
            raise SystemExit(f"{head} failed (exit {proc.returncode}) after {secs} s; last lines of {log}:\n{tail}")
        print(f"{head}: {secs} s", flush=True)
        if times_file is not None:
            record_time(times_file, st.name, secs)
        timings.append({"step": st.name, "seconds": secs, "status": "ran"})
    return timings


