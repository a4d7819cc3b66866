"""`git airlock ls` with 10 sandboxes: the target is under 300 ms, forecast included.

Run by hand: ``python bench/ls.py [--sandboxes 10] [--runs 21]``.

A 100-commit repository and ``--sandboxes`` bwrap sandboxes (shell agent), each with one commit
fetched; half of them edit one shared file, so the forecast has conflicts to find. Timed,
alternating, median of ``--runs``: ``git airlock ls``, ``ls --no-forecast``, and ``git status``
and ``git for-each-ref`` beside them for scale.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from fetch_diff import bench_repo, run, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sandboxes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env, repo = bench_repo(tmp, 100)
        for i in range(args.sandboxes):
            target = "f000.txt" if i % 2 else f"own{i}.txt"
            agent = f"echo sandbox {i} > {target} && git add -A && git commit -qm s{i}"
            airlock = ["git", "airlock", "--engine", "bwrap", "--agent", "shell", "--name", f"s{i}"]
            run([*airlock, "up", "--", "-c", agent], repo, env)
            run([*airlock, "fetch"], repo, env)
        cases = {
            "git airlock ls": ["git", "airlock", "--engine", "bwrap", "ls"],
            "git airlock ls --no-forecast": ["git", "airlock", "--engine", "bwrap", "ls", "--no-forecast"],
            "git status (scale)": ["git", "status", "--short"],
            "git for-each-ref (scale)": ["git", "for-each-ref"],
        }
        times: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(args.runs):
            for label, argv in cases.items():
                times[label].append(timed([argv], repo, env))
        print(f"{args.sandboxes} sandboxes, median of {args.runs} runs (ms)")
        for label, values in times.items():
            print(f"{label:<30} {statistics.median(values):8.1f}")
        verdict = "within" if statistics.median(times["git airlock ls"]) < 300 else "over"
        print(f"target: ls under 300 ms: {verdict}")


if __name__ == "__main__":
    main()
