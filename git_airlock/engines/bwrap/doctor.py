"""`doctor`'s checks for the bwrap engine: installed, namespaces, the overlay, the terminal filter, and
where `secret set` keeps credentials."""

from __future__ import annotations

import os

from git_airlock.checks import Report, check_installed
from git_airlock.process import probe


def check_bwrap(report: Report) -> None:
    path = check_installed(report, "bwrap", ["--version"], "`apt-get install bubblewrap`")
    if path is None:
        return
    trial = probe(
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
