"""`git airlock report` for a range of 200 sandbox commits and a 100,000-line egress log.

Run by hand: ``python bench/report.py [--commits 200] [--log-lines 100000] [--runs 11]``.

A bwrap sandbox (shell agent) makes ``--commits`` commits; its gate's log is then filled with
``--log-lines`` attempts to 500 destinations, a mix of allowed, blocked and failed. Timed,
alternating, median of ``--runs``: ``git airlock report`` (fetch included: nothing new to bring),
``report --json``, and plain ``git log --raw`` of the same range beside them for scale.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from fetch_diff import bench_repo, run, timed

NAME = "bench"


def fill_log(path: Path, lines: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    actions = ("allowed", "allowed", "blocked", "failed")
    with path.open("w", encoding="utf-8") as handle:
        for i in range(lines):
            entry = {
                "time": 1_700_000_000 + i,
                "sandbox": NAME,
                "host": f"host{i % 500}.example.org",
                "port": 443,
                "action": actions[i % 4],
                "sent": 100,
                "received": 2000,
            }
            handle.write(json.dumps(entry) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--log-lines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env, repo = bench_repo(tmp, 100)
        agent = f"for i in $(seq {args.commits}); do echo $i > a$((i % 50)).txt; git add -A; git commit -qm a$i; done"
        airlock = ["git", "airlock", "--engine", "bwrap", "--agent", "shell", "--name", NAME]
        run([*airlock, "up", "--", "-c", agent], repo, env)
        run([*airlock, "fetch"], repo, env)
        fill_log(tmp / "state" / "git-airlock" / "net" / f"{NAME}.jsonl", args.log_lines)
        cases = {
            "git airlock report": [[*airlock, "report"]],
            "git airlock report --json": [[*airlock, "report", "--json"]],
            "git log --raw main..sandbox (scale)": [["git", "log", "--raw", f"main..sandbox-{NAME}/main"]],
        }
        times: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(args.runs):
            for label, commands in cases.items():
                times[label].append(timed(commands, repo, env))
        print(f"{args.commits} commits, {args.log_lines} log lines, median of {args.runs} runs (ms)")
        for label, values in times.items():
            print(f"{label:<38} {statistics.median(values):8.1f}")


if __name__ == "__main__":
    main()
