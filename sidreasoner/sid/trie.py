"""Prefix trie over SID token ids: which tokens may come next, for one prefix or a whole batch.

Nodes are numbered (``ROOT = 0``, ``END = 1``); children are stored CSR-style (``child_start``,
``child_count`` into flat ``child_tok`` / ``child_node`` arrays), so a batch lookup is a gather, never a
dense ``[n_nodes, vocab]`` table (a real Qwen vocabulary has 152k ids).

The answer is never empty:
- inside a SID: the next-level tokens (plus the stop token where a SID ends here and a longer SID
  continues, which variable-length catalogues allow);
- at a leaf (a complete SID): only the stop token;
- after the stop token, or after any token the trie does not allow: ``END``, which allows only the
  stop token again (beam search pads finished or dead beams with it).

Build from a catalogue with :meth:`SIDTrie.from_index` (each SID token must be exactly one id of the
tokenizer, else a clear error) or from token-id sequences with :meth:`SIDTrie.from_sequences`.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch

from .spelling import parse_token, split_sid

ROOT = 0
END = 1


class TrieError(ValueError):
    """The catalogue cannot be turned into a trie for this tokenizer (the message says why and how to fix it)."""


class SIDTrie:
    """Prefix trie over token-id sequences; every complete sequence is followed by ``stop_id``."""

    def __init__(self, sequences: Sequence[Sequence[int]], stop_id: int, sids: Optional[Sequence[str]] = None):
        if not sequences:
            raise TrieError("cannot build a SID trie from an empty catalogue")
        if sids is not None and len(sids) != len(sequences):
            raise TrieError(f"{len(sids)} SID strings for {len(sequences)} token sequences")
        self.stop_id = int(stop_id)
        self.sids: list[str] = list(sids) if sids is not None else [" ".join(map(str, s)) for s in sequences]
        children: list[dict[int, int]] = [{}, {self.stop_id: END}]  # ROOT, END
        terminal: list[int] = [-1, -1]  # node -> index into self.sids of the SID that ends there
        for k, seq in enumerate(sequences):
            if not seq:
                raise TrieError(f"SID {self.sids[k]!r} has no tokens")
            node = ROOT
            for tok in seq:
                tok = int(tok)
                if tok == self.stop_id:
                    raise TrieError(f"SID {self.sids[k]!r} contains the stop token id {tok}")
                nxt = children[node].get(tok)
                if nxt is None:
                    nxt = len(children)
                    children.append({})
                    terminal.append(-1)
                    children[node][tok] = nxt
                node = nxt
            if terminal[node] >= 0:
                raise TrieError(f"duplicate SID in the catalogue: {self.sids[k]!r} "
                                f"(same tokens as {self.sids[terminal[node]]!r}); pass distinct SIDs")
            terminal[node] = k
            children[node][self.stop_id] = END
        self._build_tensors(children, terminal, sequences)

    def _build_tensors(self, children: list[dict[int, int]], terminal: list[int], sequences) -> None:
        counts = [len(c) for c in children]
        starts = [0]
        for c in counts[:-1]:
            starts.append(starts[-1] + c)
        # Sorted by token id so the Python and tensor views list children in the same order.
        flat = [item for c in children for item in sorted(c.items())]
        self.child_start = torch.tensor(starts, dtype=torch.long)
        self.child_count = torch.tensor(counts, dtype=torch.long)
        self.child_tok = torch.tensor([t for t, _ in flat], dtype=torch.long)
        self.child_node = torch.tensor([n for _, n in flat], dtype=torch.long)
        self.terminal_sid = torch.tensor(terminal, dtype=torch.long)
        self._children = [dict(sorted(c.items())) for c in children]
        self._terminal = terminal
        self.n_nodes = len(children)
        self.max_depth = max(len(s) for s in sequences)
        self.n_first = len(children[ROOT])
        self.max_token_id = max(int(self.child_tok.max()), self.stop_id)

    # -- construction from a catalogue ----------------------------------------------------------
    @classmethod
    def from_sequences(cls, sequences: Iterable[Sequence[int]], stop_id: int) -> "SIDTrie":
        return cls([list(s) for s in sequences], stop_id)

    @classmethod
    def from_sids(cls, sids: Iterable[str], tokenizer, stop_id: int, source: str = "catalogue") -> "SIDTrie":
        """Trie over distinct SID strings; each SID token must encode to exactly one tokenizer id."""
        sids = list(dict.fromkeys(sids))
        token_ids = sid_token_ids({t for s in sids for t in split_sid(s)}, tokenizer, source)
        return cls([[token_ids[t] for t in split_sid(s)] for s in sids], stop_id, sids)

    @classmethod
    def from_index(cls, index, tokenizer, stop_id: int, source: str = "catalogue") -> "SIDTrie":
        """Trie over a :class:`~sidreasoner.sid.index.SIDIndex`'s distinct SIDs (colliding items share a leaf)."""
        return cls.from_sids(index.unique_sids(), tokenizer, stop_id, source)

    # -- tensor API (beam search) ---------------------------------------------------------------
    def to(self, device) -> "SIDTrie":
        for name in ("child_start", "child_count", "child_tok", "child_node", "terminal_sid"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def candidates(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Allowed next tokens of each node, padded: ``(tok, child, valid)``, each ``nodes.shape + (C,)``.

        ``C`` is the largest child count among ``nodes``; padded slots have ``valid=False``,
        ``tok=stop_id`` and ``child=END`` (safe to feed to a model or to :meth:`advance`).
        """
        count = self.child_count[nodes]
        width = max(int(count.max()), 1) if nodes.numel() else 1
        offs = torch.arange(width, device=nodes.device)
        valid = offs < count.unsqueeze(-1)
        flat = (self.child_start[nodes].unsqueeze(-1) + offs).clamp(max=max(self.child_tok.numel() - 1, 0))
        tok = torch.where(valid, self.child_tok[flat], self.stop_id)
        child = torch.where(valid, self.child_node[flat], END)
        return tok, child, valid

    def allowed_mask(self, nodes: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """``bool[*nodes.shape, vocab_size]``: True where the token may follow the node."""
        if vocab_size <= self.max_token_id:
            raise TrieError(f"vocab_size {vocab_size} is too small for token id {self.max_token_id} in the trie")
        tok, _, valid = self.candidates(nodes)
        # Padded slots write to a spare column, so they can never clear a real entry.
        mask = torch.zeros(*nodes.shape, vocab_size + 1, dtype=torch.bool, device=nodes.device)
        mask.scatter_(-1, torch.where(valid, tok, vocab_size), True)
        return mask[..., :vocab_size]

    def advance(self, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Node reached from each node by each token; a token the trie does not allow leads to ``END``."""
        tok, child, valid = self.candidates(nodes)
        hit = valid & (tok == tokens.unsqueeze(-1))
        found = hit.any(-1)
        picked = child.gather(-1, hit.to(torch.long).argmax(-1, keepdim=True)).squeeze(-1)
        return torch.where(found, picked, torch.full_like(picked, END))

    # -- Python API (reference path, tests) -----------------------------------------------------
    def node_of(self, prefix_ids: Sequence[int]) -> int:
        node = ROOT
        for tok in prefix_ids:
            node = self._children[node].get(int(tok), END)
        return node

    def children_of(self, node: int) -> dict[int, int]:
        """``{token id: child node}`` of ``node`` (the stop token leads to ``END``)."""
        return self._children[node]

    def allowed(self, prefix_ids: Sequence[int]) -> list[int]:
        """Token ids allowed after ``prefix_ids`` (generated ids only, no prompt); never empty."""
        return list(self._children[self.node_of(prefix_ids)])

    def sid_of_node(self, node: int) -> Optional[str]:
        """The SID that ends at ``node`` (``None`` if no SID ends there)."""
        k = self._terminal[node] if 0 <= node < self.n_nodes else -1
        return self.sids[k] if k >= 0 else None

    def sid_of_ids(self, ids: Sequence[int]) -> Optional[str]:
        """SID spelled by generated ids ``<sid tokens> stop [stop/pad ...]``; ``None`` if not a catalogue SID."""
        ids = [int(t) for t in ids]
        if self.stop_id not in ids:
            return None
        return self.sid_of_node(self.node_of(ids[:ids.index(self.stop_id)]))

    def __len__(self) -> int:
        return len(self.sids)


def sid_token_ids(tokens: Iterable[str], tokenizer, source: str = "catalogue") -> dict[str, int]:
    """Map each SID token to its single tokenizer id, or raise :class:`TrieError` naming the first bad token."""
    out: dict[str, int] = {}
    for tok in sorted(tokens, key=parse_token):  # level, then code: the first bad token is reproducible
        ids = tokenizer.encode(tok, add_special_tokens=False)
        if len(ids) != 1 or ids[0] == getattr(tokenizer, "unk_token_id", None):
            raise TrieError(
                f"SID token {tok!r} from the {source} is not a single token of this tokenizer "
                f"(encodes to {len(ids)} ids {ids[:8]}): the checkpoint lacks the SID vocabulary; "
                f"use a model whose tokenizer has the SID tokens added "
                f"(sidreasoner.model.model_factory.add_sid_tokens, done by stage 1)")
        out[tok] = ids[0]
    return out
