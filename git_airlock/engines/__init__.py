"""Sandbox engines: each turns sandbox operations into Plans of commands."""

from __future__ import annotations

import platform
import shutil
from collections.abc import Callable

from git_airlock.engines.base import Engine
from git_airlock.errors import AirlockError
from git_airlock.modes import EngineChoice

ENGINES = ("sbx", "bwrap")


def choose_engine(setting: EngineChoice) -> tuple[str, str]:
    """The engine to use and why: an explicit setting (checked when settings load), else sbx where
    installed, else bwrap on Linux."""
    if setting != "auto":
        return setting, "chosen by configuration"
    if shutil.which("sbx"):
        return "sbx", "sbx is installed"
    if platform.system() == "Linux" and shutil.which("bwrap"):
        return "bwrap", "sbx is not installed; bubblewrap is"
    return "sbx", "no engine is installed (sbx is the default)"


def get_engine(name: str, common_dir: str | None = None) -> Engine:
    """The engine called ``name``; imported on demand to keep start-up lean.

    ``common_dir``: the repository the invocation works on, whose sandboxes alone it may touch.
    """
    if name == "sbx":
        from git_airlock.engines.sbx import SbxEngine

        return SbxEngine()
    if name == "bwrap":
        from git_airlock.engines.bwrap import BwrapEngine

        return BwrapEngine(common_dir)
    raise AirlockError(f"unknown engine {name!r}", hint="available engines: " + ", ".join(ENGINES))


def verify_merge(repo_root: str, commit: str, command: str, tmp_size: int, show: Callable[[str], None]) -> int:
    """``merge --verify``: ``command`` on the tree of ``commit`` in a network-less bubblewrap sandbox,
    whichever engine runs the agents (see :mod:`git_airlock.engines.bwrap.verify`); its exit status."""
    from git_airlock.engines.bwrap.verify import check_merge

    return check_merge(repo_root, commit, command, tmp_size, show)
