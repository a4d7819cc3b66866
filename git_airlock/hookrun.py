"""The pre-push check: flag pushed commits that are unreviewed sandbox commits.

Runs on every push, so it imports neither click nor pygit2 and asks git only
what it must: one ``for-each-ref`` when there are no sandboxes at all, a few
``rev-list`` calls otherwise. Rewritten copies (rebase, cherry-pick, amended
metadata) are caught by patch id.

Modes (``git config airlock.prePush``): ``warn`` (default) prints and lets the
push through, ``block`` refuses it, ``off`` skips the check.
``GIT_AIRLOCK_SKIP=1`` skips it for one push; ``git push --no-verify`` skips
every hook. A foreign pre-push hook kept at install time runs afterwards with
the same arguments and input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from git_airlock import ledger
from git_airlock.gitcmd import Git
from git_airlock.terminal import sanitize_line

ZERO = "0" * 40
MODES = ("warn", "block", "off")
SHOWN = 5
LEGACY_SUFFIX = ".legacy"


@dataclass(frozen=True)
class Update:
    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str


def parse_updates(text: str) -> list[Update]:
    """git's pre-push input, deletions skipped."""
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and set(parts[1]) != {"0"}:
            updates.append(Update(*parts))
    return updates


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def find_flagged(git: Git, updates: list[Update], remote: str) -> dict[Update, list[tuple[str, str]]]:
    """For each update, ``(commit, sandbox)`` pairs of unreviewed sandbox commits it pushes."""
    view = ledger.read(git)
    if not view.sandboxes:
        return {}
    owner: dict[str, str] = {}
    for name in view.sandboxes:
        for oid in ledger.unreviewed(git, view, name):
            owner.setdefault(oid, name)
    if not owner:
        return {}
    bases = sorted({s.base for s in view.sandboxes.values() if s.base})
    reviewed = view.reviewed_ids()
    flagged: dict[Update, list[tuple[str, str]]] = {}
    unreviewed_pids: dict[str, str] | None = None
    for update in updates:
        exclude = [] if set(update.remote_sha) == {"0"} else [f"^{update.remote_sha}"]
        known_remote = ["--not", f"--remotes={remote}"] if remote and "/" not in remote and ":" not in remote else []
        pushed = git.run("rev-list", update.local_sha, *exclude, *known_remote).split()
        hits = [(oid, owner[oid]) for oid in pushed if oid in owner]
        # rewritten copies: new commits (not from before any sandbox, not reviewed) with a known patch
        rest = set(pushed) - set(owner)
        if rest and bases:
            rest &= set(git.rev_list([update.local_sha], [*bases, *reviewed, *(e[1:] for e in exclude)]))
        if rest:
            if unreviewed_pids is None:
                by_pid = ledger.patch_ids(git, sorted(owner), cache=True)
                unreviewed_pids = {pid: oid for oid, pid in by_pid.items()}
            for oid, pid in ledger.patch_ids(git, sorted(rest), cache=True).items():
                if pid in unreviewed_pids:
                    hits.append((oid, owner[unreviewed_pids[pid]]))
        if hits:
            order = {oid: i for i, oid in enumerate(reversed(pushed))}
            flagged[update] = sorted(hits, key=lambda hit: order.get(hit[0], 0))
    return flagged


def report(git: Git, flagged: dict[Update, list[tuple[str, str]]], mode: str) -> None:
    from git_airlock.commitinfo import describe

    for update, hits in flagged.items():
        _say(
            f"git-airlock: {len(hits)} unreviewed sandbox commit(s) in this push of "
            f"{sanitize_line(update.local_ref)} -> {sanitize_line(update.remote_ref)}:"
        )
        details = {d.id: d for d in describe(git, [oid for oid, _ in hits])}
        for oid, sandbox in hits[:SHOWN]:
            detail = details.get(oid)
            subject = sanitize_line(detail.subject) if detail else ""
            _say(f"  {oid[:10]} {subject}  (sandbox {sanitize_line(sandbox)})")
        if len(hits) > SHOWN:
            _say(f"  ... and {len(hits) - SHOWN} more")
        for oid, _ in hits:
            detail = details.get(oid)
            for path, why in detail.host_code if detail else []:
                _say(f"  ! {oid[:10]} changes {sanitize_line(path)}: {why}")
    _say("hint: review them first: `git airlock review` (then push again)")
    if mode == "block":
        _say("hint: push refused (airlock.prePush=block); GIT_AIRLOCK_SKIP=1 git push overrides it once")
    else:
        _say("hint: `git config airlock.prePush block` refuses such pushes")


def chain_legacy(hook_path: str, args: list[str], stdin: bytes) -> int:
    """Run the foreign hook kept at install time, with the same arguments and input."""
    legacy = hook_path + LEGACY_SUFFIX
    if not os.access(legacy, os.X_OK):
        return 0
    return subprocess.run([legacy, *args], input=stdin).returncode


def check(git: Git, updates: list[Update], remote: str) -> int:
    """The check alone: 0 to let the push through, 1 to refuse it."""
    mode = (git.config("airlock.prePush") or "warn").lower()
    if mode not in MODES:
        _say(f"git-airlock: unknown airlock.prePush value {mode!r}; using 'warn'")
        mode = "warn"
    if mode == "off" or os.environ.get("GIT_AIRLOCK_SKIP") == "1" or not updates:
        return 0
    try:
        flagged = find_flagged(git, updates, remote)
    except Exception as exc:  # the hook must never crash a push with a traceback
        _say(f"git-airlock: the pre-push check could not run: {exc}")
        return 1 if mode == "block" else 0
    if not flagged:
        return 0
    report(git, flagged, mode)
    return 1 if mode == "block" else 0


def pre_push(args: list[str]) -> int:
    """``git-airlock hook-impl pre-push <remote> <url>`` as git's pre-push hook."""
    stdin = sys.stdin.buffer.read()
    git = Git(os.getcwd())
    remote = args[0] if args else ""
    status = check(git, parse_updates(stdin.decode("utf-8", "replace")), remote)
    if status != 0:
        return status
    hook_path = os.environ.get("GIT_AIRLOCK_HOOK_PATH", "")
    return chain_legacy(hook_path, args, stdin) if hook_path else 0


def pre_commit_framework() -> int:
    """The same check run by pre-commit (stage pre-push), which passes refs in its environment."""
    to_ref = os.environ.get("PRE_COMMIT_TO_REF", "")
    from_ref = os.environ.get("PRE_COMMIT_FROM_REF", "") or ZERO
    if not to_ref:
        _say("git-airlock: no PRE_COMMIT_TO_REF; run this hook at the pre-push stage")
        return 0
    git = Git(os.getcwd())
    update = Update(
        os.environ.get("PRE_COMMIT_LOCAL_BRANCH", to_ref),
        to_ref,
        os.environ.get("PRE_COMMIT_REMOTE_BRANCH", ""),
        from_ref,
    )
    return check(git, [update], os.environ.get("PRE_COMMIT_REMOTE_NAME", ""))


def main(argv: list[str]) -> int:
    if argv[:1] == ["pre-push"]:
        return pre_push(argv[1:])
    if argv[:1] == ["pre-commit-pre-push"]:
        return pre_commit_framework()
    _say("usage: git-airlock hook-impl pre-push <remote> <url>  |  hook-impl pre-commit-pre-push")
    return 2
