"""Docker Sandboxes (the ``sbx`` CLI) in clone mode.

Facts this module relies on, from Docker's sbx reference:
- ``sbx run [flags] AGENT [PATH...] -- AGENT_ARGS`` creates the sandbox when it
  does not exist; extra positionals are workspaces, so agent arguments always
  go after ``--``. ``--clone`` is fixed at creation.
- sbx itself writes the ``sandbox-NAME`` remote into the host repository; its
  ``git://127.0.0.1:PORT`` URL changes at every start. We read it, never
  rewrite it, and start the sandbox (``sbx exec NAME true``) before a fetch.
- ``sbx ls --json`` gives ``{"sandboxes": [...]}`` (older versions: a bare
  array, sometimes after other lines).
- ``sbx rm`` needs ``--force`` without a terminal; we ask first ourselves.
- ``sbx policy init MODE`` is one-time; "already initialized" is fine.
"""

from __future__ import annotations

import json
import shutil

from git_airlock.engines.base import SandboxState, SeedFile
from git_airlock.errors import AirlockError
from git_airlock.plan import Plan, Step

SBX = "sbx"
SANDBOX_HOME = "/home/agent"
INSTALL_HINT = "install Docker Sandboxes (https://docs.docker.com/ai/sandboxes/), then run `git airlock doctor`"


class SbxEngine:
    name = "sbx"

    def executable(self) -> str | None:
        return shutil.which(SBX)

    def sandbox_home(self) -> str:
        return SANDBOX_HOME

    # -- queries ------------------------------------------------------------

    def version_step(self) -> Step:
        return Step((SBX, "version"))

    def list_step(self) -> Step:
        return Step((SBX, "ls", "--json"), hint=INSTALL_HINT)

    def parse_list(self, output: str) -> dict[str, SandboxState]:
        """Parse ``sbx ls --json`` in both its shapes, skipping any lines before the JSON."""
        start = next(
            (i for i, ch in enumerate(output) if ch in "[{" and (i == 0 or output[i - 1] == "\n")),
            None,
        )
        if start is None:
            if not output.strip():
                return {}
            raise AirlockError("could not read the output of `sbx ls --json`", hint="run `sbx ls --json` to see it")
        try:
            data = json.loads(output[start:])
        except json.JSONDecodeError as exc:
            raise AirlockError(f"could not parse `sbx ls --json`: {exc}", hint="run `sbx ls --json` to see it") from exc
        items = data.get("sandboxes") if isinstance(data, dict) else data
        states: dict[str, SandboxState] = {}
        for item in items or []:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            raw = str(item.get("status", "")).lower()
            status = "running" if raw in ("running", "up", "started") else "stopped"
            states[item["name"]] = SandboxState(item["name"], status, str(item.get("agent", "")))
        return states

    # -- lifecycle ----------------------------------------------------------

    def agent_argv(self, name: str, agent: str, repo_root: str, agent_args: list[str]) -> list[str]:
        return [SBX, "run", "--clone", "--name", name, agent, repo_root, "--", *agent_args]

    def create_plan(self, name: str, agent: str, repo_root: str, agent_args: list[str], seeds: list[SeedFile]) -> Plan:
        plan = Plan()
        if not seeds:
            plan.add(self.agent_argv(name, agent, repo_root, agent_args), interactive=True, check=False)
            return plan
        plan.add([SBX, "create", "--clone", "--name", name, agent, repo_root])
        for seed in seeds:
            plan.add([SBX, "cp", seed.source, f"{name}:{seed.target}"])
        plan.add(self.run_existing_argv(name, agent_args), interactive=True, check=False)
        return plan

    def run_existing_argv(self, name: str, agent_args: list[str]) -> list[str]:
        return [SBX, "run", name, "--", *agent_args]

    def start_step(self, name: str) -> Step:
        return Step((SBX, "exec", name, "true"))

    def shell_step(self, name: str) -> Step:
        return Step((SBX, "exec", "-it", name, "bash"), interactive=True, check=False)

    def stop_step(self, name: str) -> Step:
        return Step((SBX, "stop", name))

    def remove_step(self, name: str) -> Step:
        return Step((SBX, "rm", "--force", name))

    # -- network policy -----------------------------------------------------

    def policy_init_step(self, mode: str) -> Step:
        return Step((SBX, "policy", "init", mode), tolerate="already initialized")

    def policy_reset_step(self) -> Step:
        return Step((SBX, "policy", "reset", "--force"))

    def policy_allow_step(self, hosts: list[str], sandbox: str | None = None) -> Step:
        argv = [SBX, "policy", "allow", "network"]
        if sandbox:
            argv += ["--sandbox", sandbox]
        return Step(
            (*argv, ",".join(hosts)),
            hint="the policy is now deny-all without this allowlist: fix it and run `git airlock lockdown` "
            "again, or `git airlock unlock`",
        )

    def policy_log_step(self, sandbox: str | None) -> Step:
        argv = [SBX, "policy", "log"]
        if sandbox:
            argv.append(sandbox)
        return Step(tuple(argv), interactive=True)
