"""Agent CLIs installed once per user, read-only in every bwrap sandbox.

A sandbox's HOME is the agent's, so an agent installed there costs a 235 MB
``npm install`` per sandbox, and the host must never run npm over it (npm
would read the ``npmrc`` the agent can write there). Instead ``git airlock
agents install claude`` fills a folder of git-airlock's own under the user
data directory, in two steps:

- npm downloads and unpacks the package on the host with ``--ignore-scripts``:
  no code from the package runs as the user;
- the packages' install scripts (Claude Code's copies its native binary into
  place) run with ``npm rebuild`` in a sandbox without network, as the
  sandbox user, that can write nothing but this folder. As ``npm install``
  does, an optional dependency whose script fails (Gemini CLI's ``node-pty``
  and ``keytar`` build from source, which needs the network) is no failure:
  the agent does without it (Gemini CLI uses its prebuilt pty instead); a
  plain ``npm rebuild`` would fail on it, so those rebuild one by one.

Every sandbox sees the folder read-only, at its own path, with its ``bin`` on
PATH after the sandbox's own HOME (what an agent installed for itself wins)
and before ``/usr`` (a CLI installed system-wide keeps working where this
folder does not have one).
"""

from __future__ import annotations

import json
import os

from git_airlock import process
from git_airlock.engines.bwrap import confine
from git_airlock.engines.bwrap.layout import data_root
from git_airlock.plan import Plan

NPM_FLAGS = ("--no-audit", "--no-fund", "--loglevel=error")


class Store:
    """Where the shared agents live, and the passwd/devices of the sandbox that finishes installing them."""

    def __init__(self) -> None:
        self.root = os.path.join(os.path.dirname(data_root()), "agents")
        self.prefix = os.path.join(self.root, "npm")
        self.bin = os.path.join(self.prefix, "bin")
        self.etc = os.path.join(self.root, "etc")
        self.dev = os.path.join(self.root, "dev")

    def mounts(self) -> list[str]:
        """The store read-only in a sandbox, where it exists."""
        return ["--ro-bind", self.prefix, self.prefix] if os.path.isdir(self.prefix) else []

    def version(self, package: str) -> str | None:
        """The installed version of an npm package, or None."""
        manifest = os.path.join(self.prefix, "lib", "node_modules", package, "package.json")
        try:
            with open(manifest, encoding="utf-8") as handle:
                return str(json.load(handle).get("version") or "?")
        except (OSError, ValueError):
            return None

    def install_plan(self, package: str, update: bool) -> Plan:
        """Download on the host without running anything, then run the install scripts in a sandbox."""
        spec = f"{package}@latest" if update else package
        plan = Plan().call(f"create {self.prefix}", lambda: os.makedirs(self.prefix, mode=0o755, exist_ok=True))
        plan.add(["npm", "install", "--global", "--prefix", self.prefix, "--ignore-scripts", *NPM_FLAGS, spec])
        plan.call("prepare the sandbox that runs the package's install scripts", lambda: confine.prepare_offline(self))
        return plan.call(
            "run the packages' install scripts with `npm rebuild` in a sandbox without network "
            "(an optional dependency's where it can)",
            self.run_scripts,
        )

    def _npm(self, *args: str) -> list[str]:
        """npm ``args`` on the store, in the sandbox without network that can write the store only."""
        offline = confine.offline(self, 512 * 1024 * 1024, ["--bind", self.prefix, self.prefix])
        return confine.with_filter([*offline, "npm", *args, "--global", "--prefix", self.prefix, *NPM_FLAGS])

    def _scripted(self, selector: str) -> list[str]:
        """The folders of the store's packages matching an ``npm query`` selector that have install scripts."""
        found = json.loads(process.run(self._npm("query", selector)).stdout or "[]")
        return [
            str(node["path"])
            for node in found
            if {"preinstall", "install", "postinstall"} & set(node.get("scripts") or {})
            or os.path.isfile(os.path.join(str(node["path"]), "binding.gyp"))  # npm runs node-gyp for these
        ]

    def run_scripts(self) -> None:
        """``npm rebuild`` of every package with install scripts: what the agents need must build; an
        optional dependency that cannot (it downloads, or compiles with what is missing) is left unbuilt."""
        hint = (
            "the package's install scripts failed in a sandbox without network; "
            "`git airlock agents ls` shows what is installed"
        )
        needed = self._scripted(":not(.optional)")
        if needed:
            process.run(self._npm("rebuild", *needed), hint=hint)
        for folder in self._scripted(".optional"):
            process.run(self._npm("rebuild", folder), check=False)
