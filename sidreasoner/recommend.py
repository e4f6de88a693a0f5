"""python -m sidreasoner.recommend --model checkpoints/demo/stage3/final_checkpoint --data_dir data/demo --category Demo --history 12,40,7

Recommendations from a trained model for a history of item ids: each ranked SID with its beam score and
the catalogue items it stands for (ids and titles; a SID shared by several items names them all), in
non-thinking mode or, with ``--think``, after the model's reasoning (printed too). The decoding is the
evaluator's: the prompt of the model's style, greedy reasoning with a repetition penalty, then the
trie-constrained beam search over the catalogue's SIDs. ``--input`` reads many histories (JSON lines
``{"history": [ids...]}``, other keys kept), ``--output`` writes one JSON line per history.

Python::

    from sidreasoner import Recommender
    rec = Recommender("checkpoints/demo/stage3/final_checkpoint", "data/demo", "Demo")
    for r in rec.recommend(["12", "40", "7"]).items:
        print(r.rank, r.sid, r.items, r.titles)
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional, Sequence

from .flags import add_dataclass_args
from .paths import DEFAULT_PROMPT_STYLE, NUM_BEAMS, final_model
from .ranges import above, at_least, check_ranges, parse_checked


@dataclass
class Ranked:
    rank: int
    sid: str
    score: float
    items: list
    titles: list


@dataclass
class Recommendations:
    history: list
    items: list = field(default_factory=list)        # Ranked, best first
    reasoning: Optional[str] = None                  # thinking mode only

    def as_dict(self) -> dict:
        return asdict(self)


#: numeric settings (flags of ``python -m sidreasoner.recommend``) and the values they accept
RANGES = {"num_beams": at_least(1), "max_think_tokens": at_least(1), "repetition_penalty": above(0, "1: off")}


class Recommender:
    """A trained model and its catalogue, ready to rank the next item for histories of item ids."""

    def __init__(self, model: str, data_dir: str, category: str, num_beams: int = NUM_BEAMS, think: bool = False,
                 max_think_tokens: int = 192, repetition_penalty: float = 1.3, prompt_style: str = DEFAULT_PROMPT_STYLE,
                 device: str = "cpu"):
        from .data.records import ReleasePaths
        from .eval.beam import catalogue_trie
        from .data.formats import read_info_index
        from .model.chat import model_prompt_style, stop_token_id
        from .model.model_factory import load_model_and_tokenizer
        check_ranges({"num_beams": num_beams, "max_think_tokens": max_think_tokens,
                      "repetition_penalty": repetition_penalty}, RANGES)
        model = final_model(model)  # a stage's output folder: the model it ended with
        info = ReleasePaths(Path(data_dir), category).info
        if not info.is_file():
            raise FileNotFoundError(f"{info}: catalogue not found (--data_dir and --category name the release files)")
        self.index = read_info_index(info)
        self.model, self.tokenizer = load_model_and_tokenizer(model, device=device)
        self.model.eval()
        self.stop_id = stop_token_id(self.tokenizer)
        self.trie = catalogue_trie(self.tokenizer, self.index.unique_sids(), self.stop_id, source=f"info file {info}")
        self.style = model_prompt_style(model, prompt_style)
        self.num_beams, self.think = num_beams, think
        self.max_think_tokens, self.repetition_penalty = max_think_tokens, repetition_penalty

    def history_sids(self, history: Sequence[str]) -> list[str]:
        if not history:
            raise ValueError("the history is empty: give at least one item id")
        unknown = [str(i) for i in history if str(i) not in self.index]
        if unknown:
            raise ValueError(f"item ids not in the catalogue: {', '.join(unknown[:5])}"
                             + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""))
        return [self.index.sid(i) for i in history]

    def recommend(self, history: Sequence[str]) -> Recommendations:
        import torch
        from .eval.beam import constrained_beam_search
        from .eval.padding import encode_left_padded
        from .eval.thinking import hf_reasoning, reasoning_prompt, search_prompt
        from .model.chat import next_sid_prompt_text
        prompt = next_sid_prompt_text(self.tokenizer, self.history_sids(history), think=self.think, style=self.style)
        reasoning = None
        with torch.no_grad():
            if self.think:
                asked = reasoning_prompt(prompt, self.style)
                reasoning = hf_reasoning(self.model, self.tokenizer, [asked], self.stop_id, self.max_think_tokens,
                                         repetition_penalty=self.repetition_penalty)[0][0].text
                prompt = search_prompt(asked, reasoning)
            ids, mask = encode_left_padded(self.tokenizer, [prompt], self.stop_id, self.model.device)
            beams = constrained_beam_search(self.model, ids, mask, self.trie, self.num_beams)[0]
        ranked = []
        for rank, (sid, score) in enumerate(zip(beams.sids, beams.scores), 1):
            items = list(self.index.sid_to_items.get(sid, []))
            ranked.append(Ranked(rank, sid, round(float(score), 4), items,
                                 [self.index.titles.get(i, "") for i in items]))
        return Recommendations([str(i) for i in history], ranked, reasoning)


def read_histories(path) -> list[dict]:
    """JSON lines with a ``history`` list of item ids (errors name the file and line)."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {n}: not JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("history"), list):
            raise ValueError(f"{path} line {n}: expected an object with a 'history' list of item ids")
        rows.append(row)
    return rows


def format_recommendations(rec: Recommendations) -> str:
    lines = [f"history: {', '.join(rec.history)}"]
    if rec.reasoning is not None:
        lines.append(f"reasoning: {rec.reasoning}")
    for r in rec.items:
        named = "; ".join(f"{i} {t}".strip() for i, t in zip(r.items, r.titles)) or "(no item)"
        lines.append(f"{r.rank:>3}. {r.sid}  {r.score:9.4f}  {named}")
    return "\n".join(lines)


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class RecommendFlags:
    """The command line of ``python -m sidreasoner.recommend`` (one of --history and --input is required)."""
    model: str = _f(None, "trained model folder (any stage's final_checkpoint, or the stage's output folder holding "
                          "it)", required=True)
    data_dir: str = _f(None, "release-layout data folder holding the catalogue (info/)", required=True)
    category: str = _f(None, "category: names the info file", required=True)
    history: Optional[str] = _f(None, "comma-separated item ids, oldest first")
    input: Optional[str] = _f(None, 'JSON lines, one {"history": [ids...]} per line (other keys are kept)')
    output: Optional[str] = _f(None, "write one JSON line per history here (default: print a table)")
    num_beams: int = _f(NUM_BEAMS, "SIDs returned per history")
    think: bool = _f(False, "reason first (thinking mode), then rank")
    max_think_tokens: int = _f(192, "reasoning budget in tokens")
    repetition_penalty: float = _f(1.3, "of the greedy reasoning (1: off)")
    prompt_style: str = _f(DEFAULT_PROMPT_STYLE, "auto: the style recorded in the model folder")
    device: str = _f("cpu", "cpu or cuda")


_SOURCES = ("history", "input")  # the mutually exclusive, required pair


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(p, RecommendFlags, exclude=_SOURCES)
    others = [f.name for f in fields(RecommendFlags) if f.name not in _SOURCES]
    add_dataclass_args(p.add_mutually_exclusive_group(required=True), RecommendFlags, exclude=others)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_checked(build_parser(), argv, RANGES)
    try:
        rows = read_histories(args.input) if args.input else [{"history": [h.strip() for h in args.history.split(",")
                                                                           if h.strip()]}]
        rec = Recommender(args.model, args.data_dir, args.category, args.num_beams, args.think,
                          args.max_think_tokens, args.repetition_penalty, args.prompt_style, args.device)
        results = [(row, rec.recommend(row["history"])) for row in rows]
    except (ValueError, OSError) as e:
        print(f"recommend: error: {e}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            for row, res in results:
                f.write(json.dumps({**row, **res.as_dict()}) + "\n")
        print(f"{len(results)} histories -> {args.output}")
    else:
        print("\n\n".join(format_recommendations(res) for _, res in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
