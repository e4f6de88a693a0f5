"""Every stage script's defaults are the Python defaults of what they set.

Each ``NAME=${NAME:-default}`` line of a stage script is read (``${OTHER}`` inside a default is replaced by that
knob's default, as bash would) and compared with the default of the flag the script passes it to (``--flag
"$NAME"``, the entry point's parser), with the values of ``sidreasoner.paths`` (folders, the release folder, the
backend) or, for stage 3, with ``RLKnobs`` (the knobs ``RL_training_script.sh`` exports). A knob that maps to
nothing Python reads is listed in ``SCRIPT_ONLY``; a new knob must be one or the other, so the next drift fails
here. No script is run.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from sidreasoner import paths
from sidreasoner.data.records import ReleasePaths
from sidreasoner.train.sft_config import STAGE_DEFAULTS, build_parser as sft_parser

REPO = Path(__file__).resolve().parents[1]
CAT = paths.DEFAULT_CATEGORY
#: knobs of the shell only (launcher, interpreter, log file, dry run): no Python default to agree with
SCRIPT_ONLY = {"NPROC", "MASTER_PORT", "PYTHON", "LOG_FILE", "DRY_RUN",
               # RL_training_script.sh resolves auto itself (the style recorded in MODEL_PATH) before prepare_data.py
               "PROMPT_STYLE@RL_training_script.sh"}
_KNOB = re.compile(r"^([A-Z][A-Z0-9_]*)=\$\{\1:-(.*?)\}(?=\s|$)", re.M)
_REF = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def script_defaults(name: str) -> dict[str, str]:
    """``{KNOB: default}`` of a stage script, earlier knobs substituted into later defaults."""
    out: dict[str, str] = {}
    for knob, raw in _KNOB.findall((REPO / name).read_text()):
        out[knob] = _REF.sub(lambda m: out.get(m.group(1), m.group(0)), raw)
    return out


def knob_flags(name: str) -> dict[str, str]:
    """``{KNOB: flag}`` for every ``--flag "$KNOB"`` of the script's command lines."""
    return {k: f for f, k in re.findall(r'--(\w+) "\$([A-Z][A-Z0-9_]*)"', (REPO / name).read_text())}


def same(script_value: str, python_value) -> bool:
    if python_value is None:
        return script_value == ""
    if isinstance(python_value, bool):
        return script_value in (("1", "True", "true") if python_value else ("0", "False", "false"))
    if isinstance(python_value, (int, float)):
        return float(script_value) == float(python_value)
    return script_value == str(python_value)


def _sft_expected(stage: str) -> dict:
    p = sft_parser()
    flag = {a.dest: a.default for a in p._actions}
    flag.update(STAGE_DEFAULTS[stage])
    return {"flags": flag, "knobs": {
        "CATEGORY": CAT, "DATA_DIR": paths.DEFAULT_DATA_DIR,
        "OUTPUT_DIR": paths.sft_dir(stage, CAT),
        # stage 1 starts from the paper's base model (no Python default: --base_model is required)
        "BASE_MODEL": "Qwen/Qwen3-1.7B" if stage == "alignment" else paths.final_checkpoint(paths.stage1_dir(CAT))}}


def _eval_expected(think: bool) -> dict:
    from sidreasoner.eval.cli import build_parser
    flag = {a.dest: a.default for a in build_parser()._actions}
    return {"flags": flag, "knobs": {
        "CATEGORY": CAT, "DATA_DIR": paths.DEFAULT_DATA_DIR, "BACKEND": paths.DEFAULT_BACKEND,
        "BASE_MODEL": paths.stage3_dir(CAT, paths.DEFAULT_BACKEND),
        "OUTPUT_DIR": paths.eval_output_dir(CAT, think, flag["num_beams"])}}


def _rl_expected() -> dict:
    from sidreasoner.rl.knobs import RLKnobs
    k = RLKnobs().resolved(paths.DEFAULT_BACKEND)
    knobs = {f.name.upper(): getattr(k, f.name) for f in dataclasses.fields(k)}
    knobs.update({"BACKEND": paths.DEFAULT_BACKEND, "CATEGORY": CAT, "DATA_DIR": paths.DEFAULT_DATA_DIR,
                  "MODEL_PATH": paths.final_checkpoint(paths.stage2_dir(CAT)),
                  "OUTPUT_DIR": paths.stage3_dir(CAT, paths.DEFAULT_BACKEND),
                  "INFO_FILE": ReleasePaths(Path(paths.DEFAULT_DATA_DIR), CAT).info})
    return {"flags": {}, "knobs": knobs}


SCRIPTS = {"sft_Qwen3_enrich.sh": lambda: _sft_expected("alignment"),
           "sft_reasoning_activation.sh": lambda: _sft_expected("reasoning"),
           "evaluate_Qwen3.sh": lambda: _eval_expected(False),
           "evaluate_Qwen3_think.sh": lambda: _eval_expected(True),
           "RL_training_script.sh": _rl_expected}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_defaults_are_the_python_defaults(script):
    defaults, flags, want = script_defaults(script), knob_flags(script), SCRIPTS[script]()
    assert len(defaults) >= 8, f"{script}: no NAME=${{NAME:-default}} lines found"
    wrong, unmapped = [], []
    for knob, value in defaults.items():
        if knob in want["knobs"]:
            expected, where = want["knobs"][knob], "sidreasoner.paths / RLKnobs"
        elif knob in flags and flags[knob] in want["flags"]:
            expected, where = want["flags"][flags[knob]], f"--{flags[knob]}"
        else:
            if knob not in SCRIPT_ONLY and f"{knob}@{script}" not in SCRIPT_ONLY:
                unmapped.append(knob)
            continue
        if not same(value, expected):
            wrong.append(f"{knob}={value!r} but {where} defaults to {str(expected)!r}")
    assert not wrong, f"{script}: " + "; ".join(wrong)
    assert not unmapped, f"{script}: knobs mapping to no Python default (add them to SCRIPT_ONLY?): {unmapped}"


def test_a_drift_is_caught():
    """The parser sees what bash sees: a changed default no longer agrees."""
    text = (REPO / "sft_reasoning_activation.sh").read_text()
    assert "CUTOFF_LEN=${CUTOFF_LEN:-2048}" in text
    assert not same("1024", _sft_expected("reasoning")["flags"]["cutoff_len"])
    assert script_defaults("sft_reasoning_activation.sh")["BASE_MODEL"] == \
        "checkpoints/sft_enrich_Qwen3_Office_Products/final_checkpoint"


def test_final_model_of_a_run_folder(tmp_path):
    """A stage's output folder stands for the model it ended with (what the evaluation scripts default to)."""
    run = tmp_path / "grpo_verl_X"
    assert paths.final_model(run) == str(run)  # nothing there yet: as given
    for step in (9, 100, 20):
        (run / f"global_step_{step}" / paths.MERGED).mkdir(parents=True)
        (run / f"global_step_{step}" / paths.MERGED / "config.json").write_text("{}")
    (run / "global_step_300" / "actor").mkdir(parents=True)  # saved, not merged
    assert paths.final_model(run) == str(run / "global_step_100" / paths.MERGED)
    (run / paths.FINAL).mkdir()
    (run / paths.FINAL / "config.json").write_text("{}")
    assert paths.final_model(run) == str(run / paths.FINAL)
    assert paths.final_model(run / paths.FINAL) == str(run / paths.FINAL)
    assert paths.final_model("Qwen/Qwen3-1.7B") == "Qwen/Qwen3-1.7B"
