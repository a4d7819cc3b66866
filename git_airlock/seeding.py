"""``--seed-config``: which of the agent's user-level files may enter a sandbox.

Only instruction files (CLAUDE.md, AGENTS.md, custom commands and agents) are
copied. Anything whose name suggests a credential, token, session, log,
history or cache is left out, even inside an allowed folder: a sandbox must
never receive a secret by accident.
"""

from __future__ import annotations

import os
import re

from git_airlock.agents import Agent
from git_airlock.engines.base import SeedFile

_SENSITIVE = re.compile(
    r"(cred|token|secret|session|auth|oauth|cookie|passw|apikey|api[-_]key|\.key$|\.pem$|\.p12$"
    r"|\.env|log|histor|cache|\.db$|\.sqlite|statsig|telemetry|\.lock$)",
    re.IGNORECASE,
)
MAX_FILES = 500


def is_sensitive(relative: str) -> bool:
    return any(_SENSITIVE.search(part) for part in relative.split("/"))


def seed_files(
    agent: Agent, home: str, sandbox_home: str, extra: tuple[str, ...] = (), agent_files: bool = True
) -> list[SeedFile]:
    """Files under ``home`` to copy for ``agent`` (its instruction files, with ``agent_files``) and the
    user's ``extra`` paths (``SEED_PATHS``, relative to ``home``), each mapped to the same place under
    ``sandbox_home``. A path that leaves ``home`` is skipped like a link."""
    found: list[SeedFile] = []
    entries = [*(agent.seed_files if agent_files else ()), *extra]
    for given in entries:
        entry = os.path.relpath(os.path.normpath(os.path.join(home, os.path.expanduser(given))), home)
        if entry.startswith(".."):
            continue
        path = os.path.join(home, entry)
        if os.path.islink(path) or is_sensitive(entry):
            continue
        if os.path.isfile(path):
            found.append(SeedFile(path, f"{sandbox_home}/{entry}"))
        elif os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not is_sensitive(d) and not d.startswith("."))
                for name in sorted(files):
                    full = os.path.join(folder, name)
                    relative = os.path.relpath(full, home)
                    if os.path.islink(full) or is_sensitive(relative):
                        continue
                    found.append(SeedFile(full, f"{sandbox_home}/{relative}"))
    return found[:MAX_FILES]
