"""sft.py / run_sft: flags, config resolution, a few real optimiser steps on the tiny model (loss
down, weights changed, final_checkpoint complete), resume after a kill, and bad-input messages."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from fixtures_sft import CATEGORY, foreign_index, narratives, write_tiny_release

from sidreasoner.data.corpora import write_narratives
from sidreasoner.data.formats import read_sid_index, write_index_json
from sidreasoner.sid.index import SIDIndex
from sidreasoner.train.sft_config import SFTConfig, parse_config, resolve
from sidreasoner.runs import last_complete_checkpoint, resolve_resume
from sidreasoner.train.sft_trainer import run_sft

REPO = Path(__file__).resolve().parents[1]
REFERENCE_FLAGS = ("--base_model --train_file --eval_file --output_dir --category --sid_index_path --item_meta_path "
                   "--llm_generated_data_path --llm_generated_sequence_path --general_reasoning_path --batch_size "
                   "--micro_batch_size --num_epochs --learning_rate --cutoff_len --seed --train_from_scratch "
                   "--wandb_project --wandb_run_name --resume_from_checkpoint --data_dir --stage").split()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_tiny_release(tmp_path_factory.mktemp("release"))


def _cfg(model_dir, release, out, **kw) -> SFTConfig:
    base = dict(base_model=str(model_dir), data_dir=str(release.data_dir), category=CATEGORY, output_dir=str(out),
                tasks="next_sid,title_to_sid", batch_size=8, micro_batch_size=4, learning_rate=5e-3, warmup_steps=0,
                max_valid_per_task=8, logging_steps=1, log_file=str(out / "log.jsonl"), seed=0)
    base.update(kw)
    return SFTConfig(**base)


def _weights(path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(Path(path) / "model.safetensors"))


def test_help_lists_every_reference_flag():
    out = subprocess.run([sys.executable, str(REPO / "sft.py"), "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert [f for f in REFERENCE_FLAGS if f not in out.stdout] == []


def test_config_paths_and_stage_defaults():
    cfg = resolve(parse_config(["--base_model", "m", "--category", "Office_Products", "--data_dir", "d",
                                "--train_from_scratch", "False", "--mask_assistant"]))
    assert (cfg.train_file, cfg.eval_file) == ("d/train/Office_Products_5_2016-10-2018-11.csv",
                                               "d/valid/Office_Products_5_2016-10-2018-11.csv")
    assert (cfg.sid_index_path, cfg.llm_generated_sequence_path) == (
        "d/index/Office_Products.index.json", "d/index/Office_Products.integrated_narrative.csv")
    assert (cfg.learning_rate, cfg.num_epochs, cfg.train_from_scratch, cfg.mask_assistant) == (3e-4, 10.0, False, True)
    # the stage scripts' folders (sidreasoner.paths): stage 2's default input is stage 1's output; cutoff per stage
    assert (cfg.output_dir, cfg.cutoff_len) == ("checkpoints/sft_enrich_Qwen3_Office_Products", 1024)
    s2 = resolve(parse_config(["--stage", "reasoning", "--base_model", "m", "--category", "C",
                               "--reasoning_train_file", "r.csv", "--learning_rate", "2e-5"]))
    assert (s2.learning_rate, s2.num_epochs, s2.llm_generated_sequence_path) == (2e-5, 5.0, "r.csv")
    assert (s2.output_dir, s2.cutoff_len) == ("checkpoints/sft_reasoning_Qwen3_C", 2048)
    with pytest.raises(ValueError, match=r"^--base_model is required"):
        resolve(parse_config(["--category", "C"]))


def test_a_few_steps_lower_the_loss_and_change_the_weights(tiny_model_dir, release, tmp_path):
    model_dir = tiny_model_dir[0]
    summary = run_sft(_cfg(model_dir, release, tmp_path, max_steps=6, eval_steps=3, resume_from_checkpoint="none"))
    losses = [json.loads(line)["loss"] for line in open(tmp_path / "log.jsonl") if '"loss"' in line]
    assert len(losses) == 6 and losses[-1] < losses[0]
    evals = [h["eval_loss"] for h in summary["eval_history"]]
    assert len(evals) == 2 and evals[1] < evals[0]
    final = Path(summary["final_checkpoint"])
    assert final == tmp_path / "final_checkpoint"
    before, after = _weights(model_dir), _weights(final)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) == len(before)  # every tensor trained (full fine-tuning)
    best = _weights(summary["best_checkpoint"])
    assert all(torch.equal(best[k], after[k]) for k in best)  # final = best checkpoint
    saved = json.loads((final / "sft_config.json").read_text())
    assert saved["sid_index_path"] == str(release.index_json) and saved["learning_rate"] == 5e-3
    assert (final / "tokenizer.json").is_file() and (final / "sft_summary.json").is_file()


def test_killed_run_resumes_from_its_last_complete_checkpoint(tiny_model_dir, release, tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    kw = dict(tasks="next_sid", max_steps=4, eval_steps=2, save_total_limit=5, early_stopping_patience=0)
    full_summary = run_sft(_cfg(tiny_model_dir[0], release, full, **kw))
    shutil.copytree(full, killed, ignore=shutil.ignore_patterns("final_checkpoint"))
    state = killed / "checkpoint-4" / "trainer_state.json"
    state.write_text(state.read_text()[:40])  # truncated: a kill or a full disk mid-write
    assert last_complete_checkpoint(killed) == str(killed / "checkpoint-2")
    with pytest.raises(Exception, match=r"trainer_state\.json: unreadable \(truncated\?\)"):
        resolve_resume(str(killed / "checkpoint-4"), killed)
    state.unlink()  # killed while writing checkpoint-4
    assert last_complete_checkpoint(killed) == str(killed / "checkpoint-2")
    resumed = run_sft(_cfg(tiny_model_dir[0], release, killed, **kw))  # the same command again: resume="auto"
    # the summary's train loss covers the whole run, and the log holds each step once, as uninterrupted
    losses = [r["train_metrics"]["train_loss"] for r in (full_summary, resumed)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    logged = [[(r["step"], round(r["loss"], 4)) for r in map(json.loads, open(d / "log.jsonl")) if "loss" in r]
              for d in (full, killed)]
    assert logged[0] == logged[1] and [s for s, _ in logged[1]] == [1, 2, 3, 4]
    a, b = _weights(full / "checkpoint-4"), _weights(killed / "checkpoint-4")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    steps = json.loads((killed / "checkpoint-4" / "trainer_state.json").read_text())["global_step"]
    assert steps == 4
    with pytest.raises(Exception, match=r"not a complete Trainer checkpoint \(no trainer_state\.json\)"):
        resolve_resume(str(tmp_path / "nowhere"), killed)


def test_stage2_rejects_a_model_without_sid_tokens(tiny_model_dir, tmp_path):
    rp = write_tiny_release(tmp_path)
    write_index_json(rp.index_json, foreign_index())
    write_narratives(rp.narrative, narratives(SIDIndex(foreign_index())))
    cfg = _cfg(tiny_model_dir[0], rp, tmp_path / "out", stage="reasoning", tasks="")
    with pytest.raises(ValueError, match=r"^base model \S+ cannot start stage 2: checkpoint has no SID tokens: 48 "
                                         r"missing from the vocabulary of 48 \(e\.g\. <a_4>, .*\); run stage 1 / "
                                         r"add_sid_tokens first \(sft_Qwen3_enrich\.sh, then --base_model <its "
                                         r"output_dir>/final_checkpoint\)$"):
        run_sft(cfg)


def test_stage2_trains_on_reasoning_paths(tiny_model_dir, release, tmp_path):
    summary = run_sft(_cfg(tiny_model_dir[0], release, tmp_path, stage="reasoning", tasks="", max_steps=2,
                           valid_fraction=0.2, eval_steps=2))
    assert [r["task"] for r in summary["tasks"]] == ["reasoning"]
    assert summary["tasks"][0]["train"] + summary["tasks"][0]["valid"] == 40
    assert "eval_reasoning_loss" in summary["eval_history"][-1]


def _script(name, tmp_path, *args, **knobs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable, "LOG_FILE": str(tmp_path / "log.txt"),
           **knobs}
    return subprocess.run(["bash", str(REPO / name), *args], capture_output=True, text=True, env=env)


def test_scripts_parse():
    for name in ("sft_Qwen3_enrich.sh", "sft_reasoning_activation.sh"):
        assert subprocess.run(["bash", "-n", str(REPO / name)]).returncode == 0


def test_stage1_script_dry_run_says_which_tasks_are_off(tiny_model_dir, tmp_path):
    rp = write_tiny_release(tmp_path / "data", with_corpora=False)
    out = _script("sft_Qwen3_enrich.sh", tmp_path, "--dry_run", BASE_MODEL=str(tiny_model_dir[0]),
                  DATA_DIR=str(rp.data_dir), CATEGORY=CATEGORY, OUTPUT_DIR=str(tmp_path / "out"))
    assert out.returncode == 0, out.stdout[-2000:]
    assert f"task off: item_text: off (--llm_generated_data_path {rp.item_enhanced} not found)" in out.stdout
    assert f"task off: narrative: off (--llm_generated_sequence_path {rp.narrative} not found)" in out.stdout
    assert "next_sid                        64" in out.stdout
    log = (tmp_path / "log.txt").read_bytes().decode()  # the run's output is logged too, each progress bar in its
    assert "\r" not in log and set(log.splitlines()) <= set(out.stdout.splitlines())  # final state (logfilter)
    assert log.splitlines()[-1] == out.stdout.splitlines()[-1]
    saved = json.loads((tmp_path / "out" / "sft_config.json").read_text())
    assert (saved["dry_run"], saved["batch_size"], saved["learning_rate"], saved["num_epochs"]) == (True, 1024, 3e-4, 10)


@pytest.mark.slow  # a second interpreter start; the message itself is tested in test_tasks
def test_stage2_script_reports_a_missing_narrative_file(tiny_model_dir, tmp_path):
    rp = write_tiny_release(tmp_path / "data", with_corpora=False)
    out = _script("sft_reasoning_activation.sh", tmp_path, "--dry_run", BASE_MODEL=str(tiny_model_dir[0]),
                  DATA_DIR=str(rp.data_dir), CATEGORY=CATEGORY, OUTPUT_DIR=str(tmp_path / "out"))
    assert out.returncode == 2
    assert out.stdout.strip().splitlines()[-1] == (
        f"sft.py: error: {rp.narrative}: file not found (--llm_generated_sequence_path); "
        "stage 2 trains on its reasoning_path column (integrated_narrative.csv)")


def test_resuming_with_other_settings_is_announced(tmp_path, capsys):
    from sidreasoner.train.sft_trainer import warn_config_changes
    cfg = resolve(parse_config(["--base_model", "m", "--category", "C", "--output_dir", str(tmp_path)]))
    (tmp_path / "sft_config.json").write_text(cfg.to_json())
    warn_config_changes(tmp_path / "sft_config.json", resolve(parse_config(
        ["--base_model", "m", "--category", "C", "--output_dir", str(tmp_path), "--dry_run"])))
    assert capsys.readouterr().out == ""  # runtime-only flags do not count
    warn_config_changes(tmp_path / "sft_config.json", resolve(parse_config(
        ["--base_model", "m", "--category", "C", "--output_dir", str(tmp_path), "--learning_rate", "1e-3"])))
    assert capsys.readouterr().out.splitlines()[1:] == ["  learning_rate: 0.0003 -> 0.001"]


@pytest.mark.gpu
def test_a_few_steps_on_gpu_in_bf16(tiny_model_dir, release, tmp_path):
    """On a CUDA card the Trainer runs bf16 autocast over fp32 master weights; loss still falls."""
    cfg = _cfg(tiny_model_dir[0], release, tmp_path, max_steps=6, eval_steps=3, resume_from_checkpoint="none")
    summary = run_sft(cfg)
    losses = [json.loads(line)["loss"] for line in open(tmp_path / "log.jsonl") if '"loss"' in line]
    assert len(losses) == 6 and losses[-1] < losses[0]
    from sidreasoner.train.sft_trainer import training_arguments
    targs, _ = training_arguments(resolve(cfg), True)
    assert targs.bf16 and not targs.use_cpu
    after = _weights(summary["final_checkpoint"])
    assert all(t.dtype == torch.float32 for t in after.values())  # master weights saved in fp32


def test_stage1_with_release_style_and_release_corpora_builds_the_eight_task_kinds(tiny_model_dir, tmp_path):
    """The release's corpora as published (teacher <think> blocks left in llm_stage2 and reasoning_path)
    and PROMPT_STYLE=release: stage 1 builds the release's eight kinds (SID history -> SID, SID <-> title,
    SID history -> title, title history -> title, title history -> SID, item text, narrative, general)."""
    rp = write_tiny_release(tmp_path / "data", with_corpora=False)
    index = read_sid_index(rp.index_json, rp.item_json)
    items = json.loads(rp.item_json.read_text())
    think = "<think>\nteacher notes\n</think>\n\n"
    enhanced = {i: {"title": it["title"], "llm_stage2": f"{think}{it['title']} is {index.sid(i)}."}
                for i, it in items.items()}
    rp.item_enhanced.write_text(json.dumps(enhanced))
    rows = [dataclasses.replace(r, reasoning_path=f"<think>\nscratch\n</think>\n\n{r.reasoning_path}")
            for r in narratives(index)]
    write_narratives(rp.narrative, rows)
    general = tmp_path / "sampled_data.arrow"  # the release's general file is JSON lines under that name
    general.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"What is {k} + 1?"},
                                                        {"role": "assistant", "content": str(k + 1)}]}) + "\n"
                               for k in range(20)))
    out = _script("sft_Qwen3_enrich.sh", tmp_path, "--dry_run", BASE_MODEL=str(tiny_model_dir[0]),
                  DATA_DIR=str(rp.data_dir), CATEGORY=CATEGORY, OUTPUT_DIR=str(tmp_path / "out"),
                  PROMPT_STYLE="release", GENERAL_REASONING_PATH=str(general))
    assert out.returncode == 0, out.stdout[-2000:]
    table = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.split()}
    for task in ("next_sid", "sid_to_title", "title_to_sid", "sid_history_to_title", "title_history_to_title",
                 "title_history_to_sid", "item_text", "narrative", "general"):
        assert task in table and int(table[task][1]) > 0, (task, out.stdout[-3000:])
    assert "task off" not in out.stdout
    assert json.loads((tmp_path / "out" / "sft_config.json").read_text())["prompt_style"] == "release"


@pytest.mark.parametrize("report_to, wandb, expected", [
    ("", "", []), ("", "proj", ["wandb"]), ("none", "proj", []), ("tensorboard", "", ["tensorboard"]),
    ("wandb, tensorboard", "", ["wandb", "tensorboard"]),
])
def test_report_to(report_to, wandb, expected):
    assert SFTConfig(report_to=report_to, wandb_project=wandb).reporters() == expected


def test_report_to_tensorboard_writes_events_and_rejects_unknown(tiny_model_dir, release, tmp_path):
    with pytest.raises(ValueError, match=r"--report_to: unknown mlflow \(choose from none, wandb, tensorboard\)"):
        resolve(_cfg(tiny_model_dir[0], release, tmp_path, report_to="mlflow"))
    from sidreasoner.train.sft_trainer import training_arguments
    targs, _ = training_arguments(resolve(_cfg(tiny_model_dir[0], release, tmp_path, report_to="tensorboard")), True)
    assert targs.report_to == ["tensorboard"]
