"""Where a run's files go, and the defaults shared by every entry point: written here once.

The files of one category of a release folder (split CSVs, index, info file, corpora) are named by
``sidreasoner.data.records.ReleasePaths`` (``SPLIT_SUFFIX`` there); this module names the rest:

- the release folder a stage reads when none is given (``DEFAULT_DATA_DIR``; ``scripts/download_data.py``
  fills it), the default category, the number of beams (SIDs returned per row) of every ranking entry point;
- the stage output folders of the stage scripts and of ``sft.py`` / ``rl/trl_grpo.py`` without
  ``--output_dir``: stage 1 ``checkpoints/sft_enrich_Qwen3_<cat>``, stage 2 ``checkpoints/sft_reasoning_Qwen3_<cat>``,
  stage 3 ``checkpoints/grpo_<backend>_<cat>`` (``DEFAULT_BACKEND``: verl, the paper's);
- the model a run folder ends with (``final_model``): ``<run>/final_checkpoint`` (SFT, TRL), else the newest
  ``<run>/global_step_N/actor_merged`` (verl, merged by ``scripts/merge_fsdp_checkpoint.py``);
- an evaluation's default results folder, ``results/<cat>_<think|nothink>_beams<N>``.

The stage scripts write the same defaults as ``NAME=${NAME:-default}`` lines; ``tests/test_script_defaults.py``
checks that they agree with the values here. Imports nothing of ours (layer 0).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Union

#: the release folder read when none is given (python scripts/download_data.py fills it)
DEFAULT_DATA_DIR = "data/Amazon"
DEFAULT_CATEGORY = "Office_Products"
#: prompt wording when none is given: "auto", the style recorded in the model folder (sidreasoner.model.chat)
DEFAULT_PROMPT_STYLE = "auto"
#: seed of every entry point (data order, held-out splits, sampling, initialisation)
DEFAULT_SEED = 42
#: beams of the constrained search = SIDs returned per row (the paper: 10)
NUM_BEAMS = 10
CHECKPOINTS = Path("checkpoints")
RESULTS = Path("results")
#: the model a Trainer run keeps (best validation), in every stage's output folder but verl's
FINAL = "final_checkpoint"
#: verl's merged Hugging Face folder of one saved step: <run>/global_step_N/actor_merged
MERGED = "actor_merged"
_STEP_RE = re.compile(r"^global_step_(\d+)$")
BACKENDS = ("verl", "trl")
#: stage 3's backend when none is given (the paper's; RL_training_script.sh BACKEND)
DEFAULT_BACKEND = "verl"
#: longest SFT example in tokens per stage (README: stage 1 cutoff 1024, stage 2 2048: reasoning paths are long)
CUTOFF_LEN = {"alignment": 1024, "reasoning": 2048}
#: output folder name of each SFT stage, before the category
_SFT_PREFIX = {"alignment": "sft_enrich_Qwen3_", "reasoning": "sft_reasoning_Qwen3_"}


def sft_dir(stage: str, category: str) -> Path:
    """``checkpoints/sft_enrich_Qwen3_<cat>`` (stage 1, alignment) or ``checkpoints/sft_reasoning_Qwen3_<cat>``
    (stage 2, reasoning): what the stage scripts and ``sft.py`` write without an output folder."""
    if stage not in _SFT_PREFIX:
        raise ValueError(f"unknown SFT stage {stage!r} (expected one of {', '.join(_SFT_PREFIX)})")
    return CHECKPOINTS / f"{_SFT_PREFIX[stage]}{category or 'run'}"


def stage1_dir(category: str) -> Path:
    return sft_dir("alignment", category)


def stage2_dir(category: str) -> Path:
    return sft_dir("reasoning", category)


def stage3_dir(category: str, backend: str = DEFAULT_BACKEND) -> Path:
    """``checkpoints/grpo_<backend>_<cat>``: stage 3's output folder."""
    if backend not in BACKENDS:
        raise ValueError(f"BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return CHECKPOINTS / f"grpo_{backend}_{category}"


def final_checkpoint(run_dir: Union[str, Path]) -> Path:
    """``<run_dir>/final_checkpoint``: the model an SFT run (or a TRL stage 3) ends with."""
    return Path(run_dir) / FINAL


def merged_steps(run_dir: Union[str, Path]) -> list[Path]:
    """verl's merged models ``<run_dir>/global_step_N/actor_merged`` that hold a model, oldest step first."""
    d = Path(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p / MERGED) for p in d.iterdir() if (m := _STEP_RE.match(p.name))]
    return [p for _, p in sorted(found) if (p / "config.json").is_file()]


def final_model(path: Union[str, Path]) -> str:
    """The model to load for ``path``: a model folder (has config.json) or anything that is not a folder (a hub
    id, a path not made yet) as given; a run folder: its ``final_checkpoint``, else verl's newest
    ``global_step_N/actor_merged``; else ``path`` as given (the loader then says what is missing)."""
    p = Path(path)
    if not p.is_dir() or (p / "config.json").is_file():
        return str(path)
    if (p / FINAL / "config.json").is_file():
        return str(p / FINAL)
    merged = merged_steps(p)
    return str(merged[-1]) if merged else str(path)


def eval_output_dir(category: str, think: bool, num_beams: int = NUM_BEAMS) -> Path:
    """``results/<cat>_<think|nothink>_beams<N>``: an evaluation's results folder when none is given."""
    return RESULTS / f"{category}_{'think' if think else 'nothink'}_beams{num_beams}"
