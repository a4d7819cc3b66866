"""The engine contract is whole: commands call the engine's methods and never ask which engine they hold.

Each engine subclasses the abstract :class:`Engine`; what an engine may lack has a default there. So
outside ``git_airlock/engines/`` no code compares engine names, probes an engine for a method, or
imports an engine's internals.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from git_airlock.engines.base import Engine
from git_airlock.engines.bwrap import BwrapEngine
from git_airlock.engines.sbx import SbxEngine

PACKAGE = Path(__file__).resolve().parent.parent / "git_airlock"
ASKING = re.compile(
    r"""engine(?:\.name)?\s*[!=]=\s*["'](?:sbx|bwrap)|getattr\(\s*(?:app\.)?engine|hasattr\(\s*(?:app\.)?engine"""
    r"""|from git_airlock\.engines\.(?:bwrap|sbx)|import git_airlock\.engines\.(?:bwrap|sbx)"""
)


def test_nothing_outside_the_engines_asks_which_engine_it_has() -> None:
    asking = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if "engines" not in path.relative_to(PACKAGE).parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ASKING.search(line)
    ]
    assert asking == []


@pytest.mark.parametrize("engine", [SbxEngine, BwrapEngine])
def test_each_engine_fulfils_the_whole_contract(engine: type[Engine]) -> None:
    assert issubclass(engine, Engine)
    assert not engine.__abstractmethods__
    assert engine.name and engine.install_hint


def test_an_engine_missing_a_required_operation_cannot_be_made() -> None:
    class Half(Engine):
        name = "half"
        install_hint = ""

    with pytest.raises(TypeError, match="abstract"):
        Half()  # type: ignore[abstract]
