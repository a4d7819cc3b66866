"""What keeping the agent's uncommitted work costs `rm`: a clean clone, and one with 1,000 changed files.

Run by hand: ``python bench/save.py [--files 1000] [--runs 5]``.

A 100-file repository; per run and case, a fresh bwrap sandbox (shell agent) that either leaves its
clone clean or writes ``--files`` files (the first 100 change tracked files, the rest are new).
Timed:

- ``git airlock save``: the snapshot alone (``rm`` runs the same before it removes);
- ``git airlock rm --yes --no-fetch``: the whole removal, snapshot included;
- the direct path: ``git stash push -u`` of the same changes in a plain clone, no sandbox.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from fetch_diff import bench_repo, run, timed


def agent(files: int, tag: str) -> str:
    """The stand-in agent: writes ``files`` files (none: a clean clone), their content unique to ``tag``,
    so that every run writes its objects afresh, as a first save does."""
    if not files:
        return "true"
    return f"for i in $(seq {files}); do echo {tag} $i > f$(printf %03d $((i - 1))).txt; done"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env, repo = bench_repo(tmp, 100)
        results: dict[str, list[float]] = {}
        for case, files in (("clean", 0), (f"{args.files} files", args.files)):
            for i in range(args.runs):
                # one sandbox for each timed command, so neither finds the other's objects already written
                saved, removed = (
                    ["git", "airlock", "--engine", "bwrap", "--agent", "shell", "--name", f"{kind}{i}"]
                    for kind in ("s", "r")
                )
                for airlock in (saved, removed):
                    run([*airlock, "up", "--", "-c", agent(files, f"{airlock[-1]}-{case}")], repo, env)
                results.setdefault(f"save, {case}", []).append(timed([[*saved, "save"]], repo, env))
                remove = [*removed, "rm", "--yes", "--no-fetch"]
                results.setdefault(f"rm, {case}", []).append(timed([remove], repo, env))
                run([*saved, "rm", "--yes", "--no-fetch"], repo, env)
                plain = tmp / "plain"
                run(["git", "clone", "-q", "--shared", str(repo), str(plain)], tmp, env)
                run(["sh", "-c", agent(files, f"p{i}-{case}")], plain, env)
                stash = ["git", "stash", "push", "-q", "-u", "-m", "wip"]
                results.setdefault(f"git stash -u, {case}", []).append(timed([stash], plain, env))
                shutil.rmtree(plain)
        print(f"median of {args.runs} runs (ms), each run listed")
        for label, values in results.items():
            print(f"{label:<28} {statistics.median(values):8.1f}   {' '.join(f'{x:.0f}' for x in values)}")


if __name__ == "__main__":
    main()
