"""What the sandbox as a workplace costs: `up` of a later sandbox against older code, and an empty layer's size.

Run by hand: ``python bench/workplace.py [--baseline CHECKOUT] [--runs 15]``.

- ``up`` to the agent's first command, for a later sandbox of a commit (its shared checkout
  already made), with this checkout's git-airlock and, when ``--baseline`` names another
  checkout of git-airlock (``git worktree add /tmp/base <commit>``), with that one, run
  alternately pair by pair (``PYTHONPATH`` picks the code; everything else is the same);
- what the system layer of a sandbox that installed nothing takes on disk, and what a
  layer takes after ``pip install`` of a small package from a local wheel (no network).

Everything lives in a temporary HOME/XDG_DATA_HOME; nothing of yours is touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bwrap_up import make_repo, remove, up
from fetch_diff import bench_env


def disk_usage(top: Path) -> int:
    """Bytes of the blocks under ``top``, links not followed (what ``du`` counts)."""
    total = 0
    for path in [top, *top.rglob("*")]:
        total += path.lstat().st_blocks * 512
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, help="another checkout of git-airlock to compare with")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        data = tmp / "data"
        env = bench_env(tmp)
        repo = tmp / "repo"
        make_repo(repo, 50, env)
        codes = {"this checkout": env}
        if args.baseline:
            inherited = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
            codes["baseline"] = {**env, "PYTHONPATH": os.pathsep.join([str(args.baseline.resolve()), *inherited])}
        for label, code_env in codes.items():  # the shared checkout, the probe's answer: made once for both
            up(repo, f"warm-{label[:4]}", code_env, data)
            remove(repo, f"warm-{label[:4]}", code_env)
        times: dict[str, list[float]] = {label: [] for label in codes}
        for i in range(args.runs):
            for label, code_env in codes.items():
                name = f"b{i}-{label[:4]}"
                times[label].append(up(repo, name, code_env, data)[0])
                remove(repo, name, code_env)
        for label, found in times.items():
            print(f"up, later sandbox, to the first command ({label}): {statistics.median(found):7.1f} ms")
        if args.baseline:
            pairs = [ours - theirs for ours, theirs in zip(times["this checkout"], times["baseline"], strict=True)]
            delta = statistics.median(pairs)
            print(f"difference, median of the {args.runs} pairs (run one after the other): {delta:+.1f} ms")
        up(repo, "empty", env, data)
        layer = data / "git-airlock" / "sandboxes" / "empty" / "system" / "upper"
        print(f"system layer of a sandbox that installed nothing: {disk_usage(layer) / 1024:.0f} KiB")
        remove(repo, "empty", env)  # what the sandbox's other uids made goes from inside its namespace
        wheel = tmp / "wheels"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheel), "six"],
            check=False,
            capture_output=True,
        )
        found = sorted(wheel.glob("*.whl")) if wheel.is_dir() else []
        if found:
            install = f"pip install --break-system-packages --no-index -q /run/sandbox/source/{found[0].name}"
            (repo / found[0].name).write_bytes(found[0].read_bytes())
            subprocess.run(["git", "-C", str(repo), "add", found[0].name], check=True, env=env)
            subprocess.run(["git", "-C", str(repo), "commit", "-qm", "wheel"], check=True, env=env)
            airlock = ["git", "airlock", "--engine", "bwrap", "--agent", "shell", "--name", "pip", "up", "--"]
            subprocess.run([*airlock, "-c", install], cwd=repo, env=env, check=True, capture_output=True)
            pip_layer = data / "git-airlock" / "sandboxes" / "pip" / "system" / "upper"
            print(f"system layer after pip install of {found[0].name}: {disk_usage(pip_layer) / 1024:.0f} KiB")
            remove(repo, "pip", env)


if __name__ == "__main__":
    main()
