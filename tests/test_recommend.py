"""Recommendations for item-id histories (sidreasoner.recommend): the CLI and the Python API rank catalogue
SIDs like the evaluator (same prompt, same constrained search), name every item behind each SID, reason
first in thinking mode, read/write JSON lines, and refuse unknown ids, empty histories and bad input lines."""
from __future__ import annotations

import json

import pytest
from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from fixtures_sft import CATEGORY, write_tiny_release

from sidreasoner.recommend import main, read_histories


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir):
    from sidreasoner import Recommender  # the package-level API
    release = write_tiny_release(tmp_path_factory.mktemp("rec") / "data", with_corpora=False)
    rec = Recommender(str(tiny_model_dir[0]), str(release.data_dir), CATEGORY, num_beams=4)
    return rec, release


def test_ranked_sids_name_their_items_and_match_a_direct_search(setup):
    import torch
    from sidreasoner.eval.beam import constrained_beam_search
    from sidreasoner.eval.padding import encode_left_padded
    from sidreasoner.model.chat import next_sid_prompt_text
    rec, _ = setup
    out = rec.recommend(["I001", "I002"])
    assert out.history == ["I001", "I002"] and out.reasoning is None
    assert [r.rank for r in out.items] == [1, 2, 3, 4]
    assert all(r.items == rec.index.sid_to_items[r.sid] for r in out.items)
    assert all(r.titles == [rec.index.titles[i] for i in r.items] for r in out.items)
    assert [r.score for r in out.items] == sorted((r.score for r in out.items), reverse=True)
    prompt = next_sid_prompt_text(rec.tokenizer, [rec.index.sid("I001"), rec.index.sid("I002")], think=False,
                                  style=rec.style)
    ids, mask = encode_left_padded(rec.tokenizer, [prompt], rec.stop_id, rec.model.device)
    with torch.no_grad():
        direct = constrained_beam_search(rec.model, ids, mask, rec.trie, 4)[0]
    assert [r.sid for r in out.items] == direct.sids


def test_thinking_mode_returns_the_reasoning(setup):
    rec, _ = setup
    rec.think, rec.max_think_tokens = True, 8
    try:
        out = rec.recommend(["I003"])
    finally:
        rec.think = False
    assert isinstance(out.reasoning, str) and len(out.items) == 4


@pytest.mark.parametrize("history, message", [
    ([], "the history is empty"),
    (["I001", "nope", "zz"], "item ids not in the catalogue: nope, zz"),
])
def test_bad_histories(setup, history, message):
    with pytest.raises(ValueError, match=message):
        setup[0].recommend(history)


def test_cli_table_and_json_lines(setup, tiny_model_dir, tmp_path, capsys):
    _, release = setup
    base = ["--model", str(tiny_model_dir[0]), "--data_dir", str(release.data_dir), "--category", CATEGORY,
            "--num_beams", "3"]
    assert main(base + ["--history", "I001,I004"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("history: I001, I004") and "  1. <a_" in printed
    inp, out = tmp_path / "h.jsonl", tmp_path / "r.jsonl"
    inp.write_text('{"user": "u1", "history": ["I001"]}\n\n{"history": ["I002", "I003"]}\n')
    assert main(base + ["--input", str(inp), "--output", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r.get("user") for r in rows] == ["u1", None] and all(len(r["items"]) == 3 for r in rows)
    assert main(base + ["--history", "I001,missing"]) == 2
    assert "recommend: error: item ids not in the catalogue: missing" in capsys.readouterr().err
    assert main(base[:4] + ["--category", "Nope", "--history", "I001"]) == 2
    assert "catalogue not found" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ('{"history": ["I1"]}\nnot json\n', r"line 2: not JSON"),
    ('{"items": ["I1"]}\n', r"line 1: expected an object with a 'history' list"),
])
def test_bad_input_lines(tmp_path, text, message):
    path = tmp_path / "h.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_histories(path)
