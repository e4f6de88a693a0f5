"""The ``release`` prompt style: the SIDReasoner release's prompt texts, byte for byte.

These strings are interface data: a checkpoint trained by the release has only ever seen them, so a
model of the release (or one trained here under ``--prompt_style release``) is asked in the same words.
Every text is an Alpaca-style preamble plus a task line in the system turn and one user sentence; the
whitespace around the task line differs from task to task in the release and is kept as it is:

- history -> next SID, stage-1 training: preamble + one space + the question, on one line;
- history -> next SID, non-thinking evaluation: preamble + `` \\n`` + the question + ``\\n`` (note the space
  after the preamble) and a different user sentence than in training (the release trains and evaluates
  with different wordings); the evaluation prompt then closes an empty think block written as
  ``<think>\\n</think>\\n\\n`` (:data:`EVAL_EMPTY_THINK`), not the chat template's ``<think>\\n\\n</think>\\n\\n``
  that stage-1 training renders before the answer;
- thinking mode (stage 2, RL prompts, thinking evaluation) and history SIDs -> next title: preamble +
  ``\\n`` + the question + ``\\n``;
- SID <-> title and title history -> next SID: preamble + `` \\n`` + the task line + ``\\n``.

History SIDs are joined by ``", "`` (no brackets); history titles are double-quoted and joined by ``", "``.
The title history -> next SID prompt names the category with :func:`category_phrase`.
"""
from __future__ import annotations

from typing import Optional, Sequence

PREAMBLE = ("Below is an instruction that describes a task, paired with an input that provides further context. "
            "Write a response that appropriately completes the request.")

#: what the release's non-thinking evaluation appends to the generation prompt ``<|im_start|>assistant\n``
#: (one newline inside the block; the chat template's own empty block, used in training, has two)
EVAL_EMPTY_THINK = "<think>\n</think>\n\n"

_PREDICT = "Can you predict the next possible item that the user may expect?"
_RECOMMEND = "Can you recommend the next item for the user based on their interaction history?"
_IDENTIFY = "Answer the question about item identification."
_TITLES_TO_SID = ("Based on the user's historical interaction with item titles, predict the semantic ID of the "
                  "next item they may expect.")

#: category name -> the phrase the release's prompts use for its items; any other category: "items"
CATEGORY_PHRASES = {
    "Industrial_and_Scientific": "industrial and scientific items",
    "Office_Products": "office products",
    "Toys_and_Games": "toys and games",
    "Sports": "sports and outdoors",
    "Books": "books",
    "Video_Games": "video games",
}


def category_phrase(category: Optional[str]) -> str:
    """``"Office_Products"`` -> ``"office products"``; unknown or empty categories -> ``"items"``."""
    return CATEGORY_PHRASES.get(category or "", "items")


def _sids(history_sids: Sequence[str]) -> str:
    return ", ".join(history_sids)


def _titles(history_titles: Sequence[str]) -> str:
    return ", ".join(f'"{t}"' for t in history_titles)


def next_sid_train_turns(history_sids: Sequence[str]) -> tuple[str, str]:
    """Stage-1 history -> next SID (the release's ``SidSFTDataset``)."""
    return (f"{PREAMBLE} {_PREDICT}",
            f"The user has interacted with items {_sids(history_sids)} in chronological order. {_PREDICT}")


def next_sid_eval_turns(history_sids: Sequence[str]) -> tuple[str, str]:
    """Non-thinking evaluation (the release's ``EvalSidDataset``); the prompt ends with :data:`EVAL_EMPTY_THINK`."""
    return (f"{PREAMBLE} \n{_PREDICT}\n",
            "Can you predict the next possible item the user may expect, given the following chronological "
            f"interaction history: {_sids(history_sids)}")


def next_sid_think_turns(history_sids: Sequence[str]) -> tuple[str, str]:
    """Thinking mode: stage 2 (``ReasoningActivationDataset``), the RL parquet and the thinking evaluation."""
    return (f"{PREAMBLE}\n{_RECOMMEND}\n",
            f"The user has sequentially interacted with items {_sids(history_sids)}. Can you recommend the next "
            "item for him? Let's think step by step before making recommendation. Directly output the item SID "
            "after thinking.")


def next_title_from_sids_turns(history_sids: Sequence[str]) -> tuple[str, str]:
    """History SIDs -> next title (the release's ``FusionSeqRecDataset``, title variant)."""
    return (f"{PREAMBLE}\n{_RECOMMEND}\n",
            f"The user has sequentially interacted with items {_sids(history_sids)}. Can you recommend the next "
            "item for him? Tell me the title of the item?")


def next_sid_from_titles_turns(history_titles: Sequence[str], category: Optional[str]) -> tuple[str, str]:
    """History titles -> next SID (the release's ``TitleHistory2SidSFTDataset``)."""
    return (f"{PREAMBLE} \n{_TITLES_TO_SID}\n",
            f"The user has interacted with the following {category_phrase(category)} items in chronological "
            f"order: {_titles(history_titles)}. Can you predict the next item the user may expect?")


def sid_to_title_turns(sid: str) -> tuple[str, str]:
    """One SID -> its title (the release's ``SidItemFeatDataset``, sid2title)."""
    return f"{PREAMBLE} \n{_IDENTIFY}\n", f'What is the title of item "{sid}"?'


def title_to_sid_turns(title: str) -> tuple[str, str]:
    """One title -> its SID (the release's ``SidItemFeatDataset``, title2sid)."""
    return f"{PREAMBLE} \n{_IDENTIFY}\n", f"Which item has the title: {title}?"
