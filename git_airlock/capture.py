"""Keeping what the agent left but never committed: the work a fetch does not bring.

A fetch takes the sandbox's branches. What else the agent made lives only in its clone and goes
with it: changed, new and deleted files it never committed, its stashes, a detached HEAD, tags
and other refs. :func:`save` turns all of it into commits and refs, made inside the sandbox (the
clone is the agent's: nothing of it is read with the user's authority), and fetches them into
``refs/airlock/wip/<sandbox>/<UTC time>/``, a host-only namespace the review ledger counts as the
sandbox's unreviewed work:

- ``worktree``: one commit on top of the agent's HEAD (or with no parent on an unborn branch) whose
  tree is the working tree as ``git add --all`` sees it, made with a scratch index, so the agent's
  own index, files and branches stay as they were and a running agent is not disturbed;
- ``head``: the commit of a detached HEAD;
- ``stash/0``, ``stash/1``, ...: every entry of the stash, newest first;
- ``refs/...``: every other ref the fetch refspecs leave out (tags, notes, ...).

Links are stored as links and never followed. Files ignored by the clone's ``.gitignore`` are left
out unless asked for, and files over ``AIRLOCK_SAVE_MAX_FILE_SIZE`` always are: the paths left out
come back in :attr:`Snapshot.left_out`, so that ``rm`` can refuse to lose them silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from git_airlock.app import App
from git_airlock.errors import AirlockError
from git_airlock.gitcmd import NO_SUBMODULES, Git
from git_airlock.process import CommandFailed
from git_airlock.review.ledger import WIP

STAGING = "refs/airlock-capture/"
"""Where the snapshot's refs wait in the clone until the host fetches them."""

_GIT = 'g() { git -c core.fsmonitor=false -c core.hooksPath=/dev/null -c core.untrackedCache=false "$@"; }; '
_DROP_STAGED = f"g for-each-ref --format='delete %(refname)' {STAGING} | g update-ref --stdin; "

SCRIPT = (
    "set -e; "
    + _GIT
    + 'limit=$1; ignored=$2; message=$3; tmp="${TMPDIR:-/tmp}"; '
    + "export GIT_AUTHOR_NAME=git-airlock GIT_AUTHOR_EMAIL=git-airlock@localhost "
    + "GIT_COMMITTER_NAME=git-airlock GIT_COMMITTER_EMAIL=git-airlock@localhost; "
    + 'index="$tmp/airlock-save-index.$$"; big="$tmp/airlock-save-big.$$"; '
    + 'trap \'rm -f "$index" "$big"\' EXIT; '
    + _DROP_STAGED
    + "head=$(g rev-parse -q --verify 'HEAD^{commit}' || true); "
    + 'export GIT_INDEX_FILE="$index"; '
    + 'if [ -n "$head" ]; then g read-tree "$head"; else g read-tree --empty; fi; '
    # files over the limit never reach git: each becomes an exclude pathspec (literal, NUL-separated)
    + 'find . -path ./.git -prune -o -type f -size +"$limit"c -printf \':(exclude,literal)%P\\0\' > "$big"; '
    + 'force=; [ "$ignored" = 1 ] && force=--force; '
    + "{ printf '.\\0'; cat \"$big\"; "
    + NO_SUBMODULES
    + "; } "
    + "| g add --all --ignore-errors $force --pathspec-from-file=- --pathspec-file-nul >/dev/null 2>&1 || true; "
    + "tree=$(g write-tree); "
    + 'if [ -n "$head" ]; then was=$(g rev-parse "$head^{tree}"); else was=$(g mktree </dev/null); fi; '
    + 'if [ "$tree" != "$was" ]; then '
    + '  if [ -n "$head" ]; then c=$(echo "$message" | g commit-tree -p "$head" "$tree"); '
    + '  else c=$(echo "$message" | g commit-tree "$tree"); fi; '
    + f'  g update-ref {STAGING}worktree "$c"; '
    + "fi; "
    + f'if [ -n "$head" ] && ! g symbolic-ref -q HEAD >/dev/null; then g update-ref {STAGING}head "$head"; fi; '
    + "n=0; for s in $(g log -g --no-decorate --format=%H refs/stash -- 2>/dev/null); do "
    + f'  g update-ref "{STAGING}stash/$n" "$s"; n=$((n+1)); done; '
    + "g for-each-ref --format='%(refname)' | while read -r ref; do case $ref in "
    + f"  refs/heads/*|refs/remotes/*|refs/stash|{STAGING}*) ;; "
    + '  *) if c=$(g rev-parse -q --verify "$ref^{commit}"); then '
    + f'g update-ref "{STAGING}refs/${{ref#refs/}}" "$c"; fi ;; '
    + "esac; done; "
    # how many refs it staged, then what it could not hold: NUL-separated on stdout. git keeps no
    # `.git` below the top (a nested repository becomes a bare commit id; a file named .git is dropped)
    + f"printf '%s\\0' \"$(g for-each-ref {STAGING} | wc -l)\"; "
    + "find . -path ./.git -prune -o -name .git -printf '%P\\0'; "
    + "g diff --name-only -z --no-renames; "
    + 'if [ "$ignored" = 1 ]; then g ls-files -z --others; else g ls-files -z --others --exclude-standard; fi'
)
"""Run inside the sandbox, in the clone's working tree: ``$1`` the size limit in bytes, ``$2`` 1 to
include ignored files, ``$3`` the snapshot commit's message."""

CLEAN_UP = "set -e; " + _GIT + _DROP_STAGED
"""Run inside the sandbox after the host fetched the snapshot: the clone keeps no trace of it."""


@dataclass(frozen=True)
class Snapshot:
    """What :func:`save` kept, and where."""

    prefix: str
    """``refs/airlock/wip/<sandbox>/<stamp>/``."""
    refs: dict[str, str]
    """Each ref kept under the prefix, with its object."""
    left_out: tuple[str, ...]
    """Paths that differ from the snapshot: over the size limit, unreadable, or ignored."""

    @property
    def worktree(self) -> str | None:
        ref = self.prefix + "worktree"
        return ref if ref in self.refs else None


def save(app: App, include_ignored: bool = False, clean_up: bool = True) -> Snapshot | None:
    """Keep the agent's uncommitted work and every ref a fetch leaves out (see the module); None in a
    dry run, which shows the commands. ``clean_up`` False leaves the staged refs in the clone (``rm``
    deletes it next anyway)."""
    from git_airlock.fetching import refs_step

    limit = app.settings.save_max_file_size_bytes
    message = f"WIP: what sandbox {app.sandbox} left uncommitted\n\nSaved by git-airlock; the agent did not commit it."
    capture = app.engine.clone_script_plan(app.sandbox, SCRIPT, [str(limit), "1" if include_ignored else "0", message])
    prefix = _free_prefix(app)
    fetch = refs_step(
        app,
        [f"+{STAGING}*:{prefix}*"],
        hint="the snapshot failed git's checks or the sandbox is unreachable; nothing was written to your branches",
    )
    if app.dry_run:
        app.runner.execute(capture)
        app.runner.show(fetch)
        return None
    try:
        result = app.runner.execute(capture)
    except CommandFailed as exc:
        said = exc.detail.strip().splitlines()
        raise AirlockError(
            f"git in the sandbox failed (exit {exc.returncode}): {said[-1] if said else 'no message'}"
        ) from exc
    staged, *paths = result.stdout.split("\0") if result else ("0",)
    left_out = tuple(sorted({path for path in paths if path}))
    if staged.strip() == "0":  # nothing to fetch: a clean clone costs no second sandbox
        return Snapshot(prefix, {}, left_out)
    git = Git(app.location.root)
    try:
        app.runner.run(fetch)
    finally:  # a fetch that failed half-way may have written some refs: they are checked all the same
        kept = _new_work_only(git, prefix)
    if clean_up:
        try:
            app.runner.execute(app.engine.clone_script_plan(app.sandbox, CLEAN_UP, []))
        except AirlockError as exc:  # the snapshot is home; the clone keeps a few refs of no use to anyone
            app.info(f"warning: could not clear the snapshot's refs out of the clone: {exc.message}")
    return Snapshot(prefix, kept, left_out)


def _new_work_only(git: Git, prefix: str) -> dict[str, str]:
    """The refs under ``prefix``, after deleting those that hold nothing new.

    A ref that is not a commit goes (a running agent could stage a blob between the snapshot and
    the fetch, and the ledger walks every ref it counts as a tip), and so does one whose commit your
    own branches, tags or fetched sandbox branches already reach: the clone starts with every tag
    of yours, which must not come back as the sandbox's unreviewed work."""
    out = git.run("for-each-ref", "--format=%(objecttype) %(objectname) %(refname)", prefix)
    found = [line.split(" ", 2) for line in out.splitlines()]
    commits = [oid for kind, oid, _ in found if kind == "commit"]
    new = (
        set(
            git.run(
                "rev-list", "--stdin", "--not", "--branches", "--tags", "--remotes", input="\n".join(commits) + "\n"
            ).split()
        )
        if commits
        else set()
    )
    kept = {ref: oid for kind, oid, ref in found if kind == "commit" and oid in new}
    dropped = [f"delete {ref}\n" for _, _, ref in found if ref not in kept]
    if dropped:
        git.run("update-ref", "--stdin", input="".join(dropped))
    return kept


def _free_prefix(app: App) -> str:
    """``refs/airlock/wip/<sandbox>/<UTC time>/``, with a counter when a second save falls in the same second."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if app.dry_run:
        return f"{WIP}{app.sandbox}/{stamp}/"
    git = Git(app.location.root)
    prefix, count = f"{WIP}{app.sandbox}/{stamp}/", 1
    while git.refs(prefix):
        count += 1
        prefix = f"{WIP}{app.sandbox}/{stamp}.{count}/"
    return prefix


def describe(snapshot: Snapshot) -> list[str]:
    """Lines that say what was kept and how to look at it."""
    if not snapshot.refs:
        return ["nothing uncommitted to keep: the working tree matches the agent's HEAD"]
    lines = []
    if snapshot.worktree:
        lines.append(f"kept the uncommitted work as {snapshot.worktree}")
        lines.append(f"  look: git show --stat {snapshot.worktree}")
    others = sorted(ref[len(snapshot.prefix) :] for ref in snapshot.refs if ref != snapshot.worktree)
    if others:
        lines.append(f"kept what a fetch does not bring under {snapshot.prefix}: {', '.join(others)}")
    return lines


def refuse_left_out(snapshot: Snapshot, app: App) -> AirlockError:
    """The error ``rm`` gives when the snapshot could not hold everything."""
    shown = _paths(snapshot.left_out[:10]) + (" ..." if len(snapshot.left_out) > 10 else "")
    return AirlockError(
        f"nothing was removed: {len(snapshot.left_out)} file(s) could not be kept "
        f"(larger than AIRLOCK_SAVE_MAX_FILE_SIZE={app.settings.save_max_file_size}, or unreadable): {shown}",
        hint="raise AIRLOCK_SAVE_MAX_FILE_SIZE and retry, or `git airlock rm --force` to remove the sandbox "
        "and lose them",
    )


def keep_before_removal(app: App, force: bool, include_ignored: bool = False) -> None:
    """What ``rm`` does before the sandbox goes: save, and refuse to go on if anything would be lost,
    unless ``force``, and then say exactly what is lost."""
    try:
        snapshot = save(app, include_ignored, clean_up=False)
    except AirlockError as exc:
        if not force:
            raise AirlockError(
                f"nothing was removed: the agent's uncommitted work could not be saved: {exc.message}",
                hint="`git airlock shell` to look at the sandbox; `git airlock rm --force` removes it anyway "
                "and loses that work",
            ) from exc
        app.info(f"warning: the agent's uncommitted work could not be saved: {exc.message}")
        app.info(f"warning: lost with the sandbox: {_what_is_lost(app)}")
        return
    if snapshot is None:
        return
    for line in describe(snapshot):
        app.info(line)
    if snapshot.left_out:
        if not force:
            raise refuse_left_out(snapshot, app)
        app.info(f"warning: lost with the sandbox (not saved): {_paths(snapshot.left_out)}")


def _what_is_lost(app: App) -> str:
    """The engine's list of uncommitted paths, where it can still read one; else say it is unknown."""
    try:
        changed = app.engine.uncommitted(app.sandbox)
    except AirlockError:
        changed = []
    if changed:
        return _paths(changed)
    return "whatever the agent left uncommitted (the clone could not be read to list it)"


def _paths(paths: tuple[str, ...] | list[str]) -> str:
    """The agent's file names on one line each, so that a name cannot forge a line of our own."""
    from git_airlock.terminal import sanitize_line

    return ", ".join(sanitize_line(path) for path in paths)
