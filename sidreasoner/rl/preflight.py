"""Checks before a GRPO run starts (seconds, on the login node): a verl job that fails after Ray, vLLM and
FSDP have started wastes minutes of a cluster; these fail first, with messages that name the knob or file.

- the train/valid parquet files exist, parse, and were written in the mode the run uses (THINK);
- the catalogue (info file) exists and parses;
- the model's tokenizer has a chat template and every SID token of the catalogue as one token;
- (verl) verl's own config composes with the run's overrides plus the user's extra ones and passes
  verl's validation (batch sizes against GPUs, micro-batch settings).
"""
from __future__ import annotations

from typing import Optional, Sequence

from ..data.records import DataError
from .data import read_rl_parquet, think_mode, user_and_system
from .knobs import RLKnobs
from .verl_reward import load_catalogue


def check_data(knobs: RLKnobs) -> dict[str, list[dict]]:
    """Read both parquet files; DataError when one is missing/malformed or written for the other mode."""
    out = {}
    for name, path in (("train", knobs.train_file), ("valid", knobs.val_file)):
        records = read_rl_parquet(path)
        if think_mode(records, path) != knobs.think:
            mode = "thinking" if knobs.think else "non-thinking"
            raise DataError(path, f"rows were written for the other prompt mode, but this run uses {mode} prompts "
                                  f"(THINK={int(knobs.think)}); rebuild with rl/prepare_data.py --think "
                                  f"{knobs.think} --overwrite")
        out[name] = records
    return out


def load_tokenizer(model_path: str):
    from pathlib import Path
    from transformers import AutoTokenizer
    from ..model.model_factory import ModelLoadError, looks_local
    if looks_local(model_path) and not (Path(model_path).expanduser() / "config.json").is_file():
        raise ModelLoadError(f"MODEL_PATH {model_path}: no model folder there (no config.json); give the stage-2 "
                             f"model, e.g. <sft_reasoning_activation.sh OUTPUT_DIR>/final_checkpoint")
    try:
        return AutoTokenizer.from_pretrained(str(Path(model_path).expanduser()) if looks_local(model_path)
                                             else model_path)
    except OSError as e:
        raise ModelLoadError(f"cannot load the tokenizer of {model_path!r}: {e}") from None


def check_model(knobs: RLKnobs, catalogue, example: Optional[dict] = None, tokenizer=None):
    """The tokenizer knows every catalogue SID token and renders the run's prompts; returns it."""
    from ..model.chat import check_sid_tokens, render_prompt
    tokenizer = tokenizer or load_tokenizer(knobs.model_path)
    try:
        check_sid_tokens(tokenizer, sorted(catalogue))
    except ValueError as e:
        raise ValueError(f"MODEL_PATH {knobs.model_path}: {e}") from None
    if example is not None:
        user, system = user_and_system(example["prompt"])
        render_prompt(tokenizer, user, knobs.think, system=system)
    return tokenizer


def check_verl_config(overrides: Sequence[str]):
    """Compose verl's config and run its validation; hydra's and verl's errors become ValueError."""
    from .verl_compose import compose, validate
    try:
        cfg = compose(overrides)
    except Exception as e:  # hydra raises its own exception types for unknown keys and bad values
        raise ValueError(f"verl rejects the overrides: {type(e).__name__}: {e}") from None
    try:
        validate(cfg)
    except (AssertionError, ValueError) as e:
        raise ValueError(f"verl's config validation failed: {e}") from None
    return cfg


def preflight(knobs: RLKnobs, verl_overrides: Optional[Sequence[str]] = None, say=print) -> None:
    data = check_data(knobs)
    catalogue = load_catalogue(knobs.info_file)
    check_model(knobs, catalogue, data["train"][0])
    say(f"pre-flight: train {len(data['train'])} / valid {len(data['valid'])} prompts "
        f"({'thinking' if knobs.think else 'non-thinking'}), catalogue {len(catalogue)} SIDs, "
        f"model {knobs.model_path} has every SID token")
    if verl_overrides is not None:
        check_verl_config(verl_overrides)
        say("pre-flight: verl's config composes and validates")
