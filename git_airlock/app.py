"""The per-invocation application object that commands receive (hatch's model).

Everything is computed lazily: ``git airlock config`` never imports pygit2,
``--dry-run`` never looks for sbx, and the repository is located once.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from git_airlock.config import TRUE, Settings, load_settings
from git_airlock.errors import AirlockError
from git_airlock.location import RepoLocation, find_repo, require_repo
from git_airlock.plan import Runner

if TYPE_CHECKING:
    from git_airlock.engines.base import Engine, SandboxState
    from git_airlock.repo import Repo


@dataclass
class App:
    flags: dict[str, str | None] = field(default_factory=dict)
    """Setting overrides from the command line (attr -> value or None)."""
    directory: str | None = None
    dry_run: bool = False
    tmux: bool = False
    tmux_detached: bool = False
    seed_config: bool = False
    debug: bool = False

    def __post_init__(self) -> None:
        # code-airlock's switch: DRY_RUN=1 in the environment is --dry-run
        if os.environ.get("DRY_RUN", "").strip().lower() in TRUE:
            self.dry_run = True

    @property
    def cwd(self) -> str:
        return self.directory or os.environ.get("REPO_DIR") or os.getcwd()

    @cached_property
    def location_or_none(self) -> RepoLocation | None:
        return find_repo(self.cwd)

    @cached_property
    def location(self) -> RepoLocation:
        return self.location_or_none or require_repo(self.cwd)

    @cached_property
    def settings(self) -> Settings:
        location = self.location_or_none
        root = location.root if location else None
        flags = {**self.flags}
        if self.directory:
            flags["repo_dir"] = self.directory
        return load_settings(flags, os.environ, root)

    @cached_property
    def sandbox(self) -> str:
        """The sandbox name: explicit (validated) or derived from the repository."""
        from git_airlock import naming

        explicit = self.settings.sandbox_name
        if explicit:
            problem = naming.sandbox_name_problem(explicit)
            if problem:
                raise AirlockError(
                    problem,
                    hint="sandbox names use letters, digits, '-' and '.', at most 63 characters",
                )
            return explicit
        return naming.default_sandbox_name(os.path.realpath(self.location.main_root))

    @cached_property
    def remote(self) -> str:
        from git_airlock import naming

        return naming.remote_name(self.sandbox)

    @cached_property
    def tmux_session(self) -> str:
        from git_airlock import naming

        return self.settings.tmux_session or naming.tmux_session_name(self.sandbox)

    @cached_property
    def runner(self) -> Runner:
        return Runner(dry_run=self.dry_run)

    @cached_property
    def engine_choice(self) -> tuple[str, str]:
        """(engine name, why it was chosen)."""
        from git_airlock.engines import choose_engine

        return choose_engine(self.settings.engine_choice)

    @cached_property
    def engine(self) -> Engine:
        from git_airlock.engines import get_engine

        location = self.location_or_none
        return get_engine(self.engine_choice[0], location.common_dir if location else None)

    @cached_property
    def repo(self) -> Repo:
        from git_airlock.repo import Repo

        return Repo(self.location)

    def require_engine(self) -> None:
        """Fail clearly when the engine's CLI is missing (not needed for a dry run)."""
        if self.dry_run:
            return
        if self.engine.executable() is None:
            if self.settings.engine == "auto":
                raise AirlockError(
                    "no sandbox engine is installed: neither `sbx` (Docker Sandboxes) nor `bwrap` (bubblewrap)",
                    hint="install Docker Sandboxes (https://docs.docker.com/ai/sandboxes/), or on Linux "
                    "`apt-get install bubblewrap`; `git airlock doctor` checks everything",
                )
            raise AirlockError(f"`{self.engine.name}` is not installed or not on PATH", hint=self.engine.install_hint)

    def sandbox_state(self) -> SandboxState | None:
        """This invocation's sandbox as the engine reports it; None when absent (or in a dry run)."""
        self.require_engine()
        return self.engine.state(self.runner, self.sandbox)

    def require_sandbox(self) -> SandboxState | None:
        """Like :meth:`sandbox_state`, but an absent sandbox is an error (outside dry runs)."""
        state = self.sandbox_state()
        if state is None and not self.dry_run:
            raise AirlockError(
                f"no sandbox named {self.sandbox!r}",
                hint="start one with `git airlock up` (or pick another with --name)",
            )
        return state

    def locked(self, operation: str, sandbox: str | None = None) -> AbstractContextManager[Callable[[], None]]:
        """The lock of ``sandbox`` (default: this one) for ``operation``, yielding what gives it back
        early; nothing to hold in a dry run, which changes nothing."""
        if self.dry_run:
            return contextlib.nullcontext(lambda: None)
        from git_airlock.locks import sandbox_lock

        return sandbox_lock(sandbox or self.sandbox, operation)

    def info(self, message: str) -> None:
        """Progress and advice go to stderr so stdout stays parseable.

        Sanitised here, once for every caller: messages quote ref names, paths
        and git's own error output, all of which the sandbox can shape.
        """
        from git_airlock.terminal import sanitize

        print(sanitize(message), file=sys.stderr)
