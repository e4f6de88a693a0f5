"""The SFT loss over supervised positions only, normalised per token or per example.

A causal LM's own loss computes the output layer at every position and masks most of them away:
with answer-only labels (a 35-token prompt, a 4-token SID answer) nine tenths of that matrix
product, the largest one of a small model with a large vocabulary, is wasted. ``supervised_loss``
runs the decoder, keeps the hidden states of the positions whose next token is supervised, and only
those go through the output layer.

Normalisation: ``token`` sums the cross-entropy over the step's supervised tokens and divides by
their count (the Trainer's ``num_items_in_batch``), as the model's own loss does. ``example`` first
rescales each example's tokens so every example carries ``mean_answer_tokens`` of weight (a 3-token
SID answer and a 40-token title then count the same), then divides the same way.

``history_weight`` scales the loss of supervised tokens inside the prompt (``--history_loss``: the
history SIDs) relative to the answer's. The answer is the last run of supervised labels of a row;
everything supervised before an unsupervised gap is prompt. The denominator stays the token count, so
``history_weight < 1`` shrinks the history's share of the gradient without changing the answer's scale.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .sft_data import IGNORE_INDEX


def supervised_loss(model, inputs: dict, num_items: Optional[torch.Tensor] = None,
                    mean_answer_tokens: Optional[float] = None, history_weight: float = 1.0,
                    label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of ``inputs["labels"]`` (``[B, L]``, -100 = unsupervised) under ``model``.

    ``num_items``: supervised tokens in the whole optimiser step (gradient accumulation); None: this
    batch's. ``mean_answer_tokens``: per-example normalisation (see module doc); None: per token.
    ``history_weight``: weight of supervised prompt tokens (see module doc). ``label_smoothing``:
    as ``torch.nn.functional.cross_entropy``'s, over the whole vocabulary.
    """
    labels = inputs["labels"]
    kwargs = {k: v for k, v in inputs.items() if k not in ("labels", "use_cache")}
    hidden = model.get_decoder()(**kwargs, use_cache=False).last_hidden_state  # [B, L, H]
    target = labels[:, 1:]                                                      # [B, L-1]
    keep = target != IGNORE_INDEX
    logits = model.get_output_embeddings()(hidden[:, :-1][keep]).float()      # [N, V]
    ce = F.cross_entropy(logits, target[keep], reduction="none", label_smoothing=label_smoothing)  # [N]
    if mean_answer_tokens is not None:
        per_row = keep.sum(dim=1, keepdim=True).clamp(min=1)                   # [B, 1]
        ce = ce * (mean_answer_tokens / per_row).expand_as(keep)[keep]
    if history_weight != 1.0:
        ce = ce * torch.where(answer_mask(keep), 1.0, history_weight)[keep]
    denom = num_items if num_items is not None else keep.sum()
    return ce.sum() / torch.as_tensor(denom, device=ce.device).clamp(min=1)


def answer_mask(keep: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` bool: the supervised positions of each row's last supervised run (its answer)."""
    pos = torch.arange(keep.shape[1], device=keep.device).expand_as(keep)        # [B, T]
    last = torch.where(keep, pos, -1).amax(dim=1, keepdim=True)                 # [B, 1] last supervised
    gap = torch.where(~keep & (pos < last), pos, -1).amax(dim=1, keepdim=True)  # [B, 1] last hole before it
    return keep & (pos > gap)
