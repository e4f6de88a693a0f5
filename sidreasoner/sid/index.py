"""SIDIndex: the catalogue as item id <-> SID, with the facts the rest of the code asks about.

The release data's SIDs are not all unique (15 colliding pairs in Office_Products), so a SID maps to
a list of item ids. Metrics match by SID string, as the paper does.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping, Optional

from .spelling import parse_sid, split_sid


class SIDIndex:
    """Maps item ids to SID strings (``"<a_1><b_2><c_3>"``) and back."""

    def __init__(self, item_to_sid: Mapping[str, str], titles: Optional[Mapping[str, str]] = None):
        self.item_to_sid: dict[str, str] = {}
        self.sid_to_items: dict[str, list[str]] = {}
        for item_id, sid in item_to_sid.items():
            parse_sid(sid)  # validates; raises SIDFormatError naming the SID
            self.item_to_sid[str(item_id)] = sid
            self.sid_to_items.setdefault(sid, []).append(str(item_id))
        self.titles: dict[str, str] = dict(titles or {})

    # -- queries -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.item_to_sid)

    def __contains__(self, item_id: str) -> bool:
        return str(item_id) in self.item_to_sid

    def sid(self, item_id: str) -> str:
        return self.item_to_sid[str(item_id)]

    def is_valid_sid(self, sid: str) -> bool:
        return sid in self.sid_to_items

    def unique_sids(self) -> list[str]:
        """Distinct SIDs in first-seen order: the decoding catalogue."""
        return list(self.sid_to_items)

    def title_of_sid(self, sid: str) -> str:
        items = self.sid_to_items.get(sid, [])
        return self.titles.get(items[0], "") if items else ""

    def collisions(self) -> dict[str, list[str]]:
        """SIDs shared by more than one item -> their item ids."""
        return {s: ids for s, ids in self.sid_to_items.items() if len(ids) > 1}

    def colliding_pairs(self) -> int:
        """Number of unordered item pairs that share a SID (n items on one SID give n*(n-1)/2)."""
        return sum(len(v) * (len(v) - 1) // 2 for v in self.sid_to_items.values())

    def level_counts(self) -> Counter:
        """How many SIDs have each length (number of levels)."""
        return Counter(len(parse_sid(s)) for s in self.sid_to_items)

    def codes_per_level(self) -> list[int]:
        """Distinct codes used at each level."""
        used: list[set] = []
        for s in self.sid_to_items:
            for level, c in enumerate(parse_sid(s)):
                if level == len(used):
                    used.append(set())
                used[level].add(c)
        return [len(u) for u in used]

    def tokens(self) -> list[str]:
        """Every SID token the catalogue uses, sorted by level then code (for adding to a vocabulary)."""
        toks = {t for s in self.sid_to_items for t in split_sid(s)}
        return sorted(toks, key=lambda t: (t[1], int(t[3:-1])))

    @staticmethod
    def tokens_of(sid: str) -> list[str]:
        return split_sid(sid)


def sids_of(index: SIDIndex, item_ids: Iterable[str]) -> list[str]:
    return [index.sid(i) for i in item_ids]
