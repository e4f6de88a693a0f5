"""One config mechanism (sidreasoner/flags.py): every entry point's config dataclass documents each field, one
boolean parser, and the dataclass -> argparse loop written once."""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
import sys
from pathlib import Path
from typing import Optional

import pytest

from sidreasoner.flags import BoolError, add_dataclass_args, field_help, from_namespace, parse_bool

REPO = Path(__file__).resolve().parents[1]


def _script(name: str, folder: str = "scripts"):
    """A script of scripts/ (or benchmarks/) loaded as a module (its main() not run)."""
    spec = importlib.util.spec_from_file_location(f"_script_{name}", REPO / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _configs():
    from sidreasoner.baselines.__main__ import BaselineFlags, PopularityFlags, SASRecRunFlags, TransitionsFlags
    from sidreasoner.baselines.sasrec import SASRecConfig
    from sidreasoner.build_sids import SIDBuildConfig
    from sidreasoner.eval.cli import EvalFlags
    from sidreasoner.eval.config import EvalConfig
    from sidreasoner.eval.calibration import CalibrationConfig
    from sidreasoner.eval.effect import EffectFlags
    from sidreasoner.eval.fusion import FusionConfig
    from sidreasoner.eval.metrics import MetricsFlags
    from sidreasoner.logfilter import LogFilterFlags
    from sidreasoner.pipeline import PipelineConfig, PipelineRun
    from sidreasoner.recommend import RecommendFlags
    from sidreasoner.rewards import RewardConfig
    from sidreasoner.rl.grpo_cli import ProcessFlags
    from sidreasoner.rl.knobs import RLKnobs
    from sidreasoner.rl.diagnostics import DiagnosticsFlags
    from sidreasoner.rl.prepare import PrepareConfig
    from sidreasoner.rl.reward_eval import RewardEvalFlags
    from sidreasoner.rl.verl_config import VerlCommand
    from sidreasoner.teacher.leakage import LeakageFlags
    from sidreasoner.train.sft_config import SFTConfig
    return [SFTConfig, PrepareConfig, EvalConfig, EvalFlags, SASRecConfig, PipelineConfig, RLKnobs, ProcessFlags,
            RewardConfig,
            SIDBuildConfig, _script("build_sids").BuildFlags, FusionConfig,
            MetricsFlags, CalibrationConfig, EffectFlags, _script("make_tiny_model").TinyModelConfig,
            _script("make_demo_data").DemoFlags, _script("check_data").CheckDataFlags,
            _script("compare_results").CompareFlags, RecommendFlags,
            BaselineFlags, PopularityFlags, TransitionsFlags, SASRecRunFlags, LeakageFlags,
            _script("merge_fsdp_checkpoint").MergeFlags, LogFilterFlags,
            _script("gpu_smoke").SmokeFlags, _script("bench_beam_search", "benchmarks").BeamBenchFlags,
            _script("bench_sft_throughput", "benchmarks").SFTBenchFlags,
            _script("bench_sparse_logits", "benchmarks").SparseBenchFlags,
            _script("office_benchmark", "benchmarks").OfficeBenchFlags, _script("synthesize_corpus").SynthesizeFlags,
            _script("download_data").DownloadDataFlags, _script("download_checkpoints").DownloadCheckpointsFlags,
            RewardEvalFlags, DiagnosticsFlags, VerlCommand, PipelineRun]


ENTRY_DIRS = ("sidreasoner", "scripts", "rl", "benchmarks")


def test_no_entry_point_builds_its_flags_by_hand():
    """Every flag comes from a config dataclass through sidreasoner.flags: no add_argument elsewhere."""
    files = [p for d in ENTRY_DIRS for p in (REPO / d).rglob("*.py")] + list(REPO.glob("*.py"))
    by_hand = [str(p.relative_to(REPO)) for p in files
               if p != REPO / "sidreasoner" / "flags.py" and "add_argument(" in p.read_text(encoding="utf-8")]
    assert not by_hand


@pytest.mark.parametrize("cls", _configs(), ids=lambda c: c.__name__)
def test_every_config_field_has_help(cls):
    for f in dataclasses.fields(cls):
        assert field_help(f, cls).strip(), f"{cls.__name__}.{f.name}"


@pytest.mark.parametrize("text, value", [
    *[(t, True) for t in ("1", "true", "True", "TRUE", "yes", "Yes", "on", "ON", " true ")],
    *[(t, False) for t in ("0", "false", "False", "no", "NO", "off", "Off", " 0")],
    (True, True), (False, False)])
def test_parse_bool_spellings(text, value):
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["maybe", "", "2", "y", "n", "t", "truee", "-1"])
def test_parse_bool_refuses_the_rest(text):
    with pytest.raises(ValueError, match=r"^expected a boolean \(1/0, true/false\), got "):
        parse_bool(text)
    with pytest.raises(BoolError, match=r"^THINK must be a boolean \(1/0, true/false\), got "):
        parse_bool(text, "THINK")


@dataclasses.dataclass
class _Demo:
    name: str = dataclasses.field(metadata={"help": "a required name"})
    steps: int = dataclasses.field(default=3, metadata={"help": "steps"})
    rate: Optional[float] = dataclasses.field(default=None, metadata={"help": "rate"})
    mode: str = dataclasses.field(default="a", metadata={"help": "mode", "choices": ("a", "b")})
    think: bool = dataclasses.field(default=False, metadata={"help": "think"})


def _parser(**kw):
    return add_dataclass_args(argparse.ArgumentParser(prog="demo"), _Demo, **kw)


def test_flags_are_typed_from_the_fields():
    args = _parser().parse_args(["--name", "x", "--steps", "5", "--rate", "0.5", "--mode", "b", "--think"])
    assert from_namespace(_Demo, args) == _Demo("x", 5, 0.5, "b", True)
    assert _parser().parse_args(["--think", "off"]).think is False
    assert _parser(defaults={"name": "d"}).parse_args([]).name == "d"
    assert not hasattr(_parser(exclude=("rate",)).parse_args([]), "rate")


@pytest.mark.parametrize("argv, message", [
    (["--steps", "two"], r"argument --steps: invalid int value: 'two'"),
    (["--rate", "x"], r"argument --rate: invalid float value: 'x'"),
    (["--mode", "c"], r"argument --mode: invalid choice: 'c'"),
    (["--think", "maybe"], r"argument --think: expected a boolean \(1/0, true/false\), got 'maybe'"),
])
def test_a_bad_value_is_answered_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(argv)
    assert e.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_store_true_switch_with_a_short_alias_takes_no_value():
    @dataclasses.dataclass
    class Tee:
        file: str = dataclasses.field(default=None, metadata={"help": "file", "positional": True})
        append: bool = dataclasses.field(default=False, metadata={"help": "append", "short": "-a",
                                                                  "action": "store_true"})
    p = add_dataclass_args(argparse.ArgumentParser(), Tee)
    assert from_namespace(Tee, p.parse_args(["-a", "log.txt"])) == Tee("log.txt", True)
    assert from_namespace(Tee, p.parse_args(["--append", "log.txt"])) == Tee("log.txt", True)
    assert from_namespace(Tee, p.parse_args(["log.txt"])) == Tee("log.txt", False)


def test_a_field_without_help_is_refused():
    @dataclasses.dataclass
    class NoHelp:
        quiet: int = 0
    with pytest.raises(TypeError, match=r"NoHelp\.quiet has no help text"):
        add_dataclass_args(argparse.ArgumentParser(), NoHelp)


LOOP = re.compile(r"add_argument\(\s*f[\"']--\{")


def test_one_dataclass_to_argparse_loop():
    files = [*(REPO / "sidreasoner").rglob("*.py"), *(REPO / "scripts").glob("*.py"), *REPO.glob("*.py"),
             *(REPO / "rl").glob("*.py"), *(REPO / "benchmarks").glob("*.py")]
    found = {str(p.relative_to(REPO)) for p in files if LOOP.search(p.read_text(encoding="utf-8"))}
    assert found == {"sidreasoner/flags.py"}
