"""All prompt wording, shared by the SFT tasks and the evaluator so training and evaluation match.

Each function returns the *user message* text; ``chat.render_prompt`` wraps it in the chat template.
SIDs are passed in already spelled (strings from ``sidreasoner.sid.spelling``).
"""
from __future__ import annotations

from typing import Sequence

SYSTEM_PROMPT = ("You are a recommender system. Items are written as semantic IDs: one token per level, "
                 "like <a_12><b_34><c_56>.")


def history_sids_text(history_sids: Sequence[str]) -> str:
    return ", ".join(history_sids)


def next_sid_prompt(history_sids: Sequence[str], think: bool = False) -> str:
    """History SIDs -> next SID. The wording the evaluator uses in both modes (stage 1 and 2 train on it)."""
    ask = ("Think step by step about what the user needs next, then answer with the semantic ID of the "
           "next item only." if think else "Answer with the semantic ID of the next item only.")
    return (f"The user has interacted with these items in chronological order: "
            f"{history_sids_text(history_sids)}. Which item will the user interact with next? {ask}")
