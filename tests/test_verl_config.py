"""verl recipe: knobs (environment) -> hydra overrides composed with verl's OWN trainer config (every key
exists, values typed, verl's validation passes), verl's RL dataset class on our parquet with our tokenizer,
the pre-flight checks' messages, and RL_training_script.sh (defaults agree with the knobs, dry run)."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from fixtures_sft import CATEGORY, foreign_index, write_tiny_release
from omegaconf import OmegaConf

from sidreasoner.data.formats import write_info
from sidreasoner.data.records import DataError, InfoRow
from sidreasoner.rl.knobs import RLKnobs, knobs_from_names
from sidreasoner.rl.prepare import PrepareConfig, prepare_rl_data
from sidreasoner.rl.preflight import check_data, check_model, check_verl_config, preflight
from sidreasoner.rl.verl_compose import compose
from sidreasoner.rl.verl_config import REWARD_FILE, hydra_value, run_dir, verl_overrides

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "RL_training_script.sh"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir):
    """A tiny release with its RL parquet, and the knobs of a run on the tiny model (paths with a space and a
    comma, which hydra must receive quoted)."""
    root = tmp_path_factory.mktemp("verl cfg,1")
    release = write_tiny_release(root / "data", with_corpora=False)
    prepare_rl_data(PrepareConfig(data_dir=str(release.data_dir), category=CATEGORY,
                                  output_dir=str(root / "rl")), say=lambda *_: None)
    knobs = RLKnobs(category=CATEGORY, data_dir=str(release.data_dir), model_path=str(tiny_model_dir[0]),
                    rl_data_dir=str(root / "rl"), output_dir=str(root / "out dir,x")).resolved("verl")
    return knobs, compose(verl_overrides(knobs))


def test_paper_defaults():
    k = RLKnobs()
    assert (k.rollout_n, k.temperature, k.train_batch_size, k.lr, k.kl_coef, k.epochs, k.save_freq, k.think) == \
        (16, 1.0, 256, 5e-7, 0.001, 10, 100, True)
    assert all(f.metadata.get("help") for f in dataclasses.fields(RLKnobs))


def test_knobs_from_script_names_and_bad_values():
    k = knobs_from_names({"NGPUS": "4", "LR": "1e-6", "THINK": "0", "LOGGER": "console,wandb", "SEED": ""})
    assert (k.ngpus, k.lr, k.think, k.logger, k.seed) == (4, 1e-6, False, "console,wandb", 42)
    with pytest.raises(ValueError, match=r"^NGPUS must be an integer, got 'two'$"):
        knobs_from_names({"NGPUS": "two"})
    with pytest.raises(ValueError, match=r"^THINK must be a boolean \(1/0, true/false\), got 'maybe'$"):
        knobs_from_names({"THINK": "maybe"})
    with pytest.raises(ValueError, match=r"^ROLLOUT_N must be >= 2: GRPO compares completions of the same prompt"):
        knobs_from_names({"ROLLOUT_N": "1"}).resolved("verl")
    with pytest.raises(ValueError, match=r"^BACKEND must be one of verl, trl, got 'ray'$"):
        RLKnobs().resolved("ray")


@pytest.mark.parametrize("value, text", [(True, "true"), (3, "3"), (5e-7, "5e-07"), ("grpo", "grpo"),
                                         ("/a b/c", "'/a b/c'"), ("x,y", "'x,y'"), ("it's", "'it\\'s'"),
                                         ("null", "'null'"), ("2024", "'2024'")])
def test_hydra_value(value, text):
    assert hydra_value(value) == text


def test_overrides_compose_into_verls_config_typed(run):
    knobs, cfg = run
    a, r = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert cfg.algorithm.adv_estimator == "grpo" and cfg.algorithm.use_kl_in_reward is False
    assert (r.n, r.temperature, r.name, r.tensor_model_parallel_size) == (16, 1.0, "vllm", 1)
    assert (a.optim.lr, a.use_kl_loss, a.kl_loss_coef, a.kl_loss_type, a.ppo_mini_batch_size) == \
        (5e-7, True, 0.001, "low_var_kl", 256)
    assert (cfg.data.train_batch_size, cfg.trainer.total_epochs, cfg.trainer.save_freq) == (256, 10, 100)
    assert type(r.n) is int and type(a.optim.lr) is float and type(a.use_kl_loss) is bool
    assert cfg.data.train_files == str(Path(knobs.train_file).resolve())
    assert cfg.data.val_files.endswith("/valid.parquet") and cfg.data.apply_chat_template_kwargs.enable_thinking is True
    fn = cfg.reward.custom_reward_function
    assert (fn.path, fn.name) == (str(REWARD_FILE), "compute_score")
    assert OmegaConf.to_container(fn.reward_kwargs) == {"info_file": str(Path(knobs.info_file).resolve()),
                                                         "level_weights": "0.25,0.5,1.0", "valid_bonus": 0.1,
                                                         "require_think_closed": False}
    assert cfg.trainer.default_local_dir == str(Path(knobs.output_dir).resolve())
    assert cfg.trainer.default_local_dir.endswith("out dir,x") and list(cfg.trainer.logger) == ["console", "file"]
    # the diagnostics' inputs: each step's rollouts, and verl's file logger, its path in its Ray actors' environment
    assert cfg.trainer.rollout_data_dir == str(Path(knobs.output_dir).resolve() / "rollouts")
    assert cfg.ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH == str(
        Path(knobs.output_dir).resolve() / "verl_log.jsonl")
    assert (cfg.trainer.n_gpus_per_node, cfg.trainer.nnodes) == (8, 1)


def test_verls_validation_and_loader_accept_the_config(run):
    from verl.trainer.ppo.reward import get_custom_reward_fn
    knobs, _ = run
    cfg = check_verl_config(verl_overrides(knobs))  # verl's validate_config: dataclasses, batch sizes
    fn = get_custom_reward_fn(cfg)
    out = fn(data_source=f"sidreasoner/{CATEGORY}", solution_str="</think><a_9><b_9><c_9>",
             ground_truth="<a_9><b_9><c_1>", extra_info={})
    assert out["score"] == 0.5 and out["valid_bonus"] == 0.0


def test_dynamic_sampling_maps_to_verls_group_filter(run):
    knobs, cfg = run
    assert cfg.algorithm.filter_groups.enable is False  # the paper: off
    on = check_verl_config(verl_overrides(dataclasses.replace(knobs, drop_zero_variance=True)))
    assert (on.algorithm.filter_groups.enable, on.algorithm.filter_groups.metric) == (True, "reward")


def test_constrained_rollouts_load_our_agent_loop(run):
    """SID_ROLLOUT=constrained: verl's agent loop registry reads our YAML and builds our loop's arguments."""
    import yaml
    from verl.experimental.agent_loop.agent_loop import AgentLoopBase
    from sidreasoner.rl.verl_agent import AGENT_NAME
    knobs, cfg = run
    assert cfg.actor_rollout_ref.rollout.agent.default_agent_loop != AGENT_NAME  # the paper: verl's own loop
    on = check_verl_config(verl_overrides(dataclasses.replace(knobs, sid_rollout="constrained")))
    agent = on.actor_rollout_ref.rollout.agent
    assert agent.default_agent_loop == AGENT_NAME
    [entry] = yaml.safe_load(Path(agent.agent_loop_config_path).read_text())
    assert entry["name"] == AGENT_NAME and entry["info_file"] == str(Path(knobs.info_file).resolve())
    assert entry["think_budget"] == knobs.think_budget
    module, name = entry["_target_"].rsplit(".", 1)
    assert issubclass(getattr(__import__(module, fromlist=[name]), name), AgentLoopBase)
    assert "sid_search" in entry and entry["sid_search"] == "sample"


@pytest.mark.parametrize("rank_k, probe_cap", [(10, False), (16, True)])
def test_beam_rollouts_and_the_rank_reward_reach_verl(run, rank_k, probe_cap):
    """SID_ROLLOUT=beam REWARD=rank on verl: our loop searches RANK_K beams (the SID in the loss as BEAM_SID_LOSS
    says), asks for the target's probability, and the reward is told to score the list; vLLM's log-probability
    cap is raised when the probe (2 x RANK_K) exceeds its default 20."""
    import yaml
    knobs, _ = run
    beam = dataclasses.replace(knobs, sid_rollout="beam", reward="rank", rank_k=rank_k, beam_sid_loss=False,
                               target_prob_weight=0.25, rollout_repetition_penalty=1.3)
    cfg = check_verl_config(verl_overrides(beam))
    [entry] = yaml.safe_load(Path(cfg.actor_rollout_ref.rollout.agent.agent_loop_config_path).read_text())
    assert (entry["sid_search"], entry["num_beams"], entry["sid_loss"], entry["target_prob"],
            entry["repetition_penalty"]) == ("beam", rank_k, False, True, 1.3)
    kwargs = cfg.reward.custom_reward_function.reward_kwargs
    assert (kwargs.reward, kwargs.target_prob_weight) == ("rank", 0.25)
    vllm = cfg.actor_rollout_ref.rollout.engine_kwargs.vllm
    assert vllm.get("max_logprobs") == (2 * rank_k if probe_cap else None)
    no_prob = dataclasses.replace(beam, target_prob_weight=0.0)  # NDCG only: no probability requests
    verl_overrides(no_prob)
    [entry] = yaml.safe_load(Path(cfg.actor_rollout_ref.rollout.agent.agent_loop_config_path).read_text())
    assert entry["target_prob"] is False
    with pytest.raises(ValueError, match="ANSWER_NLL_WEIGHT runs on BACKEND=trl only"):
        RLKnobs(sid_rollout="beam", answer_nll_weight=0.5).resolved("verl")


def test_bad_settings_and_typos_fail_before_any_gpu(run):
    knobs, _ = run
    three = dataclasses.replace(knobs, ngpus=3)
    with pytest.raises(ValueError, match=r"^verl's config validation failed: real_train_batch_size \(4096\) must be "
                                         r"divisible by minimal possible batch size \(3\)"):
        check_verl_config(verl_overrides(three))
    with pytest.raises(ValueError, match=r"^verl rejects the overrides: .*trainer\.totl_epochs"):
        check_verl_config(verl_overrides(knobs) + ["trainer.totl_epochs=3"])


def test_run_dir_follows_the_last_override(run):
    knobs, _ = run
    assert run_dir(knobs) == str(Path(knobs.output_dir).resolve())
    assert run_dir(knobs, ["trainer.save_freq=5", "trainer.default_local_dir=/tmp/elsewhere"]) == "/tmp/elsewhere"


def test_verl_dataset_reads_our_parquet_with_our_tokenizer(run, tiny_model_dir):
    """RLHFDataset with the composed data config; the chat template with verl's apply_chat_template_kwargs
    renders exactly the prompt the evaluator and SFT use."""
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from sidreasoner.rl.data import read_rl_parquet
    from sidreasoner.model.chat import render_prompt
    knobs, cfg = run
    tok = AutoTokenizer.from_pretrained(tiny_model_dir[0])
    ds = RLHFDataset(knobs.val_file, tok, cfg.data)
    ours = read_rl_parquet(knobs.val_file)
    assert len(ds) == len(ours) == 16
    kwargs = OmegaConf.to_container(cfg.data.apply_chat_template_kwargs)
    for i in (0, 15):
        row = ds[i]
        assert row["raw_prompt"] == ours[i]["prompt"] and row["data_source"] == f"sidreasoner/{CATEGORY}"
        assert row["reward_model"]["ground_truth"] == ours[i]["reward_model"]["ground_truth"]
        text = tok.apply_chat_template(row["raw_prompt"], add_generation_prompt=True, tokenize=False, **kwargs)
        system, user = row["raw_prompt"][0]["content"], row["raw_prompt"][1]["content"]
        assert text == render_prompt(tok, user, think=True, system=system)
    short = OmegaConf.merge(cfg.data, {"max_prompt_length": 60})  # verl's overlong filter counts our tokens
    assert len(RLHFDataset(knobs.val_file, tok, short)) < 16


def test_preflight_messages(run, tmp_path):
    knobs, _ = run
    said = []
    preflight(knobs, None, say=said.append)
    assert said[0].startswith("pre-flight: train 64 / valid 16 prompts (thinking), catalogue 40 SIDs")
    with pytest.raises(DataError, match=r"rows were written for the other prompt mode, but this run uses "
                                        r"non-thinking prompts \(THINK=0\)"):
        check_data(dataclasses.replace(knobs, think=False))
    foreign = tmp_path / "foreign.txt"
    write_info(foreign, [InfoRow(sid, "x", i) for i, sid in foreign_index().items()])
    from sidreasoner.rl.verl_reward import load_catalogue
    with pytest.raises(ValueError, match=r"^MODEL_PATH .*: checkpoint has no SID tokens: \d+ missing from the "
                                         r"vocabulary of \d+"):
        check_model(knobs, load_catalogue(str(foreign)))
    with pytest.raises(OSError, match=r"MODEL_PATH .*nowhere: no model folder there \(no config.json\)"):
        check_model(dataclasses.replace(knobs, model_path=str(tmp_path / "nowhere")), {"<a_1><b_1><c_1>"})


# -- RL_training_script.sh ----------------------------------------------------------------------------
_SUBST = {"${CATEGORY}": "Office_Products", "${BACKEND}": "verl", "${DATA_DIR}": "data/Amazon"}


def _script_default(text: str, name: str) -> str:
    m = re.search(rf"^{name}=\$\{{{name}:-(.*?)\}}(\s|$)", text, re.M)
    assert m, f"{name} is not a knob of {SCRIPT.name}"
    value = m.group(1)
    for k, v in _SUBST.items():
        value = value.replace(k, v)
    return value


def test_script_defaults_are_the_knobs_defaults():
    text = SCRIPT.read_text()
    resolved = RLKnobs().resolved("verl")
    for f in dataclasses.fields(RLKnobs):
        want, got = getattr(resolved, f.name), _script_default(text, f.name.upper())
        if isinstance(want, bool):
            assert got == str(int(want)), f.name
        elif isinstance(want, (int, float)):
            assert float(got) == want, f.name
        else:
            assert got == want, f.name
    names = re.search(r'^KNOB_NAMES="(.*?)"', text, re.M | re.S).group(1).split()
    assert sorted(names) == sorted(f.name.upper() for f in dataclasses.fields(RLKnobs))  # each passed as its flag
    assert not re.search(r"^export ", text, re.M)  # no Python reads a knob from the environment


def test_script_dry_run_prints_the_pipeline(tmp_path):
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    env = {"PATH": os.environ["PATH"], "PYTHON": sys.executable, "DRY_RUN": "1", "NGPUS": "4",
           "LOG_FILE": str(tmp_path / "log.txt"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(["bash", str(SCRIPT), "trainer.resume_mode=disable"], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [shlex.split(line) for line in out.stdout.strip().splitlines()]
    assert [line[1:3] for line in lines] == [["rl/prepare_data.py", "--data_dir"],
                                             ["-m", "sidreasoner.rl.verl_config"], ["-m", "verl.trainer.main_ppo"],
                                             ["scripts/merge_fsdp_checkpoint.py", "--all"],
                                             ["-m", "sidreasoner.rl.diagnostics"]]
    knob_flags = lines[1][4:lines[1].index("--")]
    assert lines[1][3] == "check" and lines[1][lines[1].index("--"):] == ["--", "trainer.resume_mode=disable"]
    flags = dict(zip(knob_flags[::2], knob_flags[1::2]))
    assert len(flags) == len(dataclasses.fields(RLKnobs)) and flags["--ngpus"] == "4" and flags["--think"] == "1"
    cwd = os.getcwd()
    try:
        os.chdir(REPO)  # the script runs from the repository: relative defaults resolve there
        expected = verl_overrides(RLKnobs(ngpus=4).resolved("verl"))
    finally:
        os.chdir(cwd)
    assert lines[2][3:] == [*expected, "trainer.resume_mode=disable"]
    assert lines[3][3] == str(REPO / "checkpoints" / "grpo_verl_Office_Products")
    bad = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env={**env, "BACKEND": "ray"})
    assert bad.returncode == 2 and bad.stderr.strip() == "RL_training_script.sh: BACKEND must be verl or trl, got 'ray'"
    trl = subprocess.run(["bash", str(SCRIPT), "--max_steps", "3"], capture_output=True, text=True,
                         env={**env, "BACKEND": "trl"}, cwd=tmp_path)
    trl_flags = [x.replace("grpo_verl_", "grpo_trl_") for x in knob_flags]  # OUTPUT_DIR's default names the backend
    assert trl.returncode == 0 and shlex.split(trl.stdout.splitlines()[-1])[1:] == ["rl/trl_grpo.py", *trl_flags,
                                                                                    "--max_steps", "3"]


def test_cli_reports_bad_knobs_and_usage():
    env = {"PATH": os.environ["PATH"], "NGPUS": "x", "OUTPUT_DIR": "/elsewhere"}  # the environment is not read
    bad = subprocess.run([sys.executable, "-m", "sidreasoner.rl.verl_config", "overrides", "--ngpus", "x"],
                         capture_output=True, text=True, env=env, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.strip().endswith("error: argument --ngpus: NGPUS must be an integer, "
                                                               "got 'x'")
    ok = subprocess.run([sys.executable, "-m", "sidreasoner.rl.verl_config", "run-dir", "--ngpus", "2", "--",
                         "trainer.resume_mode=disable"], capture_output=True, text=True, env=env, cwd=REPO)
    assert ok.returncode == 0 and ok.stdout.strip() == str(REPO / "checkpoints" / "grpo_verl_Office_Products")
    out = subprocess.run([sys.executable, "-m", "sidreasoner.rl.verl_config", "run-dir", "--", "--flag",
                          "trainer.default_local_dir=/tmp/x"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "/tmp/x"  # after --: hydra's, never read as knob flags
    usage = subprocess.run([sys.executable, "-m", "sidreasoner.rl.verl_config"], capture_output=True, text=True,
                           cwd=REPO)
    assert usage.returncode == 2 and "{overrides,check,run-dir}" in usage.stderr


@pytest.mark.gpu
def test_two_verl_steps_end_to_end(tmp_path, tiny_model_dir):
    """On a GPU node with vLLM: two GRPO steps of the real verl trainer on the tiny model, then the merge."""
    release = write_tiny_release(tmp_path / "data", with_corpora=False)
    env = {**os.environ, "BACKEND": "verl", "CATEGORY": CATEGORY, "DATA_DIR": str(release.data_dir),
           "MODEL_PATH": str(tiny_model_dir[0]), "RL_DATA_DIR": str(tmp_path / "rl"), "OUTPUT_DIR": str(tmp_path / "out"),
           "NGPUS": "1", "ROLLOUT_N": "4", "TRAIN_BATCH_SIZE": "8", "MICRO_BATCH_SIZE": "4", "MAX_STEPS": "2",
           "SAVE_FREQ": "2", "TEST_FREQ": "0", "MAX_RESPONSE_LENGTH": "64", "MAX_PROMPT_LENGTH": "512",
           "LOG_PROB_MICRO_BATCH_SIZE": "8", "PYTHON": sys.executable, "LOG_FILE": str(tmp_path / "log.txt")}
    extra = ["actor_rollout_ref.rollout.gpu_memory_utilization=0.3"]
    if importlib.util.find_spec("flash_attn") is None:  # optional in requirements-gpu.txt: sdpa, padded batches
        extra += ["+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
                  "actor_rollout_ref.model.use_remove_padding=False"]
    out = subprocess.run(["bash", str(SCRIPT), *extra], capture_output=True, text=True, env=env, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    merged = tmp_path / "out" / "global_step_2" / "actor_merged"
    assert (merged / "merge_report.json").is_file() and (merged / "config.json").is_file()


def _pin(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip().startswith("verl")]


def test_verl_pin_agrees_with_requirements_and_the_installed_verl():
    from importlib.metadata import version
    pinned = _pin(REPO / "rl" / "REQUIRED_VERL.txt")
    assert len(pinned) == 1 and _pin(REPO / "requirements.txt") == pinned
    assert pinned[0].split("==")[1] == version("verl")
