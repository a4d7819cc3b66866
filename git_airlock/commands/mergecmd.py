"""`merge`: one sandbox's reviewed work into your branch, or every reviewed sandbox's in turn.

Either way the merge is made in memory first; with ``--verify`` the project's checks run on the
merged tree in a fresh, network-less bwrap sandbox before the branch moves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import click

from git_airlock.app import App
from git_airlock.commands import pass_app
from git_airlock.commands.gitops import (
    branch_of,
    check_gate,
    mark_reviewed,
    mark_step,
    prepare,
    sandbox_branch_option,
    short_ref,
)
from git_airlock.errors import AirlockError, UsageError
from git_airlock.gitcmd import Git
from git_airlock.terminal import sanitize_line


@click.command("merge")
@click.argument("base", required=False)
@sandbox_branch_option
@click.option("-y", "--yes", is_flag=True, help="Merge even commits nobody reviewed.")
@click.option(
    "--allow-host-code",
    is_flag=True,
    help="Merge changes to files that can run code here (hooks, CI, scripts) without asking.",
)
@click.option("--no-ff", is_flag=True, help="Write a merge commit (with provenance trailers) even to fast-forward.")
@click.option(
    "--verify",
    metavar="CMD",
    help="Run CMD on the merged tree in a fresh bwrap sandbox with no network; move the branch only if it passes.",
)
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Merge every reviewed sandbox in turn, those that conflict with nothing first; stop at the first "
    "conflict or failed --verify.",
)
@pass_app
def merge_command(
    app: App,
    base: str | None,
    sandbox_branch: str | None,
    yes: bool,
    allow_host_code: bool,
    no_ff: bool,
    verify: str | None,
    every: bool,
) -> None:
    """Fetch, then merge the sandbox branch into BASE (default: the checked-out branch).

    Unreviewed commits are refused unless you confirm (or pass --yes;
    `git config airlock.requireReview false` makes this a warning). Changes
    to files that can run code on this machine always need an explicit yes.
    Fast-forwards when possible (unless --no-ff or `airlock.mergeCommit
    always`); a merge commit carries Assisted-by and Reviewed-by trailers. A
    BASE that is not checked out is updated without touching the working
    tree. On a conflict, or a --verify that fails, nothing changes: your
    branch, index and working tree stay exactly as they were. What was
    merged is marked reviewed, and each merged commit gets a provenance note
    (refs/notes/airlock). With --all: every reviewed sandbox, from what was
    fetched; unreviewed ones are skipped and listed.
    """
    if every:
        if sandbox_branch or yes:
            raise UsageError(
                "--all merges reviewed work only, each sandbox's branch named like BASE",
                hint="drop --sandbox-branch and --yes",
            )
        _merge_queue(app, base, allow_host_code, no_ff, verify)
        return
    base_name, base_id, tip_ref, tip = prepare(app, base, sandbox_branch)
    if app.dry_run:
        app.runner.show(f"in-process (libgit2): git merge {short_ref(tip_ref)} into {base_name}")
        if verify:
            app.runner.show(
                f"git archive of the merged tree into a fresh bwrap sandbox with no network: sh -c {verify!r}"
            )
        app.runner.show(mark_step(app, tip_ref))
        return
    vouched = check_gate(app, base_id, tip, yes, allow_host_code)
    _warn_of_conflicts_ahead(app, tip_ref, tip)
    _land(app, base_name, base_id, tip_ref, tip, vouched, no_ff, verify)


def _land(
    app: App, base_name: str, base_id: str, tip_ref: str, tip: str, vouched: bool, no_ff: bool, verify: str | None
) -> bool:
    """Merge (after ``verify`` passed on the result), mark and note; False when there was nothing to merge."""
    from git_airlock.review.provenance import Landing

    landing = Landing(app, base_name, base_id, tip_ref, tip, vouched)
    message = f"Merge sandbox {app.sandbox} ({short_ref(tip_ref)}) into {base_name}\n\n{landing.trailers()}\n"
    no_ff = no_ff or app.settings.merge_commit == "always"
    outcome = app.repo.merge(base_name, tip, message, no_ff=no_ff, verify=_verifier(app, base_name, verify))
    if outcome.kind == "up-to-date":
        click.echo(f"{base_name} already contains {short_ref(tip_ref)}")
        return False
    where = "" if outcome.updated_worktree else " (working tree untouched: branch not checked out)"
    click.echo(f"{base_name}: {outcome.kind} {outcome.old[:10]}..{outcome.new[:10]}{where}")
    mark_reviewed(app, tip_ref, tip)
    landing.record(f"merge into {base_name}")
    return True


def _verifier(app: App, base_name: str, command: str | None) -> Callable[[str], None] | None:
    """What checks a merge result before the branch moves: ``command`` in a verification sandbox."""
    if command is None:
        return None

    def verify(commit: str) -> None:
        from git_airlock.engines import verify_merge

        app.info(f"verifying {commit[:10]} in a sandbox with no network: {command}")
        status = verify_merge(app.location.root, commit, command, app.settings.tmp_size_bytes, _show)
        if status != 0:
            raise AirlockError(
                f"the verification failed (exit {status}) on the merged tree; {base_name} was not moved",
                hint="fix the work in the sandbox (or the command), fetch, and merge again",
            )

    return verify


def _show(line: str) -> None:
    """A line of the check's output: the merged tree is the agent's, so its output is shown inertly."""
    click.echo(sanitize_line(line), err=True)


def _warn_of_conflicts_ahead(app: App, tip_ref: str, tip: str) -> None:
    """Say which other sandbox's pending work this merge will make conflict, before it is made."""
    from git_airlock.overview import conflicts_ahead

    found = conflicts_ahead(Git(app.location.root), app.sandbox, tip, branch_of(app, tip_ref))
    for other, paths in sorted(found.items()):
        shown = ", ".join(sanitize_line(path) for path in paths)
        app.info(f"warning: merging {app.sandbox} now makes {other} conflict in {shown}")


def _merge_queue(app: App, base: str | None, allow_host_code: bool, no_ff: bool, verify: str | None) -> None:
    """``merge --all``: each reviewed sandbox in the forecast's order, until one conflicts or fails."""
    from git_airlock.overview import gather, queue_order
    from git_airlock.review.target import base_commit, resolve_base

    base_name = resolve_base(app, base)
    rows = [row for row in gather(app) if row.tip and row.ahead]
    for row in rows:
        if row.unreviewed:
            app.info(f"skipped {row.name}: {row.unreviewed} unreviewed commit(s); review them, then merge again")
    landed: list[str] = []
    queue = queue_order([row for row in rows if not row.unreviewed])
    if app.dry_run or not queue:
        app.info(
            "nothing reviewed to merge" if not queue else "would merge, in order: " + ", ".join(r.name for r in queue)
        )
        return
    for done, row in enumerate(queue):
        one = dataclasses.replace(app, flags={**app.flags, "sandbox_name": row.name})
        tip_ref = _tip_ref(one, row.name, row.branch)
        try:
            base_id = base_commit(one, base_name)
            check_gate(one, base_id, row.tip, False, allow_host_code)
            if _land(one, base_name, base_id, tip_ref, row.tip, True, no_ff, verify):
                landed.append(row.name)
        except AirlockError as exc:
            waiting = [other.name for other in queue[done + 1 :]]
            app.info(f"landed: {', '.join(landed) or 'nothing'}")
            app.info(f"not landed: {row.name}" + (f", then {', '.join(waiting)}" if waiting else ""))
            raise AirlockError(
                f"the merge queue stopped at {row.name}: {exc.message}",
                hint=f"{base_name} holds what landed; resolve {row.name} (`git airlock merge --name {row.name}`) "
                "and run `merge --all` again",
            ) from exc
    app.info(f"landed: {', '.join(landed)}")


def _tip_ref(app: App, name: str, branch: str) -> str:
    """The sandbox's fetched branch: its remote-tracking ref, or (a sandbox that is gone) the recovery ref."""
    remote = f"refs/remotes/sandbox-{name}/{branch}"
    return remote if Git(app.location.root).refs(remote) else f"refs/sandboxes/{name}/{branch}"
