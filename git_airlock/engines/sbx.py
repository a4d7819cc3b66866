"""Docker Sandboxes (the ``sbx`` CLI) in clone mode.

Facts this module relies on, from Docker's sbx documentation (URL next to each use below):
- ``sbx run [flags] AGENT [PATH...] -- AGENT_ARGS`` creates the sandbox when it
  does not exist; extra positionals are workspaces, so agent arguments always
  go after ``--``. ``--clone`` is fixed at creation.
- sbx itself writes the ``sandbox-NAME`` remote into the host repository; its
  ``git://127.0.0.1:PORT`` URL changes at every start. We read it, never
  rewrite it, and start the sandbox (``sbx exec NAME true``) before a fetch.
- Clone mode copies the host's non-local remotes (``origin``, ``upstream``) into
  the clone, so the agent could push to the user's forge: we make every remote
  of the clone unable to push before the agent starts.
- ``sbx ls --json`` gives ``{"sandboxes": [...]}`` (older versions: a bare
  array, sometimes after other lines).
- ``sbx rm`` needs ``--force`` without a terminal; we ask first ourselves.
- ``sbx policy init MODE`` is one-time; "already initialized" is fine. Rules are
  global unless scoped with ``--sandbox NAME``; ``sbx policy reset`` is
  machine-wide and stops every running sandbox, so only ``--global`` uses it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from git_airlock.engines import sbx_policy
from git_airlock.engines.base import Engine, SandboxSpec, SandboxState, SeedFile
from git_airlock.engines.sbx_forge import (
    NEUTRALISE_REMOTES,
    SBX,
    forge_remotes,
    github_secret_risk,
    ssh_forwarding_risk,
)
from git_airlock.errors import AirlockError
from git_airlock.plan import Plan, Runner, Step

if TYPE_CHECKING:
    from git_airlock.checks import Report
    from git_airlock.modes import NetworkPolicy

SANDBOX_HOME = "/home/agent"
INSTALL_HINT = "install Docker Sandboxes (https://docs.docker.com/ai/sandboxes/), then run `git airlock doctor`"

SBX_SERVICES = ("anthropic", "aws", "github", "google", "groq", "mistral", "nebius", "openai", "xai")
"""`sbx secret set` services ("Available services: ...",
https://docs.docker.com/reference/cli/sbx/secret/set/). Newer releases add more (cursor, droid,
openrouter: https://docs.docker.com/ai/sandboxes/cli/credentials/#built-in-services); the ones
here are those every clone-mode release has."""


class SbxEngine(Engine):
    name = "sbx"
    install_hint = INSTALL_HINT

    def executable(self) -> str | None:
        return shutil.which(SBX)

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

    def states(self, runner: Runner, names: list[str]) -> dict[str, SandboxState]:
        result = runner.query(self.list_step())
        if result is None or result.returncode != 0:
            return {}
        listed = self.parse_list(result.stdout)
        return {name: listed[name] for name in names if name in listed}

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

    def push_risks(self, runner: Runner, name: str | None) -> list[str]:
        """What lets a sandbox push to the user's forge without git-airlock: a forwarded SSH agent, a github secret."""
        return [risk for risk in (ssh_forwarding_risk(runner), github_secret_risk(runner, name)) if risk]

    # -- lifecycle ----------------------------------------------------------

    def launch(
        self, spec: SandboxSpec, agent_args: list[str], seeds: list[SeedFile], exists: bool = False
    ) -> tuple[Plan, Step]:
        """``sbx run --clone`` in one step when nothing has to happen before the agent starts;
        otherwise ``create``, copy seed files in, make the clone's forge remotes unable to push, then ``run``.

        A stopped sandbox that already exists is started again with ``sbx run NAME``
        (https://docs.docker.com/reference/cli/sbx/run/: "sbx run [flags] SANDBOX | AGENT ...").
        """
        guard = self.remote_guard_plan(spec.name, spec.repo_root)
        resume = Step((SBX, "run", spec.name, "--", *agent_args), interactive=True, check=False)
        if exists:
            return self._copy_seeds(Plan(), spec.name, seeds).extend(guard), resume
        if not seeds and not guard.steps:
            argv = [SBX, "run", "--clone", "--name", spec.name, spec.agent.name, spec.repo_root, "--", *agent_args]
            return Plan(), Step(tuple(argv), interactive=True, check=False)
        setup = Plan().add([SBX, "create", "--clone", "--name", spec.name, spec.agent.name, spec.repo_root])
        return self._copy_seeds(setup, spec.name, seeds).extend(guard), resume

    @staticmethod
    def _copy_seeds(plan: Plan, name: str, seeds: list[SeedFile]) -> Plan:
        for seed in seeds:
            plan.add([SBX, "cp", seed.source, f"{name}:{seed.target}"])
        return plan

    def remote_guard_plan(self, name: str, repo_root: str) -> Plan:
        """Make the clone's remotes unable to push, when the host has remotes that clone mode copies in.

        ``sbx exec`` without ``--workdir`` "starts in the sandbox's primary workspace"
        (https://docs.docker.com/ai/sandboxes/cli/usage/#run-commands-inside-a-sandbox), which in
        clone mode is the clone the agent works in (https://docs.docker.com/ai/sandboxes/cli/git/#clone-mode).
        The agent could undo this in its own clone; what still lets it push is its credentials
        (`push_risks`) and the network policy, which `lockdown` narrows.
        """
        remotes = forge_remotes(repo_root)
        if not remotes:
            return Plan()
        return Plan().add(
            [SBX, "exec", name, "sh", "-c", NEUTRALISE_REMOTES],
            hint=f"the clone's remotes ({', '.join(remotes)}) could still push to your forge: "
            "`git airlock rm` the sandbox rather than run the agent",
        )

    def fetch_note(self, running: bool) -> str | None:
        return None if running else "starting the sandbox so its commits can be fetched ..."

    def doctor(self, report: Report, runner: Runner, sandbox: str | None) -> None:
        from git_airlock.engines.sbx_doctor import check_sbx, check_virtualization

        check_sbx(report, self, runner, sandbox)
        check_virtualization(report)

    def fetch_plan(self, name: str, running: bool) -> Plan:
        """sbx serves the clone only while the sandbox runs: `exec true` starts a stopped one."""
        return Plan() if running else Plan([Step((SBX, "exec", name, "true"))])

    def clone_script_plan(self, name: str, script: str, args: list[str]) -> Plan:
        """``sbx exec`` starts a stopped sandbox and, without ``--workdir``, "starts in the sandbox's
        primary workspace" (https://docs.docker.com/ai/sandboxes/cli/usage/#run-commands-inside-a-sandbox):
        the clone, inside the VM, where nothing of this machine is."""
        return Plan([Step((SBX, "exec", name, "sh", "-c", script, "sh", *args))])

    def upload_pack(self, name: str) -> str | None:
        return None

    def shell_plan(self, name: str) -> Plan:
        return Plan([Step((SBX, "exec", "-it", name, "bash"), interactive=True, check=False)])

    def stop_plan(self, name: str) -> Plan:
        return Plan([Step((SBX, "stop", name))])

    def remove_plan(self, name: str, repo_root: str) -> Plan:
        return Plan([Step((SBX, "rm", "--force", name))])

    # -- network policy -----------------------------------------------------

    def policy_init_plan(self, mode: NetworkPolicy) -> Plan:
        return Plan([Step((SBX, "policy", "init", mode), tolerate="already initialized")])

    def lockdown_plan(self, runner: Runner, name: str, hosts: list[str]) -> Plan:
        """Narrow one sandbox to ``hosts`` with rules scoped to it alone; other sandboxes are untouched.

        Rules are scoped with ``--sandbox NAME`` and removed with
        ``sbx policy rm network --sandbox NAME --resource R,...``
        (https://docs.docker.com/ai/sandboxes/governance/access-controls/local/#network-rules).
        The sandbox's own earlier rules go first, so a second lockdown replaces the first; then
        every allow rule it sees outside ``hosts`` is denied for it (see sbx_policy), and ``hosts``
        are allowed for it (needed when the global policy is deny-all).
        """
        rules = self._rules(runner, name)
        if rules is None:
            return self._unknown_rules_plan(name, hosts, "deny", "lock down")
        deny, left_open = sbx_policy.narrowing(rules, name, hosts)
        everything = [resource for resource in left_open if sbx_policy.matches_every_host(resource)]
        if everything:
            raise AirlockError(
                f"the policy allows every host ({everything[0]}) and sbx's deny rules win over allow rules, "
                f"so sandbox {name} cannot be narrowed to ALLOW on its own",
                hint="`git airlock lockdown --global` sets deny-all for every sandbox, then allows ALLOW for this one",
            )
        plan = self._remove_own_plan(rules, name)
        for resource in left_open:
            plan.note(f"left open: {resource} (denying it would also block an ALLOW entry)")
        if deny:
            plan.add([SBX, "policy", "deny", "network", "--sandbox", name, ",".join(deny)])
        return plan.add(
            [SBX, "policy", "allow", "network", "--sandbox", name, ",".join(hosts)],
            hint="the sandbox is now denied everything outside ALLOW but ALLOW itself is not allowed: fix it and "
            "run `git airlock lockdown` again, or `git airlock unlock`",
        )

    def unlock_plan(self, runner: Runner, name: str | None, mode: NetworkPolicy) -> Plan:
        """Remove the rules scoped to this sandbox that the user can edit: it follows the global policy again."""
        if name is None:
            raise AirlockError(
                "unlock works on one sandbox, and this is not a repository",
                hint="run it in the sandbox's repository, or `git airlock unlock --global` for every sandbox",
            )
        rules = self._rules(runner, name)
        if rules is None:
            return self._unknown_rules_plan(name, [], "rm", "unlock")
        return self._remove_own_plan(rules, name)

    def global_lockdown_plan(self, name: str, hosts: list[str]) -> Plan:
        """Machine-wide: reset every policy (this stops every running sandbox), deny-all, then ALLOW for this sandbox.

        "This deletes the local policy store, restarts the daemon ... Running sandboxes stop"
        (https://docs.docker.com/ai/sandboxes/governance/access-controls/local/#resetting).
        """
        return Plan(
            [
                Step((SBX, "policy", "reset", "--force")),
                Step((SBX, "policy", "init", "deny-all")),
                Step(
                    (SBX, "policy", "allow", "network", "--sandbox", name, ",".join(hosts)),
                    hint="the policy is now deny-all without this allowlist: fix it and run "
                    "`git airlock lockdown --global` again, or `git airlock unlock --global`",
                ),
            ]
        )

    def global_unlock_plan(self, mode: NetworkPolicy) -> Plan:
        """Machine-wide: reset every policy (stopping running sandboxes) and initialise ``mode`` again."""
        return Plan([Step((SBX, "policy", "reset", "--force")), *self.policy_init_plan(mode).steps])

    def _rules(self, runner: Runner, name: str) -> list[sbx_policy.Rule] | None:
        """The rules ``name`` sees: "Pass a sandbox name to filter to global policies and those scoped to
        that sandbox" (https://docs.docker.com/ai/sandboxes/governance/monitor-and-enforce/monitoring/).
        None in a dry run."""
        result = runner.query(Step((SBX, "policy", "ls", name, "--json")))
        if result is None:
            return None
        if result.returncode != 0:
            raise AirlockError(
                f"`sbx policy ls {name} --json` failed: {(result.stderr or result.stdout).strip()}",
                hint="run `git airlock doctor`; sbx 0.35 or later is needed to lock down one sandbox",
            )
        return sbx_policy.read_rules(result.stdout)

    @staticmethod
    def _remove_own_plan(rules: list[sbx_policy.Rule], name: str) -> Plan:
        own = sbx_policy.own_resources(rules, name)
        if not own:
            return Plan()
        return Plan().add([SBX, "policy", "rm", "network", "--sandbox", name, "--resource", ",".join(own)])

    @staticmethod
    def _unknown_rules_plan(name: str, hosts: list[str], action: str, verb: str) -> Plan:
        """What a dry run shows for commands that depend on rules only a real run reads."""
        plan = Plan().note(
            f"sbx policy rm network --sandbox {name} --resource <the rules scoped to {name} that you can edit>"
        )
        if action == "deny":
            plan.note(f"sbx policy deny network --sandbox {name} <every allowed resource above outside ALLOW>")
            plan.add([SBX, "policy", "allow", "network", "--sandbox", name, ",".join(hosts)])
        return plan.note(f"({verb} reads the rules first, so a real run names them)")

    def net_plan(self, name: str | None) -> Plan:
        argv = [SBX, "policy", "log"]
        if name:
            argv.append(name)
        return Plan([Step(tuple(argv), interactive=True)])

    def connection_entries(self, runner: Runner, name: str | None) -> list[dict[str, object]]:
        """``sbx policy log [NAME] --json``: one entry per destination and verdict, with a ``count``
        (https://docs.docker.com/reference/cli/sbx/policy/log/)."""
        import json

        argv = [SBX, "policy", "log", *([name] if name else []), "--json"]
        result = runner.query(Step(tuple(argv)))
        if result is None:
            return []
        try:
            entries = json.loads(result.stdout) if result.returncode == 0 else []
        except ValueError:
            entries = []
        return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []

    # -- credentials ----------------------------------------------------------

    def secret_set_plan(self, service: str, read_value: Callable[[], str | None]) -> Plan | None:
        """`sbx secret set -g SERVICE` with the value on standard input (sbx's own store and proxy).

        "-g, --global: Use global secret scope"; "echo ... | sbx secret set -g anthropic"
        (https://docs.docker.com/reference/cli/sbx/secret/set/). The service is checked before the
        value is asked for.
        """
        self._check_service(service)
        return Plan([Step((SBX, "secret", "set", "-g", service), stdin=read_value())])

    def secret_ls_plan(self) -> Plan | None:
        return Plan([Step((SBX, "secret", "ls"), interactive=True)])

    def secret_rm_plan(self, service: str) -> Plan | None:
        self._check_service(service)
        return Plan([Step((SBX, "secret", "rm", "-g", service))])

    @staticmethod
    def _check_service(service: str) -> None:
        """Map git-airlock's service names onto sbx's, refusing those sbx does not have."""
        if service == "claude":
            raise AirlockError(
                "sbx has no `claude` service: with a Claude subscription, Claude Code signs in inside the sandbox "
                "and sbx keeps the token on the host (https://docs.docker.com/ai/sandboxes/cli/credentials/)",
                hint="log in inside the agent, or `git airlock secret set anthropic` for an API key",
            )
        if service not in SBX_SERVICES:
            raise AirlockError(f"sbx has no {service!r} service", hint="sbx's services: " + ", ".join(SBX_SERVICES))
