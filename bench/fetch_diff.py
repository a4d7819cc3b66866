"""Bringing an agent's work home: `git airlock fetch` + `git airlock diff --stat`, next to plain git.

Run by hand: ``python bench/fetch_diff.py [--history 5000] [--commits 1000] [--runs 5]``.

A repository with ``--history`` commits; a bwrap sandbox (shell agent) whose agent adds
``--commits`` commits, each changing one file. Then, per run and alternating:

- plain git: ``git -c fetch.fsckObjects=true fetch <clone>`` into a fresh ``--shared`` copy of
  the repository as it was before any fetch, then ``git diff --stat main...FETCH_HEAD``: what a
  careful user types without git-airlock (checked objects, no sandbox around upload-pack);
- ``git airlock fetch`` then ``git airlock diff --stat``; afterwards the fetched refs are deleted
  and their objects pruned (untimed), so each run brings all the commits again.

The target (README's Performance): git-airlock costs at most 1.5x the plain pair plus 120 ms
for its two interpreter starts. Everything lives in a temporary HOME and XDG directories.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "bench"


def run(argv: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, text=True, input=stdin)


def timed(commands: list[list[str]], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    for argv in commands:
        run(argv, cwd, env)
    return (time.perf_counter() - start) * 1000


def bench_env(tmp: Path) -> dict[str, str]:
    """A HOME, XDG directories and git identity of the benchmark's own, and this interpreter's git-airlock first."""
    return {
        **os.environ,
        "HOME": str(tmp),
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
        "PAGER": "cat",
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
    }


def trusting(env: dict[str, str], tmp: Path) -> dict[str, str]:
    """``env`` in which plain git reads a sandbox's clone directly (the comparison, never what git-airlock
    does): the clone belongs to the sandbox root's uid, which git refuses unless ``safe.directory``
    (read from global configuration only) says otherwise."""
    config = tmp / "trusting.gitconfig"
    config.write_text("[safe]\n\tdirectory = *\n")
    return {**env, "GIT_CONFIG_GLOBAL": str(config)}


def bench_repo(tmp: Path, commits: int) -> tuple[dict[str, str], Path]:
    """The benchmark's environment (see :func:`bench_env`) and a repository of ``commits`` commits in ``tmp``."""
    env = bench_env(tmp)
    repo = tmp / "repo"
    make_history(repo, commits, env)
    return env, repo


def make_history(repo: Path, commits: int, env: dict[str, str]) -> None:
    """``commits`` commits on main, each touching one of 100 files, written with one fast-import stream."""
    run(["git", "init", "-q", "-b", "main", str(repo)], repo.parent, env)
    stream = []
    for i in range(commits):
        content, message = f"line {i}\n", f"c{i}"
        stream.append(
            f"commit refs/heads/main\ncommitter B <b@b> {1700000000 + i} +0000\ndata {len(message)}\n{message}\n"
            f"M 100644 inline f{i % 100:03d}.txt\ndata {len(content)}\n{content}"
        )
    run(["git", "fast-import", "--quiet"], repo, env, stdin="\n".join(stream) + "\n")
    run(["git", "reset", "-q", "--hard"], repo, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=int, default=5000)
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env, repo = bench_repo(tmp, args.history)
        agent = f"for i in $(seq {args.commits}); do echo $i > a$((i % 50)).txt; git add -A; git commit -qm a$i; done"
        airlock = ["git", "airlock", "--engine", "bwrap", "--agent", "shell", "--name", NAME]
        run([*airlock, "up", "--", "-c", agent], repo, env)
        clone = tmp / "data" / "git-airlock" / "sandboxes" / NAME / "clone"

        # the user's repository before any fetch: plain git fetches into copies of it, so that each run
        # transfers and checks every new object, as the first fetch of an agent's work does
        pristine = tmp / "pristine"
        run(["git", "clone", "-q", "--no-hardlinks", str(repo), str(pristine)], tmp, env)
        plain, ours = [], []
        for i in range(args.runs):
            copy = tmp / f"copy{i}"
            run(["git", "clone", "-q", "--shared", str(pristine), str(copy)], tmp, env)
            plain.append(
                timed(
                    [
                        ["git", "-c", "fetch.fsckObjects=true", "fetch", "-q", "--no-tags", str(clone), "main"],
                        ["git", "diff", "--stat", "main...FETCH_HEAD"],
                    ],
                    copy,
                    trusting(env, tmp),
                )
            )
            shutil.rmtree(copy)
            ours.append(timed([[*airlock, "fetch"], [*airlock, "diff", "--stat"]], repo, env))
            # forget what was fetched, objects included, so the next run fetches it all again
            run(["git", "update-ref", "-d", f"refs/remotes/sandbox-{NAME}/main"], repo, env)
            run(["git", "update-ref", "-d", f"refs/sandboxes/{NAME}/main"], repo, env)
            run(["git", "gc", "-q", "--prune=now"], repo, env)

        plain_ms, ours_ms = statistics.median(plain), statistics.median(ours)
        limit = 1.5 * plain_ms + 120
        print(f"{args.commits} sandbox commits on a {args.history}-commit repository, median of {args.runs}")
        print(f"plain git fetch (fsck) + diff --stat      {plain_ms:8.1f} ms   {' '.join(f'{x:.0f}' for x in plain)}")
        print(f"git airlock fetch + git airlock diff      {ours_ms:8.1f} ms   {' '.join(f'{x:.0f}' for x in ours)}")
        verdict = "within" if ours_ms <= limit else "over"
        print(f"target 1.5 x plain + 120 ms = {limit:.0f} ms: {verdict} ({ours_ms / plain_ms:.2f}x plain)")


if __name__ == "__main__":
    main()
