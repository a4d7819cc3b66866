"""The host's work on the agent's clone, each piece inside a sandbox that sees only that clone.

Every file of the clone is the agent's, ``.git`` included: alternates that name
another repository's objects, refs that are symlinks to another repository's
refs, a reflog that is a symlink to ``~/.bashrc``. Run with the user's
authority, ``git upload-pack`` (behind a fetch) would follow the first two
and hand another repository's history to the host; ``git commit`` would
append to the third. No list of checked files covers every trick, so the
rule is structural: whatever the host runs over the clone runs in a bwrap
sandbox (``confine``) that sees the system, the host repository read-only
(the clone borrows its objects) and the clone, and nothing else: no HOME,
no network, no other repository. A link there can only lead to something
the agent could read anyway. A ``commondir`` file, which would point git at
refs and a configuration of the agent's choosing (filters, a GPG program),
makes every one of them refuse, checked inside the sandbox.

- fetch: the host's ``git fetch`` starts ``git upload-pack`` through
  :func:`upload_pack_command` (``--upload-pack``), read-only;
- ``status``/``fetch`` warnings: :func:`uncommitted`, read-only;
- ``git airlock commit``: :func:`commit_steps`, read-write;
- ``git airlock save`` and ``rm``: :func:`script_argv`, the working tree read-only and ``.git``
  writable, so a snapshot can be taken while the agent runs.
"""

from __future__ import annotations

import os
import shlex

from git_airlock import process
from git_airlock.engines.bwrap import confine, overlay, userns
from git_airlock.engines.bwrap.layout import Paths, SandboxMeta
from git_airlock.errors import AirlockError
from git_airlock.gitcmd import NO_SUBMODULES
from git_airlock.plan import Step

SOURCE = "/run/sandbox/source"
TOOL_TMP_SIZE = 64 * 1024 * 1024
_GIT_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}
_NO_CODE = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")


def workspace(repo: str) -> str:
    """The clone's path inside every sandbox: ``/workspace/<the repository's folder name>``."""
    return f"/workspace/{os.path.basename(repo.rstrip('/')) or 'repo'}"


def mounts(
    paths: Paths, meta: SandboxMeta, repo: str, *, writable: bool, git_writable: bool | None = None
) -> list[str]:
    """The host repository read-only (its own path, which the clone's alternates name) and the clone:
    its working tree writable when ``writable``, its ``.git`` when ``git_writable`` (default: the same).

    The clone's ``.git/config`` is read-only even where the rest is writable: the agent's git
    settings would otherwise follow the clone into every later host-side step.
    """
    tree = paths.merged if meta.get("layout") == "overlay" else paths.clone
    inside = workspace(repo)
    return [
        *host_repository(repo, repository_source(paths, repo, userns.from_meta(meta))),
        "--bind" if writable else "--ro-bind",
        tree,
        inside,
        "--bind" if (writable if git_writable is None else git_writable) else "--ro-bind",
        paths.git_dir,
        f"{inside}/.git",
        "--ro-bind",
        os.path.join(paths.git_dir, "config"),
        f"{inside}/.git/config",
    ]


def repository_source(paths: Paths, repo: str, ids: userns.IdMap | None) -> str:
    """Where bwrap binds the host repository from: for root, a read-only view of it in which its files
    belong to the sandbox's root (root's repository may be a folder only root may enter), else itself."""
    return paths.repo_view if ids and ids.root else repo


def repository_view(paths: Paths, repo: str, ids: userns.IdMap) -> dict[str, list[list[str]]]:
    """``enter.py``'s mount of that view (nothing where the repository is the user's own)."""
    return {"views": [[repo, paths.repo_view]]} if ids.root and repo else {}


def host_repository(repo: str, source: str) -> list[str]:
    """The host repository (bound from ``source``), read-only at its own path (the clone's alternates name
    its objects), with its ``.git/config`` hidden: it may hold credentials (``http.*.extraheader``, a
    remote's URL with a token), and code that runs here comes from the agent's clone."""
    mounts = ["--ro-bind", source, repo]
    if os.path.isfile(os.path.join(repo, ".git", "config")):
        mounts += ["--ro-bind", "/dev/null", os.path.join(repo, ".git", "config")]
    return mounts


def _environment(env: dict[str, str]) -> list[str]:
    argv = ["--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return argv


REFUSE_PLANTED = (
    'if [ -e "$d/commondir" ] || [ -L "$d/commondir" ]; then '
    'echo "git-airlock: the agent planted $d/commondir (it points git elsewhere); not reading the clone" >&2; '
    "exit 1; fi; "
)
"""A ``commondir`` file makes git read refs and configuration from where it points; in a clone it
can only have been planted. Checked inside the sandbox, which sees nothing it could point to anyway."""


def _tool_argv(paths: Paths, meta: SandboxMeta, git_args: list[str], *, writable: bool) -> list[str]:
    """git over the clone's working tree in a sandbox of its own (through the overlay, when there is one)."""
    return _shell_argv(paths, meta, 'exec git "$@"', ["git", *_NO_CODE, *git_args], writable=writable)


def _shell_argv(
    paths: Paths, meta: SandboxMeta, script: str, args: list[str], *, writable: bool, git_writable: bool | None = None
) -> list[str]:
    """``sh -c script`` over the clone in a sandbox of its own, in the working tree with git pointed at the
    clone's ``.git``; ``args`` become ``$0 $1 ...``. A planted ``commondir`` stops it before ``script`` runs."""
    repo = meta.get("repo", "")
    inside = workspace(repo)
    # GIT_COMMON_DIR: a ``commondir`` the agent plants after the check below cannot point git at a
    # configuration of its choosing (filters that would run here); git takes the variable over the file
    env = {**_GIT_ENV, "GIT_DIR": f"{inside}/.git", "GIT_COMMON_DIR": f"{inside}/.git", "GIT_WORK_TREE": inside}
    bwrap = [
        *confine.namespaces(network=False, terminal=False),
        *confine.system(paths),
        *confine.scratch(TOOL_TMP_SIZE, None),
        *mounts(paths, meta, repo, writable=writable, git_writable=git_writable),
        "--chdir",
        inside,
        *_environment(env),
        "--",
        "sh",
        "-c",
        f"d=.git; {REFUSE_PLANTED}{script}",
        *args,
    ]
    ids = userns.of_sandbox(meta)
    tree = overlay.mounts(paths, meta, ids, read_only=not writable)
    return confine.entered(ids, overlay.combine(repository_view(paths, repo, ids), tree), bwrap)


def script_argv(paths: Paths, script: str, args: list[str]) -> list[str]:
    """``sh -c script`` over the clone with its working tree read-only and its ``.git`` writable: what
    a snapshot of the agent's uncommitted work needs, without stopping the agent or touching its files."""
    return _shell_argv(paths, paths.read_meta(), script, ["sh", *args], writable=False, git_writable=True)


def uncommitted(paths: Paths) -> list[str]:
    """Changed paths in the clone's working tree (the agent's work not committed yet)."""
    from git_airlock.engines.bwrap.start import prepare_host_side

    meta = paths.read_meta()
    prepare_host_side(paths)
    argv = _tool_argv(
        paths,
        meta,
        ["--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=all"],
        writable=False,
    )
    proc = process.run(argv, check=False)
    if proc.returncode != 0:
        raise AirlockError(
            f"could not look at sandbox {paths.name}'s working tree: {proc.stderr.strip()}",
            hint="`git airlock shell` shows it as the agent sees it; `git airlock rm` removes the sandbox",
        )
    return [entry[3:] for entry in proc.stdout.split("\0") if len(entry) > 3]


ADD_ALL = (
    'g() { git -c core.fsmonitor=false -c core.hooksPath=/dev/null -c diff.ignoreSubmodules=all "$@"; }; '
    f"{{ printf '.\\0'; {NO_SUBMODULES}; }} | g add --all --pathspec-from-file=- --pathspec-file-nul"
)
"""``git add --all``, submodules left out (see ``gitcmd.NO_SUBMODULES``)."""


def commit_steps(paths: Paths, message: str) -> list[Step]:
    """``git add --all`` and ``git commit`` in the clone, as the sandbox user, without hooks."""
    meta = paths.read_meta()
    return [
        Step(tuple(_shell_argv(paths, meta, ADD_ALL, ["sh"], writable=True))),
        Step(tuple(_tool_argv(paths, meta, ["commit", "--quiet", "--no-verify", "-m", message], writable=True))),
    ]


SERVE = (
    f'd=$1; [ -d "$d/.git" ] && d=$d/.git; {REFUSE_PLANTED}'
    'GIT_COMMON_DIR=$(cd "$d" && pwd); export GIT_COMMON_DIR; exec git upload-pack --strict "$d"'
)
"""Inside the upload-pack sandbox: serve the git directory git named (the clone's, or a submodule's
under its ``.git/modules``)."""


def upload_pack_command(paths: Paths, repo: str, ids: userns.IdMap) -> str:
    """The shell command a host-side ``git fetch`` runs (``--upload-pack``) to read the clone.

    git appends the path it fetches from, quoted, and runs the line with ``sh``. The sandbox sees
    the clone's ``.git`` read-only at that same path and the host repository read-only, so an
    alternate or a symlinked ref that points anywhere else points at nothing. The protocol
    version git asks for (``GIT_PROTOCOL``) is passed in, since bwrap clears the environment.
    """
    bwrap = [
        *confine.namespaces(network=False, terminal=False),
        *confine.system(paths),
        *confine.scratch(TOOL_TMP_SIZE, None),
        *host_repository(repo, repository_source(paths, repo, ids)),
        "--ro-bind",
        paths.git_dir,
        paths.git_dir,
        *_environment(_GIT_ENV),
    ]
    start = confine.entered(ids, repository_view(paths, repo, ids), bwrap)
    line = shlex.join(start) + ' --setenv GIT_PROTOCOL "${GIT_PROTOCOL:-}" -- '
    return line + shlex.join(["sh", "-c", SERVE, "upload-pack"])


def refusal(what: str) -> str:
    """A command for a remote's ``receivepack``: git runs it in place of the real one."""
    message = f"git-airlock: {what}; the agent reads your repository at {SOURCE} (read-only)"
    return shlex.join(["sh", "-c", f"echo {shlex.quote(message)} >&2; exit 1"])


def remote_settings(remote: str, paths: Paths, repo: str, ids: userns.IdMap) -> dict[str, str]:
    """The host repository's settings for the sandbox's remote, so that no git command reads or writes
    the clone with the user's authority: a fetch (``git fetch``, ``pull``, ``ls-remote``) goes through
    the upload-pack sandbox; a push would run ``git receive-pack`` there, and with it the agent's hooks,
    so it is refused; ``git fetch --all`` leaves the remote alone. (``git archive --remote`` has no such
    setting: README says not to run git on a sandbox's clone by hand.)"""
    return {
        f"remote.{remote}.uploadpack": upload_pack_command(paths, repo, ids),
        f"remote.{remote}.receivepack": refusal("a sandbox's clone takes no push (its hooks are the agent's)"),
        f"remote.{remote}.skipFetchAll": "true",
    }
