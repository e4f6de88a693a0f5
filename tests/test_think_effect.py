"""Helped / hurt / unchanged rows of thinking mode against non-thinking mode (sidreasoner.eval.effect)."""
from __future__ import annotations

import json
import math

import pytest

from sidreasoner.data.records import DataError
from sidreasoner.eval import effect as E

T = "<a_1><b_1><c_1>"
X, Y, Z = "<a_2><b_2><c_2>", "<a_3><b_3><c_3>", "<a_4><b_4><c_4>"


def rec(row, ranked, target=T):
    return {"row": row, "user_id": f"u{row}", "target": target, "ranked": ranked}


@pytest.mark.parametrize("nothink, think, verdict, gain", [
    ([X, T], [T, X], "helped", 1 - 1 / math.log2(3)),   # rank 2 -> 1
    ([T, X], [X, T], "hurt", 1 / math.log2(3) - 1),     # rank 1 -> 2
    ([X, Y], [T, Y], "helped", 1.0),                    # miss -> rank 1
    ([X, T], [Y, T], "unchanged", 0.0),                 # same rank, other items
    ([X, Y], [Y, Z], "unchanged", 0.0),                 # missed by both
])
def test_one_row_verdict(nothink, think, verdict, gain):
    out = E.think_effect([rec(0, think)], [rec(0, nothink)], k=10)
    assert (out["helped"], out["hurt"], out["unchanged"]) == tuple(int(verdict == v) for v in
                                                                   ("helped", "hurt", "unchanged"))
    assert sum(r["gain"] for r in out["rows"]) == pytest.approx(gain, abs=1e-6)


def test_rank_beyond_k_counts_as_a_miss():
    out = E.think_effect([rec(0, [X, Y, T])], [rec(0, [X, Y, Z])], k=2)
    assert (out["helped"], out["unchanged"]) == (0, 1)


def test_thinking_on_a_subset_and_ndcg_on_the_shared_rows():
    nothink = [rec(0, [T]), rec(1, [X, T]), rec(2, [X])]
    think = [rec(1, [T, X]), rec(0, [X, T])]  # --limit 2, in any order
    out = E.think_effect(think, nothink, k=10)
    assert (out["n"], out["helped"], out["hurt"], out["unchanged"]) == (2, 1, 1, 0)
    assert out["NDCG@10_nothink"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert out["NDCG@10_think"] == pytest.approx((1 / math.log2(3) + 1) / 2)
    assert [r["row"] for r in out["rows"]] == [1, 0]  # best gain first


def test_rows_the_nonthinking_run_lacks_are_left_out_and_counted():
    out = E.think_effect([rec(0, [T]), rec(9, [T])], [rec(0, [X, T])])
    assert (out["n"], out["helped"], out["not_in_nothink"]) == (1, 1, 1)
    assert "1 thinking rows left out" in E.describe(out)


@pytest.mark.parametrize("think, nothink, message", [
    ([rec(5, [T])], [rec(0, [T])], "no row of the thinking run is in the non-thinking run"),
    ([rec(0, [T])], [rec(0, [T], target=X)], "targets differ"),
])
def test_mismatched_runs_are_refused(think, nothink, message):
    with pytest.raises(DataError, match=message):
        E.think_effect(think, nothink)


def _write(folder, records):
    folder.mkdir()
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_cli_writes_counts_and_changed_rows(tmp_path, capsys):
    _write(tmp_path / "nothink", [rec(0, [X, T]), rec(1, [T])])
    _write(tmp_path / "think", [rec(0, [T, X]), rec(1, [T])])
    assert E.main([str(tmp_path / "think"), str(tmp_path / "nothink")]) == 0
    counts = json.loads((tmp_path / "think" / E.EFFECT_FILE).read_text())
    assert (counts["helped"], counts["hurt"], counts["unchanged"]) == (1, 0, 1)
    rows = [json.loads(l) for l in (tmp_path / "think" / E.ROWS_FILE).read_text().splitlines()]
    assert [(r["row"], r["rank_nothink"], r["rank_think"]) for r in rows] == [(0, 2, 1)]
    assert "helped 1, hurt 0, unchanged 1" in capsys.readouterr().out


def test_cli_names_a_missing_predictions_file(tmp_path, capsys):
    _write(tmp_path / "think", [rec(0, [T])])
    assert E.main([str(tmp_path / "think"), str(tmp_path / "nothink")]) == 2
    assert "nothink/predictions.jsonl: predictions file not found" in capsys.readouterr().err
