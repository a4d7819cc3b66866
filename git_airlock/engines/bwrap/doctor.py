"""`doctor`'s checks for the bwrap engine: installed, namespaces, uids, the overlays, the terminal filter,
and where `secret set` keeps credentials."""

from __future__ import annotations

import os
import shutil

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

        check_uids(report)
        can = overlay.probe(os.path.join(os.path.dirname(data_root()), "probe"), fresh=True)
        if can["overlay"]:
            report.line("OK", "overlay", "copy-on-write working trees: new sandboxes need no checkout")
        else:
            report.line(
                "WARN", "overlay", "no overlay in a user namespace (Linux 5.11+): each sandbox gets a full checkout"
            )
        check_system_layer(report, can["system"])
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


def check_uids(report: Report) -> None:
    """Which host uids a sandbox's users are: never root; for an ordinary user, its subordinate range."""
    from git_airlock.engines.bwrap import userns

    if userns.initial_root():
        report.line(
            "OK",
            "uids",
            f"each sandbox gets {userns.BLOCK} uids of its own from {userns.FIRST_BLOCK} up: "
            "its root is an unprivileged uid here, never root",
        )
        return
    ids = userns.for_user()
    if len(ids.uid) > 1:
        report.line("OK", "uids", f"a sandbox's root is you, its other uids your subordinate range: {ids.describe()}")
        return
    missing = [tool for tool in ("newuidmap", "newgidmap") if not shutil.which(tool)]
    why = (
        f"no {' or '.join(missing)} (hint: `apt-get install uidmap`)"
        if missing
        else "no subordinate uids for you in /etc/subuid and /etc/subgid "
        "(hint: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER`, as root)"
    )
    report.line(
        "WARN",
        "uids",
        f"{why}: a sandbox's root is you and no other uid exists inside, so tools that change user "
        "(apt's _apt, a service's own user) stay root or fail",
    )


def check_system_layer(report: Report, works: bool) -> None:
    """Whether sandboxes get a system of their own (apt-get install inside), and what is missing if not."""
    from git_airlock.engines.bwrap import userns

    if works:
        how = "id-mapped overlays" if userns.initial_root() else "fuse-overlayfs"
        report.line("OK", "system", f"each sandbox is root of its own copy-on-write system layer ({how})")
    elif userns.initial_root():
        report.line(
            "WARN",
            "system",
            "no id-mapped mounts for the system here (Linux 5.12+, and /usr on ext4, xfs, btrfs or tmpfs): "
            "sandboxes see the system read-only, so apt-get install fails inside",
        )
    else:
        missing = (
            "fuse-overlayfs (`apt-get install fuse-overlayfs`)"
            if not shutil.which("fuse-overlayfs")
            else ("a /dev/fuse you can open (it is mode 0666 where udev runs; `chmod 0666 /dev/fuse` as root)")
        )
        report.line(
            "WARN",
            "system",
            f"no system layer without {missing}: an ordinary user's sandboxes see the system read-only "
            "(apt-get install fails inside; pip --user and npm --prefix in HOME work)",
        )


def check_credential_store(report: Report) -> None:
    from git_airlock.secrets import os_keyring, store_path

    backend = os_keyring()
    if backend is not None:
        report.line("OK", "credentials", f"OS keyring ({type(backend).__module__.rsplit('.', 1)[-1]})")
    else:
        report.line("OK", "credentials", f"no OS keyring answers: `secret set` keeps keys in {store_path()} (0600)")
