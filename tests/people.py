"""Who runs git-airlock in a test: root (the suite itself), or an ordinary user the suite creates.

The two map a sandbox's uids differently (root: a block of its own per sandbox; a user: its own uid
and its subordinate range through newuidmap, its system layer through fuse-overlayfs), so the tests
of the workplace and of its walls run as both. The ordinary user is made with ``useradd`` (which gives
it a subordinate range, as on any Debian system), runs this checkout's git-airlock with the system's
Python (its own interpreter may live where only root can go), in a hermetic HOME of its own.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass
class Person:
    """One of the two: runs commands as itself in a hermetic environment under ``base``."""

    name: str
    uid: int
    gid: int
    base: Path
    """A folder of its own: its HOME (``home``), its projects, its temporary files."""
    bin: Path | None = None
    """Where its ``git-airlock`` lies, when it is not the suite's own."""
    code: tuple[str, ...] = ()
    """Its PYTHONPATH: this checkout and the suite's packages, where it can read them."""

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        home = self.home
        path = [str(self.bin)] if self.bin else [os.path.dirname(sys.executable)]
        env = {
            "HOME": str(home),
            "USER": self.name,
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_STATE_HOME": str(home / ".local/state"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
            "TMUX_TMPDIR": str(self.base / "tmux"),
            "PAGER": "cat",
            "GIT_PAGER": "cat",
            "LANG": "C.UTF-8",
            "PATH": os.pathsep.join([*path, "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]),
        }
        if self.code:
            env["PYTHONPATH"] = os.pathsep.join(self.code)
        return {**env, **(extra or {})}

    def run(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        as_other = {} if self.is_root else {"user": self.uid, "group": self.gid, "extra_groups": []}
        return subprocess.run(
            argv,
            cwd=cwd,
            env=self.env(env),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            **as_other,  # type: ignore[arg-type]
        )

    def airlock(
        self, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        done = self.run(["git", "airlock", *args], cwd, env, timeout=timeout)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def git(self, cwd: Path, *args: str) -> str:
        done = self.run(["git", *args], cwd)
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
        return done.stdout

    def folder(self, name: str) -> Path:
        """A new folder of its own under its base."""
        path = self.base / name
        path.mkdir(parents=True)
        if not self.is_root:
            os.chown(path, self.uid, self.gid)
        return path

    def project(self) -> Path:
        """A repository of its own with one commit on main, as ``conftest.project`` makes."""
        path = self.folder(f"project-{secrets.token_hex(3)}")
        self.git(path, "init", "-q", "-b", "main")
        for name, text in (("README.md", "hello\n"), ("app.py", "print('v1')\n")):
            self.run(["sh", "-c", f"printf '%s' \"$0\" > {name}", text], path)
        self.git(path, "add", ".")
        self.git(path, "commit", "-q", "-m", "initial")
        return path

    def data_dir(self, sandbox: str) -> Path:
        return self.home / ".local" / "share" / "git-airlock" / "sandboxes" / sandbox

    def prepare(self) -> None:
        """Its HOME, git identity and tmux folder."""
        for folder in (self.home, self.base / "tmux"):
            folder.mkdir(parents=True, exist_ok=True)
        if not (self.home / ".gitconfig").exists():
            (self.home / ".gitconfig").write_text(
                "[user]\n\tname = Host User\n\temail = host@example.invalid\n[init]\n\tdefaultBranch = main\n"
            )
        if not self.is_root:
            for path in (self.base, self.home, self.base / "tmux", self.home / ".gitconfig"):
                os.chown(path, self.uid, self.gid)
            (self.base / "tmux").chmod(0o700)


SHOWN = Path("/run/git-airlock-tests")
"""Where this checkout and the suite's packages are bound for the user, when their own folders are in
folders it may not enter (a checkout under /root)."""


def readable_for(uid: int, gid: int, path: str) -> bool:
    probe = subprocess.run(["test", "-r", path], user=uid, group=gid, extra_groups=[], capture_output=True)
    return probe.returncode == 0


def code_for(uid: int, gid: int) -> tuple[str, ...]:
    """This checkout and the suite's packages as the user can read them: in place, or bound under SHOWN."""
    paths = (str(CHECKOUT), sysconfig.get_paths()["purelib"])
    if all(readable_for(uid, gid, os.path.join(path, ".")) for path in paths):
        return paths
    shown = []
    for index, path in enumerate(paths):
        target = SHOWN / str(index)
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", "-o", "ro", path, str(target)], check=True)
        shown.append(str(target))
    SHOWN.chmod(0o755)
    return tuple(shown)


def make_user() -> Person:
    """A new ordinary user (``useradd``, with a subordinate range) running this checkout's git-airlock."""
    name = f"airlock-{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--user-group", name], check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    base = Path(entry.pw_dir) / "t"
    base.mkdir()
    os.chown(base, entry.pw_uid, entry.pw_gid)
    tools = base / "bin"
    tools.mkdir()
    wrapper = tools / "git-airlock"
    wrapper.write_text(f'#!/bin/sh\nexec {SYSTEM_PYTHON} -c "from git_airlock.entry import main; main()" "$@"\n')
    wrapper.chmod(0o755)
    return Person(name, entry.pw_uid, entry.pw_gid, base, bin=tools, code=code_for(entry.pw_uid, entry.pw_gid))


def remove_user(person: Person) -> None:
    subprocess.run(["pkill", "-KILL", "-u", person.name], capture_output=True)
    subprocess.run(["userdel", "--remove", person.name], capture_output=True)
    for path in person.code:
        if path.startswith(str(SHOWN)):
            subprocess.run(["umount", path], capture_output=True)


def another(person: Person, name: str) -> Person:
    """The same user in a fresh hermetic HOME of its own under ``name`` (one per test)."""
    fresh = Person(person.name, person.uid, person.gid, person.base / name, bin=person.bin, code=person.code)
    fresh.base.mkdir()
    fresh.prepare()
    return fresh


def system_python_matches() -> bool:
    """The system's Python runs this checkout with the suite's packages (same version, same ABI)."""
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    return done.stdout.strip() == str(sys.version_info[:2])
