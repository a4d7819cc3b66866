"""Small, fast git plumbing calls for the hot paths (the pre-push hook and ``log``).

pygit2 costs about 70 ms to import; ``git for-each-ref``/``git rev-list``
answer in a few. The hook runs on every push, so the ledger and the hook
talk to git through these subprocess helpers, always with argument lists,
a scrubbed environment and settings that keep repository hooks and
fsmonitor from running.
"""

from __future__ import annotations

import subprocess

from git_airlock.process import CommandFailed, run, scrubbed_env

SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""git's tree with nothing in it: the base of a branch that has no commits yet."""


AT_ONCE = 32
"""How many git processes :meth:`Git.run_many` starts together."""


class Git:
    """Runs git in one repository (``git -C <root>``)."""

    def __init__(self, root: str, safe: bool = True) -> None:
        """``safe=False`` only for commands about the user's own setup (hook install reads core.hooksPath)."""
        self.root = root
        self._env = scrubbed_env()
        self._prefix = ["git", *SAFE] if safe else ["git"]

    def run(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return run([*self._prefix, "-C", self.root, *args], input=input, check=check).stdout

    def run_many(self, calls: list[list[str]]) -> list[str]:
        """Run independent git commands at once and return their outputs in order.

        The hook asks several questions whose answers do not depend on each
        other (one per sandbox); asking them together saves a few ms per push.
        """
        outputs = []
        for args, (status, out, err) in zip(calls, self.run_many_status(calls), strict=True):
            if status != 0:
                raise CommandFailed(["git", *args], status, err)
            outputs.append(out)
        return outputs

    def run_many_status(self, calls: list[list[str]]) -> list[tuple[int, str, str]]:
        """Like :meth:`run_many`, for commands whose exit status is an answer (``merge-tree``):
        ``(status, stdout, stderr)`` of each, in order. At most :data:`AT_ONCE` run together, so
        that many sandboxes (a forecast asks for every pair) cannot exhaust processes or pipes."""
        results = []
        for start in range(0, len(calls), AT_ONCE):
            procs = [
                subprocess.Popen(
                    [*self._prefix, "-C", self.root, *args],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=self._env,
                )
                for args in calls[start : start + AT_ONCE]
            ]
            for proc in procs:
                out, err = proc.communicate()
                decoded = out.decode("utf-8", "surrogateescape"), err.decode("utf-8", "surrogateescape")
                results.append((proc.returncode, *decoded))
        return results

    def refs(self, *patterns: str) -> dict[str, str]:
        """``{refname: object id}`` for refs matching ``patterns`` (for-each-ref prefixes)."""
        out = self.run("for-each-ref", "--format=%(refname) %(objectname)", *patterns)
        found = {}
        for line in out.splitlines():
            name, _, oid = line.rpartition(" ")
            if name:
                found[name] = oid
        return found

    def config(self, key: str) -> str | None:
        value = self.run("config", "--get", key, check=False).strip()
        return value or None

    def config_entries(self, regexp: str) -> list[tuple[str, str]]:
        """``(key, value)`` for every config entry (all scopes) whose key matches ``regexp``."""
        entries = []
        for entry in self.run("config", "-z", "--get-regexp", regexp, check=False).split("\0"):
            key, _, value = entry.partition("\n")
            if key:
                entries.append((key, value))
        return entries

    def rev_list(self, include: list[str], exclude: list[str]) -> list[str]:
        """Commits reachable from ``include`` and not from ``exclude``, newest first."""
        if not include:
            return []
        revs = "\n".join([*include, *(f"^{oid}" for oid in exclude if oid != EMPTY_TREE)]) + "\n"
        return self.run("rev-list", "--stdin", input=revs).split()

    def update_ref(self, ref: str, oid: str, message: str) -> None:
        self.run("update-ref", "-m", message, ref, oid)


NO_SUBMODULES = "g ls-files -z --stage | sed -zn 's/^160000 [0-9a-f]* [0-9]*\t/:(exclude,literal)/p'"
"""A shell line (``g`` being git) that prints an exclude pathspec for every submodule of the index, NUL
after each: ``git add`` over a clone whose submodules are the agent's must not look into them, where
their own configuration (a clean filter) would run."""
