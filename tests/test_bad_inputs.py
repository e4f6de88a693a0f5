"""One table of bad inputs across the entry points: each case gives an entry point something wrong (a missing
file, a malformed CSV row, a bad SID, a negative or out-of-range number, an unknown choice, contradictory
flags, a malformed environment knob) and asserts the exit status (or exception type) AND that the message
names the offending file/row/field or the flag/knob.

Entry points run in-process through their ``main(argv)`` (stderr and SystemExit captured) or the library
function ``main`` calls; only ``RL_training_script.sh`` runs as a subprocess (``DRY_RUN=1``). One tiny
release and one tiny model serve the module; a case that breaks the data breaks its own copy.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import importlib.util
import io
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from fixtures_sft import CATEGORY, write_tiny_release

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
SUFFIX = "_5_2016-10-2018-11"


@functools.cache
def script(relpath: str):
    """A script of the repository as a module (loaded once), so its ``main(argv)`` runs in-process."""
    path = REPO / relpath
    name = "bad_inputs_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses of the script look their module up there
    spec.loader.exec_module(mod)
    return mod


def call(main, argv) -> tuple:
    """``(exit status, stdout + stderr)`` of ``main(argv)``; a SystemExit with a message counts as status 1."""
    out = io.StringIO()
    with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:
            if isinstance(e.code, str):
                out.write(e.code)
                rc = 1
            else:
                rc = e.code
    return rc, out.getvalue()


def raised(fn) -> tuple:
    """``(exception type name, message)`` of ``fn()``; ``("no error", "")`` when it returns."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001  (the table names the type it expects)
        return type(e).__name__, str(e)
    return "no error", ""


@dataclass
class Ctx:
    shared: Path   # the module's tiny release (never modified)
    model: Path    # the module's tiny model folder
    tmp: Path      # this case's own folder
    monkeypatch: pytest.MonkeyPatch

    @property
    def rel(self) -> Path:
        return self.shared

    def split(self, name: str, root: Path = None) -> Path:
        return (root or self.shared) / name / f"{CATEGORY}{SUFFIX}.csv"

    @property
    def info(self) -> Path:
        return self.shared / "info" / f"{CATEGORY}{SUFFIX}.txt"

    def copy(self) -> Path:
        """A private copy of the release to break."""
        dst = self.tmp / "rel"
        if not dst.exists():
            shutil.copytree(self.shared, dst)
        return dst

    def broken(self, split: str, edit) -> Path:
        """A copy whose ``split`` CSV lines went through ``edit(lines) -> lines``; returns the copy's root."""
        root = self.copy()
        path = self.split(split, root)
        lines = path.read_text(encoding="utf-8").splitlines()
        path.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
        return root


# -- CSV edits (line 1 is the header, line 2 the first row) ----------------------------------------
def extra_short_row(lines):
    return lines + ["U99,only,three"]


def header_only(lines):
    return lines[:1]


def cell(column, value):
    """Set ``column`` of the first row (line 2) to ``value`` (or to ``value(old)`` when it is callable)."""
    def edit(lines):
        rows = list(csv.reader(lines))
        i = rows[0].index(column)
        rows[1][i] = value(rows[1][i]) if callable(value) else value
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        return buf.getvalue().splitlines()
    return edit


def target_sid(sid):
    return cell("item_sid", sid)


def drop_column(lines):
    return [",".join(line.split(",")[:-1]) if i == 0 else line for i, line in enumerate(lines)]


def bad_list_cell(lines):
    # history_item_sid of the first row: not a Python list literal
    return [lines[0], lines[1].replace("['<", "[<", 1)] + lines[2:]


# -- entry points ---------------------------------------------------------------------------------
def evaluate(*argv):
    return lambda c: call(script("evaluate.py").main, [a(c) if callable(a) else a for a in argv])


def ev_release(*extra):
    """evaluate.py on the shared release and model (errors must come before any output is written)."""
    return evaluate("--base_model", lambda c: c.model, "--data_dir", lambda c: c.rel, "--category", CATEGORY,
                    "--output_dir", lambda c: c.tmp / "out", "--device", "cpu", "--limit", "2", *extra)


def ev_split(edit, split="test"):
    """evaluate.py on a copy whose test CSV is broken by ``edit``."""
    return lambda c: call(script("evaluate.py").main, [
        "--base_model", c.model, "--test_data_path", c.split(split, c.broken(split, edit)), "--info_file", c.info,
        "--output_dir", c.tmp / "out", "--device", "cpu", "--num_beams", "2"])


def sft(*extra):
    return lambda c: call(script("sft.py").main, [
        "--base_model", c.model, "--data_dir", c.rel, "--category", CATEGORY, "--output_dir", c.tmp / "sft",
        "--log_file", c.tmp / "sft.jsonl", "--dry_run", *[a(c) if callable(a) else a for a in extra]])


def sft_broken(split, edit, *extra):
    return lambda c: call(script("sft.py").main, [
        "--base_model", c.model, "--data_dir", c.broken(split, edit), "--category", CATEGORY,
        "--output_dir", c.tmp / "sft", "--log_file", c.tmp / "sft.jsonl", "--dry_run", *extra])


def sft_file(fix, *extra):
    """sft.py on a copy where ``fix(root)`` broke a non-CSV file."""
    def run(c):
        root = c.copy()
        fix(root)
        return call(script("sft.py").main, [
            "--base_model", c.model, "--data_dir", root, "--category", CATEGORY, "--output_dir", c.tmp / "sft",
            "--log_file", c.tmp / "sft.jsonl", "--dry_run", *extra])
    return run


def prep(*extra, root=None):
    return lambda c: call(script("rl/prepare_data.py").main, [
        "--data_dir", root(c) if root else c.rel, "--category", CATEGORY, "--output_dir", c.tmp / "rl",
        *[a(c) if callable(a) else a for a in extra]])


def prep_existing(*extra, remove=()):
    def run(c):
        assert call(script("rl/prepare_data.py").main, ["--data_dir", c.rel, "--category", CATEGORY,
                                                        "--output_dir", c.tmp / "rl"])[0] == 0
        for name in remove:
            (c.tmp / "rl" / name).unlink()
        return call(script("rl/prepare_data.py").main, ["--data_dir", c.rel, "--category", CATEGORY,
                                                         "--output_dir", c.tmp / "rl", *extra])
    return run


def knobs_env(**env):
    """``knobs_from_names`` (the script's variables, as the pipeline checks the stage-3 step's) then
    ``resolved("trl")``: the checks both backends' knobs take."""
    from sidreasoner.rl.knobs import knobs_from_names
    return lambda c: raised(lambda: knobs_from_names(env).resolved("trl"))


def knobs(backend="trl", **kw):
    from sidreasoner.rl.knobs import RLKnobs
    return lambda c: raised(lambda: RLKnobs(**kw).resolved(backend))


def trl(*argv):
    return lambda c: call(script("rl/trl_grpo.py").main, list(argv))


def rl_script(**env):
    """``DRY_RUN=1 bash RL_training_script.sh`` with ``env``: the shell script's own checks and its knobs' parse."""
    def run(c):
        full = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "PROMPT_STYLE": "native",
                "LOG_FILE": str(c.tmp / "logs" / "rl.txt"), "DATA_DIR": str(c.rel), "CATEGORY": CATEGORY, **env}
        p = subprocess.run(["bash", "RL_training_script.sh"], cwd=REPO, env=full, capture_output=True, text=True,
                           timeout=60)
        return p.returncode, p.stdout + p.stderr
    return run


def scr(relpath, *argv):
    return lambda c: call(script(relpath).main, [a(c) if callable(a) else a for a in argv])


def pipeline(*argv, env=None):
    """``python -m sidreasoner.pipeline`` in-process; with ``env``: ``bash run_pipeline.sh``, which maps those
    knobs to the flags (the Python reads no environment)."""
    from sidreasoner import pipeline as pl

    def run(c):
        flags = ["--run_dir", str(c.tmp / "run"), "--results_dir", str(c.tmp / "res"), *argv]
        if env is None:
            return call(pl.main, flags)
        p = subprocess.run(["bash", "run_pipeline.sh", *flags], cwd=REPO, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHON": sys.executable, **env})
        return p.returncode, p.stdout + p.stderr
    return run


def fusion(*argv):
    from sidreasoner.eval import fusion as fu
    return lambda c: call(fu.main, [a(c) if callable(a) else a for a in argv])


def fusion_dirs(*extra):
    """fusion on two evaluation folders whose predictions.jsonl are missing."""
    return fusion("--test", lambda c: c.tmp / "think", lambda c: c.tmp / "nothink", "--weight", "0.5",
                  "--output_dir", lambda c: c.tmp / "fused", *extra)


def diag(*argv):
    from sidreasoner.rl import diagnostics
    return lambda c: call(diagnostics.main, [a(c) if callable(a) else a for a in argv])


def baseline(name, *extra, root=None):
    from sidreasoner.baselines.__main__ import main
    return lambda c: call(main, [name, "--data_dir", root(c) if root else c.rel, "--category", CATEGORY,
                                 "--output_dir", c.tmp / "bl", *extra])


def baseline_broken(name, split, edit, *extra):
    return baseline(name, *extra, root=lambda c: c.broken(split, edit))


def library(fn):
    return lambda c: raised(lambda: fn(c))


def _read_split(c, edit):
    from sidreasoner.data.formats import read_split_csv
    return read_split_csv(c.split("test", c.broken("test", edit)))


def _bad_index(root):
    (root / "index" / f"{CATEGORY}.index.json").write_text('{"I000": ["<a_1>", "<c_2>"]}', encoding="utf-8")


def _truncated_index(root):
    (root / "index" / f"{CATEGORY}.index.json").write_text('{"I000": ["<a_1>", ', encoding="utf-8")


def _no_item_json(root):
    (root / "index" / f"{CATEGORY}.item.json").unlink()


TEST_CSV = rf"test[/\\]{CATEGORY}{SUFFIX}\.csv"
TRAIN_CSV = rf"train[/\\]{CATEGORY}{SUFFIX}\.csv"

# (id, case, expected status or exception type, regex the message must match)
CASES = [
    # ---- evaluate.py: flags --------------------------------------------------------------------
    ("evaluate-no-base-model", evaluate("--data_dir", "x", "--category", CATEGORY), 2, r"--base_model is required"),
    ("evaluate-compare-without-think", ev_release("--compare_nothink", "somewhere"), 2, r"--compare_nothink.*--think"),
    ("evaluate-no-data", evaluate("--base_model", "m"), 2, r"--data_dir and --category.*--test_data_path"),
    ("evaluate-limit-zero", ev_release("--limit", "0"), 2, r"--limit must be >= 1.*got 0"),
    ("evaluate-ks-not-int", ev_release("--ks", "1,x"), 2, r"--ks expects comma-separated integers.*'1,x'"),
    ("evaluate-threads-negative", ev_release("--threads", "-1"), 2,
     r"--threads must be 0 \(torch's choice\) or >= 1, got -1"),
    ("evaluate-repetition-penalty-zero", ev_release("--repetition_penalty", "0"), 2,
     r"--repetition_penalty must be > 0"),
    ("evaluate-calibrate-negative", ev_release("--calibrate", "-1"), 2, r"--calibrate must be >= 0.*got -1"),
    ("evaluate-calibrate-with-reference", ev_release("--calibrate", "0.5", "--search", "reference"), 2,
     r"--calibrate .*needs --search ours.*--search reference"),
    ("evaluate-batch-size-zero", ev_release("--batch_size", "0"), 2, r"--batch_size must be >= 1, got 0"),
    ("evaluate-num-beams-negative", ev_release("--num_beams", "-3"), 2, r"--num_beams must be >= 1, got -3"),
    ("evaluate-think-tokens-zero", ev_release("--max_think_tokens", "0"), 2, r"--max_think_tokens must be >= 1"),
    ("evaluate-reasoning-paths-zero", ev_release("--num_reasoning_paths", "0"), 2,
     r"--num_reasoning_paths must be >= 1"),
    ("evaluate-unknown-split", ev_release("--split", "dev"), 2, r"argument --split: invalid choice: 'dev'"),
    ("evaluate-unknown-search", ev_release("--search", "greedy"), 2, r"argument --search: invalid choice"),
    ("evaluate-unknown-prompt-style", ev_release("--prompt_style", "chatty"), 2,
     r"argument --prompt_style: invalid choice"),
    ("evaluate-unknown-dtype", ev_release("--dtype", "int8"), 2, r"argument --dtype: invalid choice: 'int8'"),
    ("evaluate-batch-size-not-int", ev_release("--batch_size", "two"), 2,
     r"argument --batch_size: invalid int value: 'two'"),
    ("evaluate-shard-out-of-range", ev_release("--shard", "3/2"), 2, r"--shard must look like i/n.*'3/2'"),
    ("evaluate-shard-malformed", ev_release("--shard", "half"), 2, r"--shard must look like i/n.*'half'"),
    ("evaluate-missing-model", evaluate("--base_model", lambda c: c.tmp / "no_model", "--data_dir", lambda c: c.rel,
                                        "--category", CATEGORY, "--output_dir", lambda c: c.tmp / "out",
                                        "--device", "cpu"),
     2, r"model folder not found: .*no_model"),
    ("evaluate-missing-category-files", evaluate("--base_model", lambda c: c.model, "--data_dir", lambda c: c.rel,
                                                 "--category", "Nope", "--output_dir", lambda c: c.tmp / "out",
                                                 "--device", "cpu"), 2,
     r"test[/\\]Nope_5_2016-10-2018-11\.csv: file not found"),
    ("evaluate-csv-short-row", ev_split(extra_short_row), 2, TEST_CSV + r", line 18: row has 3 fields, header has 7"),
    ("evaluate-csv-bad-sid-level", ev_split(target_sid("<a_1><c_2>")), 2,
     TEST_CSV + r", line 2, field 'item_sid'.*expected level 'b'"),
    ("evaluate-csv-missing-column", ev_split(drop_column), 2, TEST_CSV + r", line 1: missing columns \['item_sid'\]"),
    ("evaluate-csv-header-only", ev_split(header_only), 2, TEST_CSV + r": no rows to evaluate"),
    ("evaluate-merge-empty-dir", evaluate("--merge_shards", lambda c: c.tmp), 2,
     r"expected shard files of one run in .*found counts \[\]"),
    # ---- sft.py ---------------------------------------------------------------------------------
    ("sft-no-base-model", scr("sft.py", "--category", CATEGORY), 2, r"--base_model is required"),
    ("sft-dropout-one", sft("--dropout", "1.0"), 2, r"--dropout must be in \[0, 1\), got 1\.0"),
    ("sft-label-smoothing-negative", sft("--label_smoothing", "-0.1"), 2, r"--label_smoothing must be in \[0, 1\)"),
    ("sft-num-epochs-zero", sft("--num_epochs", "0"), 2, r"--num_epochs must be > 0"),
    ("sft-max-steps-zero", sft("--max_steps", "0"), 2, r"--max_steps must be -1 \(run the epochs\) or > 0, got 0"),
    ("sft-learning-rate-negative", sft("--learning_rate=-1e-4"), 2, r"--learning_rate must be > 0"),
    ("sft-cutoff-len-tiny", sft("--cutoff_len", "4"), 2, r"--cutoff_len must be >= 8, got 4"),
    ("sft-save-total-limit-zero", sft("--save_total_limit", "0"), 2, r"--save_total_limit must be >= 1"),
    ("sft-valid-fraction-one", sft("--valid_fraction", "1"), 2, r"--valid_fraction must be in \[0, 1\)"),
    ("sft-recent-crops-negative", sft("--recent_crops", "-1"), 2, r"--recent_crops must be >= 0, got -1"),
    ("sft-example-norm-with-pack", sft("--loss_norm", "example", "--batching", "pack"), 2,
     r"--loss_norm example needs example boundaries.*--batching group or pad"),
    ("sft-history-weight-with-pack", sft("--history_loss_weight", "0.5", "--batching", "pack"), 2,
     r"--history_loss_weight other than 1 needs example boundaries"),
    ("sft-select-on-think-without-probe", sft("--select_on", "think"), 2,
     r"--select_on think needs the thinking probe: set --rank_eval_rows and --rank_eval_think_rows"),
    ("sft-rank-eval-beams-few", sft("--rank_eval_rows", "4", "--rank_eval_beams", "5"), 2,
     r"--rank_eval_beams >= 10, got 4 and 5"),
    ("sft-think-tokens-zero", sft("--rank_eval_think_tokens", "0"), 2, r"--rank_eval_think_tokens >= 1, got 0 and 0"),
    ("sft-micro-batch-zero", sft("--micro_batch_size", "0"), 2, r"--micro_batch_size \(0\) must be >= 1"),
    ("sft-unknown-stage", sft("--stage", "rl"), 2, r"argument --stage: invalid choice: 'rl'"),
    ("sft-bool-maybe", sft("--history_loss", "maybe"), 2, r"argument --history_loss: expected a boolean.*'maybe'"),
    ("sft-unknown-task", sft("--tasks", "next_sid,telepathy"), 2, r"unknown task\(s\) \['telepathy'\]"),
    ("sft-no-data-paths", scr("sft.py", "--base_model", lambda c: c.model, "--dry_run"), 2,
     r"give --category \(with --data_dir\) or --sid_index_path"),
    ("sft-missing-train-csv", sft_file(lambda r: (r / "train" / f"{CATEGORY}{SUFFIX}.csv").unlink()), 2,
     TRAIN_CSV + r": file not found \(--train_file\)"),
    ("sft-index-bad-sid", sft_file(_bad_index), 2, r"Tiny\.index\.json, field 'I000'.*expected level 'b'"),
    ("sft-index-truncated-json", sft_file(_truncated_index), 2, r"Tiny\.index\.json, line 1: invalid JSON"),
    # SFT leaves malformed rows out and says which (its documented tolerance), so the run itself succeeds
    ("sft-train-csv-short-row-left-out", sft_broken("train", extra_short_row), 0,
     TRAIN_CSV + r": 1 malformed rows left out:.*row has 3 fields, header has 7 \(e\.g\. line 66\)"),
    # ---- rl/prepare_data.py --------------------------------------------------------------------
    ("prepare-no-category", scr("rl/prepare_data.py", "--data_dir", lambda c: c.rel), 2, r"--category is required"),
    ("prepare-train-from-test", prep("--train_from", "test"), 2, r"--train_from must be train or valid, got 'test'"),
    ("prepare-max-train-rows-negative", prep("--max_train_rows", "-5"), 2, r"--max_train_rows must be >= 0.*got -5"),
    ("prepare-valid-holdout-negative", prep("--valid_holdout", "-1"), 2, r"--valid_holdout must be >= 0"),
    ("prepare-unknown-prompt-style", prep("--prompt_style", "chatty"), 2, r"unknown prompt style 'chatty'"),
    ("prepare-bool-maybe", prep("--think", "maybe"), 2, r"argument --think: expected a boolean.*'maybe'"),
    ("prepare-rows-not-int", prep("--max_valid_rows", "ten"), 2, r"argument --max_valid_rows: invalid int value"),
    ("prepare-holdout-too-large", prep("--train_from", "valid", "--valid_holdout", "16"), 2,
     r"valid[/\\]Tiny_5_2016-10-2018-11\.csv: --valid_holdout 16 must be between 1 and 15"),
    ("prepare-missing-release", prep(root=lambda c: c.tmp / "nodata"), 2,
     r"nodata[/\\]" + TRAIN_CSV + ": file not found"),
    ("prepare-output-exists", prep_existing(), 2, r"train\.parquet exists \(pass --overwrite"),
    ("prepare-output-foreign-and-partial",
     prep_existing("--if_missing", remove=("prepare_config.json", "valid.parquet")), 2, r"holds train\.parquet without prepare_config\.json and a file missing; pass --overwrite"),
    ("prepare-csv-bad-sid", prep(root=lambda c: c.broken("train", target_sid("<a_1><b_x>"))), 2,
     TRAIN_CSV + r", line 2, field 'item_sid': unexpected text '<b_x>'"),
    # ---- RL knobs (sidreasoner.rl.knobs), rl/trl_grpo.py, RL_training_script.sh -----------------
    ("knobs-ngpus-two", knobs_env(NGPUS="two"), "ValueError", r"NGPUS must be an integer, got 'two'"),
    ("knobs-think-maybe", knobs_env(THINK="maybe"), "ValueError", r"THINK must be a boolean.*'maybe'"),
    ("knobs-temperature-text", knobs_env(TEMPERATURE="hot"), "ValueError", r"TEMPERATURE must be a number, got 'hot'"),
    ("knobs-rollout-n-one", knobs_env(ROLLOUT_N="1"), "ValueError", r"ROLLOUT_N must be >= 2"),
    ("knobs-rollout-n-zero", knobs_env(ROLLOUT_N="0"), "ValueError", r"ROLLOUT_N must be >= 1, got 0"),
    ("knobs-kl-negative", knobs_env(KL_COEF="-0.1"), "ValueError", r"KL_COEF must be >= 0, got -0\.1"),
    ("knobs-lr-zero", knobs_env(LR="0"), "ValueError", r"LR must be > 0, got 0\.0"),
    ("knobs-gpu-memory-over-one", knobs_env(GPU_MEMORY_UTILIZATION="1.5"), "ValueError",
     r"GPU_MEMORY_UTILIZATION must be in \(0, 1\], got 1\.5"),
    ("knobs-reward-rank-free-rollout", knobs_env(REWARD="rank"), "ValueError", r"REWARD=rank .*set SID_ROLLOUT=beam"),
    ("knobs-beam-without-think", knobs_env(SID_ROLLOUT="beam", THINK="0"), "ValueError", r"SID_ROLLOUT=beam .*needs THINK=1"),
    ("knobs-unknown-sid-rollout", knobs_env(SID_ROLLOUT="greedy"), "ValueError",
     r"SID_ROLLOUT must be free, constrained or beam, got 'greedy'"),
    ("knobs-prompts-from-test", knobs_env(PROMPTS_FROM="test"), "ValueError", r"PROMPTS_FROM must be train or valid"),
    ("knobs-rank-eval-over-holdout", knobs_env(PROMPTS_FROM="valid", RANK_EVAL_ROWS="20", VALID_HOLDOUT="10"),
     "ValueError", r"RANK_EVAL_ROWS \(20\) exceeds VALID_HOLDOUT \(10\)"),
    ("knobs-repetition-penalty-zero", knobs_env(ROLLOUT_REPETITION_PENALTY="0"), "ValueError",
     r"ROLLOUT_REPETITION_PENALTY must be > 0"),
    ("knobs-think-budget-too-large", knobs_env(SID_ROLLOUT="beam", MAX_THINK_TOKENS="64", MAX_RESPONSE_LENGTH="64"),
     "ValueError", r"MAX_THINK_TOKENS \(64\) must leave room in MAX_RESPONSE_LENGTH \(64\)"),
    ("knobs-ppo-mini-batch-over-batch", knobs_env(PPO_MINI_BATCH_SIZE="512"), "ValueError",
     r"PPO_MINI_BATCH_SIZE \(512\) exceeds TRAIN_BATCH_SIZE \(256\)"),
    ("knobs-empty-category", knobs(category=""), "ValueError", r"CATEGORY is empty"),
    ("knobs-unknown-backend", knobs(backend="deepspeed"), "ValueError",
     r"BACKEND must be one of verl, trl.*'deepspeed'"),
    ("knobs-verl-with-answer-nll", knobs(backend="verl", sid_rollout="beam", answer_nll_weight=0.5), "ValueError",
     r"ANSWER_NLL_WEIGHT runs on BACKEND=trl only"),
    ("knobs-line-break", knobs(experiment_name="a\nb"), "ValueError", r"EXPERIMENT_NAME contains a line break"),
    ("trl-flag-ngpus-two", trl("--ngpus", "two", "--help"), 2,
     r"error: argument --ngpus: NGPUS must be an integer, got 'two'"),
    ("trl-flag-rollout-n-text", trl("--rollout_n", "many"), 2,
     r"argument --rollout_n: ROLLOUT_N must be an integer, got 'many'"),
    ("rl-script-unknown-backend", rl_script(BACKEND="deepspeed"), 2, r"BACKEND must be verl or trl, got 'deepspeed'"),
    ("rl-script-ngpus-two", rl_script(BACKEND="verl", NGPUS="two"), 2, r"NGPUS must be an integer, got 'two'"),
    # ---- scripts/ --------------------------------------------------------------------------------
    ("check-data-max-history-zero", scr("scripts/check_data.py", "--data_dir", lambda c: c.rel, "--category", CATEGORY,
                                        "--max_history", "0"), 2, r"--max_history must be >= 1"),
    ("check-data-missing-folder", scr("scripts/check_data.py", "--data_dir", lambda c: c.tmp / "nodata",
                                      "--category", CATEGORY), 2, r"data folder not found: .*nodata"),
    ("check-data-unknown-category", scr("scripts/check_data.py", "--data_dir", lambda c: c.rel, "--category", "Nope"),
     2, r"no files of category 'Nope'.*categories found: Tiny"),
    ("compare-no-runs", scr("scripts/compare_results.py"), 2, r"give run folders to compare and/or --examples"),
    ("compare-run-without-metrics", scr("scripts/compare_results.py", lambda c: c.tmp, "--output_dir",
                                        lambda c: c.tmp / "cmp"), 2, r"metrics\.json: file not found"),
    ("build-sids-missing-release", scr("scripts/build_sids.py", "--data_dir", lambda c: c.tmp / "nodata",
                                       "--category", CATEGORY, "--output_dir", lambda c: c.tmp / "o"), 2,
     r"nodata[/\\]index[/\\]Tiny\.item\.json: file not found"),
    ("build-sids-unknown-method", scr("scripts/build_sids.py", "--data_dir", "d", "--category", "c", "--output_dir",
                                      "o", "--method", "lsh"), 2, r"argument --method: invalid choice: 'lsh'"),
    ("demo-data-min-over-max", scr("scripts/make_demo_data.py", "--output_dir", lambda c: c.tmp / "demo",
                                   "--min_len", "9", "--max_len", "5"), 2,
     r"make_demo_data: error: .*min_len <= max_len.*min_len=9, max_len=5"),
    ("demo-data-exists", scr("scripts/make_demo_data.py", "--output_dir", lambda c: c.rel, "--category", CATEGORY),
     2, r"Tiny\.index\.json exists; pass --overwrite"),
    ("tiny-model-missing-release", scr("scripts/make_tiny_model.py", "--data_dir", lambda c: c.tmp / "nodata",
                                       "--category", CATEGORY, "--output_dir", lambda c: c.tmp / "m"), 2,
     r"nodata[/\\]index[/\\]Tiny\.item\.json: file not found"),
    ("tiny-model-output-not-empty", scr("scripts/make_tiny_model.py", "--data_dir", lambda c: c.rel, "--category",
                                        CATEGORY, "--output_dir", lambda c: c.model, "--hidden_size", "32"), 2,
     r"model exists and is not empty \(.*--overwrite"),
    ("synthesize-openai-without-url", scr("scripts/synthesize_corpus.py", "--data_dir", "d", "--category", "c",
                                          "--teacher", "openai"), 2, r"--teacher openai needs --teacher_url"),
    ("synthesize-timeout-zero", scr("scripts/synthesize_corpus.py", "--data_dir", "d", "--category", "c",
                                    "--timeout", "0"), 2, r"--timeout must be > 0 seconds, got 0\.0"),
    ("synthesize-concurrency-zero", scr("scripts/synthesize_corpus.py", "--data_dir", "d", "--category", "c",
                                        "--concurrency", "0"), 2, r"--concurrency must be >= 1, got 0"),
    ("merge-fsdp-output-with-all", scr("scripts/merge_fsdp_checkpoint.py", "--all", "r", "--output_dir", "o"), 2,
     r"--output_dir applies to --checkpoint only"),
    ("merge-fsdp-neither", scr("scripts/merge_fsdp_checkpoint.py"), 2, r"one of the arguments --checkpoint --all"),
    # ---- python -m sidreasoner.pipeline ----------------------------------------------------------
    ("pipeline-stages-four", pipeline("--stages", "4", "--dry_run"), 2, r"STAGES must be 1, 2 or 3.*got 4"),
    ("pipeline-unknown-baseline", pipeline("--baselines", "popularity,oracle", "--dry_run"), 2,
     r"BASELINES: unknown baseline 'oracle'"),
    ("pipeline-stages-not-int", pipeline("--stages", "three", "--dry_run"), 2,
     r"argument --stages: STAGES must be an integer, got 'three'"),
    ("pipeline-env-stages-not-int", pipeline("--dry_run", env={"STAGES": "x"}), 2,
     r"STAGES must be an integer, got 'x'"),
    ("pipeline-bool-maybe", pipeline("--tiny_untied", "maybe", "--dry_run"), 2, r"argument --tiny_untied: .*'maybe'"),
    # ---- python -m sidreasoner.eval.fusion -------------------------------------------------------
    ("fusion-no-weight-no-valid", fusion("--test", "a", "b", "--output_dir", "o"), 2,
     r"give --valid THINK_DIR NOTHINK_DIR to choose the weight, or --weight"),
    ("fusion-weight-over-one", fusion("--test", "a", "b", "--output_dir", "o", "--weight", "1.5"), 2,
     r"--weight must be in \[0, 1\] with --method fusion, got 1\.5"),
    ("fusion-best-with-weight", fusion("--test", "a", "b", "--output_dir", "o", "--method", "best", "--weight", "0.5"),
     2, r"--method best chooses every method's weight on --valid: leave out --weight"),
    ("fusion-calibrated-without-prior", fusion("--test", "a", "b", "--output_dir", "o", "--method", "calibrated",
                                               "--weight", "0.5"), 2, r"--method calibrated needs --prior"),
    ("fusion-missing-valid-predictions", fusion("--test", "a", "b", "--valid", "c", "d", "--output_dir", "o"), 2,
     r"c[/\\]predictions\.jsonl: predictions file not found"),
    ("fusion-unknown-method", fusion("--test", "a", "b", "--output_dir", "o", "--method", "vote"), 2,
     r"argument --method: invalid choice: 'vote'"),
    ("fusion-missing-predictions", fusion_dirs(), 2, r"think[/\\]predictions\.jsonl"),
    # ---- python -m sidreasoner.rl.diagnostics ----------------------------------------------------
    ("diagnostics-no-log", diag(lambda c: c.tmp), 2, r"no stage-3 log \(grpo_log\.jsonl of BACKEND=trl, or verl_log"),
    # ---- python -m sidreasoner.baselines ---------------------------------------------------------
    ("baselines-num-beams-zero", baseline("popularity", "--num_beams", "0"), 2, r"--num_beams must be >= 1, got 0"),
    ("baselines-ks-not-ints", baseline("popularity", "--ks", "1,five"), 2, r"--ks expects comma-separated integers"),
    ("baselines-unknown-baseline", baseline("oracle"), 2, r"invalid choice: 'oracle'"),
    ("baselines-missing-release", baseline("popularity", root=lambda c: c.tmp / "nodata"), 2,
     r"nodata[/\\]index[/\\]Tiny\.index\.json: file not found"),
    ("baselines-transitions-window-zero", baseline("transitions", "--window", "0"), 2,
     r"window must be 1\.\.\d+.*got 0"),
    ("baselines-sasrec-heads-indivisible", baseline("sasrec", "--hidden", "30", "--heads", "4"), 2,
     r"hidden \(30\) must be divisible by heads \(4\)"),
    ("baselines-sasrec-threads-zero", baseline("sasrec", "--threads", "0"), 2, r"--threads must be >= 1, got 0"),
    ("baselines-sasrec-dropout-one", baseline("sasrec", "--dropout", "1.0"), 2,
     r"dropout must be in \[0, 1\), got 1\.0"),
    ("baselines-unknown-test-item", baseline_broken("popularity", "test", cell("item_id", "I999")), 2,
     TEST_CSV + r", line 2, field 'item_id'.*I999"),
    ("baselines-unknown-history-item",
     baseline_broken("transitions", "test", cell("history_item_id", lambda old: re.sub(r"I\d{3}", "I998", old, 1))),
     2,
     TEST_CSV + r", line 2, field 'history_item_id'.*I998"),
    ("baselines-history-lengths-differ", baseline_broken("popularity", "test", cell("history_item_id", "['I001']")),
     2, TEST_CSV + r", line 2, field 'history_item_sid': history lengths differ: 6 titles, 1 ids, 6 SIDs"),
    ("baselines-csv-short-row", baseline_broken("popularity", "train", extra_short_row), 2,
     TRAIN_CSV + r", line 66: row has 3 fields"),
    # ---- the shared CSV reader (every entry point's split files) ---------------------------------
    ("reader-non-ascii-sid-digits", library(lambda c: _read_split(c, target_sid("<a_\u0663><b_1><c_2>"))),
     "DataError", TEST_CSV + r", line 2, field 'item_sid': unexpected text '<a_\u0663>'"),
    ("reader-bad-list-cell", library(lambda c: _read_split(c, bad_list_cell)), "DataError",
     TEST_CSV + r", line 2, field 'history_item_sid': not a Python-literal list"),
    ("reader-missing-file", library(lambda c: __import__("sidreasoner.data.formats", fromlist=["x"]).read_split_csv(
        c.tmp / "gone.csv")), "DataError", r"gone\.csv: file not found"),
]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_inputs_release")
    write_tiny_release(root)
    return root


@pytest.mark.parametrize("case, expected, pattern", [pytest.param(c, e, p, id=i) for i, c, e, p in CASES])
def test_bad_input(case, expected, pattern, release, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing an entry point writes by default lands in the checkout
    root, before = logging.getLogger(), list(logging.getLogger().handlers)
    try:
        status, message = case(Ctx(release, tiny_model_dir[0], tmp_path, monkeypatch))
    finally:  # evaluate.py adds a log-file handler to the root logger once its flags pass
        for h in [h for h in root.handlers if h not in before]:
            root.removeHandler(h)
            h.close()
    assert status == expected, f"status {status!r}, expected {expected!r}; message:\n{message}"
    assert re.search(pattern, message, re.S), f"message does not match {pattern!r}:\n{message}"
    assert "Traceback" not in message


def test_table_is_large_and_ids_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60
