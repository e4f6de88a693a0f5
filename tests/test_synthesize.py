"""Corpus synthesis with the template teacher on a tiny release (tests/fixtures_teacher.py), the answer
checks shared by both teachers, bad input, and the script."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from fixtures_teacher import CATALOGUE, sequence_rows, write_tiny_release
from sidreasoner.data.corpora import check_sid_mentions, corpus_texts, read_item_enhanced, read_narratives
from sidreasoner.data.records import DataError, SequenceRow
from sidreasoner.sid.index import SIDIndex
from sidreasoner.sid.spelling import find_sids, format_sid
from sidreasoner.teacher.prompts import ItemBrief, ItemContext, SequenceContext, SequenceDraft
from sidreasoner.teacher.synthesize import (SynthesisConfig, check_text, synthesize, transitions, vet_item,
                                            vet_sequence)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "synthesize_corpus.py"
INDEX = SIDIndex({i: v[0] for i, v in CATALOGUE.items()})


def _cfg(tmp_path, **kw) -> SynthesisConfig:
    return SynthesisConfig(str(tmp_path / "data"), "Tiny", output_dir=str(tmp_path / "out"), **kw)


def test_template_corpus_is_complete_real_and_readable(tmp_path):
    write_tiny_release(tmp_path / "data")
    stats = synthesize(_cfg(tmp_path))
    enhanced = read_item_enhanced(tmp_path / "out" / "Tiny.item_enhanced_v2.json")
    narr = read_narratives(tmp_path / "out" / "Tiny.integrated_narrative.csv")
    rows = sequence_rows()
    assert [r.item_id for r in enhanced.records] == list(CATALOGUE) and not enhanced.skipped
    assert [(r.history_sids, r.item_sid, r.extra["user_id"]) for r in narr.records] == \
        [(r.history_sids, r.item_sid, r.user_id) for r in rows]
    mentions = check_sid_mentions(corpus_texts(enhanced) + corpus_texts(narr), INDEX)
    assert mentions.unknown == [] and mentions.prefixes == 0 and mentions.known == mentions.mentions > 0
    for r in narr.records:
        assert r.item_sid not in [format_sid(m.codes) for m in find_sids(r.reasoning_path)]
        assert [format_sid(m.codes) for m in find_sids(r.integrated_narrative)][-1] == r.item_sid
    for r in enhanced.records:
        assert [format_sid(m.codes) for m in find_sids(r.text)].count(CATALOGUE[r.item_id][0]) >= 2
    assert (stats["items"]["written"], stats["sequences"]["written"]) == (8, len(rows))
    assert stats["items"]["rejected"] == stats["sequences"]["rejected"] == 0
    # the reasoning never states the target's title or a brand the history lacks (teacher.leakage)
    assert stats["sequences"]["target_quoted_share"] == {"title": 0.0, "brand": 0.0}
    n_sids = [len(find_sids(r.text)) for r in enhanced.records]
    assert stats["items"]["lengths"]["sids"]["mean"] == round(sum(n_sids) / len(n_sids), 2)


def test_caps_and_deterministic_output(tmp_path):
    write_tiny_release(tmp_path / "data")
    synthesize(_cfg(tmp_path, max_items=3, max_sequences=2))
    first = (tmp_path / "out" / "Tiny.integrated_narrative.csv").read_text()
    stats = synthesize(_cfg(tmp_path, max_items=3, max_sequences=2))
    assert (stats["items"]["written"], stats["sequences"]["written"]) == (3, 2)
    assert (tmp_path / "out" / "Tiny.integrated_narrative.csv").read_text() == first


def test_unknown_sid_in_the_split_is_a_clear_error(tmp_path):
    rows = sequence_rows()
    rows[1] = SequenceRow("u1", ("1",), ("Inkwell Printer, Black",), ("<a_1><b_1><c_1>",), "2", "x", "<a_9><b_9><c_9>")
    paths = write_tiny_release(tmp_path / "data", rows)
    with pytest.raises(DataError, match=re.escape(
            f"{paths.split('train')}, line 3, field 'item_sid': SID <a_9><b_9><c_9> is not in the index "
            "(data row 2, user u1)")):
        synthesize(_cfg(tmp_path))


def test_empty_history_rows_are_skipped_and_counted(tmp_path):
    rows = sequence_rows() + [SequenceRow("u9", (), (), (), "3", "Paper", "<a_2><b_1><c_1>")]
    write_tiny_release(tmp_path / "data", rows)
    stats = synthesize(_cfg(tmp_path))
    assert stats["sequences"]["skipped"] == {"empty_history": 1}
    assert stats["sequences"]["written"] == len(rows) - 1


def test_transitions_count_only_last_history_item_to_target():
    # u1 1,2,3,2  u2 4,5,3  u3 6,7,8,6  u4 1,3,2: one (last history item -> target) per row
    follows, near = transitions(sequence_rows())
    assert follows == {"1": {"2": 1, "3": 1}, "2": {"3": 1}, "3": {"2": 2}, "4": {"5": 1}, "5": {"3": 1},
                       "6": {"7": 1}, "7": {"8": 1}, "8": {"6": 1}}
    assert near["3"] == ["2", "1", "5"] and near["6"] == ["7", "8"]


# -- answer checks (both teachers) -------------------------------------------------------------------
@pytest.mark.parametrize("text, runs", [
    ("x <a_1><b_2> <c_3>, y", [("<a_1><b_2> <c_3>", (1, 2, 3))]),
    ("<a_1><b_2><c_3><a_4><b_5><c_6>", [("<a_1><b_2><c_3>", (1, 2, 3)), ("<a_4><b_5><c_6>", (4, 5, 6))]),
    ("stray <b_2> then <b_2><c_1>", [("<b_2>", ()), ("<b_2><c_1>", ())]),
    ("<a_1><c_3><b_2>", [("<a_1><c_3><b_2>", ())]),
    ("< a _ 7 >", [("< a _ 7 >", (7,))]),
    ("no ids", []),
    (None, []),
])
def test_find_sid_runs_and_run_codes(text, runs):
    """spelling.find_sid_runs (added for the teacher): every token lands in exactly one run."""
    from sidreasoner.sid.spelling import find_sid_runs, run_codes
    assert [(text[a:b], run_codes(t)) for a, b, t in find_sid_runs(text)] == runs


@pytest.mark.parametrize("text, problems, found, out", [
    ("Pen <a_3><b_1><c_1> ok", [], ["<a_3><b_1><c_1>"], "Pen <a_3><b_1><c_1> ok"),
    ("loose < a_3 > <b_1><c_1>.", [], ["<a_3><b_1><c_1>"], "loose <a_3><b_1><c_1>."),
    ("bad <a_9><b_9><c_9>", ["unknown_sid: '<a_9><b_9><c_9>' is not a catalogue SID"], [], None),
    ("prefix <a_3><b_1>", ["unknown_sid: '<a_3><b_1>' is not a catalogue SID"], [], None),
    ("stray <b_1> token", ["unknown_sid: '<b_1>' is not a catalogue SID"], [], None),
    ("order <a_3><c_1><b_1>", ["unknown_sid: '<a_3><c_1><b_1>' is not a catalogue SID"], [], None),
    ("   ", ["empty: no text"], [], None),
    ("w " * 11, ["overlong: 11 words > 10"], [], None),
])
def test_check_text(text, problems, found, out):
    counts = Counter()
    got, got_problems, got_found = check_text(text, INDEX, 10, counts)
    assert (got_problems, got_found) == (problems, found)
    if out is not None:
        assert got == out
    assert counts["respelled"] == (1 if "< a_3 >" in text else 0)


ITEM = ItemBrief("6", "<a_3><b_1><c_1>", "Scribewell Ballpoint Pen, Blue", "Scribewell")
TARGET = ItemBrief("7", "<a_3><b_1><c_2>", "Scribewell Notebook, A5", "Scribewell")


@pytest.mark.parametrize("raw, finish, problems, value", [
    ("<think>x <a_8><b_8><c_8></think>Pen <a_3><b_1><c_1>.", "stop", [], "Pen <a_3><b_1><c_1>."),
    ("A pen.", "stop", ["missing_own_sid: the passage never writes <a_3><b_1><c_1>"], "A pen."),
    ("Pen <a_3><b_1><c_1> and", "length", ["truncated: the teacher stopped at max_tokens"], "Pen <a_3><b_1><c_1> and"),
    ("<think>unfinished reasoning <a_3><b_1><c_1>", "length",
     ["empty: no text", "truncated: the teacher stopped at max_tokens"], ""),
])
def test_vet_item(raw, finish, problems, value):
    o = vet_item(raw, ItemContext(ITEM), INDEX, SynthesisConfig("d", "c"), finish)
    assert (o.problems, o.value, o.counts["think_removed"]) == (problems, value, int("<think>" in raw))


SEQ = SequenceContext("r", (ITEM,), TARGET)
QUOTING = ("<narrative>Pen <a_3><b_1><c_1>, then <a_3><b_1><c_2>.</narrative>\n"
           "<reasoning_path>After <a_3><b_1><c_1> comes <a_3><b_1><c_2>.</reasoning_path>")


def test_vet_sequence_redacts_target_sid_by_default():
    o = vet_sequence(QUOTING, SEQ, INDEX, SynthesisConfig("d", "c"), "stop")
    assert o.problems == [] and o.counts["target_sid_redacted"] == 1
    assert o.counts["target_title_quoted"] == 1  # the redaction's title gives the answer away: counted
    assert o.value == SequenceDraft("Pen <a_3><b_1><c_1>, then <a_3><b_1><c_2>.",
                                    'After <a_3><b_1><c_1> comes "Scribewell Notebook".')


def test_vet_sequence_reject_policy():
    o = vet_sequence(QUOTING, SEQ, INDEX, SynthesisConfig("d", "c", target_sid_policy="reject"), "stop")
    assert o.problems == ["target_sid_in_reasoning: the reasoning path quotes the target SID <a_3><b_1><c_2>"]


@pytest.mark.parametrize("raw, problem", [
    ("just text", "unparseable: expected <narrative>...</narrative> and <reasoning_path>...</reasoning_path>"),
    ("<narrative>No ids here.</narrative><reasoning_path>Pens.</reasoning_path>", "no_sid: the narrative writes no SID"),
    ("<narrative>x <a_1><b_1><c_1></narrative><reasoning_path></reasoning_path>", "reasoning_path empty: no text"),
    ("<narrative><a_1><b_1><c_1><b_5></narrative><reasoning_path>ok</reasoning_path>",
     ["narrative unknown_sid: '<a_1><b_1><c_1><b_5>' is not a catalogue SID", "no_sid: the narrative writes no SID"]),
])
def test_vet_sequence_rejections(raw, problem):
    want = problem if isinstance(problem, list) else [problem]
    assert vet_sequence(raw, SEQ, INDEX, SynthesisConfig("d", "c"), "stop").problems == want


# -- the script ---------------------------------------------------------------------------------------
def _script(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_script_help_documents_every_flag():
    res = _script("--help")
    assert res.returncode == 0
    flags = re.findall(r"^\s+(--\w+)", res.stdout, re.M)
    assert {"--data_dir", "--teacher", "--teacher_url", "--api_key_env", "--cache_path", "--max_sequences"} <= set(flags)
    for block in re.split(r"\n(?=\s+--)", res.stdout.split("options:")[1])[1:]:
        assert len(block.split()) > 2, f"flag without help: {block!r}"


def test_script_template_run_writes_corpora_config_and_stats(tmp_path):
    write_tiny_release(tmp_path / "data")
    res = _script("--data_dir", str(tmp_path / "data"), "--category", "Tiny", "--output_dir", str(tmp_path / "out"),
                  "--max_items", "5", "--no_progress")
    assert res.returncode == 0, res.stderr
    assert "items: 5/5 written, 0 rejected" in res.stdout and f"sequences: 10/10 written" in res.stdout
    cfg = json.loads((tmp_path / "out" / "Tiny.synthesis_config.json").read_text())
    stats = json.loads((tmp_path / "out" / "Tiny.synthesis_stats.json").read_text())
    assert cfg["teacher"] == "template" and cfg["synthesis"]["max_items"] == 5 and stats["items"]["written"] == 5


def test_script_openai_needs_url_and_model(tmp_path):
    res = _script("--data_dir", str(tmp_path), "--category", "Tiny", "--teacher", "openai")
    assert res.returncode == 2 and "--teacher openai needs --teacher_url and --teacher_model" in res.stderr


@pytest.mark.parametrize("flags, message", [
    (["--max_items", "-2"], "--max_items must be >= 1, got -2"),
    (["--max_sequences", "0"], "--max_sequences must be >= 1, got 0"),
    (["--repair_rounds", "-1"], "--repair_rounds must be >= 0, got -1"),
    (["--max_retries", "-1"], "--max_retries must be >= 0, got -1"),
    (["--timeout", "0"], "--timeout must be > 0 seconds, got 0.0"),
])
def test_script_refuses_nonsense_numbers(tmp_path, capsys, flags, message):
    """In-process (parse-time checks, no data read): exit 2 with the flag and its range named."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("synthesize_corpus", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(SystemExit) as e:
        mod.main(["--data_dir", str(tmp_path), "--category", "Tiny", *flags])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_script_missing_data_is_a_clear_error(tmp_path):
    res = _script("--data_dir", str(tmp_path / "nowhere"), "--category", "Tiny", "--output_dir", str(tmp_path / "o"))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {tmp_path / 'nowhere' / 'index' / 'Tiny.index.json'}: file not found"


def test_leakage_cli_reports_any_corpus(tmp_path, capsys):
    from sidreasoner.data.corpora import NarrativeRow, write_narratives
    from sidreasoner.teacher import leakage
    write_tiny_release(tmp_path / "data")
    synthesize(_cfg(tmp_path))
    own = tmp_path / "out" / "Tiny.integrated_narrative.csv"
    assert leakage.main(["--data_dir", str(tmp_path / "data"), "--category", "Tiny", "--narrative", str(own)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["title"] == 0.0
    # a model teacher's paths: one names the target (Scribewell Notebook), one a brand the history has
    leaky = tmp_path / "leaky.csv"
    write_narratives(leaky, [
        NarrativeRow(("<a_3><b_1><c_1>",), "<a_3><b_1><c_2>", "n", "After the pen, the Scribewell Notebook."),
        NarrativeRow(("<a_3><b_1><c_1>",), "<a_3><b_1><c_2>", "n", "More from Scribewell, probably."),
        NarrativeRow(("<a_9><b_9><c_9>",), "<a_3><b_1><c_2>", "n", "Unknown history item.")])
    assert leakage.main(["--data_dir", str(tmp_path / "data"), "--category", "Tiny", "--narrative", str(leaky)]) == 0
    share = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert share == {"paths": 2, "title": 0.5, "brand": 0.0, "unknown_sid": 1, "empty_reasoning": 0}
