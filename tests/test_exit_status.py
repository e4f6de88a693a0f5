"""The exit-status table of README.md (Troubleshooting, "Exit status"), checked against the code.

The table is parsed from the README: every entry point it names runs here once with one bad flag (or bad knob),
and must exit with the status of the column whose text says "flag" (2 for every entry point today). Every entry
point of the repository (a script with ``if __name__ == "__main__"``, a ``python -m`` module, a stage shell
script) must be in the table and here, so a new one, a renamed one or a changed column fails this test.
Flags are checked when parsed, before any data is read, so no case needs data or a model.
"""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import pytest

from test_bad_inputs import REPO, call, script

pytestmark = pytest.mark.usefixtures("one_thread")


def py(relpath, *argv):
    """A script of the repository, in-process through its ``main(argv)``."""
    return relpath, lambda tmp: call(script(relpath).main, list(argv))


def mod(name, *argv, env=None):
    """``python -m NAME``, in-process through its ``main(argv)`` (``env``: knobs set for the call)."""
    def run(tmp):
        old = {k: os.environ.get(k) for k in env or {}}
        os.environ.update(env or {})
        try:
            return call(importlib.import_module(name).main, list(argv))
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return name, run


def sh(name, *argv, **env):
    """A shell script of the repository, as a subprocess (its own knobs are checked before Python starts)."""
    def run(tmp):
        full = {**os.environ, "PYTHON": sys.executable, "LOG_FILE": str(tmp / "log.txt"), "DRY_RUN": "1",
                "RUN_DIR": str(tmp / "run"), "RESULTS_DIR": str(tmp / "res"), **env}
        p = subprocess.run(["bash", name, *argv], cwd=REPO, env=full, capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout + p.stderr
    return name, run


# README token -> [(entry point: path or module, run(tmp) -> (status, output))]; one bad flag or knob each
CASES = {
    "evaluate.py": [py("evaluate.py", "--base_model", "m", "--data_dir", "d", "--category", "c", "--batch_size", "0")],
    "sft.py": [py("sft.py", "--base_model", "m", "--data_dir", "d", "--category", "c", "--learning_rate", "0",
                  "--dry_run")],
    "rl/trl_grpo.py": [py("rl/trl_grpo.py", "--temperature", "0")],
    "rl/prepare_data.py": [py("rl/prepare_data.py", "--data_dir", "d", "--category", "c", "--output_dir", "o",
                              "--seed", "-1")],
    "scripts/build_sids.py": [py("scripts/build_sids.py", "--data_dir", "d", "--category", "c", "--output_dir", "o",
                                 "--codebook_size", "1")],
    "scripts/compare_results.py": [py("scripts/compare_results.py", "--examples", "r", "--n", "0")],
    "scripts/make_tiny_model.py": [py("scripts/make_tiny_model.py", "--data_dir", "d", "--category", "c",
                                      "--output_dir", "o", "--num_heads", "0")],
    "scripts/merge_fsdp_checkpoint.py": [py("scripts/merge_fsdp_checkpoint.py", "--all", "r", "--output_dir", "o")],
    "python -m sidreasoner.baselines": [mod("sidreasoner.baselines.__main__", "popularity", "--data_dir", "d",
                                            "--category", "c", "--output_dir", "o", "--ks", "0")],
    ".recommend": [mod("sidreasoner.recommend", "--model", "m", "--data_dir", "d", "--category", "c", "--history",
                       "I1", "--num_beams", "0")],
    ".eval.metrics": [mod("sidreasoner.eval.metrics", "p.jsonl", "--num_beams", "0")],
    ".eval.fusion": [mod("sidreasoner.eval.fusion", "--test", "a", "b", "--output_dir", "o", "--weight", "0.5",
                         "--num_beams", "0")],
    ".eval.calibration": [mod("sidreasoner.eval.calibration", "--model_path", "m", "--info_file", "i", "--output",
                              "o", "--batch_size", "0")],
    ".eval.effect": [mod("sidreasoner.eval.effect", "a", "b", "--k", "0")],
    ".rl.diagnostics": [mod("sidreasoner.rl.diagnostics", "run", "--last", "x")],
    ".rl.reward_eval": [mod("sidreasoner.rl.reward_eval", "--model_path", "m", "--data_file", "d", "--rows", "-1")],
    ".rl.verl_config": [mod("sidreasoner.rl.verl_config", "overrides", "--kl_coef", "nan")],
    ".logfilter": [mod("sidreasoner.logfilter", "log.txt", "--bogus")],
    ".teacher.leakage": [mod("sidreasoner.teacher.leakage", "--data_dir", "d", "--category", "c", "--k", "3")],
    "benchmarks/bench_*.py": [py("benchmarks/bench_beam_search.py", "--rows", "0"),
                              py("benchmarks/bench_sft_throughput.py", "--rounds", "0"),
                              py("benchmarks/bench_sparse_logits.py", "--micro_batch_size", "0")],
    "scripts/make_demo_data.py": [py("scripts/make_demo_data.py", "--output_dir", "demo", "--seed", "-1")],
    "scripts/check_data.py": [py("scripts/check_data.py", "--data_dir", "d", "--category", "c", "--max_examples",
                                 "-1")],
    "scripts/download_data.py": [py("scripts/download_data.py", "--repo_type", "space")],
    "scripts/download_checkpoints.py": [py("scripts/download_checkpoints.py", "--check", "most")],
    "scripts/synthesize_corpus.py": [py("scripts/synthesize_corpus.py", "--data_dir", "d", "--category", "c",
                                        "--max_tokens", "0")],
    "scripts/gpu_smoke.py": [py("scripts/gpu_smoke.py", "--verl", "maybe")],
    "sft_Qwen3_enrich.sh": [sh("sft_Qwen3_enrich.sh", NPROC="two")],
    "sft_reasoning_activation.sh": [sh("sft_reasoning_activation.sh", MASTER_PORT="70000")],
    "evaluate_Qwen3.sh": [sh("evaluate_Qwen3.sh", NPROC="0")],
    "evaluate_Qwen3_think.sh": [sh("evaluate_Qwen3_think.sh", NPROC="-1")],
    "RL_training_script.sh": [sh("RL_training_script.sh", BACKEND="deepspeed")],
    "run_pipeline.sh": [sh("run_pipeline.sh", "--dry_run", DROPOUT="2")],
    "python -m sidreasoner.pipeline": [mod("sidreasoner.pipeline", "--stage1_lr", "0", "--dry_run")],
    "benchmarks/office_benchmark.py": [py("benchmarks/office_benchmark.py", "--threads", "-1")],
}


def readme_table() -> dict:
    """{backticked entry point of the first column: {status: cell text}} of the README's exit-status table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Troubleshooting"):]
    section = section[:section.find("\n## ", 1)]
    item = section[section.index("**Exit status.**"):]
    rows = [line.strip() for line in item.splitlines() if line.strip().startswith("|")]
    assert rows[0].split("|")[2:5] == [" 0 ", " 1 ", " 2 "] and set(rows[1]) <= set("|-"), rows[:2]
    table = {}
    for row in rows[2:]:
        first, *cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3, row
        for token in re.findall(r"`([^`]+)`", first):
            assert token not in table, f"{token} is in two rows"
            table[token] = dict(zip((0, 1, 2), cells))
    return table


def bad_flag_status(cells: dict) -> int:
    """The status the README promises for a bad flag: the one column whose text mentions flags."""
    said = [status for status, cell in cells.items() if re.search(r"\bflags?\b", cell)]
    assert len(said) == 1, f"one column should name bad flags: {cells}"
    return said[0]


#: modules whose command line is a script's of the table (the script is a thin caller of the module's main)
SAME_AS = {"sidreasoner.train.sft_cli": "sft.py", "sidreasoner.rl.prepare_cli": "rl/prepare_data.py",
           "sidreasoner.rl.grpo_cli": "rl/trl_grpo.py", "sidreasoner.eval.cli": "evaluate.py"}


def entry_points() -> set:
    """Every entry point of the repository: scripts with a main guard, python -m modules, stage shell scripts."""
    found = set()
    guard = re.compile(r"^if __name__ == .__main__.:", re.M)
    for folder in ("", "rl", "scripts", "benchmarks"):
        for path in sorted((REPO / folder).glob("*.py")):
            if guard.search(path.read_text(encoding="utf-8")):
                found.add(path.relative_to(REPO).as_posix())
    for path in sorted((REPO / "sidreasoner").rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        if path.name == "__main__.py" or guard.search(path.read_text(encoding="utf-8")):
            found.add(SAME_AS.get(name, name))
    found |= {p.name for p in REPO.glob("*.sh")}
    return found


def test_table_and_cases_name_the_same_entry_points():
    assert set(readme_table()) == set(CASES)
    covered = {target for runs in CASES.values() for target, _ in runs}
    assert entry_points() == covered, "an entry point without a row in the README's exit-status table (or a stale one)"
    globbed = {p.relative_to(REPO).as_posix() for p in REPO.glob("benchmarks/bench_*.py")}
    assert globbed == {t for t, _ in CASES["benchmarks/bench_*.py"]}


@pytest.mark.parametrize("token, index", [(t, i) for t, runs in CASES.items() for i in range(len(runs))])
def test_bad_flag_exits_with_the_readme_status(token, index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing lands in the checkout
    expected = bad_flag_status(readme_table()[token])
    target, run = CASES[token][index]
    status, output = run(tmp_path)
    assert status == expected, f"{target}: exit {status}, README says {expected}:\n{output[-2000:]}"
    assert "error" in output.lower() or "must be" in output, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
