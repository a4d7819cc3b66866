"""``doctor``: is everything in place to run a sandbox? OK/WARN/FAIL lines."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

import click

from git_airlock.app import App
from git_airlock.errors import AirlockError

pass_app = click.make_pass_decorator(App)

_LOGIN_WORDS = ("not logged in", "login", "unauthorized", "unauthenticated", "authenticate")


class Report:
    def __init__(self) -> None:
        self.failed = False

    def line(self, level: str, what: str, detail: str) -> None:
        if level == "FAIL":
            self.failed = True
        click.echo(f"{level:<4}  {what:<16} {detail}")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None


def check_virtualization(report: Report) -> None:
    system = platform.system()
    if system == "Linux":
        try:
            with open("/proc/version", encoding="utf-8") as handle:
                wsl = "microsoft" in handle.read().lower()
        except OSError:
            wsl = False
        if os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK):
            report.line("OK", "virtualization", "/dev/kvm is usable")
        elif os.path.exists("/dev/kvm"):
            report.line(
                "FAIL",
                "virtualization",
                "/dev/kvm exists but you cannot open it (hint: add yourself to the kvm group and log in again)",
            )
        else:
            report.line(
                "FAIL",
                "virtualization",
                "/dev/kvm is missing (hint: enable virtualization / nested virtualization, or load the kvm module)",
            )
        if wsl:
            report.line("WARN", "wsl", "WSL 2 needs nested virtualization enabled in .wslconfig")
    elif system == "Darwin":
        if platform.machine() == "arm64":
            report.line("OK", "virtualization", "Apple Silicon")
        else:
            result = _run(["sysctl", "-n", "kern.hv_support"])
            if result and result.stdout.strip() == "1":
                report.line("OK", "virtualization", "hypervisor framework supported")
            else:
                report.line("FAIL", "virtualization", "this Mac does not support the hypervisor framework")
    else:
        report.line("WARN", "virtualization", f"{system}: not checked")


def check_installed(report: Report, tool: str, version_args: list[str], hint: str) -> str | None:
    """An OK line with the tool's version, or a FAIL line with ``hint``; returns its path."""
    path = shutil.which(tool)
    if path is None:
        report.line("FAIL", tool, f"not installed (hint: {hint})")
        return None
    version = _run([path, *version_args])
    lines = version.stdout.strip().splitlines() if version else []
    report.line("OK", tool, f"{lines[0] if lines else 'version unknown'} ({path})")
    return path


def check_sbx_is_dockers(report: Report, path: str) -> bool:
    """Another program also installs as `sbx`: Docker's names itself in its help.

    Docker's CLI describes itself as "Docker Sandboxes creates isolated sandbox environments for
    AI agents" and lists "version  Show Docker Sandboxes version information"
    (https://docs.docker.com/reference/cli/sbx/).
    """
    shown = _run([path, "--help"])
    if shown is not None and "Docker Sandboxes" in shown.stdout + shown.stderr:
        report.line("OK", "sbx identity", "`sbx --help` describes Docker Sandboxes")
        return True
    report.line(
        "FAIL",
        "sbx identity",
        f"{path} is not Docker Sandboxes' sbx: its help does not mention Docker Sandboxes "
        "(hint: another program installs as `sbx`; put Docker's first on PATH, or use --engine bwrap)",
    )
    return False


def _sandbox_or_none(app: App) -> str | None:
    """This repository's sandbox, if there is one to name (doctor also runs outside repositories)."""
    try:
        return app.sandbox if app.location_or_none is not None else None
    except AirlockError:
        return None


def check_push_risks(report: Report, app: App) -> None:
    """A forwarded SSH agent or a github secret lets a sandbox push to the user's forge without git-airlock."""
    risks = app.engine.push_risks(app.runner, _sandbox_or_none(app))
    for risk in risks:
        report.line("WARN", "forge push", risk)
    if not risks:
        report.line("OK", "forge push", "no forwarded SSH agent, no github secret: sandboxes hold no forge credentials")


def check_sbx(report: Report, app: App) -> None:
    path = check_installed(report, "sbx", ["version"], "https://docs.docker.com/ai/sandboxes/")
    if path is None or not check_sbx_is_dockers(report, path):
        return
    listing = _run([path, "ls", "--json"])
    if listing is None:
        report.line("FAIL", "sbx daemon", "`sbx ls` did not answer (hint: `sbx diagnose`)")
    elif listing.returncode == 0:
        report.line("OK", "sbx daemon", "reachable, logged in")
        check_push_risks(report, app)
    else:
        message = (listing.stderr or listing.stdout).strip().splitlines()
        first = message[0] if message else f"exit {listing.returncode}"
        if any(word in first.lower() for word in _LOGIN_WORDS):
            report.line("FAIL", "sbx login", f"{first} (hint: run `sbx login`)")
        else:
            report.line("FAIL", "sbx daemon", f"{first} (hint: `sbx diagnose`)")


def check_bwrap(report: Report) -> None:
    path = check_installed(report, "bwrap", ["--version"], "`apt-get install bubblewrap`")
    if path is None:
        return
    trial = _run(
        [
            path,
            "--ro-bind",
            "/",
            "/",
            "--unshare-user",
            "--unshare-pid",
            "--unshare-net",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "true",
        ]
    )
    if trial is not None and trial.returncode == 0:
        report.line("OK", "namespaces", "bwrap can create user, PID and network namespaces")
        from git_airlock.engines.bwrap import overlay, seccomp
        from git_airlock.engines.bwrap.layout import data_root

        if overlay.usable(os.path.join(os.path.dirname(data_root()), "probe")):
            report.line("OK", "overlay", "copy-on-write working trees: new sandboxes need no checkout")
        else:
            report.line(
                "WARN", "overlay", "no overlay in a user namespace (Linux 5.11+): each sandbox gets a full checkout"
            )
        if seccomp.supported():
            report.line("OK", "terminal", "a seccomp filter stops sandboxes from typing into your terminal (TIOCSTI)")
        else:
            report.line(
                "WARN",
                "terminal",
                "no seccomp filter for this architecture: sandboxes start a new session "
                "(no TIOCSTI, but a shell in the sandbox has no job control)",
            )
    else:
        detail = (trial.stderr.strip().splitlines() or ["no answer"])[0] if trial else "no answer"
        report.line(
            "FAIL",
            "namespaces",
            f"{detail} (hint: allow unprivileged user namespaces: "
            "sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu an AppArmor profile for bwrap)",
        )


def check_credential_store(report: Report) -> None:
    from git_airlock.secrets import os_keyring, store_path

    backend = os_keyring()
    if backend is not None:
        report.line("OK", "credentials", f"OS keyring ({type(backend).__module__.rsplit('.', 1)[-1]})")
    else:
        report.line("OK", "credentials", f"no OS keyring answers: `secret set` keeps keys in {store_path()} (0600)")


@click.command("doctor")
@pass_app
def doctor_command(app: App) -> None:
    """Check the engine in use (sbx: installed and Docker's, daemon, login, forge credentials a
    sandbox could push with, virtualization; bwrap: installed, namespaces, where credentials are
    kept), git and tmux."""
    report = Report()
    engine, why = app.engine_choice
    report.line("OK", "engine", f"{engine} ({why})")
    if engine == "bwrap":
        check_bwrap(report)
        check_credential_store(report)
    else:
        check_sbx(report, app)
    git = _run(["git", "--version"])
    if git and git.returncode == 0:
        report.line("OK", "git", git.stdout.strip())
    else:
        report.line("FAIL", "git", "not installed")
    if engine == "sbx":
        check_virtualization(report)
    tmux = _run(["tmux", "-V"])
    if tmux and tmux.returncode == 0:
        report.line("OK", "tmux", tmux.stdout.strip())
    else:
        report.line("WARN", "tmux", "not installed (only needed for --tmux and attach)")
    if report.failed:
        raise AirlockError("some checks failed", hint="fix the FAIL lines above, then run `git airlock doctor` again")
