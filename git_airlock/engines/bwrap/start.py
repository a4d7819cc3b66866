"""What ``up`` plans before a bwrap sandbox's agent runs: the sandbox's creation, and the refusals.

Its own module because creating a sandbox is one long job with its own details, apart from the
engine's other operations: the private clone made with the user's git configuration kept out, its
working tree checked out or laid over a checkout shared by sandboxes of the same commit, the host's
remote for it, and the record of whose sandbox it is. The refusals come on every start, while
nothing has run yet: what would otherwise leak or fail only once the sandbox runs.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Literal

from git_airlock.agents import recorded_agent
from git_airlock.engines.base import SandboxSpec
from git_airlock.engines.bwrap import agentstate, clone, overlay, userns
from git_airlock.engines.bwrap.argv import hostname, sandbox_path
from git_airlock.engines.bwrap.layout import (
    SANDBOX_HOME,
    Paths,
    SandboxMeta,
    checkout_cache,
    data_root,
    make_dirs,
    new_identity,
)
from git_airlock.engines.bwrap.system import Layer, Mode
from git_airlock.errors import AirlockError
from git_airlock.gitcmd import Git
from git_airlock.naming import fetch_refspecs, remote_name
from git_airlock.plan import Plan

_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|AUTH|PRIVATE|COOKIE|SESSION|DATABASE_URL|DSN$"
    r"|(^|_)KEY(_ID)?$|(^|_)PAT$",
    re.IGNORECASE,
)
_URL_WITH_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*@")
_ISOLATED_GIT = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def plan_create(plan: Plan, spec: SandboxSpec, paths: Paths) -> SandboxMeta:
    """Plan the sandbox's creation; returns the record it will have."""
    remote = remote_name(spec.name)
    if os.path.lexists(paths.root):
        raise AirlockError(
            f"a half-made sandbox is in the way: {paths.root} (left by an `up` that was killed)",
            hint=f"remove that folder (`rm -rf {shlex.quote(paths.root)}`), then run `up` again",
        )
    plan.call(f"create {paths.root} (home, etc)", lambda: make_dirs(paths))
    plan.add(
        ["git", "clone", "--quiet", "--shared", "--no-checkout", "--template=", spec.repo_root, paths.clone],
        env=_ISOLATED_GIT,
    )
    for key, value in (
        ("user.name", f"git-airlock sandbox {spec.name}"),
        ("user.email", f"{spec.name}@sandbox.git-airlock.invalid"),
        ("remote.origin.url", clone.SOURCE),
    ):
        plan.add(["git", "-C", paths.clone, "config", key, value], env=_ISOLATED_GIT)
    layout: Literal["plain", "overlay"] = "plain"
    lower = ""
    ids = userns.for_new_sandbox(paths.root, spec.dry_run)
    can = mountable(spec.dry_run)
    commit = _git_out(spec.repo_root, "rev-parse", "-q", "--verify", "HEAD^{commit}")
    if commit and can["overlay"]:
        cache = checkout_cache(_git_out(spec.repo_root, "rev-parse", f"{commit}^{{tree}}"))
        layout, lower = "overlay", os.path.join(cache, "tree")
        if not os.path.isfile(os.path.join(cache, "index")):
            plan.call(
                f"check out {commit[:10]} once into the shared checkout {cache}",
                lambda: overlay.build_cache(spec.common_dir, commit, cache),
            )
        plan.call(
            "give the clone the shared checkout's index; its own changes go to an overlay layer",
            lambda: overlay.start(paths, cache),
        )
    elif commit:
        plan.add(
            ["git", "-C", paths.clone, "-c", "checkout.workers=0", "checkout", "--quiet", "--force"],
            env=_ISOLATED_GIT,
        )
    else:  # a repository with no commits yet: the agent starts on the same unborn branch
        branch = _git_out(spec.repo_root, "symbolic-ref", "-q", "HEAD") or "refs/heads/main"
        plan.add(["git", "-C", paths.clone, "symbolic-ref", "HEAD", branch], env=_ISOLATED_GIT)
    system: Mode = ("overlay" if ids.root else "fuse") if can["system"] else "none"
    plan.call(
        f"give the sandbox's files to its own root ({ids.describe()})",
        lambda: userns.give_to(ids, paths.clone, paths.home, paths.upper, paths.work),
    )
    if system != "none":
        layer = Layer(paths.root)
        plan.call(
            f"make its system layer {layer.upper} (the sandbox is root there; {system})",
            lambda: layer.create(ids, hostname(spec.name)),
        )
    plan.add(["git", "-C", spec.repo_root, "config", f"remote.{remote}.url", paths.clone])
    tracking, recovery = fetch_refspecs(spec.name)
    plan.add(["git", "-C", spec.repo_root, "config", "--replace-all", f"remote.{remote}.fetch", tracking])
    plan.add(["git", "-C", spec.repo_root, "config", "--add", f"remote.{remote}.fetch", recovery])
    meta: SandboxMeta = {
        "name": spec.name,
        "id": new_identity(),
        "agent": spec.agent.name,
        "repo": spec.repo_root,
        "common_dir": spec.common_dir,
        "network": None,
        "layout": layout,
        "lower": lower,
        "ids": ids.to_meta(),
        "system": system,
    }
    if spec.keep_agent_state and spec.agent.state:
        store = agentstate.Store(spec.agent)
        meta["agent_state"] = True
        plan.call(
            f"give it {spec.agent.name}'s state kept for you in {store.root} (remember what is there now)",
            lambda: store.remember(paths),
        )
    plan.call(
        f"record {paths.meta} (the sandbox's id, and that it belongs to this repository)",
        lambda: paths.write_meta(meta),
    )
    return meta


def plan_restart(plan: Plan, spec: SandboxSpec, paths: Paths, meta: SandboxMeta) -> SandboxMeta:
    """What a sandbox made before sandboxes had uids and a system of their own gets at its next start."""
    ids = userns.from_meta(meta)
    if ids is None:
        ids = userns.for_new_sandbox(paths.root, spec.dry_run)
        meta = {**meta, "ids": ids.to_meta()}
        given = ids

        def give() -> None:
            userns.give_to(given, paths.clone, paths.home, paths.upper, paths.work)
            paths.remember(ids=given.to_meta())

        plan.call(f"give the sandbox's files to its own root ({ids.describe()})", give)
    if "system" not in meta:
        system: Mode = ("overlay" if ids.root else "fuse") if mountable(spec.dry_run)["system"] else "none"
        meta = {**meta, "system": system}
        layer, owner = Layer(paths.root), ids

        def make() -> None:
            if system != "none" and not layer.exists():
                layer.create(owner, hostname(spec.name))
            paths.remember(system=system)

        plan.call(f"make its system layer {layer.upper} ({system})", make)
    return meta


def prepare_host_side(paths: Paths) -> None:
    """Before any sandbox over a sandbox's files: the seccomp program, passwd and group of the host's
    own sandboxes, and the folders ``enter.py`` mounts its views on (made by the host, never the agent's)."""
    from git_airlock.engines.bwrap import confine

    confine.prepare(paths)
    for folder in (paths.lower_view, paths.repo_view):
        os.makedirs(folder, exist_ok=True)


def prepare_start(paths: Paths, meta: SandboxMeta) -> None:
    """Before every start of the agent's sandbox: :func:`prepare_host_side`, and the system layer brought up
    to date with the host (the entries the host added to the curated folders hidden)."""
    prepare_host_side(paths)
    if meta.get("agent_state"):
        agentstate.Store(recorded_agent(meta.get("agent", ""))).prepare(paths)
    if meta.get("system", "none") == "none":
        return
    layer = Layer(paths.root)
    if not layer.exists():
        raise AirlockError(
            f"sandbox {paths.name}'s system layer is missing ({layer.upper})",
            hint=f"`git airlock --name {paths.name} rm` removes the sandbox (offering to fetch first); "
            "`up` then makes a new one",
        )
    layer.refresh(userns.of_sandbox(meta), meta.get("system", "none"))


def mountable(dry_run: bool) -> dict[str, bool]:
    """What can be mounted for a sandbox here (``overlay.probe``); a dry run mounts nothing and assumes all."""
    probe_root = os.path.join(os.path.dirname(data_root()), "probe")
    if dry_run:
        return {"overlay": True, "system": True}
    return overlay.probe(probe_root)


def check_pass_env(names: tuple[str, ...]) -> None:
    """Refuse variables that look like credentials: their values would be in bwrap's command line,
    which every process in the sandbox can read (``/proc/1/cmdline``)."""
    bad = [name for name in names if _SECRET_NAME.search(name)]
    bad += [name for name in names if name not in bad and _URL_WITH_USERINFO.match(os.environ.get(name, ""))]
    if bad:
        raise AirlockError(
            f"AIRLOCK_PASS_ENV names {', '.join(bad)}, which look like credentials (or a URL that carries one)",
            hint="credentials stay on the host; pass only non-secret variables to the sandbox",
        )


def check_installed(spec: SandboxSpec, paths: Paths) -> None:
    """Refuse to start an agent the sandbox cannot run: it sees /usr, its own HOME and the agents
    git-airlock installed, not the user's, and starts it with the system's python3 (``egress.handoff``);
    a dry run assumes both are there."""
    agent = spec.agent
    if spec.dry_run:
        return
    if not _on_sandbox_path("python3", paths.home):
        raise AirlockError(
            "the sandbox has no python3 in /usr: its first program, which starts the agent, is a Python script",
            hint="install the system's Python (Debian/Ubuntu: `apt-get install python3`), then run `up` again",
        )
    if _on_sandbox_path(agent.executable, paths.home):
        return
    shell = f"git airlock --engine bwrap --name {spec.name} --agent shell up"
    install = (
        f"`git airlock agents install {agent.name}` installs it once for every sandbox"
        if agent.npm_package
        else f"install it inside, as the agent: `{shell}`, then into ~/.local/bin there, as its docs say"
    )
    raise AirlockError(
        f"`{agent.executable}` is not installed where the sandbox can run it",
        hint=f"the sandbox sees /usr, its own HOME and the agents git-airlock installed, not yours; {install}",
    )


def _on_sandbox_path(command: str, home: str) -> bool:
    """Whether ``command`` exists on the sandbox's PATH, looked up through the host paths behind it."""
    for folder in sandbox_path().split(":"):
        host = home + folder[len(SANDBOX_HOME) :] if folder.startswith(SANDBOX_HOME) else folder
        if os.access(os.path.join(host, command), os.X_OK):
            return True
    return False


def _git_out(repo: str, *args: str) -> str:
    return Git(repo, safe=False).run(*args, check=False).strip()
