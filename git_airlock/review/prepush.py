"""The pre-push check: flag pushed commits that are unreviewed sandbox commits.

Runs on every push, so it imports neither click, pygit2 nor dataclasses and
asks git only what it must: one ``for-each-ref`` when there are no sandboxes,
a few ``rev-list`` calls otherwise. Every walk of the pushed history stops at
a sandbox's own base and reviewed marks, so its cost follows the number of
new commits, not the length of the history. Rewritten copies (rebase,
cherry-pick, reworded amend) are caught by patch id.

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

from git_airlock.gitcmd import Git
from git_airlock.modes import PRE_PUSH_MODES
from git_airlock.review import ledger

ZERO = "0" * 40
SHOWN = 5
LEGACY_SUFFIX = ".legacy"


class Update:
    """One line of git's pre-push input."""

    __slots__ = ("local_ref", "local_sha", "remote_ref", "remote_sha")

    def __init__(self, local_ref: str, local_sha: str, remote_ref: str, remote_sha: str) -> None:
        self.local_ref, self.local_sha = local_ref, local_sha
        self.remote_ref, self.remote_sha = remote_ref, remote_sha

    @property
    def new_branch(self) -> bool:
        return set(self.remote_sha) == {"0"}


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


def _pushed_args(update: Update, remote: str, stop: list[str]) -> list[str]:
    """rev-list arguments for the commits this update sends that are not below ``stop``.

    A new branch is compared with what the remote already has. ``--ignore-missing``:
    the remote's old tip may be a commit this repository never fetched.
    """
    args = ["rev-list", "--ignore-missing", update.local_sha, *(f"^{oid}" for oid in stop)]
    if not update.new_branch:
        args.append(f"^{update.remote_sha}")
    if remote and "/" not in remote and ":" not in remote:
        args += ["--not", f"--remotes={remote}"]
    return args


def find_flagged(
    git: Git, view: ledger.Ledger, updates: list[Update], remote: str
) -> dict[Update, list[tuple[str, str]]]:
    """For each update, ``(commit, sandbox)`` pairs of unreviewed sandbox commits it pushes."""
    owner: dict[str, str] = {}
    stops: dict[tuple[str, ...], None] = {}
    for name, found in ledger.unreviewed_by_sandbox(git, view).items():
        for oid in found:
            owner.setdefault(oid, name)
        if found:
            stops[tuple(view.exclusions(view.sandboxes[name]))] = None
    if not owner:
        return {}
    flagged: dict[Update, list[tuple[str, str]]] = {}
    unreviewed_pids: dict[str, str] | None = None
    for update in updates:
        # a sandbox's unreviewed commits, and copies rewritten on top of the host's
        # history, all lie above that sandbox's base and reviewed marks
        walked: dict[str, None] = {}
        for out in git.run_many([_pushed_args(update, remote, list(stop)) for stop in stops]):
            walked.update(dict.fromkeys(out.split()))
        hits = [(oid, owner[oid]) for oid in walked if oid in owner]
        rest = [oid for oid in walked if oid not in owner]
        if rest:
            if unreviewed_pids is None:
                unreviewed_pids = {pid: oid for oid, pid in ledger.patch_ids(git, sorted(owner), cache=True).items()}
            for oid, pid in ledger.patch_ids(git, rest, cache=True).items():
                if pid in unreviewed_pids:
                    hits.append((oid, owner[unreviewed_pids[pid]]))
        if hits:
            order = {oid: i for i, oid in enumerate(reversed(walked))}
            flagged[update] = sorted(hits, key=lambda hit: order.get(hit[0], 0))
    return flagged


def report(git: Git, flagged: dict[Update, list[tuple[str, str]]], mode: str) -> None:
    from git_airlock.review.commitinfo import describe
    from git_airlock.terminal import sanitize_line

    agents = ledger.started(git)
    for update, hits in flagged.items():
        _say(
            f"git-airlock: {len(hits)} unreviewed sandbox commit(s) in this push of "
            f"{sanitize_line(update.local_ref)} -> {sanitize_line(update.remote_ref)}:"
        )
        details = {d.id: d for d in describe(git, [oid for oid, _ in hits])}
        for oid, sandbox in hits[:SHOWN]:
            detail = details.get(oid)
            subject = sanitize_line(detail.subject) if detail else ""
            agent = ledger.agent_of(agents, sandbox)
            by = f"agent {sanitize_line(agent)}, " if agent else ""
            _say(f"  {oid[:10]} {subject}  ({by}sandbox {sanitize_line(sandbox)})")
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
    if os.environ.get("GIT_AIRLOCK_SKIP") == "1" or not updates:
        return 0
    view = ledger.read(git)
    if not view.sandboxes:
        return 0
    settings = dict(git.config_entries(r"^airlock\.(prepush|pushnotes)$"))  # one call; git lowercases keys
    verdict = _verdict(git, view, updates, remote, settings.get("airlock.prepush"))
    if verdict == 0 and settings.get("airlock.pushnotes", "").lower() in ("true", "yes", "on", "1"):
        _push_notes(git, updates, remote)
    return verdict


def _verdict(git: Git, view: ledger.Ledger, updates: list[Update], remote: str, setting: str | None) -> int:
    mode = (setting or "warn").lower()
    if mode not in PRE_PUSH_MODES:
        _say(f"git-airlock: unknown airlock.prePush value {mode!r}; using 'warn'")
        mode = "warn"
    if mode == "off":
        return 0
    try:
        flagged = find_flagged(git, view, updates, remote)
    except Exception as exc:  # the hook must never crash a push with a traceback
        from git_airlock.terminal import sanitize

        _say(f"git-airlock: the pre-push check could not run: {sanitize(str(exc))}")
        return 1 if mode == "block" else 0
    if not flagged:
        return 0
    report(git, flagged, mode)
    return 1 if mode == "block" else 0


def _push_notes(git: Git, updates: list[Update], remote: str) -> None:
    """``airlock.pushNotes``: the provenance notes go along to the same remote (their own push,
    without hooks; a failure only warns: the user's push is not the notes')."""
    if any(update.remote_ref == ledger.NOTES for update in updates) or not git.refs(ledger.NOTES):
        return
    argv = ["git", "-C", git.root, "push", "--no-verify", "--quiet", remote, f"{ledger.NOTES}:{ledger.NOTES}"]
    from git_airlock.process import run

    pushed = run(argv, check=False)
    if pushed.returncode != 0:
        from git_airlock.terminal import sanitize

        _say(f"git-airlock: could not push {ledger.NOTES} (airlock.pushNotes): {sanitize(pushed.stderr.strip())}")


def pre_push(args: list[str]) -> int:
    """``git-airlock hook-impl pre-push <remote> <url>`` as git's pre-push hook."""
    stdin = sys.stdin.buffer.read()
    git = Git(os.getcwd())
    remote = args[0] if args else ""
    # surrogateescape, like git output elsewhere: a report shows a ref's undecodable byte as \x9b
    status = check(git, parse_updates(stdin.decode("utf-8", "surrogateescape")), remote)
    if status != 0:
        return status
    hook_path = os.environ.get("GIT_AIRLOCK_HOOK_PATH", "")
    return chain_legacy(hook_path, args, stdin) if hook_path else 0


def pre_commit_framework() -> int:
    """The same check run by pre-commit (stage pre-push), which passes refs in its environment.

    pre-commit leaves PRE_COMMIT_TO_REF empty when the push carries a root commit
    the remote lacks (a first push): then the local branch is the whole push.
    """
    git = Git(os.getcwd())
    local = os.environ.get("PRE_COMMIT_LOCAL_BRANCH", "")
    to_ref = os.environ.get("PRE_COMMIT_TO_REF", "")
    if not to_ref and local:
        to_ref = git.run("rev-parse", "--verify", "--end-of-options", f"{local}^{{commit}}", check=False).strip()
    if not to_ref:
        _say("git-airlock: nothing to check (run this hook at pre-commit's pre-push stage)")
        return 0
    from_ref = os.environ.get("PRE_COMMIT_FROM_REF", "") or ZERO
    update = Update(local or to_ref, to_ref, os.environ.get("PRE_COMMIT_REMOTE_BRANCH", ""), from_ref)
    return check(git, [update], os.environ.get("PRE_COMMIT_REMOTE_NAME", ""))


def main(argv: list[str]) -> int:
    if argv[:1] == ["pre-push"]:
        return pre_push(argv[1:])
    if argv[:1] == ["pre-commit-pre-push"]:
        return pre_commit_framework()
    _say("usage: git-airlock hook-impl pre-push <remote> <url>  |  hook-impl pre-commit-pre-push")
    return 2
