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
from git_airlock.errors import AirlockError
from git_airlock.plan import Plan, Runner, Step

if TYPE_CHECKING:
    from git_airlock.checks import Report
    from git_airlock.modes import NetworkPolicy

SBX = "sbx"
SANDBOX_HOME = "/home/agent"
INSTALL_HINT = "install Docker Sandboxes (https://docs.docker.com/ai/sandboxes/), then run `git airlock doctor`"

NO_PUSH_URL = "/dev/null/git-airlock-no-push"
"""A push URL that can never work: nothing can exist below /dev/null, and no network is tried."""
NEUTRALISE_REMOTES = (
    "set -e; "
    f'for remote in $(git remote); do git config --replace-all "remote.$remote.pushurl" {NO_PUSH_URL}; done; '
    f'git config --replace-all url.{NO_PUSH_URL}/.pushInsteadOf ""'
)
"""Run in the clone: every remote pushes to NO_PUSH_URL, and an empty ``pushInsteadOf`` prefix
rewrites any URL given to ``git push`` directly to one below it. A fixed script: nothing from the
host or the sandbox is interpolated into it."""

SBX_SERVICES = ("anthropic", "aws", "github", "google", "groq", "mistral", "nebius", "openai", "xai")
"""`sbx secret set` services ("Available services: ...",
https://docs.docker.com/reference/cli/sbx/secret/set/). Newer releases add more (cursor, droid,
openrouter: https://docs.docker.com/ai/sandboxes/cli/credentials/#built-in-services); the ones
here are those every clone-mode release has."""
SSH_FORWARDING_SETTING = "ssh.agentForwardingEnabled"
"""Machine-wide, default true; no per-sandbox switch is documented
(https://docs.docker.com/ai/sandboxes/cli/local/settings/#sshagentforwardingenabled)."""


def is_local_url(url: str) -> bool:
    """A file:// URL or a filesystem path: clone mode does not copy such remotes into the clone.

    git's rule: a URL without ``://`` is scp-like (``host:path``, remote) only when a colon comes
    before the first slash.
    """
    if url.startswith("file://"):
        return True
    if "://" in url:
        return False
    colon, slash = url.find(":"), url.find("/")
    return colon < 0 or (0 <= slash < colon)


def forge_remotes(repo_root: str) -> list[str]:
    """The host's remotes that clone mode copies into the clone.

    "The CLI copies Git remotes from your host repository, such as `origin` and `upstream`, into
    the in-sandbox clone. Local-path remotes, such as `file://` URLs and filesystem paths, aren't
    copied" (https://docs.docker.com/ai/sandboxes/cli/git/#sandbox-remote-behavior).
    """
    from git_airlock.gitcmd import Git

    names = []
    for key, url in Git(repo_root, safe=False).config_entries(r"^remote\..*\.url$"):
        name = key[len("remote.") : -len(".url")]
        if not is_local_url(url) and name not in names:
            names.append(name)
    return names


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
        return [risk for risk in (self._ssh_forwarding_risk(runner), self._github_secret_risk(runner, name)) if risk]

    def _ssh_forwarding_risk(self, runner: Runner) -> str | None:
        """`sbx settings get KEY` "prints only the effective value"
        (https://docs.docker.com/ai/sandboxes/cli/local/settings/#view-settings); a release without
        `settings` fails, and forwarding is on by default, so anything but "false" is a risk."""
        result = runner.query(Step((SBX, "settings", "get", SSH_FORWARDING_SETTING)))
        if result is None or (result.returncode == 0 and result.stdout.strip() == "false"):
            return None
        return (
            "sbx forwards your SSH agent into every sandbox (ssh.agentForwardingEnabled, on by default; sbx has no "
            "per-sandbox switch), so the agent can push over SSH where the network policy lets it: "
            f"`sbx settings set {SSH_FORWARDING_SETTING} false` then `sbx daemon restart` turns it off"
        )

    def _github_secret_risk(self, runner: Runner, name: str | None) -> str | None:
        """`sbx secret ls` prints ``SCOPE TYPE NAME SECRET`` rows, the scope ``(global)`` or a sandbox
        (https://docs.docker.com/ai/sandboxes/cli/credentials/#list-and-remove-secrets)."""
        result = runner.query(Step((SBX, "secret", "ls")))
        if result is None or result.returncode != 0:
            return None
        scopes = {"(global)", name}
        for line in result.stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3 and fields[0] in scopes and fields[2] == "github":
                scope = "every sandbox" if fields[0] == "(global)" else "this sandbox"
                return (
                    f"a github secret is stored for {scope}: sbx's proxy adds your GitHub token to the sandbox's "
                    "requests to github.com, so the agent can push there when the network policy allows GitHub "
                    f"(`sbx secret rm github{'' if fields[0] == '(global)' else ' --sandbox ' + fields[0]}` removes it)"
                )
        return None

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
