"""SFT tasks: exact prompts and targets per task, label masks with the stop token supervised,
held-out validation, skip counting, mixture weights/caps, and bad input messages."""
from __future__ import annotations

import json
import random

import pytest
from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)

from sidreasoner.data.corpora import Corpus, EnhancedItem, NarrativeRow
from sidreasoner.data.records import DataError, SequenceRow
from sidreasoner.sid.index import SIDIndex
from sidreasoner.tasks import prompts
from sidreasoner.tasks.base import ChatExample, TaskData, TextExample, held_out
from sidreasoner.tasks.corpus import ItemText, Narrative
from sidreasoner.tasks.general import GeneralChat, split_think, to_example
from sidreasoner.tasks.items import SIDToTitle, TitleToSID
from sidreasoner.tasks.mixture import build_mixture, make_tasks, parse_task_values, weighted_sample
from sidreasoner.tasks.reasoning import Reasoning
from sidreasoner.tasks.sequence import NextSID, NextSIDFromTitles, NextTitleFromSIDs, NextTitleFromTitles
from sidreasoner.tasks.sources import DataPaths, load_task_data

S = {"1": "<a_0><b_1><c_2>", "2": "<a_1><b_0><c_3>", "3": "<a_2><b_3><c_1>", "4": "<a_3><b_2><c_0>"}
T = {"1": "Red Pen", "2": "Blue Notebook", "3": "Green Stapler", "4": "Black Ink"}
SYS = f"<|im_start|>system\n{prompts.SYSTEM_PROMPT}<|im_end|>\n"
NO_THINK = "<|im_start|>assistant\n<think>\n\n</think>\n\n"


def row(hist, target, user="U1", line=None) -> SequenceRow:
    return SequenceRow(user, tuple(hist), tuple(T[h] for h in hist), tuple(S[h] for h in hist),
                       target, T[target], S[target], line=line)


def data(**kw) -> TaskData:
    base = dict(index=SIDIndex(S, T), train_rows=[row(["1", "2"], "3", line=2)], valid_rows=[row(["2"], "4", line=2)],
                train_path="train.csv", valid_path="valid.csv")
    base.update(kw)
    return TaskData(**base)


def user_text(ex: ChatExample) -> str:
    assert ex.messages[0] == ("system", prompts.SYSTEM_PROMPT)
    return ex.messages[-1][1]


# -- exact wording per task -----------------------------------------------------------------------
HISTORY = "The user has interacted with these items in chronological order: "
WHICH = "Which item will the user interact with next? "
CASES = [
    (NextSID, f"{HISTORY}<a_0><b_1><c_2>, <a_1><b_0><c_3>. {WHICH}Answer with the semantic ID of the next item only.",
     "<a_2><b_3><c_1>"),
    (NextTitleFromSIDs, f"{HISTORY}<a_0><b_1><c_2>, <a_1><b_0><c_3>. {WHICH}Answer with the title of the next item only.",
     "Green Stapler"),
    (NextTitleFromTitles, f'{HISTORY}"Red Pen", "Blue Notebook". {WHICH}Answer with the title of the next item only.',
     "Green Stapler"),
    (NextSIDFromTitles, f'{HISTORY}"Red Pen", "Blue Notebook". {WHICH}Answer with the semantic ID of the next item only.',
     "<a_2><b_3><c_1>"),
]


@pytest.mark.parametrize("cls,user,answer", CASES, ids=[c[0].name for c in CASES])
def test_sequence_task_wording(cls, user, answer):
    split = cls().build(data())
    (ex,) = split.train
    assert (user_text(ex), ex.answer, ex.reasoning, ex.task) == (user, answer, None, cls.name)
    assert ex.source == "train.csv line 2"
    assert [e.answer for e in split.valid] == [S["4"] if "sid" in cls.name.split("_")[-1] else T["4"]]


def test_next_sid_prompt_is_the_evaluators():
    ex = NextSID().build(data()).train[0]
    assert user_text(ex) == prompts.next_sid_prompt([S["1"], S["2"]], think=False)


def test_item_tasks_wording_and_held_out_items():
    d = data(valid_items=frozenset({"2"}))
    s2t, t2s = SIDToTitle().build(d), TitleToSID().build(d)
    assert [(user_text(e), e.answer) for e in s2t.train[:1]] == [
        ("What is the title of the item with semantic ID <a_0><b_1><c_2>? Answer with the title only.", "Red Pen")]
    assert [(user_text(e), e.answer) for e in t2s.train[:1]] == [
        ('What is the semantic ID of the item titled "Red Pen"? Answer with the semantic ID only.', "<a_0><b_1><c_2>")]
    # item 2 is held out: in validation only, never in training
    assert [e.answer for e in s2t.valid] == ["Blue Notebook"] and [e.answer for e in t2s.valid] == [S["2"]]
    assert all("Blue Notebook" not in user_text(e) and e.answer != "Blue Notebook" for e in s2t.train + t2s.train)
    assert len(s2t.train) == len(t2s.train) == 3


def test_reasoning_task_target_and_think_prompt():
    corpus = Corpus("n.csv", [NarrativeRow((S["1"],), S["2"], "narr", "Pens need paper.", line=2)])
    (ex,) = Reasoning(valid_fraction=0).build(data(narratives=corpus)).train
    assert user_text(ex) == (f"{HISTORY}<a_0><b_1><c_2>. {WHICH}Think step by step about what the user needs "
                             "next, then answer with the semantic ID of the next item only.")
    assert (ex.reasoning, ex.answer, ex.source) == ("Pens need paper.", S["2"], "n.csv line 2")


def test_corpus_lm_tasks_and_unknown_sid_skips():
    items = Corpus("e.json", [EnhancedItem("1", f"Red Pen {S['1']} writes."), EnhancedItem("3", "Stapler."),
                              EnhancedItem("9", "not in index"), EnhancedItem("2", "Pairs with <a_9><b_9><c_9>."),
                              EnhancedItem("4", "Group <a_3> items are inks.")])
    split = ItemText().build(data(item_corpus=items, valid_items=frozenset({"3"})))
    assert [e.text for e in split.train] == [f"Red Pen {S['1']} writes.", "Group <a_3> items are inks."]
    assert [e.text for e in split.valid] == ["Stapler."] and isinstance(split.valid[0], TextExample)
    assert split.skips.counts == {"SID not in the index (item id not in index.json)": 1, "SID not in the index": 1}
    narr = Corpus("n.csv", [NarrativeRow((S["1"],), S["2"], "", "r", line=2),
                            NarrativeRow((S["1"],), S["2"], f"Then {S['2']}.", "r", line=3)])
    split = Narrative(valid_fraction=0).build(data(narratives=narr))
    assert [e.text for e in split.train] == [f"Then {S['2']}."]
    assert split.skips.lines() == ["     1 x empty integrated_narrative (e.g. n.csv line 2)"]


def test_missing_corpora_turn_tasks_off_with_a_note():
    assert ItemText().build(data()).note == "off: item-enriched corpus (--llm_generated_data_path) not found"
    assert Narrative().build(data()).note == "off: narrative corpus (--llm_generated_sequence_path) not found"


def test_rows_with_unknown_sids_or_empty_history_are_counted():
    bad = SequenceRow("U", ("x",), ("t",), ("<a_7><b_7><c_7>",), "1", T["1"], S["1"], line=3)
    empty = SequenceRow("U", (), (), (), "1", T["1"], S["1"], line=4)
    split = NextSID().build(data(train_rows=[row(["1"], "2", line=2), row(["2"], "3", line=5), bad, empty]))
    assert len(split.train) == 2
    assert split.skips.counts == {"SID not in the index": 1, "empty history": 1}
    assert split.skips.examples["SID not in the index"] == ["train.csv line 3"]


def test_mostly_unknown_sids_is_an_error_naming_the_file():
    bad = [SequenceRow("U", ("x",), ("t",), ("<a_7><b_7><c_7>",), "1", T["1"], S["1"], line=n) for n in (2, 3)]
    with pytest.raises(DataError, match=r"^train\.csv: 2 of 3 rows name SIDs that are not in the SID index "
                                        r"\(first: train\.csv line 2; train\.csv line 3\); was this file made "
                                        r"for another index\.json\?$"):
        NextSID().build(data(train_rows=bad + [row(["1"], "2")]))


# -- general chat data ----------------------------------------------------------------------------
def test_general_rows_messages_and_think_split(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"}]},
            {"messages": repr([{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                               {"role": "assistant", "content": "Hello"}])},
            {"messages": [{"role": "user", "content": "no answer"}]},
            {"messages": "not a list ["}]
    path = tmp_path / "general.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    split = GeneralChat(max_samples=0, valid_fraction=0).build(data(general_path=str(path)))
    assert [(e.messages, e.reasoning, e.answer) for e in split.train] == [
        ((("user", "2+2?"),), "add", "4"), ((("system", "Be brief."), ("user", "Hi")), None, "Hello")]
    assert split.skips.counts == {"no user turn followed by an assistant turn": 1, "unreadable messages (SyntaxError)": 1}
    assert split_think("plain") == (None, "plain")
    assert to_example([{"role": "tool", "content": "x"}], "s")[1] == "unsupported message (role 'tool')"


def test_general_sampled_to_a_cap(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text("".join(json.dumps([{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}])
                            + "\n" for i in range(50)))
    split = GeneralChat(max_samples=10, valid_fraction=0).build(data(general_path=str(path)))
    assert len(split.train) == 10 and split.note == "sampled 10 of 50 rows"


# -- mixture ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("weight,cap,expected", [(0, None, 0), (0.5, None, 5), (1, None, 10), (2.5, None, 25),
                                                 (2.5, 7, 7), (1, 0, 10)])
def test_weighted_sample_counts(weight, cap, expected):
    out = weighted_sample(list(range(10)), weight, cap, random.Random(0))
    assert len(out) == expected
    if weight >= 1 and not cap:
        assert set(out) == set(range(10))  # whole copies first: every example is used


def test_mixture_table_weights_and_valid_cap():
    d = data(train_rows=[row(["1"], "2")] * 4, valid_rows=[row(["2"], "3")] * 6)
    mix = build_mixture(make_tasks(["next_sid", "title_history_to_sid"]), d, {"title_history_to_sid": 0.5},
                        {"next_sid": 3}, max_valid_per_task=5)
    assert [(r["task"], r["available"], r["train"], r["valid"]) for r in mix.table] == [
        ("next_sid", 4, 3, 5), ("title_history_to_sid", 4, 2, 5)]
    assert len(mix.train) == 5 and set(mix.valid) == {"next_sid", "title_history_to_sid"}


def test_task_spec_errors():
    assert parse_task_values("next_sid=2, general=0.5", "--task_weights") == {"next_sid": 2.0, "general": 0.5}
    with pytest.raises(ValueError, match=r"--task_weights: expected TASK=VALUE with TASK in next_sid, .*; got 'nope=1'"):
        parse_task_values("nope=1", "--task_weights")
    with pytest.raises(ValueError, match=r"--task_caps: value for 'next_sid' must be >= 0, got -1"):
        parse_task_values("next_sid=-1", "--task_caps", int)
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['foo'\]; known tasks: next_sid, "):
        make_tasks(["foo"])


def test_held_out_is_deterministic_and_near_the_fraction():
    keys = [str(i) for i in range(4000)]
    picked = [k for k in keys if held_out(k, 0.1, 42)]
    assert picked == [k for k in keys if held_out(k, 0.1, 42)]
    assert 300 < len(picked) < 500 and not any(held_out(k, 0.0, 42) for k in keys)


def test_sources_require_index_and_report_missing_corpora(tmp_path):
    with pytest.raises(DataError, match=r"nope\.json: file not found \(--sid_index_path\); every stage needs"):
        load_task_data(DataPaths(str(tmp_path / "nope.json")), ["next_sid"])
    from fixtures_sft import write_tiny_release
    rp = write_tiny_release(tmp_path, with_corpora=False)
    paths = DataPaths(str(rp.index_json), str(rp.item_json), str(rp.split("train")), str(rp.split("valid")),
                      str(rp.item_enhanced), str(rp.narrative))
    d, report = load_task_data(paths, ["next_sid", "item_text", "narrative"])
    assert report.notes == [f"item_text: off (--llm_generated_data_path {rp.item_enhanced} not found)",
                            f"narrative: off (--llm_generated_sequence_path {rp.narrative} not found)"]
    assert len(d.train_rows) == 64 and d.item_corpus is None
    with pytest.raises(DataError, match=r"file not found \(--llm_generated_sequence_path\); stage 2 trains on"):
        load_task_data(paths, ["reasoning"])
    header = rp.split("train").read_text().splitlines()[0]
    rp.split("train").write_text(header + "\n")  # header only
    with pytest.raises(DataError, match=r"no train rows \(header only\?\): the sequence tasks \(next_sid\) need"):
        load_task_data(paths, ["next_sid", "item_text"])
    assert load_task_data(paths, ["sid_to_title"])[0].train_rows == ()  # item tasks do not read the split


# -- rendering through the tokenizer's chat template, label masks ---------------------------------
@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(tiny_model_dir[0]))


def _rendered(tokenizer, ex):
    from sidreasoner.train.sft_data import IGNORE_INDEX, ExampleEncoder
    enc = ExampleEncoder(tokenizer, cutoff_len=4096).encode(ex)
    ids, labels = enc.input_ids, enc.labels
    n_prompt = sum(1 for x in labels if x == IGNORE_INDEX)
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt and labels[n_prompt:] == ids[n_prompt:]
    return tokenizer.decode(ids[:n_prompt]), tokenizer.decode(ids[n_prompt:]), ids, labels


@pytest.mark.parametrize("cls,user,answer", CASES, ids=[c[0].name for c in CASES])
def test_sequence_task_rendering_and_label_mask(tokenizer, cls, user, answer):
    ex = cls().build(data()).train[0]
    prompt, supervised, ids, labels = _rendered(tokenizer, ex)
    assert prompt == f"{SYS}<|im_start|>user\n{user}<|im_end|>\n{NO_THINK}"
    assert supervised == f"{answer}<|im_end|>"
    assert labels[-1] == ids[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")  # the stop token is learned


def test_item_task_rendering(tokenizer):
    ex = TitleToSID().build(data()).train[0]
    prompt, supervised, _, _ = _rendered(tokenizer, ex)
    assert prompt == (f'{SYS}<|im_start|>user\nWhat is the semantic ID of the item titled "Red Pen"? Answer with the '
                      f'semantic ID only.<|im_end|>\n{NO_THINK}')
    assert supervised == "<a_0><b_1><c_2><|im_end|>"


def test_reasoning_rendering_matches_the_thinking_template(tokenizer):
    from sidreasoner.model.chat import render_training_example
    corpus = Corpus("n.csv", [NarrativeRow((S["1"],), S["2"], "narr", "Pens need paper.", line=2)])
    ex = Reasoning(valid_fraction=0).build(data(narratives=corpus)).train[0]
    prompt, supervised, _, _ = _rendered(tokenizer, ex)
    assert prompt == f"{SYS}<|im_start|>user\n{user_text(ex)}<|im_end|>\n<|im_start|>assistant\n"
    assert supervised == "<think>\nPens need paper.\n</think>\n\n<a_1><b_0><c_3><|im_end|>"
    # the same strings as the full Qwen3 conversation rendered by the template (minus its final newline)
    ref_prompt, ref_completion = render_training_example(
        tokenizer, user_text(ex), "<think>\nPens need paper.\n</think>\n\n<a_1><b_0><c_3>", think=True)
    assert (prompt, supervised + "\n") == (ref_prompt, ref_completion)


def test_lm_rendering_supervises_every_token_and_endoftext(tokenizer):
    from sidreasoner.train.sft_data import ExampleEncoder
    enc = ExampleEncoder(tokenizer, cutoff_len=4096).encode(TextExample("item_text", f"Red Pen {S['1']}."))
    assert enc.labels == enc.input_ids
    assert tokenizer.decode(enc.input_ids) == f"Red Pen {S['1']}.<|endoftext|>"


def test_general_multi_turn_rendering(tokenizer):
    ex = to_example([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                     {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>add</think>4"}],
                    "g")[0]
    prompt, supervised, _, _ = _rendered(tokenizer, ex)
    assert prompt == ("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
                      "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n")
    assert supervised == "<think>\nadd\n</think>\n\n4<|im_end|>"


def test_unmasked_mode_and_overlong_examples_are_counted(tokenizer):
    from sidreasoner.train.sft_data import EncodeStats, ExampleEncoder
    ex = NextSID().build(data()).train[0]
    full = ExampleEncoder(tokenizer, cutoff_len=4096, mask_prompt=False).encode(ex)
    assert full.labels == full.input_ids
    stats = EncodeStats()
    kept = ExampleEncoder(tokenizer, cutoff_len=len(full.input_ids) - 1).encode_all([ex, ex], stats=stats, show=False)
    assert kept == [] and stats.overlong == {"next_sid": 2}
    assert stats.lines(len(full.input_ids) - 1) == [f"next_sid: 2 examples longer than {len(full.input_ids) - 1} "
                                                    "tokens left out"]


def test_repeated_examples_are_tokenised_once_and_never_share_lists(tokenizer):
    from sidreasoner.train.sft_data import EncodeStats, ExampleEncoder
    ex = ChatExample("next_sid", (("user", "History: <a_1><b_2>. Next?"),), "<a_3><b_4>")
    other = ChatExample("next_sid", (("user", "History: <a_3><b_4>. Next?"),), "<a_1><b_2>")
    enc = ExampleEncoder(tokenizer, cutoff_len=4096)
    calls = []
    real = enc.encode_batch
    enc.encode_batch = lambda batch: calls.append(len(batch)) or real(batch)
    stats = EncodeStats()
    out = enc.encode_all([ex, other, ex, ex], stats=stats, show=False)
    assert calls == [2] and stats.kept == {"next_sid": 4}  # two objects tokenised, four examples kept
    assert out[0] == out[2] == out[3] == real([ex])[0] and out[1] == real([other])[0]
    assert out[0].labels is not out[2].labels and out[0].input_ids is not out[3].input_ids


def test_general_reads_parquet_hf_arrow_and_json_lines_named_arrow(tmp_path):
    import datasets
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    ds = datasets.Dataset.from_list([{"messages": msgs}] * 3)
    ds.to_parquet(str(tmp_path / "g.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    arrow = next((tmp_path / "saved").glob("*.arrow"))
    (tmp_path / "ref.arrow").write_text(json.dumps({"messages": repr(msgs)}) + "\n")  # the reference's "arrow"
    for path in (tmp_path / "g.parquet", tmp_path / "saved", arrow, tmp_path / "ref.arrow"):
        split = GeneralChat(max_samples=0, valid_fraction=0).build(data(general_path=str(path)))
        assert [(e.messages, e.answer) for e in split.train] == [((("user", "Hi"),), "Hello")] * (
            1 if path.name == "ref.arrow" else 3), path
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found \(--general_reasoning_path\)"):
        GeneralChat().build(data(general_path=str(tmp_path / "nope.jsonl")))


def test_malformed_split_rows_are_left_out_and_counted(tmp_path):
    from fixtures_sft import write_tiny_release
    rp = write_tiny_release(tmp_path, with_corpora=False)
    lines = rp.split("train").read_text().splitlines()
    lines[2] = lines[2].replace("<a_", "<z_", 1)  # line 3: a history SID that does not parse
    rp.split("train").write_text("\n".join(lines) + "\n")
    d, report = load_task_data(DataPaths(str(rp.index_json), str(rp.item_json), str(rp.split("train")),
                                         str(rp.split("valid"))), ["next_sid"])
    assert len(d.train_rows) == 63
    (log,) = [v for k, v in report.skips.items() if k.endswith("train/Tiny_5_2016-10-2018-11.csv")]
    assert log.total == 1 and log.examples[next(iter(log.counts))] == ["line 3"]
    assert next(iter(log.counts)).startswith("malformed row: ") and "(field history_item_sid)" in next(iter(log.counts))
