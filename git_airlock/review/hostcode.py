"""Files that can make the host run code: they deserve a louder review.

A sandbox cannot run anything on the host by itself, but some files do run
when a person merges them and goes on working: git attributes (filter
drivers) and submodules, hook managers, direnv, editor tasks, CI, package
manager scripts and build hooks, Makefiles, and anything made executable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

EXACT_NAMES = {
    ".gitattributes": "git attributes can name filter and diff drivers",
    ".gitmodules": "submodule URLs and update commands",
    ".envrc": "direnv runs it when you cd into the repository",
    "sandbox.conf": "git-airlock settings for the next sandboxes (agent, names, review tool)",
    ".pre-commit-config.yaml": "pre-commit runs the hooks it names",
    "lefthook.yml": "lefthook runs the hooks it names",
    ".lefthook.yml": "lefthook runs the hooks it names",
    "Makefile": "make runs it",
    "makefile": "make runs it",
    "GNUmakefile": "make runs it",
    "justfile": "just runs it",
    "Justfile": "just runs it",
    "Taskfile.yml": "task runs it",
    "setup.py": "pip runs it to build the package",
    "build.rs": "cargo runs it at build time",
    ".npmrc": "npm configuration (scripts, registries)",
    ".yarnrc": "yarn configuration",
    ".yarnrc.yml": "yarn configuration (yarnPath runs code)",
    ".pnpmfile.cjs": "pnpm runs it on install",
    "Jenkinsfile": "CI pipeline",
    ".gitlab-ci.yml": "CI pipeline",
    ".travis.yml": "CI pipeline",
    "azure-pipelines.yml": "CI pipeline",
    "bitbucket-pipelines.yml": "CI pipeline",
}
DIRECTORIES = {
    ".githooks/": "git hooks",
    ".husky/": "git hooks (husky)",
    ".vscode/": "editor tasks and settings run commands",
    ".idea/": "IDE run configurations",
    ".devcontainer/": "dev container build and start commands",
    ".github/workflows/": "CI workflows",
    ".github/actions/": "CI actions",
    ".circleci/": "CI pipeline",
    ".buildkite/": "CI pipeline",
}
EXECUTABLE_MODE = "100755"
_BUILD_SECTIONS = re.compile(r"^\s*\[(build-system|tool\.[^\]]*hooks[^\]]*)\]", re.MULTILINE)


def path_reason(path: str, new_mode: str, old_mode: str) -> str | None:
    """Why ``path`` (changed from ``old_mode`` to ``new_mode``) can run code on the host, or None."""
    name = path.rsplit("/", 1)[-1]
    if name in EXACT_NAMES:
        return EXACT_NAMES[name]
    if name.endswith(".mk"):
        return "make runs it"
    for prefix, reason in DIRECTORIES.items():
        if path.startswith(prefix) or f"/{prefix}" in f"/{path}":
            return reason
    if new_mode == EXECUTABLE_MODE and old_mode != EXECUTABLE_MODE:
        return "made executable"
    return None


def _package_scripts(text: str | None) -> object:
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return "unparsable"
    return {key: data.get(key) for key in ("scripts", "bin", "gypfile")} if isinstance(data, dict) else None


def _build_sections(text: str | None) -> list[str]:
    if not text:
        return []
    sections = []
    for match in _BUILD_SECTIONS.finditer(text):
        rest = text[match.start() :]
        end = re.search(r"^\s*\[", rest[1:], re.MULTILINE)
        sections.append(rest[: end.start() + 1] if end else rest)
    return sections


def content_reason(path: str, old: Callable[[], str | None], new: Callable[[], str | None]) -> str | None:
    """Reasons that need the file's content: package.json scripts, pyproject build hooks."""
    name = path.rsplit("/", 1)[-1]
    if name == "package.json" and _package_scripts(old()) != _package_scripts(new()):
        return "package.json scripts run on npm install / npm test"
    if name == "pyproject.toml" and _build_sections(old()) != _build_sections(new()):
        return "build backend or build hooks run on pip install"
    return None
