"""Time from `git airlock up` (bwrap engine) to the agent's first command, next to `git clone --shared`.

Run by hand: ``python bench/bwrap_up.py [--files 100000] [--runs 5]``.

Builds a small repository (50 files) and a large one (``--files`` small files
in one commit, written with one ``git fast-import`` stream), then for each:

- ``git clone --shared`` (with its checkout) and ``git clone --shared --no-checkout``;
- ``git airlock --engine bwrap --agent shell up -- -c 'date +%s%N > started'`` for a new
  sandbox: the first one for a commit (which also fills the shared checkout of that
  commit) and later ones (which reuse it: a sandbox's own changes live in an overlay).

- ``git airlock fetch`` of a sandbox whose agent made 10 commits, next to a plain
  ``git fetch`` of the same clone into a ``--shared`` copy of the repository.

"first command" is the moment the agent's first command ran, measured inside the
sandbox, minus the moment `git airlock up` was started. Everything lives in a
temporary HOME/XDG_DATA_HOME; nothing of yours is touched.
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

from fetch_diff import trusting


def make_repo(path: Path, files: int, env: dict[str, str]) -> None:
    subprocess.run(["git", "init", "-q", str(path)], check=True, env=env)
    lines = ["commit refs/heads/main", "committer Bench <b@b> 1700000000 +0000", "data 5", "init", ""]
    stream = "\n".join(lines)
    body = [stream]
    for i in range(files):
        content = f"file {i}\n"
        body.append(f"M 100644 inline d{i // 1000:03d}/f{i:06d}.txt\ndata {len(content)}\n{content}")
    subprocess.run(
        ["git", "-C", str(path), "fast-import", "--quiet"], input="\n".join(body) + "\n", text=True, check=True, env=env
    )
    subprocess.run(["git", "-C", str(path), "symbolic-ref", "HEAD", "refs/heads/main"], check=True, env=env)
    subprocess.run(["git", "-C", str(path), "reset", "-q", "--hard"], check=True, env=env)


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def up(repo: Path, name: str, env: dict[str, str], data: Path) -> tuple[float, float]:
    """(ms to the agent's first command, ms for the whole `up`)."""
    start_ns = time.time_ns()
    start = time.perf_counter()
    subprocess.run(
        [
            "git",
            "airlock",
            "--engine",
            "bwrap",
            "--agent",
            "shell",
            "--name",
            name,
            "up",
            "--",
            "-c",
            "date +%s%N > started",
        ],
        cwd=repo,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    total = (time.perf_counter() - start) * 1000
    box = data / "git-airlock" / "sandboxes" / name
    stamp = box / "upper" / "started" if (box / "upper").is_dir() else box / "clone" / "started"
    return (int(stamp.read_text()) - start_ns) / 1e6, total


AGENT_COMMITS = "for i in 0 1 2 3 4 5 6 7 8 9; do echo $i > new$i.txt; git add new$i.txt; git commit -qm c$i; done"


def fetches(repo: Path, tmp: Path, name: str, env: dict[str, str], data: Path) -> tuple[float, float]:
    """(ms for a plain `git fetch` of the sandbox's clone, ms for `git airlock fetch` of it)."""
    shell = ["git", "airlock", "--engine", "bwrap", "--agent", "shell", "--name", name]
    subprocess.run([*shell, "up", "--", "-c", AGENT_COMMITS], cwd=repo, env=env, check=True, capture_output=True)
    clone = data / "git-airlock" / "sandboxes" / name / "clone"
    copy = tmp / f"copy-{name}"
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(repo), str(copy)], env=env, check=True)
    plain = timed(
        ["git", "-c", "fetch.fsckObjects=true", "fetch", "-q", "--no-tags", str(clone), "+refs/heads/*:refs/x/*"],
        copy,
        trusting(env, tmp),
    )
    shutil.rmtree(copy)
    airlock = timed([*shell, "fetch"], repo, env)
    remove(repo, name, env)
    return plain, airlock


def remove(repo: Path, name: str, env: dict[str, str]) -> None:
    subprocess.run(
        ["git", "airlock", "--engine", "bwrap", "--name", name, "rm", "--yes", "--no-fetch"],
        cwd=repo,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bench(label: str, repo: Path, tmp: Path, env: dict[str, str], data: Path, runs: int) -> None:
    clones = []
    for i in range(runs):
        clones.append(timed(["git", "clone", "-q", "--shared", str(repo), str(tmp / f"c{i}")], tmp, env))
        shutil.rmtree(tmp / f"c{i}")
    bare = [
        timed(["git", "clone", "-q", "--shared", "--no-checkout", str(repo), str(tmp / "n")], tmp, env)
        for _ in range(1)
        if not (tmp / "n").exists()
    ]
    shutil.rmtree(tmp / "n", ignore_errors=True)
    first = up(repo, f"{label}-first", env, data)
    warm = []
    for i in range(runs):
        warm.append(up(repo, f"{label}-{i}", env, data))
        remove(repo, f"{label}-{i}", env)
    remove(repo, f"{label}-first", env)
    fetched = [fetches(repo, tmp, f"{label}-fetch-{i}", env, data) for i in range(runs)]
    clone_ms = statistics.median(clones)
    warm_first = statistics.median(w[0] for w in warm)
    print(f"{label:<8} git clone --shared               {clone_ms:9.1f} ms (median of {runs})")
    print(f"{label:<8} git clone --shared --no-checkout {bare[0]:9.1f} ms")
    print(f"{label:<8} up, first sandbox of the commit  {first[0]:9.1f} ms to first command ({first[1]:.0f} ms total)")
    print(
        f"{label:<8} up, later sandboxes              {warm_first:9.1f} ms to first command "
        f"({statistics.median(w[1] for w in warm):.0f} ms total, median of {runs}) "
        f"= {_ratio(clone_ms, warm_first)} git clone --shared"
    )
    print(f"{label:<8} git fetch of the clone (10 commits) {statistics.median(f[0] for f in fetched):7.1f} ms")
    print(f"{label:<8} git airlock fetch (10 commits)      {statistics.median(f[1] for f in fetched):7.1f} ms")


def _ratio(reference_ms: float, ms: float) -> str:
    """'3.1x faster than' or '1.4x slower than', whichever is true."""
    if ms <= reference_ms:
        return f"{reference_ms / ms:.1f}x faster than"
    return f"{ms / reference_ms:.1f}x slower than"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        data = tmp / "data"
        env = {
            **os.environ,
            "HOME": str(tmp),
            "XDG_DATA_HOME": str(data),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "b",
            "GIT_AUTHOR_EMAIL": "b@b",
            "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@b",
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
        }
        for label, files in (("small", 50), ("large", args.files)):
            repo = tmp / label
            started = time.perf_counter()
            make_repo(repo, files, env)
            print(f"{label:<8} repository of {files} files made in {time.perf_counter() - started:.1f} s")
            bench(label, repo, tmp, env, data, args.runs)


if __name__ == "__main__":
    main()
