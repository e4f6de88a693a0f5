"""evaluate.py and the evaluation runner: end to end on a tiny model folder + tiny release data, both
modes, resume after a kill, shards + merge, thinking-mode closing, and the bad-input messages."""
from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fixtures_model import REPO_ROOT, build_tiny_model_dir, tiny_catalogue, tiny_model_dir, write_catalogue  # noqa: F401
from sidreasoner.data.formats import read_info_index, write_split_csv
from sidreasoner.data.records import ReleasePaths, SequenceRow
from sidreasoner.eval.beam import BeamResult, same_ranking
from sidreasoner.eval.predictions import load_for_resume, merge_shards, parse_shard, read_records
from sidreasoner.eval.runner import EvalConfig, merge_paths, run_evaluation
from sidreasoner.eval.thinking import close_think, open_think, split_reasoning

CAT = "Tiny"
N_ROWS = 14
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def release(tmp_path_factory, tiny_model_dir):
    """A release folder for the tiny catalogue: info file + a test split whose LAST row's target is unknown."""
    model_dir, index = tiny_model_dir
    items, _ = tiny_catalogue()
    data = tmp_path_factory.mktemp("release")
    write_catalogue(data, CAT, items, index)
    rnd, ids = random.Random(3), sorted(items)
    rows = []
    for u in range(N_ROWS):
        hist = rnd.sample(ids, rnd.randint(1, 6))
        t = rnd.choice(ids)
        rows.append(SequenceRow(f"u{u}", tuple(hist), tuple(items[i].title for i in hist),
                                tuple(index.sid(i) for i in hist), t, items[t].title, index.sid(t)))
    unknown = "<a_9><b_9><c_9>"  # codes beyond the 4x4x4 codebooks: not in the catalogue
    rows[-1] = SequenceRow("u_unknown", rows[-1].history_item_ids, rows[-1].history_titles,
                           rows[-1].history_sids, "X999", "unknown", unknown)
    write_split_csv(data / "test" / f"{CAT}_5_2016-10-2018-11.csv", rows)
    return data, model_dir, set(index.unique_sids())


def config(release, out, **kw) -> EvalConfig:
    data, model_dir, _ = release
    kw = {"num_beams": 5, "batch_size": 4, **kw}
    return EvalConfig.from_release(data, CAT, base_model=str(model_dir), output_dir=str(out), **kw)


def by_row(out) -> dict[int, dict]:
    return {r["row"]: r for r in read_records(Path(out) / "predictions.jsonl")}


@pytest.fixture(scope="module")
def full_run(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    return out, run_evaluation(config(release, out))


def run_script(*args, timeout=300):
    return subprocess.run([sys.executable, str(REPO_ROOT / "evaluate.py"), *map(str, args)], capture_output=True,
                          text=True, env=ENV, cwd=REPO_ROOT, timeout=timeout)


def test_help_lists_every_flag():
    res = run_script("--help")
    assert res.returncode == 0
    for flag in ("--base_model", "--info_file", "--category", "--test_data_path", "--result_json_data",
                 "--batch_size", "--num_beams", "--max_new_tokens", "--length_penalty", "--data_dir", "--split",
                 "--think", "--output_dir", "--limit", "--shard", "--resume", "--merge_shards"):
        assert flag in res.stdout


@pytest.mark.parametrize("think", [False, True])
def test_script_end_to_end(release, tmp_path, think, capsys):
    """Non-thinking mode as a real subprocess; thinking mode through the same main() in-process (faster)."""
    data, model_dir, catalogue = release
    ref_json = tmp_path / "ref.json"
    argv = ["--base_model", model_dir, "--data_dir", data, "--category", CAT, "--output_dir", tmp_path / "o",
            "--limit", 6, "--num_beams", 5, "--batch_size", 3, "--result_json_data", ref_json]
    if think:
        assert _load_evaluate_module().main([str(a) for a in argv + ["--think", "--max_think_tokens", 4]]) == 0
        stdout = capsys.readouterr().out
    else:
        res = run_script(*argv)
        assert res.returncode == 0, res.stderr[-2000:]
        stdout = res.stdout
    recs = sorted(read_records(tmp_path / "o" / "predictions.jsonl"), key=lambda r: r["row"])
    assert [r["row"] for r in recs] == list(range(6))
    for r in recs:
        assert len(r["ranked"]) == 5 and set(r["ranked"]) <= catalogue and len(set(r["ranked"])) == 5
        assert r["scores"] == sorted(r["scores"], reverse=True)
        assert ("reasoning" in r) == think and r.get("think_closed", False) is False
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["n"] == 6 and metrics["invalid_predictions"] == 0 and "HR@5" in metrics and "NDCG@5" in metrics
    assert json.loads((tmp_path / "o" / "config.json").read_text())["think"] is think
    assert [e["predict"] for e in json.loads(ref_json.read_text())] == [r["ranked"] for r in recs]
    assert "HR@5" in stdout


def test_predictions_name_the_items_of_every_ranked_sid(full_run, release):
    """items[k] / titles[k]: the catalogue items the k-th SID stands for (metrics stay on SIDs)."""
    out, _ = full_run
    data, _, _ = release
    index = read_info_index(ReleasePaths(data, CAT).info)
    for rec in by_row(out).values():
        assert rec["items"] == [index.sid_to_items[s] for s in rec["ranked"]]
        assert rec["titles"] == [[index.titles[i] for i in ids] for ids in rec["items"]]


def test_full_run_counts_unknown_targets(full_run, release):
    out, metrics = full_run
    recs = by_row(out)
    assert len(recs) == N_ROWS and metrics["n"] == N_ROWS
    assert metrics["targets_not_in_catalogue"] == 1 and recs[N_ROWS - 1]["target_in_catalogue"] is False
    assert all(set(r["ranked"]) <= release[2] and len(r["ranked"]) == 5 for r in recs.values())
    run = json.loads((out / "run.json").read_text())
    assert run["rows_evaluated"] == N_ROWS and run["rows_resumed"] == 0


def test_calibrated_run_scores_plain_minus_alpha_prior(full_run, release, tmp_path):
    """--calibrate 0.5: every SID both runs returned scores plain - 0.5 x its recorded prior, and the
    config records alpha (a resumed run must agree on it)."""
    out, _ = full_run
    cal = tmp_path / "cal"
    run_evaluation(config(release, cal, calibrate=0.5))
    plain, got = by_row(out), by_row(cal)
    shared = 0
    for row, rec in got.items():
        assert len(rec["prior"]) == len(rec["ranked"]) == 5 and rec["scores"] == sorted(rec["scores"], reverse=True)
        before = dict(zip(plain[row]["ranked"], plain[row]["scores"]))
        for sid, s, p in zip(rec["ranked"], rec["scores"], rec["prior"]):
            if sid in before:
                shared += 1
                assert s == pytest.approx(before[sid] - 0.5 * p, abs=1e-4)
    assert shared >= N_ROWS  # the two lists overlap on every row
    assert json.loads((cal / "config.json").read_text())["calibrate"] == 0.5
    with pytest.raises(ValueError, match="calibrate: 0.5 -> 0.2"):
        run_evaluation(config(release, cal, calibrate=0.2, resume=True))


def test_resume_after_kill_gives_the_same_metrics(full_run, release, tmp_path):
    out, metrics = full_run
    lines = (out / "predictions.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "predictions.jsonl").write_text("".join(lines[:5]) + lines[5][:17])  # killed mid-line
    shutil.copy(out / "config.json", tmp_path / "config.json")
    resumed = run_evaluation(config(release, tmp_path, resume=True))
    assert resumed == metrics
    assert by_row(tmp_path) == by_row(out)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["rows_resumed"] == 5 and run["rows_evaluated"] == N_ROWS - 5


def test_shards_then_merge_equal_the_unsharded_run(full_run, release, tmp_path):
    out, metrics = full_run
    assert run_evaluation(config(release, tmp_path, shard=(1, 2))) == {}  # shard 0 not there yet
    assert not (tmp_path / "metrics.json").exists()
    merged = run_evaluation(config(release, tmp_path, shard=(0, 2)))  # the last shard merges
    assert merged == metrics
    sharded, whole = by_row(tmp_path), by_row(out)
    assert sorted(sharded) == sorted(whole)
    for row, a in sharded.items():
        b = whole[row]
        assert same_ranking(BeamResult(a["ranked"], a["scores"]), BeamResult(b["ranked"], b["scores"]), 1e-4)
    (tmp_path / "predictions.jsonl").unlink()
    (tmp_path / "metrics.json").unlink()
    evaluate = _load_evaluate_module()
    assert evaluate.main(["--merge_shards", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


def test_reference_search_gives_the_same_rankings(full_run, release, tmp_path):
    out, _ = full_run
    run_evaluation(config(release, tmp_path, search="reference", limit=8))
    ours = by_row(out)
    for row, rec in by_row(tmp_path).items():
        assert same_ranking(BeamResult(rec["ranked"], rec["scores"]),
                            BeamResult(ours[row]["ranked"], ours[row]["scores"]), 1e-4)


def test_thinking_mode_force_closes_unclosed_reasoning(release, tmp_path):
    metrics = run_evaluation(config(release, tmp_path, think=True, max_think_tokens=5, limit=4,
                                    num_reasoning_paths=2, temperature=1.0))
    recs = by_row(tmp_path)
    assert len(recs) == 4 and metrics["think_closed_rate"] == 0.0  # a random model never writes </think>
    for r in recs.values():
        assert r["think_closed"] == [False, False] and len(r["reasoning_paths"]) == 2
        assert len(r["ranked"]) == 5 and set(r["ranked"]) <= release[2]


def test_repetition_penalty_reaches_the_reasoning_generation(release, monkeypatch):
    """The penalty goes into HF generate's config (1.0 leaves it unset, as the release decodes)."""
    from sidreasoner.eval.thinking import hf_reasoning
    from sidreasoner.model.chat import stop_token_id
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    model, tok = load_model_and_tokenizer(str(release[1]))
    seen, generate = [], model.generate
    monkeypatch.setattr(model, "generate", lambda **kw: seen.append(kw["generation_config"]) or generate(**kw))
    prompt = "<|im_start|>user\n<a_1><b_2><c_3><|im_end|>\n<|im_start|>assistant\n<think>\n"
    for penalty in (1.0, 1.3):
        paths = hf_reasoning(model.eval(), tok, [prompt], stop_token_id(tok), 8, repetition_penalty=penalty)
        assert len(paths) == 1 and len(paths[0]) == 1
    assert seen[0].repetition_penalty in (None, 1.0) and seen[1].repetition_penalty == 1.3


def test_vllm_backend_reasons_for_the_whole_split_in_one_call(release, tmp_path, monkeypatch):
    """With vLLM (faked here: not installed on CPU) the reasoning of every row comes from one call;
    each row's search then runs on its own reasoning."""
    from sidreasoner.eval import runner
    from sidreasoner.eval.thinking import Reasoning
    calls = []

    def fake_vllm(model_path, prompts, stop_texts, max_think_tokens, num_paths, temperature, seed, **kw):
        calls.append(list(prompts))
        return [[Reasoning(f"reasoning {k}", True)] for k in range(len(prompts))]
    monkeypatch.setattr(runner, "pick_backend", lambda backend: "vllm")
    monkeypatch.setattr(runner, "vllm_reasoning", fake_vllm)
    run_evaluation(config(release, tmp_path, think=True, limit=9, batch_size=4))
    assert len(calls) == 1 and len(calls[0]) == 9
    recs = by_row(tmp_path)
    assert sorted(recs) == list(range(9)) and all(r["think_closed"] for r in recs.values())
    assert {r["reasoning"] for r in recs.values()} == {f"reasoning {k}" for k in range(9)}


def test_think_search_runs_on_the_force_closed_prompts(release, tmp_path):
    """Each path's SID search continues prompt + reasoning + '\\n</think>\\n\\n'; paths merge by best score."""
    from sidreasoner.data.formats import read_split_csv
    from sidreasoner.eval.runner import Evaluator, build_trie, read_catalogue
    from sidreasoner.model.chat import stop_token_id
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    cfg = config(release, tmp_path, think=True, max_think_tokens=6, limit=2, num_reasoning_paths=2)
    run_evaluation(cfg)
    model, tok = load_model_and_tokenizer(cfg.base_model)
    stop = stop_token_id(tok)
    ev = Evaluator(cfg, model, tok, build_trie(cfg, read_catalogue(cfg), tok, stop)[0], stop)
    rows = read_split_csv(cfg.test_data_path)
    recs = by_row(tmp_path)
    assert any(text for rec in recs.values() for text in rec["reasoning_paths"])  # sampled: not all empty
    for row, rec in recs.items():
        assert len(rec["think_closed"]) == 2  # closed by the model or force-closed: same prompt shape
        prompts = [close_think(ev.prompt(rows[row]), text) for text in rec["reasoning_paths"]]
        for p, text in zip(prompts, rec["reasoning_paths"]):
            assert p.endswith("<|im_start|>assistant\n<think>\n" + text + "\n</think>\n\n")
        again = merge_paths(ev.search(prompts), cfg.num_beams)
        assert same_ranking(again, BeamResult(rec["ranked"], rec["scores"]), 1e-4)


@pytest.mark.parametrize("text, reasoning, closed", [
    ("The user likes pens.\n</think>\n\n<a_1>", "The user likes pens.", True),
    ("  pens and paper  ", "pens and paper", False),                          # budget ran out: unclosed
    ("<think>\nrepeat tag</think>", "repeat tag", True),
    ("stops early<|im_end|><|endoftext|>", "stops early", False),
    ("", "", False),
])
def test_split_reasoning(text, reasoning, closed):
    got = split_reasoning(text, ["<|im_end|>", "<|endoftext|>"])
    assert (got.text, got.closed) == (reasoning, closed)


def test_think_prompt_is_closed_in_the_training_format():
    prompt = open_think("<|im_start|>assistant\n")
    assert prompt == "<|im_start|>assistant\n<think>\n" and open_think(prompt) == prompt
    assert close_think(prompt, " a b \n") == "<|im_start|>assistant\n<think>\na b\n</think>\n\n"


def test_merge_paths_keeps_best_score_per_sid():
    merged = merge_paths([BeamResult(["x", "y"], [-1.0, -3.0]), BeamResult(["y", "z"], [-2.0, -4.0])], 2)
    assert (merged.sids, merged.scores) == (["x", "y"], [-1.0, -2.0])


def test_partial_last_line_is_cut_and_corruption_is_named(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"row": 0, "x": 1}\n{"row": 1, "x"')
    assert list(load_for_resume(p)) == [0] and p.read_text() == '{"row": 0, "x": 1}\n'
    p.write_text('{"row": 0}\nnot json\n{"row": 2}\n')
    with pytest.raises(ValueError, match=r"p\.jsonl, line 2: malformed prediction line"):
        load_for_resume(p)


@pytest.mark.parametrize("spec, ok", [("0/2", (0, 2)), (" 3 / 4 ", (3, 4)), ("2/2", None), ("a/b", None)])
def test_parse_shard(spec, ok):
    if ok:
        assert parse_shard(spec) == ok
    else:
        with pytest.raises(ValueError, match=r"--shard must look like i/n with 0 <= i < n"):
            parse_shard(spec)


def _load_evaluate_module():
    spec = importlib.util.spec_from_file_location("evaluate_script", REPO_ROOT / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_inputs_get_clear_messages(release, full_run, tmp_path, capsys):
    data, model_dir, _ = release
    out, _ = full_run
    evaluate = _load_evaluate_module()
    common = ["--base_model", str(model_dir), "--data_dir", str(data), "--category", CAT, "--batch_size", "4"]
    cases = [
        (["--num_beams", "5", "--output_dir", str(out)],
         f"{out / 'predictions.jsonl'} already exists: pass --resume to continue it, or choose another --output_dir"),
        (["--num_beams", "7", "--output_dir", str(out), "--resume"],
         f"--resume with settings that differ from {out / 'config.json'}: num_beams: 5 -> 7"),
        (["--output_dir", str(tmp_path / "a"), "--max_new_tokens", "2"],
         "--max_new_tokens 2 cannot hold a 3-token SID plus the stop token; use at least 4"),
        (["--output_dir", str(tmp_path / "b"), "--shard", "2/2"],
         "--shard must look like i/n with 0 <= i < n (e.g. 0/4), got '2/2'"),
    ]
    assert evaluate.main(common + ["--output_dir", str(tmp_path / "t"), "--think", "--max_think_tokens", "100000"]) == 2
    assert "--max_think_tokens 100000 does not fit the model's context of" in capsys.readouterr().err
    other = tmp_path / "other_build"  # the same catalogue, but its info file from another SID build
    shutil.copytree(data, other)
    info = ReleasePaths(other, CAT).info
    lines = info.read_text().splitlines(keepends=True)
    sid, title, item = lines[1].rstrip("\n").split("\t")
    moved = "<a_3><b_3><c_3>" if sid != "<a_3><b_3><c_3>" else "<a_0><b_0><c_0>"
    lines[1] = f"{moved}\t{title}\t{item}\n"
    info.write_text("".join(lines))
    args = ["--base_model", str(model_dir), "--data_dir", str(other), "--category", CAT,
            "--output_dir", str(tmp_path / "ob")]
    assert evaluate.main(args) == 2
    assert f"{info}, line 2, field 'sid': item {item} has SID " in capsys.readouterr().err
    # a bad flag or combination is a usage error: exit 2 before the model loads, as argparse answers a bad type
    usage = [(["--limit", "-3"], r"--limit must be >= 1 \(rows to evaluate\), got -3"),
             (["--repetition_penalty", "0"], "--repetition_penalty must be > 0"),
             (["--calibrate", "-0.1"], r"--calibrate must be >= 0 \(0: plain scores\), got -0\.1"),
             (["--calibrate", "0.2", "--search", "reference"], "needs --search ours")]
    for argv, message in usage:
        assert evaluate.main(common + ["--output_dir", str(tmp_path / "u")] + argv) == 2
        assert re.search(r"^evaluate\.py: error: .*" + message, capsys.readouterr().err.strip().splitlines()[-1])
    assert not (tmp_path / "u").exists()
    if not torch.cuda.is_available():
        assert evaluate.main(common + ["--output_dir", str(tmp_path / "d"), "--device", "cuda", "--limit", "2"]) == 2
        assert "--device cuda, but no CUDA device is available here" in capsys.readouterr().err
    for argv, message in cases:
        assert evaluate.main(common + argv) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == f"evaluate.py: error: {message}"


def test_checkpoint_without_sid_tokens(release, tmp_path, capsys):
    from sidreasoner.model.model_factory import make_tiny_qwen3, save_model_dir
    from sidreasoner.train.tokenizer import train_catalogue_tokenizer
    tok = train_catalogue_tokenizer(["Blue Gel Pens", "Red Binder"], vocab_size=300)
    bare = save_model_dir(tmp_path / "bare", make_tiny_qwen3(tok, hidden_size=32, num_layers=1), tok, overwrite=True)
    evaluate = _load_evaluate_module()
    rc = evaluate.main(["--base_model", str(bare), "--data_dir", str(release[0]), "--category", CAT,
                        "--output_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "checkpoint has no SID tokens" in err and "add_sid_tokens" in err


@pytest.mark.slow
def test_real_kill_then_resume(release, full_run, tmp_path):
    """Kill evaluate.py (SIGKILL) after its first batch is on disk, then --resume: same metrics."""
    data, model_dir, _ = release
    out, metrics = full_run
    args = [sys.executable, str(REPO_ROOT / "evaluate.py"), "--base_model", str(model_dir), "--data_dir", str(data),
            "--category", CAT, "--num_beams", "5", "--batch_size", "4", "--output_dir", str(tmp_path)]
    proc = subprocess.Popen(args + ["--think", "--max_think_tokens", "64"], env=ENV, cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pred = tmp_path / "predictions.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (pred.exists() and pred.stat().st_size > 0):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(load_for_resume(pred))
    assert 0 < n_before < N_ROWS
    res = subprocess.run(args + ["--think", "--max_think_tokens", "64", "--resume"], env=ENV, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    clean = tmp_path.parent / "clean"
    subprocess.run(args[:-1] + [str(clean), "--think", "--max_think_tokens", "64"], env=ENV, cwd=REPO_ROOT,
                   check=True, capture_output=True, timeout=300)
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads((clean / "metrics.json").read_text())
    assert by_row(tmp_path) == by_row(clean)


@pytest.mark.parametrize("script, mode_flag", [("evaluate_Qwen3.sh", None), ("evaluate_Qwen3_think.sh", "--think")])
def test_shell_scripts_pass_knobs_and_flags(script, mode_flag):
    """Dry run with PYTHON=echo: the env knobs reach evaluate.py, NPROC>1 uses torchrun, "$@" goes last."""
    assert subprocess.run(["bash", "-n", str(REPO_ROOT / script)]).returncode == 0
    env = {**ENV, "PYTHON": "echo", "NPROC": "2", "GPUS": "3,5", "NUM_BEAMS": "50", "CATEGORY": "Toys",
           "PROMPT_STYLE": "release"}
    res = subprocess.run(["bash", str(REPO_ROOT / script), "--limit", "7"], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    words = res.stdout.split()
    assert words[:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    assert words[5] == "evaluate.py" and words[-2:] == ["--limit", "7"]
    assert "--num_beams 50" in res.stdout and "--category Toys" in res.stdout and "--prompt_style release" in res.stdout
    assert (mode_flag in words) if mode_flag else ("--think" not in words)
    one = subprocess.run(["bash", str(REPO_ROOT / script)], env={**env, "NPROC": "1"}, capture_output=True, text=True)
    assert one.stdout.split()[0] == "evaluate.py"
