"""Chat-format helpers shared by SFT, RL and evaluation: the one way a prompt is rendered.

A prompt is ``system + user`` through the tokenizer's chat template with the generation prompt;
non-thinking mode appends the empty think block ``<think>\\n\\n</think>\\n\\n`` (Qwen3's
``enable_thinking=False``), thinking mode leaves the assistant turn open for ``<think>``.
"""
from __future__ import annotations

from typing import Iterable, Optional

import json
import logging
from pathlib import Path

from ..paths import DEFAULT_PROMPT_STYLE
from ..sid.spelling import split_sid
from ..tasks.prompts import PROMPT_STYLES, SYSTEM_PROMPT, check_style, eval_empty_think, next_sid_turns
from .chat_template import IM_END

log = logging.getLogger(__name__)

#: the file in a model folder that records the prompt style it was trained with (sft.py and the GRPO
#: stage write it; the evaluator, stage 2 and the RL data builder read it)
PROMPT_FILE = "prompt_style.json"


def _messages(user_text: str, system: Optional[str]) -> list[dict]:
    if not isinstance(user_text, str) or not user_text.strip():
        raise ValueError("empty user message")
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": user_text}]


def render_prompt(tokenizer, user_text: str, think: bool, system: Optional[str] = SYSTEM_PROMPT) -> str:
    """The generation prompt for one user turn (``system=None`` or "" leaves the system turn out)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("tokenizer has no chat template (make the model with scripts/make_tiny_model.py "
                         "or use a Qwen3 checkpoint)")
    return tokenizer.apply_chat_template(_messages(user_text, system), tokenize=False,
                                         add_generation_prompt=True, enable_thinking=bool(think))


def next_sid_prompt_text(tokenizer, history_sids, think: bool, style: str = "native") -> str:
    """The evaluator's history -> next-SID generation prompt in a prompt style (``tasks.prompts``).

    Non-thinking ``release`` prompts are the open generation prompt followed by the release's own empty
    think block ``<think>\\n</think>\\n\\n`` (``tasks.prompts.eval_empty_think``), as its evaluation
    writes them; the other styles use the template's non-thinking prompt."""
    system, user = next_sid_turns(history_sids, think=think, style=style)
    suffix = None if think else eval_empty_think(style)
    if suffix is not None:
        return render_prompt(tokenizer, user, True, system) + suffix
    return render_prompt(tokenizer, user, think, system)


def write_prompt_style(model_dir, style: str) -> None:
    (Path(model_dir) / PROMPT_FILE).write_text(json.dumps({"prompt_style": check_style(style)}) + "\n")


def recorded_prompt_style(model_dir) -> Optional[str]:
    """The style in the model folder's ``prompt_style.json``, or None when there is none or it is unreadable."""
    try:
        style = json.loads((Path(model_dir) / PROMPT_FILE).read_text(encoding="utf-8")).get("prompt_style")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return style if isinstance(style, str) and style else None


def model_prompt_style(model_dir, requested: str = DEFAULT_PROMPT_STYLE) -> str:
    """``requested`` unless it is ``auto``/empty: then the style recorded in the model folder's
    ``prompt_style.json`` (what the model was trained on), or ``native`` for a folder without one
    (a base model or a released checkpoint). An explicit request that differs from the recorded style
    is honoured with a warning naming both (the model is asked in words it was not trained on)."""
    if requested and requested != DEFAULT_PROMPT_STYLE:
        style = check_style(requested)
        recorded = recorded_prompt_style(model_dir)
        if recorded is not None and recorded != style:
            log.warning("%s was trained with prompt style %r (its %s) but prompt style %r was requested: "
                        "prompts will be worded as %r, not as the model was trained (pass --prompt_style auto "
                        "or %s to use the recorded one)", model_dir, recorded, PROMPT_FILE, style, style, recorded)
        return style
    path = Path(model_dir) / PROMPT_FILE
    if not path.is_file():
        return "native"
    try:
        style = json.loads(path.read_text(encoding="utf-8")).get("prompt_style") or "native"
    except (OSError, json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"{path}: unreadable training config ({e}); pass --prompt_style "
                         f"({', '.join(PROMPT_STYLES)})") from None
    return check_style(style)


def render_training_example(tokenizer, user_text: str, answer: str, think: bool,
                            system: Optional[str] = SYSTEM_PROMPT) -> tuple[str, str]:
    """``(prompt, completion)`` for SFT: loss goes on ``completion`` only.

    ``answer`` is the assistant content: the SID (non-thinking) or ``<think>\\n...\\n</think>\\n\\nSID``
    (thinking). ``prompt`` is exactly :func:`render_prompt`'s string for the same mode, and
    ``completion`` ends with the stop token ``<|im_end|>`` (and the template's newline after it), so the
    stop token is supervised. Raises ValueError when the template does not render the full
    conversation as prompt + completion (e.g. a non-Qwen3 template that drops the think block).
    """
    prompt = render_prompt(tokenizer, user_text, think, system)
    messages = _messages(user_text, system) + [{"role": "assistant", "content": answer}]
    full = tokenizer.apply_chat_template(messages, tokenize=False, enable_thinking=bool(think))
    if not full.startswith(prompt):
        raise ValueError(f"chat template does not extend the {'thinking' if think else 'non-thinking'} prompt "
                         f"into the training text: prompt ends {prompt[-40:]!r}, full text has "
                         f"{full[len(prompt) - 40:len(prompt) + 20]!r} there")
    completion = full[len(prompt):]
    if IM_END not in completion:
        raise ValueError(f"rendered completion lacks the stop token {IM_END}: {completion[-60:]!r}")
    return prompt, completion


def stop_token_id(tokenizer) -> int:
    """The id of ``<|im_end|>``, the token that ends an assistant turn (and every SID answer)."""
    tid = tokenizer.get_vocab().get(IM_END)
    if tid is None:
        raise ValueError(f"tokenizer has no {IM_END} token: not a Qwen-style chat tokenizer "
                         f"(make the model with scripts/make_tiny_model.py or use a Qwen3 checkpoint)")
    return tid


def sid_token_problems(tokenizer, sids: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(missing, split)``: the SID tokens of ``sids`` absent from the vocabulary, and those present but not
    encoded as their one id."""
    vocab = tokenizer.get_vocab()
    tokens = list(dict.fromkeys(t for sid in sids for t in split_sid(sid)))
    if not tokens:
        raise ValueError("check_sid_tokens: no SIDs given")
    missing = [t for t in tokens if t not in vocab]
    present = [t for t in tokens if t in vocab]
    encoded = tokenizer(present, add_special_tokens=False)["input_ids"] if present else []
    return missing, [t for t, ids in zip(present, encoded) if ids != [vocab[t]]]


def sid_coverage(tokenizer, sids: Iterable[str]) -> dict:
    """How much of a catalogue the tokenizer can write: SIDs with every token a single token of it.
    ``{"sids", "expressible", "inexpressible" (sorted list), "bad_tokens" (sorted list)}``."""
    sids = list(dict.fromkeys(sids))
    missing, split = sid_token_problems(tokenizer, sids)
    bad = set(missing) | set(split)
    out = sorted(s for s in sids if any(t in bad for t in split_sid(s)))
    return {"sids": len(sids), "expressible": len(sids) - len(out), "inexpressible": out, "bad_tokens": sorted(bad)}


def usable_sid_coverage(tokenizer, sids: Iterable[str]) -> dict:
    """:func:`sid_coverage`, or :func:`check_sid_tokens`'s ValueError when the tokenizer can write none of
    the SIDs (a base model before stage 1: nothing to score). A few missing tokens are not an error."""
    sids = list(sids)
    cov = sid_coverage(tokenizer, sids)
    if not cov["expressible"]:
        check_sid_tokens(tokenizer, sids)
    return cov


def check_sid_tokens(tokenizer, sids: Iterable[str]) -> None:
    """Raise ValueError unless every token of every SID is in the vocabulary and encodes as one id.

    The evaluator and stage 2 call this before doing anything: a base checkpoint without SID tokens
    would otherwise spell SIDs character by character and every metric would silently be 0.
    """
    sids = list(sids)
    tokens = list(dict.fromkeys(t for sid in sids for t in split_sid(sid)))
    missing, split = sid_token_problems(tokenizer, sids)
    bad = missing + split
    if bad:
        what = f"{len(missing)} missing from the vocabulary" if missing else ""
        what += (", " if missing and split else "") + (f"{len(split)} not encoded as one token" if split else "")
        raise ValueError(f"checkpoint has no SID tokens: {what} of {len(tokens)} "
                         f"(e.g. {', '.join(bad[:5])}); run stage 1 / add_sid_tokens first")
