"""A pipeline step's command line read by the entry point it calls: ``parse_step(step)`` runs that entry
point's own ``main(argv)`` in this process up to its ``parse_args`` and returns the Namespace it parsed, so
a misspelt flag or a value of the wrong type fails as the step itself would (argparse's exit 2, its message
kept in the assertion). Nothing after the parse runs: no model is loaded, nothing is written."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import sys
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]


class _Parsed(Exception):
    def __init__(self, args: argparse.Namespace):
        super().__init__("parsed")
        self.namespace = args


def entry_main(cmd: list):
    """(the ``main`` of the program a step runs, its argv): ``python -m module ...`` or ``python path.py ...``."""
    assert str(cmd[0]) == sys.executable, f"not a Python entry point of this interpreter: {cmd[:2]}"
    if cmd[1] == "-m":
        name = cmd[2] + (".__main__" if importlib.util.find_spec(cmd[2]).submodule_search_locations else "")
        return importlib.import_module(name).main, [str(c) for c in cmd[3:]]
    path = REPO / cmd[1]
    spec = importlib.util.spec_from_file_location(f"_entry_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)  # its `if __name__ == "__main__"` does not run
    return module.main, [str(c) for c in cmd[2:]]


def parse_step(step) -> argparse.Namespace:
    """The flags of ``step.cmd`` as its entry point parses them (AssertionError with argparse's message when it
    refuses them)."""
    main, argv = entry_main(step.cmd)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser, args=None, namespace=None):
        raise _Parsed(original(parser, args, namespace))

    err = io.StringIO()
    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except _Parsed as done:
            return done.namespace
        except SystemExit as e:
            said = (err.getvalue().strip().splitlines() or ["(nothing on stderr)"])[-1]  # argparse: the error last
            raise AssertionError(f"{step.name}: {step.cmd[1]} refuses its flags (exit {e.code}): {said}") from None
    raise AssertionError(f"{step.name}: {step.cmd[1]} returned without parsing its flags")


def flag(step, name: str) -> str:
    """The text after ``--name`` in the step's command line."""
    cmd = [str(c) for c in step.cmd]
    return cmd[cmd.index(f"--{name}") + 1]
