"""The ``release`` prompt style: every prompt, rendered through the Qwen3 chat template, equals the
SIDReasoner release's string byte for byte (expected strings written out by hand), per task and for
both evaluation modes; and a model asked in another style than it was trained with gets a warning."""
from __future__ import annotations

import logging

import pytest
from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)

from sidreasoner.data.records import SequenceRow
from sidreasoner.eval.runner import EvalConfig, Evaluator
from sidreasoner.rl.data import rl_record
from sidreasoner.sid.index import SIDIndex
from sidreasoner.tasks import prompts
from sidreasoner.tasks.base import ChatExample, TaskData
from sidreasoner.tasks.mixture import make_tasks
from sidreasoner.tasks.release_prompts import category_phrase
from sidreasoner.model.chat import (PROMPT_FILE, model_prompt_style, next_sid_prompt_text, render_training_example,
                                    stop_token_id, write_prompt_style)
from sidreasoner.train.sft_data import chat_prompt, chat_target

S = {"1": "<a_0><b_1><c_2>", "2": "<a_1><b_0><c_3>", "3": "<a_2><b_3><c_1>"}
T = {"1": "Red Pen", "2": "Blue Notebook", "3": "Green Stapler"}
PRE = ("Below is an instruction that describes a task, paired with an input that provides further context. "
       "Write a response that appropriately completes the request.")


def row(hist, target) -> SequenceRow:
    return SequenceRow("U1", tuple(hist), tuple(T[h] for h in hist), tuple(S[h] for h in hist),
                       target, T[target], S[target], line=2)


ROW = row(["1", "2"], "3")


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(tiny_model_dir[0]))


# -- the two evaluation prompts --------------------------------------------------------------------
EVAL_NOTHINK = (
    "<|im_start|>system\n"
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request. \n"
    "Can you predict the next possible item that the user may expect?\n"
    "<|im_end|>\n"
    "<|im_start|>user\n"
    "Can you predict the next possible item the user may expect, given the following chronological "
    "interaction history: <a_0><b_1><c_2>, <a_1><b_0><c_3><|im_end|>\n"
    "<|im_start|>assistant\n"
    "<think>\n</think>\n\n")

# the system turn of the release's thinking prompt (stage 2, RL, thinking evaluation) and of its
# SID history -> title task (FusionSeqRecDataset): the same class of text
RECOMMEND_SYSTEM = (
    "<|im_start|>system\n"
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n"
    "Can you recommend the next item for the user based on their interaction history?\n"
    "<|im_end|>\n"
)

EVAL_THINK = (
    RECOMMEND_SYSTEM +
    "<|im_start|>user\n"
    "The user has sequentially interacted with items <a_0><b_1><c_2>, <a_1><b_0><c_3>. Can you recommend the "
    "next item for him? Let's think step by step before making recommendation. Directly output the item SID "
    "after thinking.<|im_end|>\n"
    "<|im_start|>assistant\n")


@pytest.mark.parametrize("think,expected", [(False, EVAL_NOTHINK), (True, EVAL_THINK)])
def test_eval_prompts_are_the_release_strings(tok, think, expected):
    text = next_sid_prompt_text(tok, [S["1"], S["2"]], think, "release")
    assert text == expected
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text  # the token ids round-trip to the same string
    assert [tok.convert_ids_to_tokens(i) for i in ids if tok.convert_ids_to_tokens(i).startswith("<a_")] == \
        ["<a_0>", "<a_1>"]  # SID tokens stay single tokens


def test_nothink_eval_ids_are_template_ids_plus_the_empty_think_block(tok):
    """The release tokenises the template's prompt and appends the ids of ``<think>\\n</think>\\n\\n``;
    encoding the whole string gives the same ids."""
    text = next_sid_prompt_text(tok, [S["1"], S["2"]], False, "release")
    head = text[:-len("<think>\n</think>\n\n")]
    assert head.endswith("<|im_start|>assistant\n")
    assert tok.encode(text, add_special_tokens=False) == \
        tok.encode(head, add_special_tokens=False) + tok.encode("<think>\n</think>\n\n", add_special_tokens=False)


def test_evaluator_asks_in_the_release_strings(tok):
    """Non-thinking: the search starts right after the release's empty think block. Thinking: the
    reasoning is generated from the bare generation prompt (the model opens <think>), and the search
    prompt is that prompt + <think>\\n + reasoning + \\n</think>\\n\\n (the release's prompt_cot)."""
    rows = [row(["1", "2"], "3")]
    for think, expected in ((False, EVAL_NOTHINK), (True, EVAL_THINK)):
        cfg = EvalConfig(base_model="m", output_dir="o", test_data_path="t", info_file="i", think=think,
                         prompt_style="release", reasoning_backend="hf")
        ev = Evaluator(cfg, None, tok, None, stop_token_id(tok))
        assert ev.prompt(rows[0]) == expected


def test_think_search_prompt_is_the_release_prompt_cot(tok, monkeypatch):
    from sidreasoner.eval.beam import BeamResult
    from sidreasoner.eval.thinking import Reasoning
    cfg = EvalConfig(base_model="m", output_dir="o", test_data_path="t", info_file="i", think=True,
                     prompt_style="release", reasoning_backend="hf", num_beams=1)
    ev = Evaluator(cfg, None, tok, None, stop_token_id(tok))
    seen = {}
    monkeypatch.setattr(ev, "reason", lambda prompts, seed: (seen.setdefault("reason", list(prompts)),
                                                             [[Reasoning("Likes pens.", True)]])[1])
    monkeypatch.setattr(ev, "search", lambda texts: (seen.setdefault("search", list(texts)),
                                                     [BeamResult([S["3"]], [0.0])])[1])
    ev.run_batch([(0, ROW)], set(S.values()))
    assert seen["reason"] == [EVAL_THINK]
    assert seen["search"] == [EVAL_THINK + "<think>\nLikes pens.\n</think>\n\n"]


# -- training prompts, per task ----------------------------------------------------------------------
def _data(**kw) -> TaskData:
    base = dict(index=SIDIndex(S, T), train_rows=[ROW], valid_rows=[], train_path="train.csv",
                valid_path="valid.csv")
    base.update(kw)
    return TaskData(**base)


def _full(tok, ex: ChatExample) -> str:
    """The release's rendering of the whole conversation (template over system, user and assistant), checked
    to be what our SFT encoder trains on: its prompt, then the target, then the stop token."""
    roles = [r for r, _ in ex.messages]
    system = ex.messages[0][1] if roles[0] == "system" else None
    prompt, completion = render_training_example(tok, ex.messages[-1][1], chat_target(ex),
                                                 ex.reasoning is not None, system)
    assert chat_prompt(tok, ex) == prompt
    assert completion == chat_target(ex) + "<|im_end|>\n"
    return prompt + completion


SIDSFT = (
    "<|im_start|>system\n"
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request. Can you predict the next possible item that the "
    "user may expect?<|im_end|>\n"
    "<|im_start|>user\n"
    "The user has interacted with items <a_0><b_1><c_2>, <a_1><b_0><c_3> in chronological order. Can you predict "
    "the next possible item that the user may expect?<|im_end|>\n"
    "<|im_start|>assistant\n"
    "<think>\n\n</think>\n\n<a_2><b_3><c_1><|im_end|>\n")

ITEM_SYSTEM = (
    "<|im_start|>system\n"
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request. \n"
    "Answer the question about item identification.\n"
    "<|im_end|>\n")

SID2TITLE = (ITEM_SYSTEM +
             '<|im_start|>user\nWhat is the title of item "<a_0><b_1><c_2>"?<|im_end|>\n'
             "<|im_start|>assistant\n<think>\n\n</think>\n\nRed Pen<|im_end|>\n")

TITLE2SID = (ITEM_SYSTEM +
             "<|im_start|>user\nWhich item has the title: Red Pen?<|im_end|>\n"
             "<|im_start|>assistant\n<think>\n\n</think>\n\n<a_0><b_1><c_2><|im_end|>\n")

FUSION = (
    RECOMMEND_SYSTEM +
    "<|im_start|>user\n"
    "The user has sequentially interacted with items <a_0><b_1><c_2>, <a_1><b_0><c_3>. Can you recommend the next "
    "item for him? Tell me the title of the item?<|im_end|>\n"
    "<|im_start|>assistant\n"
    "<think>\n\n</think>\n\nGreen Stapler<|im_end|>\n")


def title2sid_history(phrase: str) -> str:
    return (
        "<|im_start|>system\n"
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request. \n"
        "Based on the user's historical interaction with item titles, predict the semantic ID of the next item "
        "they may expect.\n"
        "<|im_end|>\n"
        "<|im_start|>user\n"
        f'The user has interacted with the following {phrase} items in chronological order: "Red Pen", '
        '"Blue Notebook". Can you predict the next item the user may expect?<|im_end|>\n'
        "<|im_start|>assistant\n"
        "<think>\n\n</think>\n\n<a_2><b_3><c_1><|im_end|>\n")


# stage 2 trains on the thinking-evaluation prompt followed by the think block and the SID
REASONING = EVAL_THINK + "<think>\nPens, then notebooks: a stapler fits.\n</think>\n\n<a_2><b_3><c_1><|im_end|>\n"


def _first(task_name: str, data: TaskData, category: str = "Office_Products", pick=None) -> ChatExample:
    task, = make_tasks([task_name], prompt_style="release", category=category)
    exs = task.build(data).train
    return pick(exs) if pick else exs[0]


@pytest.mark.parametrize("task,expected", [
    ("next_sid", SIDSFT),
    ("sid_history_to_title", FUSION),
    ("title_history_to_sid", title2sid_history("office products")),
])
def test_sequence_tasks_render_the_release_strings(tok, task, expected):
    assert _full(tok, _first(task, _data())) == expected


@pytest.mark.parametrize("category,phrase", [("Industrial_and_Scientific", "industrial and scientific items"),
                                             ("Office_Products", "office products"),
                                             ("Beauty", "items"), ("", "items")])
def test_title_history_to_sid_names_the_category_as_the_release(tok, category, phrase):
    assert category_phrase(category) == phrase
    assert _full(tok, _first("title_history_to_sid", _data(), category)) == title2sid_history(phrase)


def test_item_tasks_render_the_release_strings(tok):
    pick = lambda exs: next(e for e in exs if "Red Pen" in e.messages[-1][1] or e.answer == "Red Pen")  # noqa: E731
    assert _full(tok, _first("sid_to_title", _data(), pick=pick)) == SID2TITLE
    assert _full(tok, _first("title_to_sid", _data(), pick=pick)) == TITLE2SID


def test_title_history_to_title_keeps_the_native_wording(tok):
    """The release's counterpart picks a random instruction per example: native wording under release."""
    release = _first("title_history_to_title", _data())
    task, = make_tasks(["title_history_to_title"], prompt_style="native")
    assert release == task.build(_data()).train[0]


def test_reasoning_task_renders_the_release_string(tok):
    from sidreasoner.data.corpora import Corpus, NarrativeRow
    narr = NarrativeRow((S["1"], S["2"]), S["3"], "", "Pens, then notebooks: a stapler fits.", line=2)
    data = _data(narratives=Corpus("narrative.csv", [narr]))
    task, = make_tasks(["reasoning"], valid_fraction=0.0, prompt_style="release")
    ex = task.build(data).train[0]
    assert _full(tok, ex) == REASONING
    # the stage-2 prompt is the thinking evaluation's prompt
    assert chat_prompt(tok, ex) == EVAL_THINK


@pytest.mark.parametrize("think", [True, False])
def test_rl_prompts_are_the_evaluation_prompts(tok, think):
    rec = rl_record(ROW, "Office_Products", "train", 0, think, style="release")
    system, user = (m["content"] for m in rec["prompt"])
    assert (system, user) == prompts.next_sid_turns(ROW.history_sids, think=think, style="release")
    if think:  # what verl renders (the template with the generation prompt) is the thinking evaluation's prompt
        text = tok.apply_chat_template(rec["prompt"], tokenize=False, add_generation_prompt=True)
        assert text == EVAL_THINK


def test_release_is_a_known_style():
    assert "release" in prompts.PROMPT_STYLES
    from sidreasoner.train.sft_config import PROMPT_STYLE_CHOICES
    assert "release" in PROMPT_STYLE_CHOICES


# -- the recorded style vs an explicit request -------------------------------------------------------
def test_requesting_another_style_than_recorded_warns(tmp_path, caplog):
    write_prompt_style(tmp_path, "native")
    with caplog.at_level(logging.WARNING, logger="sidreasoner.model.chat"):
        assert model_prompt_style(tmp_path, "release") == "release"
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(msgs) == 1 and "'native'" in msgs[0] and "'release'" in msgs[0] and PROMPT_FILE in msgs[0]


@pytest.mark.parametrize("recorded,requested", [("release", "release"), ("release", "auto"), (None, "release")])
def test_no_warning_when_the_style_agrees_or_nothing_is_recorded(tmp_path, caplog, recorded, requested):
    if recorded:
        write_prompt_style(tmp_path, recorded)
    with caplog.at_level(logging.WARNING, logger="sidreasoner.model.chat"):
        assert model_prompt_style(tmp_path, requested) == "release"
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
