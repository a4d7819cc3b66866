"""Wall time the pre-push hook adds to a push, and `git airlock log`, at 2,000 and 20,000 commits.

Run by hand: ``python bench/hook.py [--runs N] [--sizes 2000,20000]``.

For each size it builds, with one ``git fast-import`` stream (no per-commit git
process), a linear history of N commits each touching one small file, three
sandboxes of 50 commits each forked 10 commits below the tip (tips at
``refs/remotes/sandbox-sK/main`` and ``refs/sandboxes/sK/main``, bases at
``refs/airlock/base/sK``), one host commit on main ahead of the remote, and a
merge of sandbox s1 into that host commit. A bare remote gets main at the
history tip (pushed once), so ``refs/remotes/origin/main`` is there as after
any push.

The hook is run the way git runs it (``git-airlock hook-impl pre-push origin
URL`` with git's input line on stdin, cwd = the repository) in these
situations, each under the default mode (warn):

- no sandbox refs at all (sandbox and ledger refs removed for the occasion);
- sandboxes present, every commit reviewed;
- sandboxes present and unreviewed, the push carries host work only (the
  everyday case: fetched, not merged yet);
- the push carries the 50 unreviewed commits of s1 (the warning is printed);
- a new branch (remote side all zeros) carrying host work, to a named remote;
- the same new branch pushed to a URL (no remote name, so no remote-tracking
  refs to stop the walk).

Every situation is measured without, then with, a commit-graph file
(``git commit-graph write --reachable``). Figures are medians of ``--runs``
runs; "first" is the first run (cold patch-id cache for the hook). The
patch-id cache and all git config live in a throwaway HOME.
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
from dataclasses import dataclass
from pathlib import Path

ZERO = "0" * 40
SANDBOXES = 3
SANDBOX_COMMITS = 50
FORK_BELOW_TIP = 10
LEDGER_PREFIXES = ("refs/remotes/sandbox-", "refs/sandboxes/", "refs/airlock/")


def git_airlock() -> str:
    """The console script next to this interpreter (not a pyenv shim, which costs a shell and more)."""
    local = Path(sys.executable).parent / "git-airlock"
    return str(local) if local.exists() else shutil.which("git-airlock") or "git-airlock"


def timed(
    argv: list[str], cwd: str, env: dict[str, str], runs: int, stdin: str | None = None, warns: bool | None = None
) -> tuple[float, float]:
    """(median ms, first-run ms). Stops on a failure (warn mode exits 0), and, with ``warns``, checks
    that the hook did (True) or did not (False) print its warning, so the figures time the right thing."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(
            argv, cwd=cwd, env=env, input=stdin, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        samples.append((time.perf_counter() - start) * 1000)
        if proc.returncode != 0 or (warns is not None and warns != ("unreviewed sandbox commit" in proc.stderr)):
            raise SystemExit(f"{argv} with {stdin!r}: exit {proc.returncode}, unexpected output:\n{proc.stderr}")
    return statistics.median(samples), samples[0]


def run(argv: list[str], cwd: str, env: dict[str, str], stdin: str | bytes | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def fast_import_stream(n: int) -> bytes:
    """History, sandboxes, host commit and the merge of s1, as one fast-import stream."""
    out: list[bytes] = []
    clock = 1_700_000_000
    mark = 0

    def commit(ref: str, message: str, path: str, content: str, parents: list[int]) -> int:
        nonlocal mark, clock
        mark += 1
        clock += 60
        msg = message.encode()
        body = content.encode()
        out.append(f"commit {ref}\nmark :{mark}\ncommitter Bench <bench@example.invalid> {clock} +0000\n".encode())
        out.append(b"data %d\n%s\n" % (len(msg), msg))
        if parents:
            out.append(f"from :{parents[0]}\n".encode())
            out.extend(f"merge :{p}\n".encode() for p in parents[1:])
        out.append(f"M 100644 inline {path}\n".encode())
        out.append(b"data %d\n%s\n" % (len(body), body))
        return mark

    previous: list[int] = []
    history = []
    for i in range(1, n + 1):
        history.append(commit("refs/heads/main", f"history {i}", f"src/f{i % 100}.txt", f"{i}\n", previous))
        previous = [history[-1]]
    tip = history[-1]
    fork = history[-1 - FORK_BELOW_TIP]
    sandbox_tips = {}
    for k in range(1, SANDBOXES + 1):
        parent = fork
        for j in range(1, SANDBOX_COMMITS + 1):
            parent = commit(
                f"refs/remotes/sandbox-s{k}/main", f"agent s{k}: step {j}", f"agent{k}/work.txt", f"{j}\n", [parent]
            )
        sandbox_tips[k] = parent
        out.append(f"reset refs/sandboxes/s{k}/main\nfrom :{parent}\n\n".encode())
        out.append(f"reset refs/airlock/base/s{k}\nfrom :{fork}\n\n".encode())
    out.append(f"reset refs/bench/remote-tip\nfrom :{tip}\n\n".encode())
    host = commit("refs/heads/main", "host: my own work", "host.txt", "mine\n", [tip])
    commit("refs/heads/merged", "Merge sandbox s1", "agent1/work.txt", f"{SANDBOX_COMMITS}\n", [host, sandbox_tips[1]])
    out.append(b"done\n")
    return b"".join(out)


@dataclass
class Bench:
    repo: str
    url: str
    env: dict[str, str]
    runs: int
    tip: str
    host: str
    merged: str

    def hook(self, line: str, remote: str | None = "origin", warns: bool = False) -> tuple[float, float]:
        args = [git_airlock(), "hook-impl", "pre-push", remote or self.url, self.url]
        return timed(args, self.repo, self.env, self.runs, stdin=line + "\n", warns=warns)

    def ledger_refs(self) -> dict[str, str]:
        out = run(["git", "for-each-ref", "--format=%(refname) %(objectname)"], self.repo, self.env)
        return {
            ref: oid
            for ref, _, oid in (line.partition(" ") for line in out.splitlines())
            if ref.startswith(LEDGER_PREFIXES)
        }

    def set_refs(self, updates: dict[str, str | None]) -> None:
        script = "".join(f"update {ref} {oid}\n" if oid else f"delete {ref}\n" for ref, oid in updates.items())
        run(["git", "update-ref", "--stdin"], self.repo, self.env, stdin=script.encode())


def build(n: int, root: str, env: dict[str, str]) -> Bench:
    repo = os.path.join(root, f"repo-{n}")
    remote = os.path.join(root, f"remote-{n}.git")
    run(["git", "init", "-q", "-b", "main", repo], root, env)
    run(["git", "fast-import", "--quiet"], repo, env, stdin=fast_import_stream(n))
    run(["git", "init", "-q", "--bare", "-b", "main", remote], root, env)
    run(["git", "remote", "add", "origin", remote], repo, env)
    run(["git", "push", "-q", "origin", "refs/bench/remote-tip:refs/heads/main"], repo, env)
    run(["git", "fetch", "-q", "origin"], repo, env)  # refs/remotes/origin/main, as after any push
    run(["git", "update-ref", "-d", "refs/bench/remote-tip"], repo, env)
    run(["git", "checkout", "-q", "-f", "main"], repo, env)
    sha = {
        name: run(["git", "rev-parse", ref], repo, env).strip()
        for name, ref in (("tip", "origin/main"), ("host", "main"), ("merged", "merged"))
    }
    return Bench(repo, remote, env, 0, **sha)


def measure(bench: Bench, label: str, rows: list[tuple[str, str, float, float]]) -> None:
    main_line = f"refs/heads/main {bench.host} refs/heads/main {bench.tip}"
    new_branch = f"refs/heads/feature {bench.host} refs/heads/feature {ZERO}"
    saved = bench.ledger_refs()
    sandbox_tips = {ref: oid for ref, oid in saved.items() if ref.startswith("refs/remotes/sandbox-")}
    reviewed = {
        f"refs/airlock/reviewed/{ref.split('/')[2].removeprefix('sandbox-')}/main": oid
        for ref, oid in sandbox_tips.items()
    }

    bench.set_refs(dict.fromkeys(saved))
    rows.append((label, "hook: no sandbox refs at all", *bench.hook(main_line)))
    bench.set_refs({**saved, **reviewed})
    rows.append((label, "hook: 3 sandboxes, all reviewed", *bench.hook(main_line)))
    bench.set_refs(dict.fromkeys(reviewed))
    rows.append((label, "hook: 3 unreviewed sandboxes, push of host work", *bench.hook(main_line)))
    rows.append(
        (
            label,
            "hook: push carries 50 unreviewed (warns)",
            *bench.hook(f"refs/heads/main {bench.merged} refs/heads/main {bench.tip}", warns=True),
        )
    )
    rows.append((label, "hook: new branch to remote `origin`", *bench.hook(new_branch)))
    rows.append((label, "hook: new branch to a URL (no remote name)", *bench.hook(new_branch, remote=None)))
    rows.append(
        (
            label,
            "git airlock log --all-sandboxes",
            *timed(["git", "airlock", "log", "--all-sandboxes"], bench.repo, bench.env, bench.runs),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--sizes", default="2000,20000", help="history lengths, comma-separated")
    args = parser.parse_args()
    started = time.perf_counter()
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = os.path.join(tmp, "home")
        os.mkdir(home)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XDG_"))},
            "HOME": home,
            "XDG_CACHE_HOME": os.path.join(home, ".cache"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.path.join(home, ".gitconfig"),
            "GIT_AUTHOR_NAME": "Bench",
            "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "Bench",
            "GIT_COMMITTER_EMAIL": "bench@example.invalid",
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
        }
        python = timed([sys.executable, "-c", "pass"], tmp, env, args.runs)
        rows.append(("-", "python -c pass (the interpreter alone)", *python))
        for n in (int(size) for size in args.sizes.split(",")):
            t0 = time.perf_counter()
            bench = build(n, tmp, env)
            bench.runs = args.runs
            print(
                f"built {n} commits + {SANDBOXES}x{SANDBOX_COMMITS} sandbox commits "
                f"in {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
            measure(bench, f"{n}", rows)
            run(["git", "commit-graph", "write", "--reachable"], bench.repo, env)
            measure(bench, f"{n} +graph", rows)
    base = python[0]
    print(
        f"\nmedian of {args.runs} runs: for the hook, the whole wall time it adds to a push; "
        f"'minus python' = that minus the interpreter alone ({base:.1f} ms)\n"
    )
    print(f"| {'history':<12} | {'what':<48} | {'median':>9} | {'minus python':>12} | {'first':>9} |")
    print(f"|{'-' * 14}|{'-' * 50}|{'-' * 11}|{'-' * 14}|{'-' * 11}|")
    for label, what, median, first in rows:
        added = f"{median - base:7.1f} ms" if what.startswith("hook") else ""
        print(f"| {label:<12} | {what:<48} | {median:6.1f} ms | {added:>12} | {first:6.1f} ms |")
    print(f"\ntotal {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
