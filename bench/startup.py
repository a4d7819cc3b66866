"""Start-up cost of `git airlock -h` and `git airlock status`, next to `git status`.

Run by hand: ``python bench/startup.py [--runs N]``. Creates a throwaway
repository, puts the sbx emulator from tests/fakes first on PATH (sbx itself
is not needed; the emulator is a Python script, so `status` here includes one
extra interpreter start for `sbx ls`), and prints median wall times, and what `-h` and `status`
on the bwrap engine (no sandbox) add over a bare interpreter (target: +60 ms for `status`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAKES = Path(__file__).resolve().parent.parent / "tests" / "fakes"


def median_ms(argv: list[str], cwd: str, env: dict[str, str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "HOME": tmp,
            "GIT_CONFIG_NOSYSTEM": "1",
            "SBX_FAKE_STATE": os.path.join(tmp, "sbx"),
            "PATH": os.pathsep.join([str(FAKES), os.path.dirname(sys.executable), os.environ["PATH"]]),
        }
        repo = os.path.join(tmp, "repo")
        for argv in (
            ["git", "init", "-q", repo],
            [
                "git",
                "-C",
                repo,
                "-c",
                "user.name=b",
                "-c",
                "user.email=b@b",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "init",
            ],
        ):
            subprocess.run(argv, env=env, check=True)
        rows = [
            ("python3 -c pass", [sys.executable, "-c", "pass"]),
            ("git status", ["git", "status"]),
            ("git airlock -h", ["git", "airlock", "-h"]),
            ("git-airlock -h", ["git-airlock", "-h"]),
            ("git airlock status (sbx)", ["git", "airlock", "status"]),
            ("git airlock status (bwrap)", ["git", "airlock", "--engine", "bwrap", "status"]),
            ("sbx ls --json (emulator)", ["sbx", "ls", "--json"]),
        ]
        timings = {}
        for label, argv in rows:
            timings[label] = median_ms(argv, repo, env, args.runs)
            print(f"{label:<28} {timings[label]:7.1f} ms (median of {args.runs})")
        bare = timings["python3 -c pass"]
        for label in ("git-airlock -h", "git airlock status (bwrap)"):
            print(f"{label} over a bare interpreter: +{timings[label] - bare:.1f} ms")


if __name__ == "__main__":
    main()
