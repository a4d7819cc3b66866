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

from git_airlock.engines.base import SandboxSpec, SandboxState, SeedFile
from git_airlock.errors import AirlockError
from git_airlock.plan import Plan, Runner, Step

SBX = "sbx"
SANDBOX_HOME = "/home/agent"
INSTALL_HINT = "install Docker Sandboxes (https://docs.docker.com/ai/sandboxes/), then run `git airlock doctor`"


class SbxEngine:
    name = "sbx"

    def executable(self) -> str | None:
        return shutil.which(SBX)

    install_hint = INSTALL_HINT
    policy_reset_stops_sandboxes = True
    """`sbx policy reset` restarts the daemon, which stops every running sandbox."""

    def sandbox_home(self) -> str:
        return SANDBOX_HOME

    # -- queries ------------------------------------------------------------

    def list_step(self) -> Step:
        return Step((SBX, "ls", "--json"), hint=INSTALL_HINT)

    def state(self, runner: Runner, name: str) -> SandboxState | None:
        result = runner.query(self.list_step())
        if result is None:
            return None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise AirlockError(
                f"`sbx ls` failed: {detail}",
                hint="run `git airlock doctor` to check the sandbox daemon and your login",
            )
        return self.parse_list(result.stdout).get(name)

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

    def launch(
        self, spec: SandboxSpec, agent_args: list[str], seeds: list[SeedFile], exists: bool = False
    ) -> tuple[Plan, Step]:
        """``sbx run --clone`` in one step; with seed files, ``create``, ``cp`` each, then ``run``.

        A stopped sandbox that already exists is started again with ``sbx run NAME``.
        """
        if exists:
            setup = Plan()
            for seed in seeds:
                setup.add([SBX, "cp", seed.source, f"{spec.name}:{seed.target}"])
            return setup, Step((SBX, "run", spec.name, "--", *agent_args), interactive=True, check=False)
        if not seeds:
            argv = [SBX, "run", "--clone", "--name", spec.name, spec.agent, spec.repo_root, "--", *agent_args]
            return Plan(), Step(tuple(argv), interactive=True, check=False)
        setup = Plan().add([SBX, "create", "--clone", "--name", spec.name, spec.agent, spec.repo_root])
        for seed in seeds:
            setup.add([SBX, "cp", seed.source, f"{spec.name}:{seed.target}"])
        return setup, Step((SBX, "run", spec.name, "--", *agent_args), interactive=True, check=False)

    def fetch_plan(self, name: str, running: bool) -> Plan:
        """sbx serves the clone only while the sandbox runs: `exec true` starts a stopped one."""
        return Plan() if running else Plan([Step((SBX, "exec", name, "true"))])

    def upload_pack(self, name: str) -> str | None:
        return None

    def shell_plan(self, name: str) -> Plan:
        return Plan([Step((SBX, "exec", "-it", name, "bash"), interactive=True, check=False)])

    def stop_plan(self, name: str) -> Plan:
        return Plan([Step((SBX, "stop", name))])

    def remove_plan(self, name: str, repo_root: str) -> Plan:
        return Plan([Step((SBX, "rm", "--force", name))])

    # -- network policy -----------------------------------------------------

    def policy_init_plan(self, mode: str) -> Plan:
        return Plan([Step((SBX, "policy", "init", mode), tolerate="already initialized")])

    def lockdown_plan(self, name: str, hosts: list[str]) -> Plan:
        return Plan(
            [
                Step((SBX, "policy", "reset", "--force")),
                Step((SBX, "policy", "init", "deny-all")),
                Step(
                    (SBX, "policy", "allow", "network", "--sandbox", name, ",".join(hosts)),
                    hint="the policy is now deny-all without this allowlist: fix it and run `git airlock lockdown` "
                    "again, or `git airlock unlock`",
                ),
            ]
        )

    def unlock_plan(self, name: str | None, mode: str) -> Plan:
        return Plan([Step((SBX, "policy", "reset", "--force")), *self.policy_init_plan(mode).steps])

    def net_plan(self, name: str | None) -> Plan:
        argv = [SBX, "policy", "log"]
        if name:
            argv.append(name)
        return Plan([Step(tuple(argv), interactive=True)])
