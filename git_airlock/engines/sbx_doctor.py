"""`doctor`'s checks for the sbx engine: installed and Docker's, its daemon and login, forge credentials a
sandbox could push with, and hardware virtualization (sbx runs microVMs)."""

from __future__ import annotations

import os
import platform

from git_airlock.checks import Report, check_installed
from git_airlock.engines.base import Engine
from git_airlock.plan import Runner
from git_airlock.process import probe

_LOGIN_WORDS = ("not logged in", "login", "unauthorized", "unauthenticated", "authenticate")


def check_sbx(report: Report, engine: Engine, runner: Runner, sandbox: str | None) -> None:
    path = check_installed(report, "sbx", ["version"], "https://docs.docker.com/ai/sandboxes/")
    if path is None or not check_sbx_is_dockers(report, path):
        return
    listing = probe([path, "ls", "--json"])
    if listing is None:
        report.line("FAIL", "sbx daemon", "`sbx ls` did not answer (hint: `sbx diagnose`)")
    elif listing.returncode == 0:
        report.line("OK", "sbx daemon", "reachable, logged in")
        check_push_risks(report, engine, runner, sandbox)
    else:
        message = (listing.stderr or listing.stdout).strip().splitlines()
        first = message[0] if message else f"exit {listing.returncode}"
        if any(word in first.lower() for word in _LOGIN_WORDS):
            report.line("FAIL", "sbx login", f"{first} (hint: run `sbx login`)")
        else:
            report.line("FAIL", "sbx daemon", f"{first} (hint: `sbx diagnose`)")


def check_sbx_is_dockers(report: Report, path: str) -> bool:
    """Another program also installs as `sbx`: Docker's names itself in its help.

    Docker's CLI describes itself as "Docker Sandboxes creates isolated sandbox environments for
    AI agents" and lists "version  Show Docker Sandboxes version information"
    (https://docs.docker.com/reference/cli/sbx/).
    """
    shown = probe([path, "--help"])
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


def check_push_risks(report: Report, engine: Engine, runner: Runner, sandbox: str | None) -> None:
    """A forwarded SSH agent or a github secret lets a sandbox push to the user's forge without git-airlock."""
    risks = engine.push_risks(runner, sandbox)
    for risk in risks:
        report.line("WARN", "forge push", risk)
    if not risks:
        report.line("OK", "forge push", "no forwarded SSH agent, no github secret: sandboxes hold no forge credentials")


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
            result = probe(["sysctl", "-n", "kern.hv_support"])
            if result and result.stdout.strip() == "1":
                report.line("OK", "virtualization", "hypervisor framework supported")
            else:
                report.line("FAIL", "virtualization", "this Mac does not support the hypervisor framework")
    else:
        report.line("WARN", "virtualization", f"{system}: not checked")
