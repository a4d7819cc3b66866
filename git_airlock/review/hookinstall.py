"""Install, uninstall and inspect the pre-push hook (pre-commit's model).

Our script carries a marker line, so it is never mistaken for somebody
else's. A foreign pre-push hook already in place is renamed to
``pre-push.legacy`` and chained (same arguments, same input), and put back on
uninstall. The hooks directory is git's own answer (``git rev-parse
--git-path hooks``), so worktrees share the common directory's hooks; a
``core.hooksPath`` is respected and only written to when asked.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from git_airlock.errors import AirlockError
from git_airlock.gitcmd import Git

MARKER = "git-airlock-hook-v1"
HOOK = "pre-push"
LEGACY = HOOK + ".legacy"

SCRIPT = """\
#!/bin/sh
# git-airlock pre-push hook (git-airlock-hook-v1)
# Warns about (or refuses) pushes that carry sandbox commits nobody reviewed.
# Installed by `git airlock hooks install`; a pre-push hook that was here before
# is kept as pre-push.legacy and runs after this check with the same input.
hook="$0"
if command -v git-airlock >/dev/null 2>&1; then
    GIT_AIRLOCK_HOOK_PATH="$hook" exec git-airlock hook-impl pre-push "$@"
fi
echo "git-airlock: not installed any more, so this push was not checked." >&2
echo "git-airlock: reinstall it, or remove this hook: $hook" >&2
if [ -x "$hook.legacy" ]; then
    exec "$hook.legacy" "$@"
fi
exit 0
"""


@dataclass(frozen=True)
class HookState:
    directory: str
    hooks_path_config: str | None
    installed: bool
    foreign: bool
    """A pre-push hook that is not ours is in place."""
    legacy: bool


def is_ours(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return MARKER in handle.read(4096)
    except OSError:
        return False


def hooks_dir(git: Git, use_hooks_path: bool) -> tuple[str, str | None]:
    """The directory git runs hooks from, and core.hooksPath if set."""
    configured = git.config("core.hooksPath")
    if configured and not use_hooks_path:
        raise AirlockError(
            f"core.hooksPath is set ({configured}): git runs hooks from there, not from .git/hooks",
            hint="install there with `git airlock hooks install --hooks-path`, "
            'or add `git-airlock hook-impl pre-push "$@"` to your hook manager',
        )
    path = git.run("rev-parse", "--path-format=absolute", "--git-path", "hooks").strip()
    return path, configured


def state(git: Git) -> HookState:
    configured = git.config("core.hooksPath")
    directory = git.run("rev-parse", "--path-format=absolute", "--git-path", "hooks").strip()
    hook = os.path.join(directory, HOOK)
    ours = is_ours(hook)
    return HookState(
        directory,
        configured,
        ours,
        os.path.lexists(hook) and not ours,
        os.path.lexists(os.path.join(directory, LEGACY)),
    )


def install(git: Git, use_hooks_path: bool = False) -> str:
    """Install (idempotently); returns what happened, for the user."""
    directory, _ = hooks_dir(git, use_hooks_path)
    hook = os.path.join(directory, HOOK)
    legacy = os.path.join(directory, LEGACY)
    os.makedirs(directory, exist_ok=True)
    note = ""
    if os.path.lexists(hook) and not is_ours(hook):
        if os.path.lexists(legacy):
            raise AirlockError(
                f"both {hook} and {legacy} exist, and neither is git-airlock's",
                hint=f"merge them into one hook, remove {legacy}, then install again",
            )
        os.rename(hook, legacy)
        note = f" (your existing hook was kept as {LEGACY} and runs after the check)"
    elif is_ours(hook):
        with open(hook, encoding="utf-8") as handle:
            if handle.read() == SCRIPT:
                return f"already installed in {directory}"
    tmp = hook + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(SCRIPT)
    os.chmod(tmp, os.stat(tmp).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, hook)
    return f"installed {hook}{note}"


def uninstall(git: Git) -> str:
    directory = git.run("rev-parse", "--path-format=absolute", "--git-path", "hooks").strip()
    hook = os.path.join(directory, HOOK)
    legacy = os.path.join(directory, LEGACY)
    if not is_ours(hook):
        return f"no git-airlock hook in {directory}; nothing removed"
    os.remove(hook)
    if os.path.lexists(legacy):
        os.rename(legacy, hook)
        return f"removed the git-airlock hook and restored your previous {HOOK} hook"
    return f"removed {hook}"
