"""Run comparison (table, chart, CLI) and example pages."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sidreasoner.data.formats import read_info_index, write_info, write_split_csv
from sidreasoner.data.records import DataError, InfoRow, SequenceRow
from sidreasoner.eval.report import (default_metric_names, load_run, load_runs, markdown_table, md_escape,
                                     write_comparison, write_examples_page)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "compare_results.py"

THINK = {"n": 100, "num_beams": 10, "HR@1": 0.1, "HR@10": 0.4, "NDCG@1": 0.1, "NDCG@10": 0.25, "HR@5": 0.3,
         "invalid_rate": 0.0}
PLAIN = {"n": 100, "num_beams": 10, "HR@1": 0.12, "HR@10": 0.35, "NDCG@1": 0.12, "NDCG@10": 0.2, "HR@5": 0.25,
         "invalid_rate": None}


def make_run(root: Path, name: str, metrics: dict, config: dict | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(metrics))
    if config is not None:
        (d / "eval_config.json").write_text(json.dumps(config))
    return d


def test_load_run_labels(tmp_path):
    a = make_run(tmp_path, "a", THINK, {"run_name": "think", "beams": 10})
    b = make_run(tmp_path, "b", PLAIN)
    assert load_run(a).label == "think" and load_run(b).label == "b"
    assert load_run(a / "metrics.json").label == "think"
    assert load_run(a, "mine").label == "mine"
    assert load_run(a).config == {"run_name": "think", "beams": 10}


def test_same_folder_names_are_qualified(tmp_path):
    r1 = make_run(tmp_path / "exp1", "eval", THINK)
    r2 = make_run(tmp_path / "exp2", "eval", PLAIN)
    assert [r.label for r in load_runs([r1, r2])] == ["exp1/eval", "exp2/eval"]
    with pytest.raises(ValueError, match=r"^1 names given for 2 runs$"):
        load_runs([r1, r2], ["x"])


def test_bad_run_folders(tmp_path):
    with pytest.raises(DataError) as e:
        load_run(tmp_path)
    assert str(e.value) == f"{tmp_path / 'metrics.json'}: file not found (is this an evaluation run folder?)"
    bad = make_run(tmp_path, "bad", {"HR@10": "high", "mode": "think"})
    run = load_run(bad)  # non-numeric extras are fine until a report asks for them
    with pytest.raises(DataError) as e:
        markdown_table([run], ["HR@10"])
    assert str(e.value) == f"{bad / 'metrics.json'}, field 'HR@10': expected a number, got 'high'"
    assert default_metric_names([run]) == ["HR@10"]
    (bad / "metrics.json").write_text("[1]")
    with pytest.raises(DataError, match="expected a JSON object at top level, got list"):
        load_run(bad)


def test_table_by_hand(tmp_path):
    runs = load_runs([make_run(tmp_path, "think", THINK), make_run(tmp_path, "plain", PLAIN)])
    metrics = default_metric_names(runs)
    assert metrics == ["HR@1", "HR@5", "HR@10", "NDCG@1", "NDCG@10"]
    assert markdown_table(runs, metrics + ["invalid_rate"]) == (
        "| run | HR@1 | HR@5 | HR@10 | NDCG@1 | NDCG@10 | invalid_rate |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        "| think | 0.1000 | **0.3000** | **0.4000** | 0.1000 | **0.2500** | 0.0000 |\n"
        "| plain | **0.1200** | 0.2500 | 0.3500 | **0.1200** | 0.2000 | — |\n")


def test_bold_only_among_runs_on_the_most_rows(tmp_path):
    """A run scored on a subset of the rows (thinking mode's first rows) is never bold against the rest."""
    runs = load_runs([make_run(tmp_path, "all", {"HR@10": 0.3, "n": 100}),
                      make_run(tmp_path, "subset", {"HR@10": 0.5, "n": 20}),
                      make_run(tmp_path, "other", {"HR@10": 0.2, "n": 100})])
    table = markdown_table(runs, ["HR@10"])
    assert "| all | **0.3000** |" in table and "| subset | 0.5000 |" in table and "| other | 0.2000 |" in table


def test_write_comparison_files(tmp_path):
    runs = load_runs([make_run(tmp_path, "think", THINK), make_run(tmp_path, "plain", PLAIN)])
    md, png = write_comparison(runs, ["HR@10", "NDCG@10"], tmp_path / "out")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = md.read_text()
    assert "| think | **0.4000** | **0.2500** |" in text and "![chart](comparison.png)" in text


def test_compare_results_cli(tmp_path):
    a = make_run(tmp_path, "a", THINK, {"run_name": "think"})
    b = make_run(tmp_path, "b", PLAIN)
    r = subprocess.run([sys.executable, str(SCRIPT), str(a), str(b), "--metrics", "HR@10,NDCG@10,HR@1",
                        "--names", "T", "P", "--output_dir", str(tmp_path / "cmp")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "| T | **0.4000** | **0.2500** | 0.1000 |" in r.stdout
    assert "| P | 0.3500 | 0.2000 | **0.1200** |" in r.stdout
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| P | 0.3500 | 0.2000 | **0.1200** |" in md
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((tmp_path / "cmp" / "compare_config.json").read_text())
    assert config["labels"] == ["T", "P"] and config["metrics"] == ["HR@10", "NDCG@10", "HR@1"]


def test_compare_results_cli_errors(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                              timeout=120)
    h = run("--help")
    assert h.returncode == 0 and "--examples RUN_DIR" in h.stdout and "--split_csv" in h.stdout
    r = run()
    assert r.returncode == 2 and "give run folders to compare and/or --examples RUN_DIR" in r.stderr
    r = run(tmp_path)
    assert r.stderr.strip() == f"error: {tmp_path / 'metrics.json'}: file not found (is this an evaluation run folder?)"
    r = run("--examples", tmp_path)
    assert r.stderr.strip() == "error: --examples needs --info_file (the catalogue, for titles)"


# -- example pages -------------------------------------------------------------------------------

SIDS = ["<a_0><b_0><c_0>", "<a_0><b_1><c_0>", "<a_1><b_0><c_0>", "<a_1><b_1><c_0>", "<a_2><b_0><c_0>",
        "<a_2><b_1><c_0>", "<a_3><b_0><c_0>"]
TITLES = ["Blue gel pens | 12 pack", "Black ink <XL>", "Stapler", "Staples 5000", "Copy paper", "Sticky notes",
          "Desk lamp"]


@pytest.fixture
def small_release(tmp_path):
    info = [InfoRow(s, t, str(i)) for i, (s, t) in enumerate(zip(SIDS, TITLES))]
    rows = [SequenceRow("u1", ("0", "1"), tuple(TITLES[:2]), tuple(SIDS[:2]), "2", TITLES[2], SIDS[2]),
            SequenceRow("u2", ("2",), (TITLES[2],), (SIDS[2],), "3", TITLES[3], SIDS[3]),
            SequenceRow("u1", ("0", "1", "2"), tuple(TITLES[:3]), tuple(SIDS[:3]), "4", TITLES[4], SIDS[4])]
    preds = [{"user_id": "u1", "target": SIDS[2], "ranked": [SIDS[3], SIDS[2], "<a_9><b_9><c_9>"],
              "scores": [-0.5, -1.25, -3.0], "reasoning": "Pens and ink, so a `stapler` <a_1><b_0><c_0> next."},
             {"user_id": "u2", "target": SIDS[3], "ranked": [SIDS[5], SIDS[6]], "scores": [-0.1, -0.2]},
             {"user_id": "u1", "target": SIDS[4], "ranked": [SIDS[4]], "scores": [-0.01]}]
    write_info(tmp_path / "info.txt", info)
    write_split_csv(tmp_path / "test.csv", rows)
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    return tmp_path, rows, preds


def test_examples_page_content(small_release):
    root, rows, preds = small_release
    page = write_examples_page(root / "run", preds, rows=rows, titles=read_info_index(root / "info.txt"), n=10)
    text = page.read_text()
    assert page.name == "examples.md"
    assert "3 of 3 rows, evenly spaced; the target is in the top 5 for 2 of 3 rows overall." in text
    assert "## 1. user `u1` — hit at rank 2" in text
    assert "## 2. user `u2` — miss (target not in the 2 predictions)" in text
    # history with titles (markdown-escaped), target title, top-K rows with titles, the hit marked
    assert "1. `<a_0><b_0><c_0>` Blue gel pens \\| 12 pack" in text
    assert "2. `<a_0><b_1><c_0>` Black ink &lt;XL&gt;" in text
    assert "**Target:** `<a_1><b_0><c_0>` Stapler" in text
    assert "| 2 | `<a_1><b_0><c_0>` | Stapler | -1.2500 | ✅ target |" in text
    assert "| 3 | `<a_9><b_9><c_9>` | *(not in catalogue)* | -3.0000 |  |" in text
    # reasoning verbatim in a fenced block; only the first example has one
    assert "```text\nPens and ink, so a `stapler` <a_1><b_0><c_0> next.\n```" in text
    assert text.count("**Reasoning:**") == 1
    # the repeated user u1 gets the history of the row with the same target (3 items, not 2)
    third = text.split("## 3.")[1]
    assert "3. `<a_1><b_0><c_0>` Stapler" in third and "hit at rank 1" in third


def test_examples_page_picks_and_missing_history(small_release):
    root, _, preds = small_release
    text = write_examples_page(root / "run", preds, rows=None, titles={SIDS[2]: "T2"}, n=2).read_text()
    assert "2 of 3 rows" in text and "## 3." not in text
    assert text.count("*History not available (no split rows given for this user).*") == 2
    with pytest.raises(DataError, match=r"^<predictions>, line 1, field 'target': missing field"):
        write_examples_page(root / "run", [{"user_id": "u", "ranked": []}])


def test_examples_cli(small_release):
    root, _, _ = small_release
    r = subprocess.run([sys.executable, str(SCRIPT), "--examples", str(root / "run"), "--info_file",
                        str(root / "info.txt"), "--split_csv", str(root / "test.csv"), "--n", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"wrote {root / 'run' / 'examples.md'}"
    text = (root / "run" / "examples.md").read_text()
    assert "2 of 3 rows" in text and "1. `<a_0><b_0><c_0>` Blue gel pens \\| 12 pack" in text


def test_md_escape():
    assert md_escape("<a_1> *x* | #1 [y]") == "&lt;a\\_1&gt; \\*x\\* \\| \\#1 \\[y\\]"


def test_examples_match_rows_by_row_field_first(small_release):
    root, rows, _ = small_release
    # by (user_id, target) this record would get rows[0] (2 history items); its `row` field says rows[2]
    rec = {"row": 2, "user_id": "u1", "target": SIDS[2], "ranked": [SIDS[2]]}
    text = write_examples_page(root / "run", [rec], rows=rows, titles=None, n=1).read_text()
    assert "3. `<a_1><b_0><c_0>` Stapler" in text
    # a `row` that does not belong to this user falls back to (user_id, target)
    text = write_examples_page(root / "run", [dict(rec, row=1)], rows=rows, titles=None, n=1).read_text()
    assert "2. `<a_0><b_1><c_0>`" in text and "3. `" not in text


def test_examples_titles_and_reasoning_notes(small_release):
    root, _, _ = small_release
    rec = {"row": 0, "user_id": "u9", "target": SIDS[0], "ranked": [SIDS[0], "<a_9><b_9><c_9>"],
           "reasoning": "thinking about pens", "think_closed": False, "reasoning_paths": ["a", "b", "c"]}
    text = write_examples_page(root / "run", [rec], titles=None, n=1).read_text()
    assert "not in catalogue" not in text  # no catalogue given: no claims about membership
    assert "| 2 | `<a_9><b_9><c_9>` |  |  |  |" in text
    assert ("```text\nthinking about pens\n\n[first of 3 sampled reasoning paths]\n\n[the reasoning hit the length "
            "limit before </think>; it was closed for the answer]\n```") in text
    text = write_examples_page(root / "run", [rec], titles={SIDS[0]: "Blue pens"}, n=1).read_text()
    assert "| 1 | `<a_0><b_0><c_0>` | Blue pens |  | ✅ target |" in text
    assert "| 2 | `<a_9><b_9><c_9>` | *(not in catalogue)* |  |  |" in text
    assert "**Target:** `<a_0><b_0><c_0>` Blue pens" in text
