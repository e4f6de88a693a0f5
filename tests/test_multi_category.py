"""Several categories in one run (``--category A,B`` / ``CATEGORY=A,B``): one catalogue each, SID tokens
shared. The parser, the two-category demo data and tiny tokenizer, the RL data and reward per row's
category, SFT on both catalogues, and the pipeline evaluating each category on its own."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sidreasoner.data.formats import read_info, read_split_csv
from sidreasoner.data.records import ReleasePaths, parse_categories

REPO = Path(__file__).resolve().parents[1]
CATS = ["Demo", "Demo2"]
SMALL = ["--n_items", "300", "--n_users", "300"]


def _run(args: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}, **kw)


@pytest.fixture(scope="module")
def two_cats(tmp_path_factory) -> Path:
    """Small two-category demo data (Demo, Demo2), written once for the module."""
    out = tmp_path_factory.mktemp("two_cats")
    done = _run(["scripts/make_demo_data.py", "--output_dir", out, "--category", ",".join(CATS), *SMALL])
    assert done.returncode == 0, done.stderr
    return out


def _catalogue(data: Path, cat: str) -> dict[str, str]:
    return {r.sid: r.item_id for r in read_info(ReleasePaths(data, cat).info)}


# -- parsing ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, names", [("Office_Products", ["Office_Products"]), ("A,B", ["A", "B"]),
                                         (" A , B ,C", ["A", "B", "C"])])
def test_parse_categories(text, names):
    assert parse_categories(text) == names


@pytest.mark.parametrize("text, message", [("", "no category"), ("A,,B", "empty category name"),
                                           ("A,", "empty category name"), ("A,B,A", "named twice"),
                                           ("A/B", "no '/'"), ("A=x", "no '/' or '='")])
def test_parse_categories_refuses(text, message):
    with pytest.raises(ValueError, match=message):
        parse_categories(text)


# -- demo data and tiny tokenizer ----------------------------------------------------------------------
def test_demo_data_two_categories_deterministic_sharing_sid_tokens(two_cats, tmp_path):
    one = tmp_path / "one"
    assert _run(["scripts/make_demo_data.py", "--output_dir", one, "--category", "Demo", *SMALL]).returncode == 0
    # the first category is the one-category run's data, byte for byte
    for path in ("info/Demo_5_2016-10-2018-11.txt", "train/Demo_5_2016-10-2018-11.csv", "Demo.demo_report.json"):
        assert (two_cats / path).read_bytes() == (one / path).read_bytes()
    a, b = _catalogue(two_cats, "Demo"), _catalogue(two_cats, "Demo2")
    assert a != b and len(a) == len(b) == 300
    tokens = {s.split(">")[0] for s in list(a) + list(b)}
    assert all(t.startswith("<a_") for t in tokens)  # the same token vocabulary, different items
    again = tmp_path / "again"
    assert _run(["scripts/make_demo_data.py", "--output_dir", again, "--category", "Demo,Demo2", *SMALL]).returncode == 0
    assert (again / "info/Demo2_5_2016-10-2018-11.txt").read_bytes() == \
        (two_cats / "info/Demo2_5_2016-10-2018-11.txt").read_bytes()


def test_demo_data_refuses_a_bad_category_list(tmp_path):
    done = _run(["scripts/make_demo_data.py", "--output_dir", tmp_path, "--category", "Demo,Demo", *SMALL])
    assert done.returncode != 0 and "named twice" in done.stderr


@pytest.fixture(scope="module")
def tiny(two_cats, tmp_path_factory) -> Path:
    """A tiny Qwen3 whose tokenizer was built from both catalogues."""
    out = tmp_path_factory.mktemp("tiny") / "model"
    done = _run(["scripts/make_tiny_model.py", "--data_dir", two_cats, "--category", "Demo,Demo2",
                 "--output_dir", out, "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2",
                 "--num_kv_heads", "1"])
    assert done.returncode == 0, done.stderr
    return out


def test_tiny_tokenizer_covers_both_catalogues(two_cats, tiny):
    from transformers import AutoTokenizer
    from sidreasoner.model.chat import check_sid_tokens
    tok = AutoTokenizer.from_pretrained(tiny)
    for cat in CATS:
        check_sid_tokens(tok, list(_catalogue(two_cats, cat)))


# -- RL data and reward ------------------------------------------------------------------------------------
def test_rl_data_rows_of_each_category_and_reward_per_row(two_cats, tmp_path):
    from sidreasoner.rl.data import read_rl_parquet
    from sidreasoner.rl.prepare import PrepareConfig, prepare_rl_data
    from sidreasoner.rl.verl_reward import compute_score
    out = tmp_path / "rl"
    report = prepare_rl_data(PrepareConfig(data_dir=str(two_cats), category="Demo,Demo2", output_dir=str(out),
                                           max_train_rows=7), say=lambda *a: None)
    assert set(report["splits"]["train"]["categories"]) == set(CATS)
    train = read_rl_parquet(out / "train.parquet")
    assert [r["data_source"] for r in train] == ["sidreasoner/Demo"] * 7 + ["sidreasoner/Demo2"] * 7
    valid = read_rl_parquet(out / "valid.parquet")
    assert len(valid) == sum(len(read_split_csv(ReleasePaths(two_cats, c).split("valid"))) for c in CATS)
    info = json.loads((out / "prepare_config.json").read_text())["info_file"]
    assert info == ",".join(f"{c}={ReleasePaths(two_cats, c).info}" for c in CATS)
    # a SID of Demo2's catalogue only: valid for a Demo2 row, invalid (no bonus) for a Demo row
    only_b = sorted(set(_catalogue(two_cats, "Demo2")) - set(_catalogue(two_cats, "Demo")))[0]
    wrong = "<a_999><b_999><c_999>"
    assert compute_score("sidreasoner/Demo2", only_b, wrong, info_file=info)["valid_bonus"] > 0
    assert compute_score("sidreasoner/Demo", only_b, wrong, info_file=info)["valid_bonus"] == 0
    # the release's rows (one data_source for the mix): the union, as its one info file of the mix
    assert compute_score("rec/Amazon_mix3_IOV", only_b, wrong, info_file=info)["valid_bonus"] > 0
    with pytest.raises(ValueError, match="category 'Other'"):
        compute_score("sidreasoner/Other", only_b, wrong, info_file=info)


def test_rl_data_refuses_one_catalogue_for_two_categories(two_cats, tmp_path):
    from sidreasoner.rl.prepare import PrepareConfig
    one = str(ReleasePaths(two_cats, "Demo").info)
    with pytest.raises(ValueError, match="one per category"):
        PrepareConfig(data_dir=str(two_cats), category="Demo,Demo2", output_dir=str(tmp_path), info_file=one).resolved()
    with pytest.raises(ValueError, match="--info_file names the catalogues of Demo"):
        PrepareConfig(data_dir=str(two_cats), category="Demo,Demo2", output_dir=str(tmp_path),
                      info_file=f"Demo={one}").resolved()
    with pytest.raises(ValueError, match="--category: empty category"):
        PrepareConfig(data_dir=str(two_cats), category="Demo,", output_dir=str(tmp_path)).resolved()


# -- SFT ---------------------------------------------------------------------------------------------------
def test_sft_trains_on_both_categories_and_probes_each_in_its_catalogue(two_cats, tiny, tmp_path):
    out = tmp_path / "s1"
    done = _run(["sft.py", "--stage", "alignment", "--base_model", tiny, "--data_dir", two_cats,
                 "--category", "Demo,Demo2", "--output_dir", out, "--tasks", "next_sid,sid_to_title",
                 "--max_steps", "4", "--eval_steps", "2", "--batch_size", "8", "--rank_eval_rows", "10",
                 "--prompt_style", "compact", "--max_valid_per_task", "10", "--log_file", out / "log.jsonl"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "final_checkpoint" / "sft_summary.json").read_text())
    tasks = {row["task"] for row in summary["tasks"]}
    assert tasks == {f"{t}[{c}]" for t in ("next_sid", "sid_to_title") for c in CATS}
    last = summary["eval_history"][-1]
    for cat in CATS:
        assert f"eval_next_sid[{cat}]_loss" in last and f"eval_ndcg10[{cat}]" in last
    pooled = (last["eval_ndcg10[Demo]"] + last["eval_ndcg10[Demo2]"]) / 2  # 10 rows each: equal weights
    assert last["eval_ndcg10"] == pytest.approx(pooled)
    assert "ranking probe [Demo2]: 10 valid rows" in done.stdout


def test_sft_refuses_one_category_files_for_several(two_cats, tiny):
    from sidreasoner.train.sft_config import SFTConfig, resolve
    index = str(ReleasePaths(two_cats, "Demo").index_json)
    with pytest.raises(ValueError, match="--sid_index_path name one category's file"):
        resolve(SFTConfig(base_model=str(tiny), data_dir=str(two_cats), category="Demo,Demo2", sid_index_path=index))
    with pytest.raises(ValueError, match="named twice"):
        resolve(SFTConfig(base_model=str(tiny), data_dir=str(two_cats), category="Demo,Demo"))


# -- the pipeline ------------------------------------------------------------------------------------------
def test_pipeline_plan_trains_once_and_evaluates_each_category():
    from fixtures_pipeline import flag
    from sidreasoner.pipeline import PipelineConfig, plan
    steps = {s.name: s for s in plan(PipelineConfig(category="Demo,Demo2", rl_steps=2, fusion_valid_rows=10))}
    assert steps["demo_data"].cmd[-2:] == ["--category", "Demo,Demo2"]
    assert str(steps["demo_data"].done).endswith("info/Demo2_5_2016-10-2018-11.txt")
    for one in ("tiny_model", "stage1_sft", "stage2_sft", "stage3_grpo"):
        assert one in steps  # trained once on both
    assert flag(steps["stage1_sft"], "category") == flag(steps["stage3_grpo"], "category") == "Demo,Demo2"
    assert flag(steps["stage2_sft"], "reasoning_train_file").endswith("corpus")  # the folder of both corpora
    assert flag(steps["stage3_grpo"], "info_file") == flag(steps["stage3_data"], "info_file") == \
        "Demo=data/demo/info/Demo_5_2016-10-2018-11.txt,Demo2=data/demo/info/Demo2_5_2016-10-2018-11.txt"
    for cat in CATS:
        for name in ("popularity_baseline", "teacher_corpus", "eval_stage1_nothink", "eval_stage3_think",
                     "fuse_stage2", "prior_stage3"):
            assert f"{name}[{cat}]" in steps
        ev = steps[f"eval_stage2_think[{cat}]"]
        assert flag(ev, "category") == cat and flag(ev, "output_dir") == f"results/demo/{cat}/stage2_think"
        assert ev.cmd[-1] == f"results/demo/{cat}/stage2_nothink"  # --compare_nothink: its own category's


def test_pipeline_refuses_a_bad_category_list_and_one_category_knobs():
    from sidreasoner.pipeline import PipelineConfig, plan
    with pytest.raises(SystemExit, match="named twice"):
        plan(PipelineConfig(category="Demo,Demo"))
    with pytest.raises(SystemExit, match="RL_VALID_ROWS must be 0 with several categories"):
        plan(PipelineConfig(category="Demo,Demo2", rl_valid_rows=10))


#: a few optimiser steps a stage (scripts/gpu_smoke.py's knobs), two categories, every evaluation
E2E_KNOBS = dict(
    category="Demo,Demo2", seed=0, baselines="popularity", stages=3, stage1_steps=12, stage1_eval_steps=6,
    rank_eval_rows=20, early_stopping_patience=0, warmup_steps=2, stage2_steps=4, sft_eval_steps=4,
    rl_steps=1, rl_rollout_n=2, rl_batch_size=2, rl_max_response_length=48, rl_valid_rows=0,
    eval_limit=30, think_eval_limit=4, max_think_tokens=24, fusion_valid_rows=0,
)


@pytest.mark.slow
def test_two_category_demo_run_trains_and_evaluates_each_category(two_cats, tmp_path):
    from sidreasoner.eval.report import md_escape
    from sidreasoner.pipeline import PipelineConfig, run
    res = tmp_path / "results"
    cfg = PipelineConfig(**E2E_KNOBS, data_dir=str(two_cats), run_dir=str(tmp_path / "run"), results_dir=str(res))
    md = run(cfg).read_text()
    for cat in CATS:
        for name in ("popularity", "stage1_nothink", "stage1_think", "stage2_nothink", "stage2_think",
                     "stage3_nothink", "stage3_think"):
            metrics = json.loads((res / cat / name / "metrics.json").read_text())
            assert metrics["n"] == (4 if name.endswith("_think") else 30 if name.startswith("stage") else metrics["n"])
            assert f"| {md_escape(f'{name}[{cat}]')} |" in md  # a row per category
        assert (res / cat / "results.md").is_file()
    summary = json.loads((res / "summary.json").read_text())
    assert set(summary["categories"]) == set(CATS) and "stage3_nothink[Demo2]" in summary["ndcg10"]
    # stage 3 trained on the rows of both categories, each checked against its own catalogue
    rl_report = json.loads((tmp_path / "run" / "rl_data_valid" / "prepare_report.json").read_text())
    assert set(rl_report["splits"]["train"]["categories"]) == set(CATS)
