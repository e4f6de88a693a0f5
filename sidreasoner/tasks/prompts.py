"""All prompt wording, shared by the SFT tasks and the evaluator so training and evaluation match.

Each function returns the *user message* text; ``chat.render_prompt`` wraps it in the chat template.
SIDs are passed in already spelled (strings from ``sidreasoner.sid.spelling``); titles as stored.

Prompt styles (``--prompt_style``) choose the wording of the history -> next-SID prompt, the one the
evaluator asks (``next_sid_turns``):

- ``native``: a system prompt and a sentence around the history (~93 tokens on Office with the tiny
  tokenizer; about 5 of them per history item). Suits pretrained LLMs that read instructions.
- ``compact``: no system prompt, the user turn is the history SIDs back to back (~35 tokens). A model
  trained from scratch learns nothing from the wording, and on CPU every prompt token costs time.
- ``release``: the SIDReasoner release's texts, byte for byte (``tasks.release_prompts``), for its
  checkpoints and for models trained to be compared with them. It words every chat task of stage 1
  that has a release counterpart, stage 2, the RL prompts and both evaluation modes; the release
  trains and evaluates next-SID in different words, so :func:`next_sid_turns` takes ``train``.

Under ``native`` and ``compact`` the other stage-1 tasks (SID <-> title, title/SID history -> title or
SID) keep the native wording; under ``release`` they use the release's where it has the task.

The style a model was trained with is saved with it (``prompt_style.json``); the evaluator reads it.
"""
from __future__ import annotations

from typing import Optional, Sequence

from . import release_prompts as R

PROMPT_STYLES = ("native", "compact", "release")

SYSTEM_PROMPT = ("You are a recommender system. Items are written as semantic IDs: one token per level, "
                 "like <a_12><b_34><c_56>.")

_HISTORY = "The user has interacted with these items in chronological order: "
_ANSWER_SID = "Answer with the semantic ID of the next item only."
_ANSWER_TITLE = "Answer with the title of the next item only."


def history_sids_text(history_sids: Sequence[str]) -> str:
    return ", ".join(history_sids)


def history_titles_text(history_titles: Sequence[str]) -> str:
    """Titles are quoted so commas inside a title do not read as item boundaries."""
    return ", ".join(f'"{t}"' for t in history_titles)


def next_sid_prompt(history_sids: Sequence[str], think: bool = False) -> str:
    """History SIDs -> next SID. The wording the evaluator uses in both modes (stage 1 and 2 train on it)."""
    ask = ("Think step by step about what the user needs next, then answer with the semantic ID of the "
           "next item only." if think else _ANSWER_SID)
    return (f"The user has interacted with these items in chronological order: "
            f"{history_sids_text(history_sids)}. Which item will the user interact with next? {ask}")


def check_style(style: str) -> str:
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; choose one of {', '.join(PROMPT_STYLES)}")
    return style


def next_sid_turns(history_sids: Sequence[str], think: bool = False, style: str = "native",
                   train: bool = False) -> tuple[Optional[str], str]:
    """``(system, user)`` of the history -> next-SID prompt in ``style`` (system None: no system turn).

    ``train``: the stage-1 training wording rather than the evaluator's; only ``release`` words them
    differently (and only without thinking: its thinking prompt is one for stage 2, RL and evaluation)."""
    style = check_style(style)
    if style == "compact":
        return None, "".join(history_sids)
    if style == "release":
        if think:
            return R.next_sid_think_turns(history_sids)
        return R.next_sid_train_turns(history_sids) if train else R.next_sid_eval_turns(history_sids)
    return SYSTEM_PROMPT, next_sid_prompt(history_sids, think)


def eval_empty_think(style: str) -> Optional[str]:
    """The empty think block a non-thinking *evaluation* prompt ends with when ``style`` writes its own
    (``release``: ``<think>\\n</think>\\n\\n`` after the open generation prompt), else None: the chat
    template's non-thinking prompt (``enable_thinking=False``) is used as it is."""
    return R.EVAL_EMPTY_THINK if check_style(style) == "release" else None


def next_title_from_sids_prompt(history_sids: Sequence[str]) -> str:
    """History SIDs -> next item's title."""
    return f"{_HISTORY}{history_sids_text(history_sids)}. Which item will the user interact with next? {_ANSWER_TITLE}"


def next_title_from_titles_prompt(history_titles: Sequence[str]) -> str:
    """History titles -> next item's title."""
    return (f"{_HISTORY}{history_titles_text(history_titles)}. Which item will the user interact with next? "
            f"{_ANSWER_TITLE}")


def next_sid_from_titles_prompt(history_titles: Sequence[str]) -> str:
    """History titles -> next item's SID."""
    return (f"{_HISTORY}{history_titles_text(history_titles)}. Which item will the user interact with next? "
            f"{_ANSWER_SID}")


def sid_to_title_prompt(sid: str) -> str:
    """One item's SID -> its title."""
    return f"What is the title of the item with semantic ID {sid}? Answer with the title only."


def title_to_sid_prompt(title: str) -> str:
    """One item's title -> its SID."""
    return f'What is the semantic ID of the item titled "{title}"? Answer with the semantic ID only.'


# -- (system, user) turns of the other stage-1 chat tasks, per style ------------------------------
def next_title_from_sids_turns(history_sids: Sequence[str], style: str = "native") -> tuple[str, str]:
    if check_style(style) == "release":
        return R.next_title_from_sids_turns(history_sids)
    return SYSTEM_PROMPT, next_title_from_sids_prompt(history_sids)


def next_title_from_titles_turns(history_titles: Sequence[str], style: str = "native") -> tuple[str, str]:
    """Native wording in every style: the release's counterpart (MiniOneRec's ``SFTData``) draws its
    instruction from 11 paraphrases with a process-global RNG, so no per-example text is reproducible."""
    check_style(style)
    return SYSTEM_PROMPT, next_title_from_titles_prompt(history_titles)


def next_sid_from_titles_turns(history_titles: Sequence[str], style: str = "native",
                               category: str = "") -> tuple[str, str]:
    """``category`` (e.g. ``Office_Products``) only matters under ``release`` (its phrase is in the text;
    an unknown or empty category reads "items", as in the release)."""
    if check_style(style) == "release":
        return R.next_sid_from_titles_turns(history_titles, category)
    return SYSTEM_PROMPT, next_sid_from_titles_prompt(history_titles)


def sid_to_title_turns(sid: str, style: str = "native") -> tuple[str, str]:
    if check_style(style) == "release":
        return R.sid_to_title_turns(sid)
    return SYSTEM_PROMPT, sid_to_title_prompt(sid)


def title_to_sid_turns(title: str, style: str = "native") -> tuple[str, str]:
    if check_style(style) == "release":
        return R.title_to_sid_turns(title)
    return SYSTEM_PROMPT, title_to_sid_prompt(title)
