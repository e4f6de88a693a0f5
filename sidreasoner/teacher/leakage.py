"""Does a reasoning path give the answer away? A path *quotes the target* when it contains the target's
short title, or its brand, while no history item carries that title or brand: information a model
cannot have before it answers. The template teacher never does; a model teacher sees the target, so
``synthesize_corpus.py`` reports the share of its paths that do (``target_title_quoted``,
``target_brand_quoted`` in the statistics); for a corpus made elsewhere:

    python -m sidreasoner.teacher.leakage --data_dir data/Amazon --category Office_Products [--narrative CSV]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..flags import add_dataclass_args
from .prompts import ItemBriefs, SequenceContext
from .template import short_title


def _has_phrase(text: str, phrase: str) -> bool:
    return bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.I) is not None


def _without_history_titles(text: str, ctx: SequenceContext) -> str:
    """``text`` with the history's titles (whole, or cut to their first words as paths name them) blanked:
    "Laptop" inside "Laptop Sleeve" is the history speaking, not the target."""
    cuts = {h.title for h in ctx.history} | {short_title(h.title, n).rstrip(".") for h in ctx.history
                                              for n in (4, 5, 6, 8, 10, 12, 14)}
    for cut in sorted(cuts, key=len, reverse=True):
        text = re.sub(re.escape(cut), " ", text, flags=re.I)
    return text


def quotes_target(reasoning: str, ctx: SequenceContext) -> dict[str, bool]:
    """``{"title": ..., "brand": ...}``: which of the target's facts the path states without the history
    having them (a repeat purchase or a brand already bought is fair to name)."""
    t = ctx.target
    title = short_title(t.title).rstrip(".").strip()
    history_brands = {h.brand.lower() for h in ctx.history if h.brand}
    return {"title": _has_phrase(_without_history_titles(reasoning, ctx), title),
            "brand": bool(t.brand) and t.brand.lower() not in history_brands and _has_phrase(reasoning, t.brand)}


def corpus_share(narrative_csv, data_dir, category: str) -> dict:
    """Share of a narrative CSV's reasoning paths that quote the target, items named by the release's
    index and metadata (a SID shared by several items: its first item). Rows with an unknown SID are
    counted apart (``unknown_sid``), never guessed."""
    from ..data.corpora import read_narratives
    from ..data.formats import read_item_json, read_sid_index
    from ..data.records import ReleasePaths
    paths = ReleasePaths(Path(data_dir), category)
    index = read_sid_index(paths.index_json)
    brief = ItemBriefs(read_item_json(paths.item_json))

    def item(sid):
        ids = index.sid_to_items.get(sid)
        return brief(ids[0], sid) if ids else None

    counts = Counter()
    for row in read_narratives(narrative_csv).records:
        briefs = [item(s) for s in (*row.history_sids, row.item_sid)]
        if None in briefs or not row.reasoning_path:
            counts["unknown_sid" if None in briefs else "empty_reasoning"] += 1
            continue
        counts["paths"] += 1
        ctx = SequenceContext("", tuple(briefs[:-1]), briefs[-1])
        for fact, said in quotes_target(row.reasoning_path, ctx).items():
            counts[fact] += said
    n = max(counts["paths"], 1)
    return {"paths": counts["paths"], "title": round(counts["title"] / n, 4), "brand": round(counts["brand"] / n, 4),
            "unknown_sid": counts["unknown_sid"], "empty_reasoning": counts["empty_reasoning"]}


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class LeakageFlags:
    """The command line of ``python -m sidreasoner.teacher.leakage``."""
    data_dir: str = _f(None, "release folder with index/<Cat>.index.json and .item.json", required=True)
    category: str = _f(None, "category name in the file names, e.g. Office_Products", required=True)
    narrative: Optional[str] = _f(None, "narrative CSV to check (default: "
                                        "DATA_DIR/index/<Cat>.integrated_narrative.csv)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    add_dataclass_args(p, LeakageFlags)
    args = p.parse_args(argv)
    from ..data.records import DataError, ReleasePaths
    path = args.narrative or ReleasePaths(Path(args.data_dir), args.category).narrative
    try:
        share = corpus_share(path, args.data_dir, args.category)
    except (DataError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{path}: {share['paths']} reasoning paths; stating the target's title {share['title']:.2%}, "
          f"a brand the history lacks {share['brand']:.2%}; rows left out: unknown SID {share['unknown_sid']}, "
          f"empty path {share['empty_reasoning']}")
    print(json.dumps(share))
    return 0


if __name__ == "__main__":
    sys.exit(main())
