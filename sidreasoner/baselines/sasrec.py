"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item history, next-item softmax.

Model: item embeddings (scaled by sqrt(d), shared with the output layer) + learned absolute positions,
``blocks`` pre-LayerNorm transformer blocks whose attention lets position t see positions <= t that
hold items (never padding, never the future), a final LayerNorm. Histories are LEFT-padded to
``max_len``, so the newest item always sits at position ``max_len - 1`` whose output ranks the
catalogue. The loss is the full-softmax cross-entropy over all catalogue items (the catalogue is
small, ~3.5k items in Office_Products) instead of the paper's one sampled negative.

Training data: each train row is one sequence, ``history + [target]`` cut to its last
``max_len + 1`` items. With ``supervise="last"`` (default) only the row's target is supervised. The
release's train rows are every prefix of each user's sequence (one row per interaction), so this
supervises every transition exactly once with its full left context (up to ``max_len`` items): the
paper's all-positions objective on the per-user sequence, without counting anything twice. With
``"all"`` every position of every row predicts the item after it, so a transition is supervised
again in each later row that contains it, with less left context; use it for train files that hold
one (long) row per user. On Office_Products "last" gave the better valid NDCG@10 (0.1354 vs 0.1310).

Selection: after every epoch the model ranks the valid split; the best ``select_metric`` (SID
level, same metrics as every run) is kept and restored at the end; training stops after
``patience`` epochs without improvement. Deterministic for a seed on CPU with one thread.
"""
from __future__ import annotations

import copy
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.records import DataError, SequenceRow
from ..ranges import SEED, above, at_least, between, check_ranges
from ..eval.metrics import compute_metrics
from .common import PAD, ItemVocab, prediction_record, top_sids

IGNORE = -100  # label of positions that are not supervised (padding)


#: numeric settings (flags of ``python -m sidreasoner.baselines sasrec``) and the values they accept
RANGES = {**dict.fromkeys(("hidden", "blocks", "heads", "max_len", "batch_size", "max_epochs", "patience",
                           "eval_batch_size"), at_least(1)),
          "dropout": between(0, 1, hi_open=True), "lr": above(0), "weight_decay": at_least(0), "seed": SEED}


def _f(default, help_text: str, **meta):
    return field(default=default, metadata={"help": help_text, **meta})


@dataclass
class SASRecConfig:
    """SASRec's settings: the flags of ``python -m sidreasoner.baselines sasrec``."""

    hidden: int = _f(64, "embedding / hidden size")
    blocks: int = _f(2, "self-attention blocks")
    heads: int = _f(1, "attention heads")
    dropout: float = _f(0.2, "dropout rate")
    max_len: int = _f(10, "history items used (newest first kept)")
    lr: float = _f(1e-3, "Adam learning rate")
    weight_decay: float = _f(0.0, "Adam weight decay")
    batch_size: int = _f(128, "train rows per step")
    max_epochs: int = _f(200, "epoch limit")
    patience: int = _f(10, "epochs without a valid improvement before stopping")
    supervise: str = _f("last", "all: every position predicts its next item; last: only the row's target",
                        choices=("all", "last"))
    select_metric: str = _f("NDCG@10", "valid metric for early stopping (SID level), e.g. NDCG@10 or HR@10")
    eval_batch_size: int = _f(512, "rows per scoring batch")
    seed: int = _f(0, "random seed (init, order, dropout)")

    def check(self) -> None:
        if self.supervise not in ("all", "last"):
            raise ValueError(f"supervise must be 'all' or 'last', got {self.supervise!r}")
        check_ranges(self, RANGES)
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if not re.fullmatch(r"(HR|NDCG)@[1-9]\d*", self.select_metric):
            raise ValueError(f"select_metric must look like NDCG@10 or HR@10, got {self.select_metric!r}")


class Block(nn.Module):
    """Pre-LN block: x + Attn(LN(x)), then + FFN(LN(x)); shapes [B, L, d]."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                             dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.ffn(self.ln2(x)))


class SASRec(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig):
        super().__init__()
        cfg.check()
        self.n_items, self.cfg = n_items, cfg
        self.item_emb = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=PAD)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.emb_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.dropout) for _ in range(cfg.blocks))
        self.ln = nn.LayerNorm(cfg.hidden)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Item indices [B, L] (0 = padding, L <= max_len, left-padded) -> hidden states [B, L, d]."""
        b, n = seq.shape
        if n > self.cfg.max_len:
            raise ValueError(f"sequence length {n} exceeds max_len={self.cfg.max_len}")
        valid = seq != PAD
        pos = torch.arange(self.cfg.max_len - n, self.cfg.max_len, device=seq.device)
        x = self.item_emb(seq) * math.sqrt(self.cfg.hidden) + self.pos_emb(pos)[None]
        x = self.emb_drop(x) * valid[..., None]
        causal = torch.ones(n, n, dtype=torch.bool, device=seq.device).tril()
        # a query sees itself and earlier items, never padding; padding queries see themselves only
        # (so no softmax row is fully masked; their outputs are zeroed below)
        allowed = (causal[None] & valid[:, None, :]) | torch.eye(n, dtype=torch.bool, device=seq.device)[None]
        allowed = allowed[:, None]  # [B, 1, L, L], broadcast over heads
        for block in self.blocks:
            x = block(x, allowed) * valid[..., None]
        return self.ln(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., d] -> [..., n_items]: scores of catalogue items 1..n (column j is item index j + 1)."""
        return hidden @ self.item_emb.weight[1:].T


def encode_rows(rows: Sequence[SequenceRow], vocab: ItemVocab, max_len: int, supervise: str = "all",
                path="<rows>") -> tuple[torch.Tensor, torch.Tensor]:
    """Rows -> (inputs [R, max_len] left-padded item indices, labels [R, max_len] class ids or IGNORE).

    ``labels[r, t]`` is the class (item index - 1) of the item that follows ``inputs[r, t]``; the last
    position's label is the row's target. Empty histories and unknown items are DataErrors.
    """
    inputs = np.zeros((len(rows), max_len), dtype=np.int64)
    labels = np.full((len(rows), max_len), IGNORE, dtype=np.int64)
    for i, r in enumerate(rows):
        if not r.history_item_ids:
            raise DataError(path, "empty history: SASRec has nothing to condition on", r.line, "history_item_id")
        seq = [vocab.encode(x, path, r.line, "history_item_id") for x in r.history_item_ids]
        seq.append(vocab.encode(r.item_id, path, r.line, "item_id"))
        seq = seq[-(max_len + 1):]
        x, y = seq[:-1], [s - 1 for s in seq[1:]]
        inputs[i, max_len - len(x):] = x
        if supervise == "all":
            labels[i, max_len - len(y):] = y
        else:
            labels[i, -1] = y[-1]
    return torch.from_numpy(inputs), torch.from_numpy(labels)


@torch.no_grad()
def predict(model: SASRec, rows: Sequence[SequenceRow], vocab: ItemVocab, k: int, path="<rows>") -> list[dict]:
    """Top-``k`` distinct SIDs per row, scored by the log-softmax of the best item with that SID."""
    model.eval()
    inputs, _ = encode_rows(rows, vocab, model.cfg.max_len, "last", path)
    depth = min(len(vocab), k + vocab.duplicate_sid_items())  # enough items to always find k distinct SIDs
    records = []
    for s in range(0, len(rows), model.cfg.eval_batch_size):
        batch = inputs[s:s + model.cfg.eval_batch_size]
        logp = F.log_softmax(model.logits(model(batch)[:, -1]), dim=-1)
        top_v, top_i = logp.topk(depth, dim=-1)
        for j in range(batch.shape[0]):
            scores = np.zeros(len(vocab))
            scores[top_i[j].numpy()] = top_v[j].numpy()
            ranked, sc = top_sids(top_i[j].numpy(), scores, vocab, k)
            records.append(prediction_record(s + j, rows[s + j], ranked, sc))
    return records


def _epoch(model: SASRec, opt, inputs: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> float:
    """One pass over the rows in a seeded random order; returns the mean loss per supervised position."""
    model.train()
    total, count = 0.0, 0
    order = torch.randperm(inputs.shape[0], generator=gen)
    for s in range(0, len(order), model.cfg.batch_size):
        idx = order[s:s + model.cfg.batch_size]
        y = labels[idx]
        keep = y != IGNORE
        hidden = model(inputs[idx])[keep]  # only supervised positions: [P, d]
        loss = F.cross_entropy(model.logits(hidden), y[keep])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * int(keep.sum())
        count += int(keep.sum())
    return total / max(count, 1)


def train_sasrec(train: Sequence[SequenceRow], valid: Sequence[SequenceRow], vocab: ItemVocab, cfg: SASRecConfig,
                 paths: tuple = ("<train>", "<valid>"), on_epoch: Optional[Callable[[dict], None]] = None,
                 progress: bool = True) -> tuple[SASRec, list[dict]]:
    """Train with early stopping on ``valid``; returns (model with the best valid weights, per-epoch log)."""
    from tqdm import tqdm
    cfg.check()
    if not train or not valid:
        raise DataError(paths[0] if not train else paths[1], "no rows: SASRec needs train and valid rows")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    inputs, labels = encode_rows(train, vocab, cfg.max_len, cfg.supervise, paths[0])
    encode_rows(valid, vocab, cfg.max_len, "last", paths[1])  # fail on bad valid rows before training
    model = SASRec(len(vocab), cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    k = int(cfg.select_metric.partition("@")[2])
    best, best_state, bad, log = -1.0, None, 0, []
    bar = tqdm(range(1, cfg.max_epochs + 1), desc="sasrec", unit="epoch", disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        loss = _epoch(model, opt, inputs, labels, gen)
        metrics = compute_metrics(predict(model, valid, vocab, k, paths[1]), num_beams=k)
        value = metrics[cfg.select_metric]
        entry = {"epoch": epoch, "loss": round(loss, 6), "valid": {m: metrics[m] for m in metrics if "@" in m},
                 "seconds": round(time.perf_counter() - t0, 3), "improved": value > best}
        log.append(entry)
        if on_epoch:
            on_epoch(entry)
        if value > best:
            best, best_state, bad = value, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        bar.set_postfix(loss=f"{loss:.3f}", **{cfg.select_metric: f"{value:.4f}", "best": f"{best:.4f}"})
        if bad >= cfg.patience:
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return model, log


def save_sasrec(model: SASRec, path) -> None:
    """state_dict + config in one file, written via a temp file + rename."""
    tmp = f"{path}.tmp"
    torch.save({"state_dict": model.state_dict(), "config": asdict(model.cfg), "n_items": model.n_items}, tmp)
    os.replace(tmp, path)


def load_sasrec(path) -> SASRec:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = SASRec(int(blob["n_items"]), SASRecConfig(**blob["config"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()
