"""The package's layers, read from the source (no imports run): every ``import`` of every module under
``sidreasoner/``, including the ones inside functions.

Rules (docs/ARCHITECTURE.md, "Layers"):

- no import circles between modules. A function-level (lazy) import counts: it defers the dependency to
  the first call, it does not remove it, and a circle through it still means neither module can be
  understood, tested or moved without the other. Imports under ``if TYPE_CHECKING:`` do not count (they
  never run);
- no circles between the subpackages (``sid``, ``data``, ``eval`` ...; a top-level module counts as its own
  package), apart from the ones listed in ``KNOWN_PACKAGE_CIRCLES`` (to shrink, never to grow);
- ``sidreasoner.sid`` is the bottom layer: it imports nothing of ours outside ``sid``;
- the SFT stage's trainer (``train/sft_trainer.py``) is not a library: shared run helpers live in
  ``sidreasoner/runs.py``.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PKG = "sidreasoner"
ROOT = Path(__file__).resolve().parents[1] / PKG

#: subpackage circles still there; each entry is a sorted tuple of the packages in one circle
KNOWN_PACKAGE_CIRCLES: set[tuple[str, ...]] = set()  # eval <-> train went when the model helpers moved to model/
#: modules outside ``train`` still importing ``train.sft_trainer``, to shrink
KNOWN_SFT_TRAINER_USERS: set[str] = set()
#: imports kept for a while for callers still using an old name (the new place is in the module). They are left out
#: of every rule; each must still exist (a test says when to remove it from here)
PENDING: set[tuple[str, str]] = set()


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return mods


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _targets(node, module: str, is_pkg: bool) -> list[str]:
    """Our modules that one import statement loads (``from pkg import mod`` -> ``pkg.mod``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name == PKG or a.name.startswith(PKG + ".")]
    base = node.module or ""
    if node.level:
        parts = module.split(".")[: None if is_pkg else -1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([base] if base else []))
    if not (base == PKG or base.startswith(PKG + ".")):
        return []
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """``(target, line, lazy)`` for every import of ours in ``module``."""
    path, is_pkg = MODULES[module]
    found = []

    def walk(node, lazy: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    walk(sub, lazy)
                continue
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend((t, child.lineno, inner) for t in _targets(child, module, is_pkg))
            walk(child, inner)

    walk(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return found


ALL_EDGES = {m: _imports(m) for m in MODULES}
EDGES = {m: [e for e in targets if (m, e[0]) not in PENDING] for m, targets in ALL_EDGES.items()}


def _graph(key=lambda m: m) -> dict[str, set[str]]:
    g = defaultdict(set)
    for m, targets in EDGES.items():
        for t, _, _ in targets:
            if t in MODULES and key(m) != key(t):
                g[key(m)].add(key(t))
    return g


def _circles(g: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for start in sorted(g):
        if start in index:
            continue
        work = [(start, iter(sorted(g.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(tuple(sorted(comp)))
    return out


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _where(a: str, b: str) -> str:
    return ", ".join(sorted({f"{MODULES[a][0].relative_to(ROOT.parent)}:{line}{' (lazy)' if lazy else ''}"
                             for t, line, lazy in EDGES[a] if t == b}))


def test_walker_sees_the_package():
    assert len(MODULES) > 80 and "sidreasoner.sid.spelling" in MODULES
    assert any(lazy for targets in EDGES.values() for _, _, lazy in targets)  # function-level imports are read


def test_no_module_circles():
    g = _graph()
    circles = _circles(g)
    detail = ["  " + " <-> ".join(c) + ": " + "; ".join(_where(a, b) for a in c for b in c if b in g.get(a, ()))
              for c in circles]
    assert not circles, "import circles between modules:\n" + "\n".join(detail)


def test_no_new_package_circles():
    circles = set(_circles(_graph(_package)))
    assert circles <= KNOWN_PACKAGE_CIRCLES, f"new circles between subpackages: {circles - KNOWN_PACKAGE_CIRCLES}"
    assert KNOWN_PACKAGE_CIRCLES <= circles, (f"{KNOWN_PACKAGE_CIRCLES - circles} are gone: remove them from "
                                              f"KNOWN_PACKAGE_CIRCLES")


def test_sid_is_the_bottom_layer():
    bad = [f"{m} -> {t} ({_where(m, t)})" for m in MODULES if m.startswith(PKG + ".sid.") or m == PKG + ".sid"
           for t in sorted({t for t, _, _ in EDGES[m]}) if not (t == PKG + ".sid" or t.startswith(PKG + ".sid."))]
    assert not bad, "sidreasoner.sid imports from outside sid:\n  " + "\n  ".join(bad)


def test_sft_trainer_is_not_a_library():
    users = {m for m, targets in EDGES.items() for t, _, _ in targets
             if t == PKG + ".train.sft_trainer" and not m.startswith(PKG + ".train.")}
    assert users <= KNOWN_SFT_TRAINER_USERS, f"import the shared helpers from sidreasoner.runs: {sorted(users)}"


def test_pending_imports_still_exist():
    gone = {(m, t) for m, t in PENDING if t not in {e[0] for e in ALL_EDGES.get(m, [])}}
    assert not gone, f"remove from PENDING: {gone}"


def test_the_rules_see_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b", "c")]
    assert _circles({"a": {"b"}, "b": set()}) == []
