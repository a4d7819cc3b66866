"""A throwaway repository to run the difftool in.

``git difftool --dir-diff`` writes both sides into temporary folders with
git's checkout machinery, which applies the filter drivers that
``.gitattributes`` names, and the sandbox controls ``.gitattributes``. So the
difftool runs in an empty repository that borrows the host's objects
(alternates: nothing is copied) and whose configuration holds only your
difftool settings: no filter driver, hook, fsmonitor or textconv exists
there to be named. Your own repository and working tree are never touched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from git_airlock.gitcmd import Git
from git_airlock.process import run, scrubbed_env

DIFFTOOL_KEYS = r"^(difftool\..*|diff\.tool|diff\.guitool|mergetool\..*|merge\.tool|merge\.guitool)$"


def difftool_settings(repo_root: str) -> list[tuple[str, str]]:
    """The user's difftool configuration (all scopes), to carry into the review repository."""
    return Git(repo_root, safe=False).config_entries(DIFFTOOL_KEYS)


@contextmanager
def review_repository(
    repo_root: str, common_dir: str, extra: list[tuple[str, str]]
) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield ``(path, environment)`` of a scratch repository sharing the host's objects."""
    with tempfile.TemporaryDirectory(prefix="git-airlock-review-") as scratch:
        repo = os.path.join(scratch, "repo")
        config = os.path.join(scratch, "gitconfig")
        env = scrubbed_env({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": config})
        with open(config, "w", encoding="utf-8"):
            pass
        run(["git", "init", "-q", repo], env=env)
        alternates = os.path.join(repo, ".git", "objects", "info", "alternates")
        with open(alternates, "w", encoding="utf-8") as handle:
            handle.write(os.path.join(os.path.abspath(common_dir), "objects") + "\n")
        for key, value in [*difftool_settings(repo_root), *extra]:
            run(["git", "config", "--file", config, "--add", key, value], env=env)
        yield repo, env
