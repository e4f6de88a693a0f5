"""Training-time dropout for Qwen3-architecture models, which have none of their own.

Qwen3 only has ``attention_dropout`` (on the attention probabilities, off in released configs). A
small model trained from scratch on a few thousand rows overfits within a few epochs without more, so
``add_dropout`` adds GPT-2's places: the token embeddings and the outputs of every attention and MLP
block before they join the residual stream. It uses forward hooks and module attributes, not the
config: nothing changes in the saved model, which loads as plain Qwen3, and ``model.eval()`` turns
every part off.
"""
from __future__ import annotations

import torch.nn.functional as F


def _hook(p: float):
    def drop(module, args, output):
        return F.dropout(output, p, module.training)
    return drop


def add_dropout(model, p: float) -> int:
    """Dropout ``p`` on embeddings, attention probabilities, attention and MLP outputs; returns the
    number of hooks added (0 when ``p`` is 0). Expects the Qwen3/Llama module layout."""
    if p <= 0:
        return 0
    inner = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    hooks = [model.get_input_embeddings().register_forward_hook(_hook(p))]
    for layer in inner.layers:
        if not (hasattr(layer, "self_attn") and hasattr(layer, "mlp")):
            raise ValueError(f"--dropout: unexpected decoder layer {type(layer).__name__} (expects self_attn and mlp)")
        layer.self_attn.attention_dropout = p  # read at every forward: dropout on the attention weights
        hooks.append(layer.self_attn.o_proj.register_forward_hook(_hook(p)))
        hooks.append(layer.mlp.down_proj.register_forward_hook(_hook(p)))
    return len(hooks)
