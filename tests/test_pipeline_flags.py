"""The pipeline's steps are Python entry points called with flags (sidreasoner/pipeline_stages.py): no step
carries a setting in an environment variable, every step's flags are accepted by the parser of the entry
point it calls (a misspelt flag fails here, not an hour into a run), and the values are the PipelineConfig's.
"""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_pipeline import flag, parse_step
from sidreasoner import pipeline as P
from sidreasoner import pipeline_steps
from sidreasoner.rl.knobs import knobs_from_args

#: configurations covering every kind of step and branch of the plan
PLANS = {
    "demo": dict(rl_steps=4, baselines="popularity,sasrec,transitions"),
    "two_categories": dict(category="Demo,Demo2", rl_steps=2, fusion_valid_rows=10),
    "epochs_no_replay_no_threads": dict(stage1_steps=-1, stage2_steps=-1, stage2_replay=0, threads=0, rl_steps=2,
                                        stage1_task_weights="next_sid=2", stage1_tasks=""),
    "paper_rollouts": dict(rl_steps=2, rl_sid_rollout="free", rl_reward="match", rl_prompts_from="train",
                           rl_valid_rows=0, fusion_valid_rows=0),
    "real_data": dict(data_dir="/data/Amazon", category="Office_Products", base_model="/models/qwen", rl_steps=2,
                      rl_valid_rows=20),
}


def _steps(knobs: dict) -> dict:
    return {s.name: s for s in P.plan(P.PipelineConfig(**knobs))}


def test_a_step_has_no_environment_of_its_own(tmp_path, monkeypatch):
    assert "env" not in {f.name for f in dataclasses.fields(P.Step)}
    for knobs in PLANS.values():
        for st in P.plan(P.PipelineConfig(**knobs)):
            assert st.cmd[0] == sys.executable, st.name  # a Python entry point, no shell script between
            assert not any(str(c).endswith(".sh") or c == "bash" for c in st.cmd), st.name
    seen = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        seen.append(kwargs)
        return real_popen(*args, **kwargs)
    monkeypatch.setattr(pipeline_steps.subprocess, "Popen", popen)
    made = tmp_path / "made"
    P.run_steps([P.Step("make", made, [sys.executable, "-c", f"open({str(made)!r}, 'w').write('ok')"])],
                tmp_path / "logs")
    assert seen and "env" not in seen[0]  # the driver's environment as it is


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_every_step_is_accepted_by_its_entry_points_own_parser(plan):
    for st in _steps(PLANS[plan]).values():
        parse_step(st)  # AssertionError naming the step and argparse's message otherwise


def test_a_misspelt_or_mistyped_flag_fails_the_parse():
    stage1 = _steps({})["stage1_sft"]
    misspelt = dataclasses.replace(stage1, cmd=[("--drop_out" if c == "--dropout" else c) for c in stage1.cmd])
    with pytest.raises(AssertionError, match=r"stage1_sft: sft.py refuses its flags \(exit 2\).*--drop_out"):
        parse_step(misspelt)
    i = stage1.cmd.index("--max_steps")
    with pytest.raises(AssertionError, match=r"argument --max_steps: invalid int value: 'many'"):
        parse_step(dataclasses.replace(stage1, cmd=stage1.cmd[:i + 1] + ["many"] + stage1.cmd[i + 2:]))


CFG = dict(run_dir="R", results_dir="S", seed=3, batch_size=16, micro_batch_size=4, stage1_steps=50,
           stage1_eval_steps=10, stage1_lr=1e-3, prompt_style="native", dropout=0.2, weight_decay=0.05,
           early_stopping_patience=2, warmup_steps=5, stage2_steps=30, stage2_lr=3e-4, stage2_replay=2.0,
           rank_eval_rows=200, rl_steps=4, rl_rollout_n=4, rl_batch_size=2, rl_lr=1e-5, rl_max_response_length=100,
           rl_kl_coef=0.02, rl_temperature=0.9, eval_batch_size=16, max_think_tokens=64,
           think_repetition_penalty=1.2, eval_limit=50, think_eval_limit=20, threads=2, fusion_valid_rows=30)


def test_sft_steps_carry_the_configs_values():
    steps = _steps(CFG)
    s1, s2 = parse_step(steps["stage1_sft"]), parse_step(steps["stage2_sft"])
    assert (s1.stage, s1.base_model, s1.output_dir, s1.data_dir, s1.category) == (
        "alignment", str(Path("R/tiny")), str(Path("R/stage1")), str(Path("data/demo")), "Demo")
    for ns in (s1, s2):  # what both stage scripts set, and what the pipeline shares between the stages
        assert (ns.batch_size, ns.micro_batch_size, ns.seed, ns.warmup_steps, ns.dropout, ns.weight_decay,
                ns.early_stopping_patience, ns.threads) == (16, 4, 3, 5, 0.2, 0.05, 2, 2)
    assert (s1.learning_rate, s1.max_steps, s1.eval_steps, s1.prompt_style, s1.rank_eval_rows) == (
        1e-3, 50, 10, "native", 200)
    assert (s2.stage, s2.base_model, s2.learning_rate, s2.max_steps) == (
        "reasoning", str(Path("R/stage1/final_checkpoint")), 3e-4, 30)
    assert s2.reasoning_train_file == str(Path("R/corpus/Demo.integrated_narrative.csv"))
    assert s2.prompt_style == "auto" and s2.task_weights == "next_sid=2.0"  # stage 1's recorded style
    assert s1.num_epochs is None and s1.cutoff_len is None  # the stage's defaults, as the scripts' are


def test_eval_steps_carry_the_configs_values():
    steps = _steps(CFG)
    think, nothink = parse_step(steps["eval_stage2_think"]), parse_step(steps["eval_stage2_nothink"])
    for ns in (think, nothink):
        assert (ns.base_model, ns.data_dir, ns.category, ns.split, ns.num_beams, ns.batch_size, ns.threads,
                ns.resume) == (str(Path("R/stage2/final_checkpoint")), str(Path("data/demo")), "Demo", "test", 10,
                               16, 2, True)
        assert ns.prompt_style == "auto"  # the style the model recorded, as the evaluation scripts' default
    assert (think.think, think.max_think_tokens, think.repetition_penalty, think.limit) == (True, 64, 1.2, 20)
    assert (nothink.think, nothink.limit, nothink.output_dir) == (False, 50, str(Path("S/stage2_nothink")))
    assert think.compare_nothink == str(Path("S/stage2_nothink"))
    valid = parse_step(steps["valid_stage2_think"])
    assert (valid.split, valid.limit, valid.output_dir) == ("valid", 30, str(Path("S/valid/stage2_think")))
    assert parse_step(steps["prior_stage2"]).threads == 2


def test_stage3_steps_carry_the_configs_values():
    steps = _steps(CFG)
    k = knobs_from_args(parse_step(steps["stage3_grpo"]))
    assert (k.rollout_n, k.micro_batch_size, k.train_batch_size, k.lr, k.max_response_length, k.kl_coef,
            k.temperature, k.max_steps, k.save_freq, k.test_freq, k.seed) == (4, 4, 2, 1e-5, 100, 0.02, 0.9, 4, 2, 0, 3)
    assert (k.max_think_tokens, k.rank_k, k.rollout_repetition_penalty, k.valid_holdout) == (64, 10, 1.2, 200)
    assert (k.model_path, k.output_dir) == (str(Path("R/stage2/final_checkpoint")), str(Path("R/stage3")))
    assert parse_step(steps["stage3_grpo"]).threads == 2
    data = parse_step(steps["stage3_data"])
    assert (data.output_dir, data.info_file, data.category, data.data_dir) == (
        k.rl_data_dir, k.info_file, k.category, k.data_dir)
    assert (data.train_from, data.valid_holdout, data.think, data.if_missing) == ("valid", 200, True, True)
    # PROMPT_STYLE=auto as RL_training_script.sh resolves it: the style recorded with stage 2's model
    assert (data.prompt_style, data.model_path) == ("auto", k.model_path)
    assert steps["stage3_data"].skip_when == steps["stage3_grpo"].done  # checked again until stage 3 is done


def test_rl_data_auto_prompt_style_is_the_models(tmp_path):
    from sidreasoner.rl.prepare import PrepareConfig
    model = tmp_path / "model"
    model.mkdir()
    assert PrepareConfig(category="Demo", prompt_style="auto", model_path=str(model)).resolved().prompt_style == \
        "native"  # a folder without a recorded style
    (model / "prompt_style.json").write_text('{"prompt_style": "compact"}\n')
    cfg = PrepareConfig(category="Demo", prompt_style="auto", model_path=str(model)).resolved()
    assert cfg.prompt_style == "compact" and "model_path" not in cfg.content_settings()
    with pytest.raises(ValueError, match="--prompt_style auto needs --model_path"):
        PrepareConfig(category="Demo", prompt_style="auto").resolved()


def test_a_step_skipped_on_another_file(tmp_path):
    done, later = tmp_path / "done", tmp_path / "later"
    later.write_text("x")
    never = P.Step("skipped", done, [sys.executable, "-c", "raise SystemExit(5)"], skip_when=later)
    runs = P.Step("runs", done, [sys.executable, "-c", f"open({str(done)!r}, 'w').write('ok')"],
                  skip_when=tmp_path / "absent")
    timings = P.run_steps([never, runs], tmp_path / "logs")
    assert [t["status"] for t in timings] == ["skipped", "ran"] and done.read_text() == "ok"


def test_every_torch_entry_point_checks_its_threads_flag():
    from sidreasoner.eval import calibration
    from sidreasoner.rl import grpo_cli
    from sidreasoner.train.sft_config import SFTConfig, check_numbers
    with pytest.raises(ValueError, match=r"--threads must be >= 0 \(0: torch's choice\), got -1"):
        check_numbers(SFTConfig(threads=-1))
    for main, argv in ((grpo_cli.main, ["--threads", "-1"]),
                       (calibration.main, ["--model_path", "m", "--info_file", "i", "--output", "o",
                                           "--threads", "-1"])):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2


def test_stage3_knob_errors_name_the_entry_point():
    with pytest.raises(P.UsageError, match=r"stage 3 \(rl/trl_grpo\.py\): MAX_THINK_TOKENS must be >= 0, got -6"):
        P.plan(P.PipelineConfig(rl_max_response_length=10))
    assert flag(_steps({"rl_steps": 3})["stage3_grpo"], "max_steps") == "3"
