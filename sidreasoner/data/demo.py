"""Synthetic demo catalogue and user sequences with planted, learnable structure.

The catalogue has departments (the item's category: Office, Kitchen, ...), each with item kinds
(Printer, Ink Cartridge, ...), brands and attributes (colour, size, pack count). Users have 1-3
department interests with a favourite brand in each, follow complementary chains (printer -> ink
cartridge -> copy paper, usually of the same brand), restock consumables and pick popular items more
often (Zipf within a kind). Every interaction gets a global time; one sample per interaction (history =
up to ``max_history`` previous items, target = next item) and the samples, sorted by target time, are
split 8:1:1 into train / valid / test, as the release did (see the Amazon data README).

Only ``numpy.random.Generator`` draws are used and only lists/tuples are iterated, so the same
config gives the same data on every run (no dependence on hash randomisation).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from .records import Item, ReleasePaths, SequenceRow, SPLITS

# (department, brands, kinds); kind = (name, what it is used for, consumable, complementary kinds)
DEPARTMENTS: tuple = (
    ("Office", ("Inkwell", "Paperline", "Deskmate", "Scribewell", "Clipwise"), (
        ("Printer", "prints documents and photos at home", False, ("Ink Cartridge", "Copy Paper")),
        ("Ink Cartridge", "refills a printer with sharp black and colour ink", True, ("Copy Paper",)),
        ("Copy Paper", "feeds printers and copiers with bright white sheets", True, ("Stapler",)),
        ("Stapler", "binds loose pages together on the desk", False, ("Staples",)),
        ("Staples", "reloads a desk stapler", True, ()),
        ("Ballpoint Pen", "writes smoothly for notes and forms", True, ("Notebook",)),
        ("Notebook", "keeps lecture and meeting notes", True, ("Ballpoint Pen", "Highlighter")),
        ("Highlighter", "marks key passages in bright ink", True, ()))),
    ("Kitchen", ("CopperPot", "FreshNest", "ChefLine", "Brewster", "Sizzlo"), (
        ("Coffee Maker", "brews fresh coffee every morning", False, ("Coffee Filters", "Ground Coffee")),
        ("Coffee Filters", "catches grounds in a drip coffee maker", True, ("Ground Coffee",)),
        ("Ground Coffee", "makes a rich medium roast cup", True, ("Coffee Filters",)),
        ("Frying Pan", "sears and fries on any hob", False, ("Spatula",)),
        ("Spatula", "flips pancakes and eggs without scratching", False, ()),
        ("Chef Knife", "slices vegetables and meat cleanly", False, ("Cutting Board",)),
        ("Cutting Board", "protects the counter while chopping", False, ()),
        ("Dish Soap", "cuts grease on plates and pans", True, ("Sponges",)),
        ("Sponges", "scrubs dishes clean", True, ("Dish Soap",)))),
    ("Outdoor", ("TrailPeak", "NorthRidge", "Campfirely", "WildPath", "Summitry"), (
        ("Tent", "shelters two people on a camping trip", False, ("Sleeping Bag", "Camping Lantern")),
        ("Sleeping Bag", "keeps you warm on cold nights outdoors", False, ("Sleeping Pad",)),
        ("Sleeping Pad", "insulates you from the ground in a tent", False, ()),
        ("Camping Lantern", "lights up the campsite after dark", False, ("AA Batteries",)),
        ("Hiking Backpack", "carries gear on long day hikes", False, ("Water Bottle",)),
        ("Water Bottle", "keeps drinks cold on the trail", False, ()),
        ("Camp Stove", "cooks meals at the campsite", False, ("Fuel Canister",)),
        ("Fuel Canister", "powers a portable camp stove", True, ()))),
    ("Electronics", ("Voltix", "Lumenor", "Soundwave", "Circuitry", "Pixelon"), (
        ("Laptop", "handles work, study and streaming", False, ("Laptop Sleeve", "Wireless Mouse")),
        ("Laptop Sleeve", "protects a laptop in a bag", False, ()),
        ("Wireless Mouse", "moves the cursor without a cable", False, ("AA Batteries", "Mouse Pad")),
        ("Mouse Pad", "gives a mouse a smooth surface", False, ()),
        ("AA Batteries", "powers remotes, mice and lanterns", True, ()),
        ("Phone Charger", "charges a phone quickly", False, ("USB Cable",)),
        ("USB Cable", "connects and charges devices", True, ()),
        ("Camera", "takes sharp photos and videos", False, ("Memory Card", "Tripod")),
        ("Memory Card", "stores photos and videos", True, ()),
        ("Tripod", "holds a camera steady", False, ()))),
    ("Beauty", ("Bloomery", "Silkora", "PureGlow", "Velvetine", "Auroria"), (
        ("Shampoo", "cleans hair gently every day", True, ("Conditioner",)),
        ("Conditioner", "softens and detangles hair", True, ("Shampoo",)),
        ("Face Cleanser", "removes make-up and oil", True, ("Moisturiser",)),
        ("Moisturiser", "hydrates dry skin all day", True, ("Sunscreen",)),
        ("Sunscreen", "protects skin from the sun", True, ()),
        ("Hair Dryer", "dries hair fast with less frizz", False, ("Hair Brush",)),
        ("Hair Brush", "smooths and styles hair", False, ()),
        ("Nail Polish", "colours nails with a glossy finish", True, ("Nail Polish Remover",)),
        ("Nail Polish Remover", "takes off old nail polish", True, ()))),
    ("Toys", ("TinkerTown", "BrightBlocks", "Wonderkid", "JollyJump", "StarTots"), (
        ("Building Blocks", "lets children build towers and houses", False, ("Storage Box",)),
        ("Storage Box", "tidies toys away after play", False, ()),
        ("Jigsaw Puzzle", "challenges the whole family", False, ()),
        ("Toy Car", "races across the floor", False, ("Race Track",)),
        ("Race Track", "gives toy cars loops and ramps", False, ("Toy Car",)),
        ("Plush Bear", "cuddles at bedtime", False, ()),
        ("Crayons", "draws bright pictures", True, ("Colouring Book",)),
        ("Colouring Book", "fills rainy afternoons with pictures to colour", True, ("Crayons",)))),
    ("Pets", ("Pawsome", "Whiskerly", "Barkley", "FurFriend", "TailWag"), (
        ("Dog Food", "feeds adult dogs a balanced diet", True, ("Dog Treats", "Dog Bowl")),
        ("Dog Treats", "rewards good behaviour in training", True, ()),
        ("Dog Bowl", "holds food or water for a dog", False, ()),
        ("Dog Leash", "keeps a dog close on walks", False, ("Poop Bags",)),
        ("Poop Bags", "cleans up after a dog on walks", True, ()),
        ("Cat Food", "feeds cats a complete diet", True, ("Cat Litter",)),
        ("Cat Litter", "controls odour in the litter box", True, ("Litter Scoop",)),
        ("Litter Scoop", "sifts clumps from cat litter", False, ()))),
    ("Garden", ("GreenThumb", "Rootwise", "Bloomfield", "Terrano", "Sproutly"), (
        ("Garden Hose", "waters lawns and flower beds", False, ("Hose Nozzle",)),
        ("Hose Nozzle", "sprays water in several patterns", False, ()),
        ("Potting Soil", "grows healthy plants in containers", True, ("Plant Pot", "Flower Seeds")),
        ("Plant Pot", "holds soil and plants on a patio", False, ()),
        ("Flower Seeds", "sows a colourful flower bed", True, ("Plant Food",)),
        ("Plant Food", "feeds plants for more blooms", True, ()),
        ("Pruning Shears", "trims shrubs and roses", False, ("Garden Gloves",)),
        ("Garden Gloves", "protects hands while gardening", False, ()))),
)
COLOURS = ("Black", "White", "Red", "Blue", "Green", "Grey", "Pink", "Yellow")
SIZES = ("Small", "Medium", "Large", "Extra Large")
CONSUMABLE_PACKS = (2, 3, 6, 12, 24)
MIN_ITEMS_PER_KIND = 2


@dataclass(frozen=True)
class DemoConfig:
    """Everything that determines the demo data; the same config gives byte-identical files."""

    category: str = "Demo"
    n_items: int = 1200
    n_users: int = 1500
    min_len: int = 5            # interactions per user (the first has no history, so rows = len - 1)
    max_len: int = 20
    length_p: float = 0.12      # geometric tail of the sequence length beyond min_len
    max_history: int = 10
    seed: int = 0
    p_repeat: float = 0.12      # restock the most recent consumable among the last 5 items
    p_complement: float = 0.40  # next item is a complement of the last one
    p_noise: float = 0.05       # a globally popular item, whatever the interests
    brand_match: float = 0.75   # a complement has the trigger item's brand
    brand_loyalty: float = 0.60  # an interest pick has the user's favourite brand
    zipf_alpha: float = 1.0     # item popularity within a kind ~ 1 / rank**alpha
    min_active: float = 0.3     # a user is active over a random window of >= this share of the period
    split_ratios: tuple = (0.8, 0.1, 0.1)

    def check(self) -> None:
        n_kinds = len(KINDS)
        if self.n_items < MIN_ITEMS_PER_KIND * n_kinds:
            raise ValueError(f"n_items={self.n_items}: need at least {MIN_ITEMS_PER_KIND * n_kinds} "
                             f"({MIN_ITEMS_PER_KIND} per item kind, {n_kinds} kinds)")
        if self.n_users < 1 or not 2 <= self.min_len <= self.max_len or self.max_history < 1:
            raise ValueError(f"need n_users >= 1, 2 <= min_len <= max_len, max_history >= 1; got "
                             f"n_users={self.n_users}, min_len={self.min_len}, max_len={self.max_len}, "
                             f"max_history={self.max_history}")
        if not 0 < self.min_active <= 1:
            raise ValueError(f"min_active must be in (0, 1], got {self.min_active}")
        if self.p_repeat + self.p_complement + self.p_noise > 1:
            raise ValueError("p_repeat + p_complement + p_noise must be <= 1")
        if len(self.split_ratios) != 3 or abs(sum(self.split_ratios) - 1) > 1e-9:
            raise ValueError(f"split_ratios must be three fractions summing to 1, got {self.split_ratios}")


@dataclass(frozen=True)
class Kind:
    """An item kind (Printer, Ink Cartridge, ...): its department, use, and what is bought after it."""

    department: str
    name: str
    use: str
    consumable: bool
    complements: tuple[str, ...]
    brands: tuple[str, ...]


KINDS: tuple[Kind, ...] = tuple(Kind(d, k[0], k[1], k[2], k[3], brands)
                                for d, brands, kinds in DEPARTMENTS for k in kinds)
KIND_BY_NAME = {k.name: k for k in KINDS}


@dataclass(frozen=True)
class DemoItem:
    item_id: str
    kind: Kind
    brand: str
    colour: str
    size: str
    pack: int

    @property
    def department(self) -> str:
        return self.kind.department

    def title(self) -> str:
        pack = f", {self.pack}-Pack" if self.pack > 1 else ""
        return f"{self.brand} {self.kind.name}, {self.colour}, {self.size}{pack}"

    def description(self) -> str:
        k = self.kind
        article = "An" if k.department[0] in "AEIOU" else "A"
        text = (f"The {self.brand} {k.name} in {self.colour.lower()}, size {self.size.lower()}"
                f"{f', {self.pack} per pack' if self.pack > 1 else ''}. "
                f"{article} {k.department.lower()} essential that {k.use}.")
        if k.complements:
            text += " Often bought together with " + " and ".join(k.complements) + "."
        if k.consumable:
            text += " A consumable worth restocking regularly."
        return repr([text])  # the release stores descriptions as a Python-literal list string

    def to_item(self) -> Item:
        return Item(self.item_id, self.title(), self.description(), self.brand,
                    f"{self.department} > {self.kind.name}")


@dataclass
class Catalogue:
    items: list[DemoItem]                 # items[i].item_id == str(i)
    popularity: np.ndarray                # (n_items,) float: relative pick weight within a kind
    by_kind: dict[str, np.ndarray]        # kind name -> item indices, ascending

    def pick(self, kind: str, rng: np.random.Generator, brand: Optional[str] = None) -> int:
        """An item of ``kind`` by popularity; restricted to ``brand`` when it has any such item."""
        cand = self.by_kind[kind]
        if brand is not None:
            branded = cand[[self.items[i].brand == brand for i in cand]]
            cand = branded if len(branded) else cand
        w = self.popularity[cand]
        return int(cand[rng.choice(len(cand), p=w / w.sum())])


def make_catalogue(n_items: int, rng: np.random.Generator, zipf_alpha: float = 1.0) -> Catalogue:
    """``n_items`` distinct (kind, brand, colour, size, pack) items, ids shuffled so ids carry no structure."""
    n_kinds = len(KINDS)
    counts = MIN_ITEMS_PER_KIND + rng.multinomial(n_items - MIN_ITEMS_PER_KIND * n_kinds,
                                                  rng.dirichlet(np.full(n_kinds, 5.0)))
    specs, ranks = [], []
    for kind, count in zip(KINDS, counts):
        packs = CONSUMABLE_PACKS if kind.consumable else (1,)
        shape = (len(kind.brands), len(COLOURS), len(SIZES), len(packs))
        if count > int(np.prod(shape)):
            raise ValueError(f"n_items={n_items} is too large: kind {kind.name!r} needs {count} items but "
                             f"has only {int(np.prod(shape))} attribute combinations")
        for flat in rng.choice(int(np.prod(shape)), size=count, replace=False):
            b, c, s, p = np.unravel_index(flat, shape)
            specs.append((kind, kind.brands[b], COLOURS[c], SIZES[s], packs[p]))
        ranks.extend(rng.permutation(count) + 1)
    ids = rng.permutation(n_items)
    items: list[Optional[DemoItem]] = [None] * n_items
    popularity = np.zeros(n_items)
    for spec, new_id, rank in zip(specs, ids, ranks):
        items[new_id] = DemoItem(str(new_id), *spec)
        popularity[new_id] = 1.0 / float(rank) ** zipf_alpha
    by_kind = {k.name: np.array([i for i, it in enumerate(items) if it.kind.name == k.name]) for k in KINDS}
    return Catalogue(items, popularity, by_kind)


@dataclass(frozen=True)
class UserProfile:
    user_id: str
    departments: tuple[str, ...]      # 1-3 interests
    weights: tuple[float, ...]        # interest weights, sum 1
    favourite_brands: tuple[str, ...]  # one per interest department


def make_users(n_users: int, rng: np.random.Generator) -> list[UserProfile]:
    names = [d[0] for d in DEPARTMENTS]
    dept_pop = 1.0 / np.arange(1, len(names) + 1) ** 0.5
    dept_pop = rng.permutation(dept_pop / dept_pop.sum())
    width = max(4, len(str(n_users)))
    users = []
    for u in range(n_users):
        n_int = int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))
        chosen = rng.choice(len(names), size=n_int, replace=False, p=dept_pop)
        weights = rng.dirichlet(np.full(n_int, 2.0))
        brands = tuple(str(rng.choice(DEPARTMENTS[int(d)][1])) for d in chosen)
        users.append(UserProfile(f"U{u + 1:0{width}d}", tuple(names[int(d)] for d in chosen),
                                 tuple(float(w) for w in weights), brands))
    return users


def _kind_weights(department: str) -> tuple[list[str], np.ndarray]:
    # Earlier-listed kinds of a department are more popular (printers before highlighters).
    names = [k.name for k in KINDS if k.department == department]
    w = 1.0 / np.arange(1, len(names) + 1) ** 0.7
    return names, w / w.sum()


def next_item(history: Sequence[int], user: UserProfile, cat: Catalogue, cfg: DemoConfig,
              rng: np.random.Generator) -> int:
    """One step of the planted process: restock, complement, noise, or an interest pick. A restock or
    complement step without a consumable / complementary last item becomes an interest pick."""
    u = rng.random()
    last = cat.items[history[-1]] if history else None
    if u < cfg.p_repeat:
        recent = [i for i in reversed(history[-5:]) if cat.items[i].kind.consumable]
        if recent:
            return recent[0]
    elif u < cfg.p_repeat + cfg.p_complement:
        if last is not None and last.kind.complements:
            kind = last.kind.complements[int(rng.integers(len(last.kind.complements)))]
            brand = last.brand if rng.random() < cfg.brand_match else None
            return cat.pick(kind, rng, brand)
    elif u < cfg.p_repeat + cfg.p_complement + cfg.p_noise:
        w = cat.popularity / cat.popularity.sum()
        return int(rng.choice(len(w), p=w))
    d = int(rng.choice(len(user.departments), p=np.array(user.weights)))
    names, kw = _kind_weights(user.departments[d])
    kind = names[int(rng.choice(len(names), p=kw))]
    brand = user.favourite_brands[d] if rng.random() < cfg.brand_loyalty else None
    return cat.pick(kind, rng, brand)


@dataclass(frozen=True)
class Sample:
    """One interaction with a history: the row of a split CSV, plus its global time."""

    user_id: str
    history: tuple[str, ...]
    target: str
    time: float


def simulate_user(user: UserProfile, cat: Catalogue, cfg: DemoConfig, rng: np.random.Generator) -> list[Sample]:
    length = min(cfg.max_len, cfg.min_len + int(rng.geometric(cfg.length_p)) - 1)
    # Times lie in the global period [0, 1): uniform within the user's active window, so the last
    # tenth of the period (the test split) holds the latest rows of many users, as in the release.
    span = rng.uniform(cfg.min_active, 1.0)
    times = rng.random() * (1.0 - span) + span * np.sort(rng.random(length))
    seq: list[int] = []
    for _ in range(length):
        seq.append(next_item(seq, user, cat, cfg, rng))
    ids = [str(i) for i in seq]
    return [Sample(user.user_id, tuple(ids[max(0, t - cfg.max_history):t]), ids[t], float(times[t]))
            for t in range(1, length)]


def chronological_split(samples: Sequence[Sample], ratios: Sequence[float]) -> dict[str, list[Sample]]:
    """Sort by target time (ties: input order) and cut into train/valid/test by ``ratios``."""
    order = sorted(range(len(samples)), key=lambda i: (samples[i].time, i))
    n = len(order)
    n_train, n_valid = int(round(n * ratios[0])), int(round(n * ratios[1]))
    cuts = (0, n_train, n_train + n_valid, n)
    return {name: [samples[i] for i in order[cuts[k]:cuts[k + 1]]] for k, name in enumerate(SPLITS)}


@dataclass
class DemoData:
    config: DemoConfig
    catalogue: Catalogue
    users: list[UserProfile]
    splits: dict[str, list[Sample]]

    def items(self) -> dict[str, Item]:
        return {it.item_id: it.to_item() for it in self.catalogue.items}

    def department_of(self) -> dict[str, str]:
        return {it.item_id: it.department for it in self.catalogue.items}


def generate_demo(cfg: DemoConfig, progress: bool = False) -> DemoData:
    """Catalogue, users and the chronological split. Catalogue and users draw from separate streams,
    so changing ``n_users`` leaves the catalogue unchanged."""
    cfg.check()
    cat_seed, user_seed, seq_seed = np.random.SeedSequence(cfg.seed).spawn(3)
    cat = make_catalogue(cfg.n_items, np.random.default_rng(cat_seed), cfg.zipf_alpha)
    users = make_users(cfg.n_users, np.random.default_rng(user_seed))
    rng = np.random.default_rng(seq_seed)
    users_iter = users
    if progress:
        from tqdm import tqdm
        users_iter = tqdm(users, desc="simulating users", unit="user")
    samples = [s for user in users_iter for s in simulate_user(user, cat, cfg, rng)]
    return DemoData(cfg, cat, users, chronological_split(samples, cfg.split_ratios))


def split_rows(samples: Sequence[Sample], items: Mapping[str, Item],
               item_to_sid: Mapping[str, str]) -> list[SequenceRow]:
    return [SequenceRow(s.user_id, s.history, tuple(items[i].title for i in s.history),
                        tuple(item_to_sid[i] for i in s.history), s.target, items[s.target].title,
                        item_to_sid[s.target]) for s in samples]


def write_release(data: DemoData, item_to_sid: Mapping[str, str], paths: ReleasePaths) -> None:
    """Write index.json, item.json, info and the three split CSVs (items in ``item_to_sid``'s order)
    with the release writer of the SID builder."""
    from .release_io import write_release as write_with_sids
    items = data.items()
    missing = [i for i in items if i not in item_to_sid]
    if missing:
        raise ValueError(f"{len(missing)} items have no SID, e.g. {missing[:5]}")
    write_with_sids(paths, items, {name: split_rows(data.splits[name], items, item_to_sid) for name in SPLITS},
                    item_to_sid)


# -- learnability check --------------------------------------------------------------------------------
Pair = tuple[Sequence[str], str]  # (history item ids, target item id)


def _hit_ndcg(ranked: Sequence[str], target: str) -> tuple[float, float]:
    if target not in ranked:
        return 0.0, 0.0
    return 1.0, 1.0 / float(np.log2(list(ranked).index(target) + 2))


def structure_baselines(train: Sequence[Pair], test: Sequence[Pair], department_of: Mapping[str, str],
                        k: int = 10) -> dict[str, dict[str, float]]:
    """HR@k / NDCG@k on ``test`` of three count baselines fitted on ``train``: most popular target,
    most popular in the last history item's department, and last-item -> next-item transition counts
    (ties and empty slots filled by popularity). Planted structure shows as the last two beating the
    first. Ties break by item id, so the result is deterministic."""
    pop: dict[str, int] = {}
    trans: dict[str, dict[str, int]] = {}
    for hist, target in train:
        pop[target] = pop.get(target, 0) + 1
        nxt = trans.setdefault(hist[-1], {})
        nxt[target] = nxt.get(target, 0) + 1
    by_pop = sorted(department_of, key=lambda i: (-pop.get(i, 0), i))
    pop_rank = {item: r for r, item in enumerate(by_pop)}
    top: dict[str, list[str]] = {}
    for item in by_pop:
        lst = top.setdefault(department_of[item], [])
        if len(lst) < k:
            lst.append(item)
    sums = {name: [0.0, 0.0] for name in ("most_popular", "same_category", "transition")}
    for hist, target in test:
        last = hist[-1]
        nxt = trans.get(last, {})
        ranked = sorted(nxt, key=lambda i: (-nxt[i], pop_rank[i]))[:k]
        ranked += [i for i in by_pop[:2 * k] if i not in nxt][:k - len(ranked)]
        for name, lst in (("most_popular", by_pop[:k]), ("same_category", top[department_of[last]]),
                          ("transition", ranked)):
            h, g = _hit_ndcg(lst, target)
            sums[name][0] += h
            sums[name][1] += g
    n = max(1, len(test))
    return {name: {f"hr@{k}": s[0] / n, f"ndcg@{k}": s[1] / n} for name, s in sums.items()}


def planted_stats(pairs: Sequence[Pair], department_of: Mapping[str, str]) -> dict[str, float]:
    """Shares of targets in the last item's department, and repeating an item of the history."""
    n = max(1, len(pairs))
    same = sum(department_of[t] == department_of[h[-1]] for h, t in pairs)
    repeat = sum(t in h for h, t in pairs)
    return {"same_category_as_last": same / n, "repeat_of_history_item": repeat / n}
