"""Left-padded batches of prompts: the one helper every decoder here (beam search, reasoning, the SFT ranking
probe, the RL rollout, ``Recommender``) feeds the model with."""
from __future__ import annotations

from typing import Sequence

import torch


def encode_left_padded(tokenizer, texts: Sequence[str], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise (no added special tokens) and left-pad: ``input_ids``, ``attention_mask`` ``[R, L]``."""
    return left_pad([tokenizer.encode(t, add_special_tokens=False) for t in texts], pad_id, device)


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists left-padded: ``input_ids``, ``attention_mask`` ``[R, L]``."""
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, L - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, L - len(s):] = 1
    return ids.to(device), mask.to(device)
