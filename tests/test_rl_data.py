"""RL data: parquet rows (verl's format, shared prompt wording), the checked reader, prepare_rl_data and
rl/prepare_data.py (train and valid only, if_missing/overwrite rules, bad input with exact messages)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_sft import CATEGORY, write_tiny_release

from sidreasoner.data.formats import read_split_csv
from sidreasoner.data.records import DataError, SequenceRow
from sidreasoner.rl.data import (EMPTY_HISTORY, build_split_records, category_of, read_rl_parquet, rl_record,
                                 source_kind, think_mode, user_and_system, write_rl_parquet)
from sidreasoner.rl.prepare import PrepareConfig, prepare_rl_data
from sidreasoner.tasks.prompts import SYSTEM_PROMPT, next_sid_prompt

REPO = Path(__file__).resolve().parents[1]
ROW = SequenceRow("U7", ("I1", "I2"), ("Pen", "Ink"), ("<a_1><b_2><c_3>", "<a_0><b_1><c_1>"), "I3", "Pad",
                  "<a_2><b_0><c_3>", line=5)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_tiny_release(tmp_path_factory.mktemp("rl_release"), with_corpora=False)


def _quiet(*_):
    pass


def test_record_is_verls_format_with_the_shared_wording():
    rec = rl_record(ROW, "Office_Products", "train", 3, think=True)
    assert rec == {
        "data_source": "sidreasoner/Office_Products",
        "prompt": [{"role": "system", "content": SYSTEM_PROMPT},
                   {"role": "user", "content": next_sid_prompt(ROW.history_sids, think=True)}],
        "ability": "sid_recommendation",
        "reward_model": {"style": "rule", "ground_truth": "<a_2><b_0><c_3>"},
        "extra_info": {"split": "train", "index": 3, "user_id": "U7", "item_id": "I3", "line": 5, "think": True,
                       "history_len": 2}}
    nothink = rl_record(ROW, "Office_Products", "valid", 0, think=False)
    assert nothink["prompt"][1]["content"] == next_sid_prompt(ROW.history_sids, think=False)
    assert "Think step by step" in rec["prompt"][1]["content"]
    assert "Think step by step" not in nothink["prompt"][1]["content"]
    assert user_and_system(rec["prompt"]) == (rec["prompt"][1]["content"], SYSTEM_PROMPT)


@pytest.mark.parametrize("source, category", [("sidreasoner/Office_Products", "Office_Products"),
                                              ("sidreasoner/Demo", "Demo")])
def test_category_of(source, category):
    assert category_of(source) == category


@pytest.mark.parametrize("source", ["gsm8k", "sidreasoner/", "", None, "Office_Products"])
def test_unknown_data_source(source):
    with pytest.raises(ValueError, match=r"^unknown data_source .*'sidreasoner/<Category>'$"):
        category_of(source)


def test_split_records_skip_sample_and_refuse_test(tmp_path):
    empty = SequenceRow("U8", (), (), (), "I3", "Pad", "<a_2><b_0><c_3>", line=9)
    rows = [ROW, empty] + [SequenceRow(f"U{i}", ("I1",), ("Pen",), ("<a_1><b_2><c_3>",), "I3", "Pad",
                                       "<a_2><b_0><c_3>", line=10 + i) for i in range(10)]
    recs, rep = build_split_records(rows, "f.csv", "C", "train", True, catalogue={"<a_1><b_2><c_3>"})
    assert (rep.rows_read, rep.written, rep.targets_not_in_catalogue) == (12, 11, 11)
    assert rep.skips.counts == {EMPTY_HISTORY: 1} and rep.skips.examples[EMPTY_HISTORY] == ["f.csv line 9"]
    assert [r["extra_info"]["index"] for r in recs] == list(range(11))
    sub, rep = build_split_records(rows, "f.csv", "C", "train", True, max_rows=4, seed=1)
    again, _ = build_split_records(rows, "f.csv", "C", "train", True, max_rows=4, seed=1)
    assert sub == again and (len(sub), rep.sampled_out) == (4, 7)
    with pytest.raises(ValueError, match=r"^RL data comes from the train and valid splits only, not 'test'"):
        build_split_records(rows, "f.csv", "C", "test", True)
    bad = SequenceRow("U9", ("I1",), ("Pen",), ("<a_1><b_2><c_3>",), "I3", "Pad", "<a_2>junk", line=4)
    with pytest.raises(DataError, match=r"^f\.csv, line 4, field 'item_sid': "):
        build_split_records([bad], "f.csv", "C", "train", True)


def test_parquet_round_trip_and_reader_errors(tmp_path):
    recs = [rl_record(ROW, "C", "train", i, think=True) for i in range(3)]
    path = tmp_path / "t.parquet"
    write_rl_parquet(path, recs)
    assert read_rl_parquet(path) == recs and think_mode(recs, path) is True
    with pytest.raises(DataError, match=r"RL parquet not found \(write it with: python rl/prepare_data.py"):
        read_rl_parquet(tmp_path / "none.parquet")
    broken = [dict(r) for r in recs]
    broken[1] = {**broken[1], "reward_model": {"style": "rule", "ground_truth": "no sid"}}
    write_rl_parquet(path, broken)
    with pytest.raises(DataError, match=r"t\.parquet, line 2, field 'reward_model\.ground_truth': ground truth is "
                                        r"not a SID"):
        read_rl_parquet(path)
    write_rl_parquet(path, [{**r, "data_source": "gsm8k"} for r in recs])
    with pytest.raises(DataError, match=r"line 1, field 'data_source': unknown data_source 'gsm8k': expected "):
        read_rl_parquet(path)
    write_rl_parquet(path, [{k: v for k, v in r.items() if k != "ability"} for r in recs])
    with pytest.raises(DataError, match=r"t\.parquet: missing column\(s\) ability"):
        read_rl_parquet(path)
    mixed = recs[:1] + [rl_record(ROW, "C", "train", 1, think=False)]
    with pytest.raises(DataError, match=r"rows mix thinking and non-thinking prompts"):
        think_mode(mixed, path)


def test_release_built_parquet_is_read(tmp_path):
    """The release's RL rows: data_source rec/Amazon_mix3_IOV, extra_info {split, index, answer, question}."""
    messages = [{"role": "system", "content": "You are a recommender."}, {"role": "user", "content": "history ..."}]
    rows = [{"data_source": "rec/Amazon_mix3_IOV", "prompt": messages, "ability": "Recommendation",
             "reward_model": {"style": "rule", "ground_truth": "<a_1><b_2><c_3>"},
             "extra_info": {"split": "train", "index": i, "answer": "<a_1><b_2><c_3>", "question": messages}}
            for i in range(3)]
    write_rl_parquet(tmp_path / "train.parquet", rows)
    got = read_rl_parquet(tmp_path / "train.parquet")
    assert [r["data_source"] for r in got] == ["rec/Amazon_mix3_IOV"] * 3
    assert [source_kind(s) for s in ("rec/Amazon_mix3_IOV", "sidreasoner/Toys", "rec/", "gsm8k", None)] == [
        "release", "ours", "unknown", "unknown", "unknown"]


def test_prepare_writes_train_and_valid_only(release, tmp_path):
    out = tmp_path / "rl"
    cfg = PrepareConfig(data_dir=str(release.data_dir), category=CATEGORY, output_dir=str(out))
    report = prepare_rl_data(cfg, say=_quiet)
    assert sorted(p.name for p in out.iterdir()) == ["prepare_config.json", "prepare_report.json", "train.parquet",
                                                     "valid.parquet"]
    for split in ("train", "valid"):
        rows = read_split_csv(release.split(split))
        recs = read_rl_parquet(out / f"{split}.parquet")
        assert [r["reward_model"]["ground_truth"] for r in recs] == [r.item_sid for r in rows]
        assert {r["extra_info"]["split"] for r in recs} == {split}
        assert report["splits"][split]["written"] == len(rows) and report["splits"][split]["skipped"] == {}
    assert json.loads((out / "prepare_config.json").read_text())["think"] is True


def test_prepare_if_missing_and_overwrite_rules(release, tmp_path):
    out = tmp_path / "rl"
    base = dict(data_dir=str(release.data_dir), category=CATEGORY, output_dir=str(out))
    prepare_rl_data(PrepareConfig(**base), say=_quiet)
    stamp = (out / "train.parquet").stat().st_mtime_ns
    said = []
    prepare_rl_data(PrepareConfig(**base, if_missing=True), say=said.append)
    assert (out / "train.parquet").stat().st_mtime_ns == stamp and "kept as it is" in said[0]
    # the same folder spelled another way (relative vs absolute, a symlink) is the same setting
    (tmp_path / "alias").symlink_to(release.data_dir)
    said = []
    prepare_rl_data(PrepareConfig(**{**base, "data_dir": str(tmp_path / "alias")}, if_missing=True), say=said.append)
    assert (out / "train.parquet").stat().st_mtime_ns == stamp and "kept as it is" in said[0]
    with pytest.raises(FileExistsError, match=r"train\.parquet exists \(pass --overwrite to replace it, or "
                                              r"--if_missing to keep it\)$"):
        prepare_rl_data(PrepareConfig(**base), say=_quiet)
    said = []  # other content (non-thinking prompts): rebuilt, never silently reused
    prepare_rl_data(PrepareConfig(**base, think=False, if_missing=True), say=said.append)
    assert said[0].startswith(f"RL data in {out} was built with other rows or prompts (content key ")
    assert think_mode(read_rl_parquet(out / "valid.parquet"), "v") is False
    prepare_rl_data(PrepareConfig(**base, think=False, overwrite=True), say=_quiet)
    assert think_mode(read_rl_parquet(out / "valid.parquet"), "v") is False
    (out / "valid.parquet").unlink()  # same settings, one file gone: rebuilt
    prepare_rl_data(PrepareConfig(**base, think=False, if_missing=True), say=_quiet)
    assert (out / "valid.parquet").is_file()


def test_if_missing_rebuilds_when_the_prompt_wording_changes(release, tmp_path, monkeypatch):
    """Reuse is keyed on the rows' content (prompts, ground truths), not on the settings: the same settings with
    new prompt wording rebuild the files; the same wording keeps them."""
    from sidreasoner.rl import data as rl_data
    out = tmp_path / "rl"
    cfg = PrepareConfig(data_dir=str(release.data_dir), category=CATEGORY, output_dir=str(out), if_missing=True)
    prepare_rl_data(cfg, say=_quiet)
    key = json.loads((out / "prepare_config.json").read_text())["content_key"]
    stamp = (out / "train.parquet").stat().st_mtime_ns
    said = []
    prepare_rl_data(cfg, say=said.append)
    assert "kept as it is" in said[0] and (out / "train.parquet").stat().st_mtime_ns == stamp
    original = rl_data.next_sid_turns

    def reworded(history, think, style="native"):
        system, user = original(history, think=think, style=style)
        return system, user.replace("next", "following")
    monkeypatch.setattr(rl_data, "next_sid_turns", reworded)
    said = []
    prepare_rl_data(cfg, say=said.append)
    assert said[0].startswith(f"RL data in {out} was built with other rows or prompts (content key {key[:12]} -> ")
    new_key = json.loads((out / "prepare_config.json").read_text())["content_key"]
    assert new_key != key
    prompts = [m["content"] for r in read_rl_parquet(out / "train.parquet") for m in r["prompt"]]
    assert any("following" in p for p in prompts)
    said = []
    prepare_rl_data(cfg, say=said.append)  # the new wording again: kept
    assert "kept as it is" in said[0]


def _script(*args):
    return subprocess.run([sys.executable, str(REPO / "rl" / "prepare_data.py"), *args], capture_output=True,
                          text=True, cwd=REPO)


def test_script_help_run_and_bad_input(release, tmp_path):
    out = _script("--help")
    assert out.returncode == 0 and "--max_valid_rows" in out.stdout and "--if_missing" in out.stdout
    done = _script("--data_dir", str(release.data_dir), "--category", CATEGORY, "--output_dir", str(tmp_path / "o"),
                   "--max_train_rows", "10", "--think", "false")
    assert done.returncode == 0, done.stderr
    assert "train: 10 rows" in done.stdout and "(54 sampled out)" in done.stdout
    assert len(read_rl_parquet(tmp_path / "o" / "train.parquet")) == 10
    missing = _script("--data_dir", str(tmp_path / "nowhere"), "--category", CATEGORY, "--output_dir",
                      str(tmp_path / "p"))
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith(f"nowhere/train/{CATEGORY}_5_2016-10-2018-11.csv: file not found")
    nocat = _script("--output_dir", str(tmp_path / "q"))
    assert nocat.returncode == 2 and "--category is required" in nocat.stderr
    with pytest.raises(ValueError, match=r"--max_train_rows must be >= 0 \(0: all rows\), got -5"):
        PrepareConfig(data_dir=str(release.data_dir), category=CATEGORY, max_train_rows=-5).resolved()
