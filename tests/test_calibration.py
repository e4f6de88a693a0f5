"""Calibrated SID scores (sidreasoner.eval.calibration): the prior is the empty-history log-probability,
the biased search scores every SID as plain - alpha x prior, the re-rank by hand, alpha chosen on valid."""
from __future__ import annotations

import json

import pytest
import torch

from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from sidreasoner.eval import calibration as C
from sidreasoner.eval import fusion as F
from sidreasoner.eval.beam import constrained_beam_search
from sidreasoner.eval.padding import encode_left_padded
from sidreasoner.sid.trie import SIDTrie

A, B, T = "<a_1><b_1><c_1>", "<a_2><b_2><c_2>", "<a_9><b_9><c_9>"


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    from sidreasoner.model.chat import stop_token_id
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    path, index = tiny_model_dir
    model, tok = load_model_and_tokenizer(path)
    stop = stop_token_id(tok)
    return model.eval(), tok, SIDTrie.from_index(index, tok, stop), stop


def test_sid_paths_cover_every_sid_once(loaded):
    _, _, trie, _ = loaded
    paths = C.sid_paths(trie)
    assert sorted(trie.sid_of_node(nodes[-1]) for _, nodes in paths) == sorted(trie.sids)
    assert all(trie.node_of(toks) == nodes[-1] for toks, nodes in paths)


def test_prior_is_the_empty_history_log_probability(loaded):
    """Each SID's prior = the sum of its tokens' full-vocabulary log-probs after the empty prompt,
    computed here by one uncached forward per SID."""
    model, tok, trie, _ = loaded
    prior = C.sid_prior(trie, C.edge_prior(model, tok, trie, "compact", batch_size=7))  # several batches
    prompt = tok.encode(C.null_prompt_text(tok, "compact"), add_special_tokens=False)
    for toks, nodes in C.sid_paths(trie)[:6]:
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([prompt + toks])).logits[0].float(), -1)
        want = sum(logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(toks))
        assert prior[trie.sid_of_node(nodes[-1])] == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("mode", ["tree", "expand"])
def test_biased_search_scores_plain_minus_alpha_prior(loaded, mode):
    model, tok, trie, stop = loaded
    edge = C.edge_prior(model, tok, trie, "compact")
    prior = C.sid_prior(trie, edge)
    from sidreasoner.model.chat import next_sid_prompt_text
    texts = [next_sid_prompt_text(tok, trie.sids[i:i + 3], False, "compact") for i in (0, 5)]
    ids, mask = encode_left_padded(tok, texts, stop, "cpu")
    k = len(trie)  # every SID: the two searches return the same set, so scores compare one to one
    plain = constrained_beam_search(model, ids, mask, trie, k, mode=mode)
    cal = constrained_beam_search(model, ids, mask, trie, k, mode=mode, bias=0.4 * edge)
    for p, c in zip(plain, cal):
        got = dict(zip(c.sids, c.scores))
        assert set(got) == set(p.sids)
        for sid, s in zip(p.sids, p.scores):
            assert got[sid] == pytest.approx(s - 0.4 * prior[sid], abs=1e-4)


def rec(row, ranked, scores):
    return {"row": row, "user_id": f"u{row}", "target": T, "ranked": ranked, "scores": scores}


@pytest.mark.parametrize("alpha, ranked, scores", [
    (0.0, [A, B, T], [-1.0, -1.5, -2.0]),   # the plain list
    (0.5, [T, A, B], [-1.0, -1.5, -1.75]),   # T: -2 - .5*-2; A: -1 - .5*1; B: -1.5 - .5*.5
    (0.25, [A, T, B], [-1.25, -1.5, -1.625]),
])
def test_calibrate_row_by_hand(alpha, ranked, scores):
    prior = {A: 1.0, B: 0.5, T: -2.0}
    got = C.calibrate_row(rec(0, [A, B, T], [-1.0, -1.5, -2.0]), prior, alpha, k=3)
    assert got["ranked"] == ranked and got["scores"] == pytest.approx(scores)


def test_calibrate_row_refuses_unknown_sids_and_missing_scores():
    with pytest.raises(ValueError, match="has no prior"):
        C.calibrate_row(rec(0, [A, T], [-1.0, -2.0]), {A: 0.0}, 0.1, 10)
    with pytest.raises(ValueError, match="needs a score"):
        C.calibrate_row(rec(0, [A], []), {A: 0.0}, 0.1, 10)


def _run(folder, records):
    folder.mkdir(parents=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_fusion_cli_chooses_alpha_on_valid(tmp_path):
    # the model over-scores A whatever the history (high prior); the target T has a low prior
    (tmp_path / "prior.json").write_text(json.dumps({"prior": {A: -1.0, B: -3.0, T: -6.0}}))
    _run(tmp_path / "v", [rec(0, [A, T], [-1.0, -1.5]), rec(1, [A, T], [-1.0, -2.1])])
    _run(tmp_path / "t", [rec(0, [A, T], [-1.0, -1.2])])
    out = tmp_path / "cal"
    args = ["--method", "calibrated", "--prior", str(tmp_path / "prior.json"), "--valid", str(tmp_path / "v"),
            str(tmp_path / "v"), "--test", str(tmp_path / "t"), str(tmp_path / "t"), "--output_dir", str(out)]
    assert F.main(args) == 0
    record = json.loads((out / "fusion.json").read_text())
    assert record["valid_ndcg10"]["0.0"] < 1.0 == record["valid_ndcg10"][str(record["weight"])]
    assert record["weight"] == 0.3  # the smallest alpha that lifts T over A on both valid rows
    assert json.loads((out / "predictions.jsonl").read_text())["ranked"] == [T, A]


def test_fusion_cli_prior_goes_with_calibrated(tmp_path, capsys):
    with pytest.raises(SystemExit):
        F.main(["--method", "calibrated", "--weight", "0.1", "--test", "a", "b", "--output_dir", str(tmp_path)])
    assert "--method calibrated needs --prior" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert F.main(["--method", "calibrated", "--prior", str(tmp_path / "bad.json"), "--weight", "0.1",
                   "--test", "a", "b", "--output_dir", str(tmp_path)]) == 2
    assert "expected {\"prior\"" in capsys.readouterr().err
