"""Log files without progress-bar redraws (sidreasoner/logfilter.py): the collapse, the streaming filter the stage
scripts pipe through in place of `tee -a`, the pipeline's step logs, and the scripts using it."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidreasoner.logfilter import LineCollapser, collapse, collapse_file, final_state
from sidreasoner.pipeline_steps import Step, run_steps

REPO = Path(__file__).resolve().parents[1]
#: tqdm writing one bar to a pipe: 21 lines of output, 112 once every redraw is a line
BAR = b"".join(b"\rsteps: %3d%%|%s| %d/20" % (5 * i, b"#" * i, i) for i in range(21)) + b"\n"
TEXT = b"start\n" + BAR + b"loss 0.5\r\n" + b"\r".join([b"a", b"b", b""]) + b"\ndone"


@pytest.mark.parametrize("line, shown", [(b"plain", b"plain"), (b"\r10%\r100%", b"100%"), (b"x\r\r", b"x"),
                                         (b"", b""), (b"\r  \r", b"")])
def test_final_state(line, shown):
    assert final_state(line) == shown


def test_collapse_keeps_each_line_in_its_final_state():
    assert collapse(TEXT) == b"start\nsteps: 100%|####################| 20/20\nloss 0.5\nb\ndone"


@pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
def test_streaming_matches_collapse_for_any_chunking(size):
    sink = io.BytesIO()
    c = LineCollapser(sink)
    for i in range(0, len(TEXT), size):
        c.feed(TEXT[i:i + size])
    c.close()
    assert sink.getvalue() == collapse(TEXT) + b"\n"


def test_open_line_keeps_only_its_latest_redraw():
    c = LineCollapser(io.BytesIO())
    for i in range(10_000):
        c.feed(b"\r%d%%" % i)
    assert len(c.pending) < 16


def test_command_line_passes_through_and_appends(tmp_path):
    log = tmp_path / "logs" / "run.txt"
    log.parent.mkdir()
    log.write_bytes(b"earlier\n")
    out = subprocess.run([sys.executable, "-m", "sidreasoner.logfilter", "-a", str(log)], input=TEXT,
                         capture_output=True, cwd=REPO, check=True)
    assert out.stdout == TEXT  # the terminal still sees the live bar
    assert log.read_bytes() == b"earlier\n" + collapse(TEXT) + b"\n"
    assert log.read_bytes().count(b"\n") == 6


def test_collapse_file(tmp_path):
    log = tmp_path / "step.log"
    log.write_bytes(TEXT)
    collapse_file(log)
    assert log.read_bytes() == collapse(TEXT)
    assert not list(tmp_path.glob("*.collapsing"))


def test_pipeline_step_log_holds_final_states(tmp_path):
    done = tmp_path / "done"
    code = (f"import sys; sys.stdout.buffer.write({TEXT!r}); open({str(done)!r}, 'w').close()")
    run_steps([Step("bar", done, [sys.executable, "-c", code])], tmp_path / "logs")
    assert (tmp_path / "logs" / "bar.log").read_bytes() == collapse(TEXT)


@pytest.mark.parametrize("script", ["sft_Qwen3_enrich.sh", "sft_reasoning_activation.sh", "RL_training_script.sh"])
def test_stage_scripts_log_through_the_filter(script):
    text = (REPO / script).read_text(encoding="utf-8")
    assert "tee " not in text
    assert '| "$PYTHON" -m sidreasoner.logfilter -a "$LOG_FILE"' in text
