"""Calibrated SID scores (LICD-style): a SID's beam score minus ``alpha`` x its score without the history.

    # the prior of every catalogue SID under a model (one JSON, SID -> log-probability)
    python -m sidreasoner.eval.calibration --model_path checkpoints/demo/stage2/final_checkpoint \
        --info_file data/info/Demo_Catalogue.txt --output results/stage2_prior.json
    # alpha chosen on valid, applied to test (a rerank of each row's list; sidreasoner.eval.fusion)
    python -m sidreasoner.eval.fusion --method calibrated --prior results/stage2_prior.json \
        --valid results/valid/stage2_think results/valid/stage2_nothink \
        --test results/stage2_think results/stage2_nothink --output_dir results/stage2_calibrated
    # or inside the search itself
    python evaluate.py --think --calibrate 0.2 ...

Why: a model that reasons drifts toward the SIDs it favours whatever the user did (popular ones, or
ones its reasoning corpus names often). LICD (arXiv 2602.16587) removes that bias by subtracting the
SID's score under a context without the user's evidence. Here that context is the next-SID prompt with
an empty history (non-thinking form), so the prior is one table for the whole catalogue, computed once
per model: ``log p0(token | SID prefix)`` for every trie edge, by teacher forcing every catalogue SID
after the empty prompt (full-vocabulary ``log_softmax``, as the beam search scores). A SID's prior is
the sum over its edges; the stop token is not counted (it is certain after a complete SID).

``alpha = 0`` is the plain score, so an alpha chosen on valid over a grid that holds 0 can only lose to
the plain list by noise between splits.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..flags import add_dataclass_args
from ..paths import DEFAULT_PROMPT_STYLE
from ..ranges import at_least, parse_checked
from ..sid.trie import END, ROOT, SIDTrie

DEFAULT_ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.5)


def null_prompt_text(tokenizer, style: str) -> str:
    """The next-SID prompt in ``style`` with no history at all (non-thinking form)."""
    from ..tasks.prompts import next_sid_turns
    system, user = next_sid_turns([], think=False, style=style)
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False)


def sid_paths(trie: SIDTrie) -> list[tuple[list[int], list[int]]]:
    """``(token ids, node ids)`` of every complete SID, depth first; together they cover every edge."""
    out, stack = [], [(ROOT, [], [])]
    while stack:
        node, toks, nodes = stack.pop()
        for tok, child in trie.children_of(node).items():
            if child == END:
                out.append((toks, nodes))
            else:
                stack.append((child, toks + [tok], nodes + [child]))
    return out


@torch.no_grad()
def edge_prior(model, tokenizer, trie: SIDTrie, style: str, batch_size: int = 256) -> torch.Tensor:
    """``[trie.n_nodes]`` float: ``log p0`` of the edge into each node under the empty-history prompt
    (0 at ``ROOT`` and ``END``)."""
    prompt = tokenizer.encode(null_prompt_text(tokenizer, style), add_special_tokens=False)
    edge = torch.zeros(trie.n_nodes)
    paths = sid_paths(trie)
    device = next(model.parameters()).device
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        width = max(len(t) for t, _ in chunk)
        ids = torch.full((len(chunk), len(prompt) + width), trie.stop_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (toks, _) in enumerate(chunk):  # right-padded: the prompt is the same for every row
            ids[i, :len(prompt) + len(toks)] = torch.tensor(prompt + toks)
            mask[i, :len(prompt) + len(toks)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, len(prompt) - 1:-1], dim=-1).cpu()  # [N, width, V]
        for i, (toks, nodes) in enumerate(chunk):
            j = torch.arange(len(toks))
            edge[torch.tensor(nodes)] = logp[i, j, torch.tensor(toks)]
    return edge


def sid_prior(trie: SIDTrie, edge: torch.Tensor) -> dict[str, float]:
    """Each catalogue SID's prior: the sum of ``edge`` over its path."""
    return {trie.sid_of_node(nodes[-1]): float(edge[torch.tensor(nodes)].sum()) for _, nodes in sid_paths(trie)}


def calibrate_row(rec: dict, prior: dict, alpha: float, k: int) -> dict:
    """One prediction record re-ranked by ``score - alpha * prior`` (its SIDs only; none is added)."""
    scores = rec.get("scores") or []
    if len(scores) != len(rec["ranked"]):
        raise ValueError(f"row {rec['row']}: calibration needs a score for every ranked SID (evaluate.py writes them)")
    missing = [s for s in rec["ranked"] if s not in prior]
    if missing:
        raise ValueError(f"row {rec['row']}: SID {missing[0]} has no prior (a prior of another catalogue?)")
    new = {sid: s - alpha * prior[sid] for sid, s in zip(rec["ranked"], scores)}
    order = sorted(rec["ranked"], key=lambda sid: -new[sid])[:k]  # stable: ties keep the beam's order
    from .predictions import carry_items
    return carry_items({**rec, "ranked": order, "scores": [round(new[s], 6) for s in order],
                        "calibration_alpha": alpha}, rec)


def load_prior(path) -> dict[str, float]:
    from ..data.records import DataError
    try:
        data = json.loads(open(path, encoding="utf-8").read())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(path, f"unreadable SID prior ({e}); write one with python -m sidreasoner.eval.calibration")
    prior = data.get("prior") if isinstance(data, dict) else None
    if not isinstance(prior, dict) or not all(isinstance(v, (int, float)) for v in prior.values()):
        raise DataError(path, "expected {\"prior\": {SID: log-probability}} (python -m sidreasoner.eval.calibration)")
    return prior


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class CalibrationConfig:
    """The flags of ``python -m sidreasoner.eval.calibration``."""
    model_path: str = _f(None, "model folder with the SID tokens (its prompt style is read from its "
                               "prompt_style.json)", required=True)
    info_file: str = _f(None, "catalogue 'SID<TAB>title<TAB>item_id' of the evaluation", required=True)
    output: str = _f(None, "JSON file to write: {\"prior\": {SID: log p0}, ...}", required=True)
    prompt_style: str = _f(DEFAULT_PROMPT_STYLE, "auto (the model's), native or compact")
    batch_size: int = _f(256, "SIDs per forward pass")
    device: str = _f("auto", "cpu, cuda, ... (auto: cuda when available)")
    threads: int = _f(0, "torch CPU threads (0: torch's choice; 1 on a busy shared CPU)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_dataclass_args(p, CalibrationConfig)


def main(argv: Sequence[str] = None) -> int:
    args = parse_checked(build_parser(), argv, {"batch_size": at_least(1), "threads": at_least(0, "0: torch's choice")})
    if args.threads:
        torch.set_num_threads(args.threads)
    from ..data.formats import atomic_write_text
    from ..data.records import DataError
    from ..data.formats import read_info_index
    from ..model.chat import model_prompt_style, stop_token_id
    from ..model.model_factory import ModelLoadError, load_model_and_tokenizer
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        index = read_info_index(args.info_file)
        model, tokenizer = load_model_and_tokenizer(args.model_path, device=device)
        style = model_prompt_style(args.model_path, args.prompt_style)
        trie = SIDTrie.from_index(index, tokenizer, stop_token_id(tokenizer), source=f"info file {args.info_file}")
        prior = sid_prior(trie, edge_prior(model.eval(), tokenizer, trie, style, args.batch_size))
    except (DataError, ModelLoadError, ValueError) as e:
        print(f"calibration: error: {e}", file=sys.stderr)
        return 2
    atomic_write_text(args.output, json.dumps({"model": args.model_path, "info_file": args.info_file,
                                               "prompt_style": style, "prior": prior}) + "\n")
    print(f"prior of {len(prior)} SIDs under {args.model_path} ({style} prompt, empty history) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
