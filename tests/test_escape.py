"""Ways out of a bwrap sandbox, each tried for real by a hostile agent; every one must fail.

The agent is a shell script run by ``git airlock --engine bwrap --agent shell up``.
These machines run the suite as root, which is the case where a mistake costs most.
"""

from __future__ import annotations

import ctypes
import json
import os
import pty
import re
import select
import shlex
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from people import SYSTEM_PYTHON, Person

from conftest import Env, airlock, data_dir, git, run_in_sandbox, running_agent, sandbox_file


def probe_lines(hermetic: Env, name: str) -> dict[str, str]:
    text = sandbox_file(hermetic, name, "probe.txt").read_text()
    return dict(line.split(": ", 1) for line in text.splitlines())


# -- 1. typing into the host's terminal ------------------------------------------------------------

INJECT = """\
import fcntl, os, termios
typed = 0
for path in ("/dev/tty", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2"):
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        continue
    for char in os.environ["LINE"].encode():
        for request in (termios.TIOCSTI, termios.TIOCSTI | 1 << 32):  # the upper half is ignored by the kernel
            try:
                fcntl.ioctl(fd, request, bytes([char]))
                typed += 1
                break
            except OSError:
                pass
print("typed", typed)
# TIOCSETD with the discipline it has (N_TTY): harmless, but it must fail too (N_NULL would kill the terminal)
disciplines = 0
for fd in (0, 1, 2):
    try:
        fcntl.ioctl(fd, 0x5423, (0).to_bytes(4, "little"))
        disciplines += 1
    except OSError:
        pass
print("disciplines", disciplines)
"""


class Terminal:
    """An interactive bash on a real pseudo-terminal, as a user's terminal window runs it."""

    def __init__(self, cwd: Path) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the user's shell, with signals as a new terminal window gives them
            for number in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
                signal.signal(number, signal.SIG_DFL)  # not as this test run has them (nohup ignores SIGHUP)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.chdir(cwd)
            os.environ["PS1"] = "$ "
            os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
        self.seen = ""

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        """Read what the terminal shows until ``pattern`` appears (or fail after ``timeout``)."""
        found = re.compile(pattern)
        while not found.search(self.seen):
            ready, _, _ = select.select([self.fd], [], [], timeout)
            assert ready, f"no {pattern!r} on the terminal; it showed:\n{self.seen}"
            try:
                self.seen += os.read(self.fd, 65536).decode(errors="replace")
            except OSError:
                break
        return self.seen

    def close(self) -> None:
        os.close(self.fd)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)


def test_agent_cannot_type_into_the_host_terminal(project: Path, hermetic: Env) -> None:
    control, pwned = hermetic.tmp / "control", hermetic.tmp / "pwned"
    hermetic.mp.setenv("INJECT", INJECT)
    hermetic.mp.setenv("CONTROL_LINE", f"touch {control}\n")
    hermetic.mp.setenv("ATTACK_LINE", f"touch {pwned}\n")
    terminal = Terminal(project)
    try:
        # the control: outside a sandbox, this kernel lets a program type into its terminal
        terminal.type('LINE=$CONTROL_LINE python3 -c "$INJECT"; echo CONTROL-$((40+2))')
        terminal.wait_for("CONTROL-42")
        terminal.type("echo CHECKED-$((40+2))")
        terminal.wait_for("CHECKED-42")
        if not control.exists():
            pytest.skip("this kernel refuses TIOCSTI to everyone (dev.tty.legacy_tiocsti=0): nothing to defend")
        agent = '\'LINE=$1 python3 -c "$0"\' "$INJECT" "$ATTACK_LINE"'
        terminal.type(f"git airlock --engine bwrap --agent shell --name tty up -- -c {agent}; echo DONE-$((40+2))")
        shown = terminal.wait_for("DONE-42")
        assert "typed 0" in shown and "disciplines 0" in shown
        terminal.type("echo AFTER-$((40+2))")  # anything typed into the queue would run before this
        terminal.wait_for("AFTER-42")
        assert not pwned.exists()
    finally:
        terminal.close()


def test_interactive_shell_keeps_job_control(project: Path, hermetic: Env) -> None:
    terminal = Terminal(project)
    try:
        terminal.type("git airlock --engine bwrap --agent shell --name jobs up -- --norc -i")
        terminal.type("echo READY-$((1+1))")
        terminal.wait_for("READY-2")
        terminal.type("sleep 31 & [[ $- == *m* ]] && echo MONITOR-$((1+1)); jobs; kill %1; exit")
        shown = terminal.wait_for("MONITOR-2")
        assert "no job control" not in shown
        assert re.search(r"\[1\]\+? +Running +sleep 31", terminal.wait_for(r"Running +sleep 31"))
    finally:
        terminal.close()


# -- 2. root inside, nobody on the host -------------------------------------------------------------

ROOT_INSIDE = """\
repo={repo}
{{
  echo "uid: $(id -u)"
  echo "uid-map: $(awk '{{print $2}}' /proc/self/uid_map | tr '\\n' ' ')"
  echo "umount-config: $(umount .git/config 2>/dev/null && echo done || echo refused)"
  remount='mount -o remount,rw,bind "$0" && touch "$0/pwned"'
  echo "remount-repo: $(sh -c "$remount" "$repo" 2>/dev/null && echo done || echo refused)"
  echo "write-repo: $(touch "$repo/pwned" /run/sandbox/source/pwned 2>/dev/null && echo done || echo refused)"
  echo "nested-remount: $(unshare -Urm sh -c "mount -o remount,rw,bind $repo" 2>/dev/null && echo done || echo refused)"
  echo "mount-tmpfs: $(mount -t tmpfs none /mnt 2>/dev/null && echo done || echo refused)"
  echo "remount-usr-ro: $(mount -o remount,ro,bind /usr 2>/dev/null && echo done || echo refused)"
  echo "usr: $(echo pwned > /usr/bin/airlock-escape-probe && echo written-to-its-layer || echo refused)"
  echo "hook: $(echo 'touch /tmp/pwned' > "$repo/.git/hooks/post-checkout" 2>/dev/null && echo planted || echo refused)"
  burst=/proc/sys/kernel/printk_ratelimit_burst  # written back unchanged: success alone is the break
  value=$(cat $burst)
  echo "sysctl: $( (echo "$value" > $burst) 2>/dev/null && echo written || echo refused)"
  echo "sysrq: $([ -w /proc/sysrq-trigger ] && echo writable || echo refused)"
  echo "userns: $(unshare -U true 2>/dev/null && echo made || echo refused)"
  echo "cgroupns: $(unshare -Ucmr --cgroup true 2>/dev/null && echo made || echo refused)"
  echo "mountns: $(unshare -m true 2>/dev/null && echo made || echo refused)"
  echo "keyring: $(python3 -c {keyring} 2>/dev/null || echo refused)"
  echo "module: $(python3 -c {module} 2>/dev/null || echo refused)"
  echo "raw-socket: $(python3 -c {raw} 2>/dev/null || echo refused)"
  echo "proc-keys: $(cat /proc/keys > /dev/null 2>&1 && echo read || echo refused)"
  echo "proc-slabinfo: $(head -1 /proc/slabinfo > /dev/null 2>&1 && echo read || echo refused)"
  echo "shadow: $(grep -c . /etc/shadow 2>/dev/null)"
  cp /bin/sh suid-sh && chmod 4755 suid-sh && echo "setuid: $(stat -c %a suid-sh)"
  # last: once its /dev/null is mode 000, the sandbox's own redirections to it fail
  echo "touch-null: $(touch -d 2001-01-01 /dev/null 2>/dev/null && echo done || echo refused)"
  echo "chmod-null: $(chmod 000 /dev/null 2>/dev/null && echo done || echo refused)"
}} > probe.txt
"""
KEYRING = """\
import ctypes, platform
keyctl = {"x86_64": 250, "aarch64": 219}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
found = libc.syscall(keyctl, 10, -3, b"user", b"host-secret", 0)  # KEYCTL_SEARCH the session keyring
if found == -1:
    raise SystemExit(1)
buffer = ctypes.create_string_buffer(64)
libc.syscall(keyctl, 11, found, buffer, 64)  # KEYCTL_READ
print("read", buffer.value.decode())
"""
MODULE = """\
import ctypes, errno, platform
init_module = {"x86_64": 175, "aarch64": 105}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
image = ctypes.create_string_buffer(b"\\x7fELF" + bytes(60))  # not a module: only the permission is tried
if libc.syscall(init_module, image, 64, b"") == -1 and ctypes.get_errno() in (errno.EPERM, errno.ENOSYS):
    raise SystemExit(1)  # ENOSYS: a kernel without modules, which no sandbox could load either
print("loaded or tried: errno", ctypes.get_errno())
"""
RAW = """\
import socket
kinds = ((socket.AF_PACKET, socket.SOCK_RAW, 0), (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
for family, kind, proto in kinds:
    try:
        socket.socket(family, kind, proto).close()
        print("opened", family)
        break
    except PermissionError:
        continue
else:
    raise SystemExit(1)
"""
HOST_KEYRING = """\
import ctypes, os, platform, sys
numbers = {"x86_64": (248, 250), "aarch64": (217, 219)}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall(numbers[1], 1, None)  # KEYCTL_JOIN_SESSION_KEYRING: a fresh one, as a login session has
libc.syscall(numbers[0], b"user", b"host-secret", b"hunter2", 7, -3)  # add_key to it
os.execvp(sys.argv[1], sys.argv[1:])
"""


def test_root_inside_holds_no_power_over_the_host(person: Person, hermetic: Env) -> None:
    """The agent is root of its sandbox: every power that would reach the host, or escape the sandbox's
    own namespaces, is tried for real, as root (where a mistake would cost most) and as an ordinary user."""
    project = person.project()
    before = person_snapshot(person, project)
    null_before = os.stat("/dev/null")
    usr_before = Path("/usr/bin/airlock-escape-probe").exists()
    script = ROOT_INSIDE.format(
        repo=shlex.quote(str(project)), keyring=shlex.quote(KEYRING), module=shlex.quote(MODULE), raw=shlex.quote(RAW)
    )
    argv = ["git", "airlock", "--engine", "bwrap", "--agent", "shell", "--name", "caps", "up", "--", "-c", script]
    python = sys.executable if person.is_root else SYSTEM_PYTHON
    try:
        # the user's session keyring holds a key, as after a login through pam_keyinit
        result = person.run([python, "-c", HOST_KEYRING, *argv], project)
        assert result.returncode == 0, result.stderr
        lines = (person.data_dir("caps") / "upper" / "probe.txt").read_text().splitlines()
        found = dict(line.split(": ", 1) for line in lines)
    finally:
        null_after = os.stat("/dev/null")
        if stat.S_IMODE(null_after.st_mode) != stat.S_IMODE(null_before.st_mode):
            os.chmod("/dev/null", stat.S_IMODE(null_before.st_mode))  # undo the attack before failing
    assert found["uid"] == "0"  # root of its own system
    host_uids = [int(uid) for uid in found["uid-map"].split()]
    assert 0 not in host_uids
    for attempt in (
        "umount-config",
        "remount-repo",
        "write-repo",
        "nested-remount",
        "mount-tmpfs",
        "remount-usr-ro",
        "hook",
        "sysctl",
        "sysrq",
        "userns",
        "cgroupns",
        "mountns",
        "keyring",
        "module",
        "raw-socket",
        "proc-keys",
        "proc-slabinfo",
        "touch-null",
        "chmod-null",
    ):
        assert found[attempt] == "refused", (attempt, found[attempt])
    assert found["usr"] == "written-to-its-layer"  # its own /usr: the host's stays as it was
    assert Path("/usr/bin/airlock-escape-probe").exists() == usr_before
    assert found["shadow"] != "" and "hunter" not in found["shadow"]  # its own users, not the host's
    assert stat.S_IMODE(null_after.st_mode) == stat.S_IMODE(null_before.st_mode)
    assert null_after.st_mtime == null_before.st_mtime
    assert not (project / ".git" / "hooks" / "post-checkout").exists()
    assert not (project / "pwned").exists()
    assert person_snapshot(person, project) == before
    # what it made is its own uid's on the host: a setuid binary too, never root's
    meta = json.loads((person.data_dir("caps") / "meta.json").read_text())
    root = meta["ids"]["uid"][0][1]
    assert root != 0
    for made in ("probe.txt", "suid-sh"):
        info = (person.data_dir("caps") / "upper" / made).stat()
        assert (info.st_uid, info.st_gid) == (root, meta["ids"]["gid"][0][1]), made
    assert found["setuid"] == "4755"
    assert (person.data_dir("caps") / "upper" / "suid-sh").stat().st_mode & stat.S_ISUID  # set, harmless: not root's


def person_snapshot(person: Person, repo: Path) -> dict[str, str]:
    """What the attacks must leave alone in ``person``'s repository: refs, HEAD, index, files, hooks."""
    files = {
        str(path.relative_to(repo)): path.read_bytes().hex()
        for path in sorted(repo.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(repo).parts
    }
    files["hooks"] = " ".join(sorted(path.name for path in (repo / ".git" / "hooks").glob("*")))
    return {
        "refs": person.git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags"),
        "status": person.git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        "files": json.dumps(files),
    }


def test_one_sandbox_cannot_reach_anothers_layer(project: Path, hermetic: Env) -> None:
    """Sandbox b keeps a secret in its system layer and HOME while it runs; sandbox a, root inside, looks
    for it everywhere it could be: the host's paths of b's layer and HOME, b's processes and their roots."""
    b = data_dir(hermetic, "b")
    keep = "mkdir -p /usr/local/share && echo b-secret > /usr/local/share/b-secret; echo b-secret > ~/b-secret; "
    with running_agent(project, "b", keep + "echo ready; read line"):
        paths = [
            b / "system" / "upper" / "usr" / "local" / "share" / "b-secret",
            b / "system" / "mnt" / "usr" / "local" / "share" / "b-secret",
            b / "home" / "b-secret",
        ]
        look = " ".join(shlex.quote(str(path)) for path in paths)
        script = (
            f"{{ cat {look} /proc/[0-9]*/root/usr/local/share/b-secret /proc/[0-9]*/cwd/b-secret 2>/dev/null; "
            "grep -rls b-secret /usr/local /home /root /tmp /run /etc /mnt 2>/dev/null; "
            f"echo x > {shlex.quote(str(paths[0]))} 2>/dev/null && echo wrote; "
            "ls /proc | grep -c '^[0-9]'; } > found.txt"
        )
        assert run_in_sandbox(project, "a", script).returncode == 0
    lines = sandbox_file(hermetic, "a", "found.txt").read_text().split()
    assert "b-secret" not in lines and "wrote" not in lines, lines
    assert int(lines[-1]) < 20  # its own processes only: b's are not in its PID namespace
    assert paths[0].read_text() == "b-secret\n"


INOTIFY = """\
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
held = []
while True:
    fd = libc.inotify_init1(0)
    if fd < 0:
        break
    held.append(fd)
print("ready", flush=True)  # the helper reads one line: keep the count for the file
open("held.txt", "w").write(str(len(held)))
sys.stdin.readline()
"""


def test_the_agent_cannot_exhaust_roots_inotify_instances(project: Path, hermetic: Env) -> None:
    """Kernel limits per user (fs.inotify.max_user_instances) are the sandbox's own, not the user's."""
    script = f"python3 -c {shlex.quote(INOTIFY)}"
    libc = ctypes.CDLL(None, use_errno=True)
    with running_agent(project, "inotify", script):
        fd = libc.inotify_init1(0)  # the host user's own watchers still get theirs while the agent holds all
        assert fd >= 0, os.strerror(ctypes.get_errno())
        os.close(fd)
    held = int(sandbox_file(hermetic, "inotify", "held.txt").read_text())
    assert held >= int(Path("/proc/sys/fs/inotify/max_user_instances").read_text()) - 8  # it did take them all


# -- 3. another repository's history through fetch ---------------------------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, str]:
    """A repository of the user's that the sandbox never sees, and its commit."""
    repo = tmp_path / "secret-repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "credentials.txt").write_text("SECRET\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "secret")
    return repo, git(repo, "rev-parse", "HEAD").strip()


STEAL = {
    "alternates": """\
echo {secret}/.git/objects >> .git/objects/info/alternates
ln -s {secret}/.git/refs/heads/main .git/refs/heads/leak
""",
    "objects-link": """\
git update-ref -d refs/heads/main
mv .git/objects .git/objects.own
ln -s {secret}/.git/objects .git/objects
echo {commit} > .git/refs/heads/leak
git symbolic-ref HEAD refs/heads/leak
""",
    "modules": """\
mkdir -p .git/modules
ln -s {secret}/.git .git/modules/sub
""",
}


@pytest.mark.parametrize("trick", sorted(STEAL))
def test_fetch_never_reads_another_repository(project: Path, hermetic: Env, secret, trick: str) -> None:
    secret_repo, commit = secret
    if trick == "modules":  # the host fetches initialised submodules from the clone's .git/modules
        sub = secret_repo.parent / "sub-upstream"
        sub.mkdir()
        git(sub, "init", "-q")
        git(sub, "commit", "-q", "--allow-empty", "-m", "sub")
        git(project, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "sub")
        git(project, "commit", "-q", "-m", "add a submodule")
    script = STEAL[trick].format(secret=shlex.quote(str(secret_repo)), commit=commit)
    assert run_in_sandbox(project, trick, script).returncode == 0
    fetched = airlock("--engine", "bwrap", "--name", trick, "fetch", cwd=project)
    assert "Traceback" not in fetched.stderr
    stores = [project / ".git"] + [p for p in (project / ".git" / "modules").glob("*") if p.is_dir()]
    for store in stores:
        leaked = subprocess.run(["git", f"--git-dir={store}", "cat-file", "-e", commit], capture_output=True)
        assert leaked.returncode != 0, f"the secret commit reached {store}"
    assert commit not in git(project, "for-each-ref")


def test_a_plain_git_fetch_of_the_sandbox_remote_is_sandboxed_too(project: Path, hermetic: Env, secret) -> None:
    """`git fetch sandbox-<name>` (an IDE, a habit) reads the clone through the same sandbox, and
    `git fetch --all` leaves sandbox remotes alone."""
    secret_repo, commit = secret
    script = STEAL["alternates"].format(secret=shlex.quote(str(secret_repo)), commit=commit)
    assert run_in_sandbox(project, "plain", script).returncode == 0
    git(project, "fetch", "--all", "-q")
    assert git(project, "for-each-ref", "refs/remotes/sandbox-plain") == ""
    git(project, "fetch", "-q", "sandbox-plain")
    assert git(project, "rev-parse", "sandbox-plain/main").strip() == git(project, "rev-parse", "main").strip()
    assert subprocess.run(["git", "-C", str(project), "cat-file", "-e", commit], capture_output=True).returncode != 0
    assert commit not in git(project, "for-each-ref")


def test_a_push_to_the_sandbox_never_runs_the_agents_hooks(project: Path, hermetic: Env) -> None:
    """`git push sandbox-<name>` would run git receive-pack, and the clone's hooks, with the user's authority."""
    ran = hermetic.tmp / "hook-ran"
    hooks = " ".join(("pre-receive", "update", "post-receive", "post-update", "reference-transaction"))
    script = f"""\
for hook in {hooks}; do
  printf '#!/bin/sh\\ntouch {ran}\\n' > .git/hooks/$hook && chmod +x .git/hooks/$hook
done
"""
    assert run_in_sandbox(project, "push", script).returncode == 0
    git(project, "checkout", "-q", "-b", "feature")
    git(project, "commit", "-q", "--allow-empty", "-m", "for the agent")
    pushed = subprocess.run(["git", "push", "sandbox-push", "feature"], cwd=project, capture_output=True, text=True)
    assert pushed.returncode != 0
    assert "git-airlock: a sandbox's clone takes no push (its hooks are the agent's)" in pushed.stderr
    assert not ran.exists()


def test_the_sandbox_sees_no_credential_in_the_repositorys_config(project: Path, hermetic: Env) -> None:
    """A CI checkout leaves a token in .git/config; the agent sees the repository, but not that."""
    git(project, "config", "http.https://github.com/.extraheader", "AUTHORIZATION: basic c2VjcmV0LXRva2Vu")
    git(project, "remote", "add", "origin", "https://x-access-token:ghs_secret@github.com/o/r.git")
    script = """\
cat /run/sandbox/source/.git/config "$(git rev-parse --path-format=absolute --git-common-dir)/../../../.git/config" \
  > seen.txt 2>&1
git -C /run/sandbox/source log -1 --format=%s > source-log.txt
git fetch -q origin && git log -1 --format=%s origin/main > fetched.txt
"""
    assert run_in_sandbox(project, "cfg", script).returncode == 0
    seen = sandbox_file(hermetic, "cfg", "seen.txt").read_text()
    assert "c2VjcmV0LXRva2Vu" not in seen and "ghs_secret" not in seen and "github.com" not in seen
    assert "repositoryformatversion" in seen
    assert sandbox_file(hermetic, "cfg", "source-log.txt").read_text() == "initial\n"
    assert sandbox_file(hermetic, "cfg", "fetched.txt").read_text() == "initial\n"
    assert "ghs_secret" in git(project, "config", "remote.origin.url")  # the user's own config is untouched


def test_a_planted_commondir_brings_no_agent_config_to_host_side_git(project: Path, hermetic: Env) -> None:
    """.git/commondir would make git read the agent's own config (a filter) in `commit` and `status`."""
    script = """\
mkdir .git/x
for entry in objects refs packed-refs logs; do ln -s ../$entry .git/x/$entry; done
cp .git/config .git/x/config
git config --file .git/x/config filter.agent.clean 'sh -c "touch /workspace/$(basename $PWD)/filter-ran; cat"'
echo x > .git/commondir
echo '*.txt filter=agent' > .gitattributes
echo draft > draft.txt
"""
    assert run_in_sandbox(project, "cdir", script).returncode == 0
    for args in (("status",), ("fetch",), ("commit", "-m", "from the host")):
        result = airlock("--engine", "bwrap", "--name", "cdir", *args, cwd=project)
        assert result.returncode == 1, args
        assert "the agent planted /workspace/" not in result.stdout
        assert "commondir (it points git elsewhere); not reading the clone" in result.stderr, args
    assert not sandbox_file(hermetic, "cdir", "filter-ran").exists()


# -- 4. host-side git writing through links in the clone's .git --------------------------------------


def test_commit_from_the_host_never_writes_through_links(project: Path, hermetic: Env) -> None:
    victims = {name: hermetic.home / name for name in (".bashrc", ".profile", "authorized_keys")}
    for path in victims.values():
        path.write_text("precious\n")
    script = f"""\
echo draft > draft.txt
ln -sf {shlex.quote(str(victims[".bashrc"]))} .git/logs/HEAD
mkdir -p .git/logs/refs/heads && ln -sf {shlex.quote(str(victims[".profile"]))} .git/logs/refs/heads/main
ln -sf {shlex.quote(str(victims["authorized_keys"]))} .git/COMMIT_EDITMSG
"""
    assert run_in_sandbox(project, "links", script).returncode == 0
    for args in (("status",), ("fetch",), ("commit", "-m", "from the host")):
        result = airlock("--engine", "bwrap", "--name", "links", *args, cwd=project)
        assert "Traceback" not in result.stderr
    for path in victims.values():
        assert path.read_text() == "precious\n", path


# -- 5. --seed-config through links in the sandbox's HOME --------------------------------------------


def test_seed_config_never_writes_through_links(project: Path, hermetic: Env) -> None:
    (hermetic.home / ".claude").mkdir()
    (hermetic.home / ".claude" / "CLAUDE.md").write_text("the user's instructions\n")
    (hermetic.home / ".claude" / "commands").mkdir()
    (hermetic.home / ".claude" / "commands" / "review.md").write_text("review well\n")
    victim, victim_dir = hermetic.tmp / "victim.txt", hermetic.tmp / "victim-dir"
    victim.write_text("precious\n")
    victim_dir.mkdir()
    plant = f"""\
mkdir -p ~/.claude ~/.local/bin
ln -sf {shlex.quote(str(victim))} ~/.claude/CLAUDE.md
ln -sfn {shlex.quote(str(victim_dir))} ~/.claude/commands
printf '#!/bin/sh\\ncat ~/.claude/CLAUDE.md > seen.txt\\n' > ~/.local/bin/claude
chmod +x ~/.local/bin/claude
"""
    assert run_in_sandbox(project, "seed", plant).returncode == 0
    seeded = airlock("--engine", "bwrap", "--agent", "claude", "--name", "seed", "--seed-config", "up", cwd=project)
    assert seeded.returncode == 1
    assert "~/.claude/commands in the sandbox's HOME is not a folder (a link?)" in seeded.stderr
    assert victim.read_text() == "precious\n"
    assert list(victim_dir.iterdir()) == []
    # once the agent's folder link is gone, the file link is replaced, never written through
    assert run_in_sandbox(project, "seed", "rm ~/.claude/commands").returncode == 0
    seeded = airlock("--engine", "bwrap", "--agent", "claude", "--name", "seed", "--seed-config", "up", cwd=project)
    assert seeded.returncode == 0, seeded.stderr
    assert victim.read_text() == "precious\n"
    assert sandbox_file(hermetic, "seed", "seen.txt").read_text() == "the user's instructions\n"


# -- a sandbox name belongs to one repository -------------------------------------------------------


def test_a_name_belongs_to_one_repository(project: Path, hermetic: Env, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    git(other, "commit", "-q", "--allow-empty", "-m", "other")
    agent = subprocess.Popen(
        ["git", "airlock", "--engine", "bwrap", "--agent", "shell", "--name", "shared", "up", "--", "-c",
         "echo ready; exec sleep 319"],
        cwd=project, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert agent.stdout.readline().strip() == "ready"
        for args in (("up", "--", "-c", "true"), ("status",), ("stop",), ("fetch",), ("rm", "--yes", "--no-fetch")):
            result = airlock("--engine", "bwrap", "--agent", "shell", "--name", "shared", *args, cwd=other)
            assert result.returncode == 1, args
            assert "error: sandbox 'shared' belongs to another repository" in result.stderr, args
            assert "hint: pick another name for this repository's sandbox with --name" in result.stderr
        assert agent.poll() is None, "the other repository's sandbox was stopped"
        assert git(other, "config", "--get", "remote.sandbox-shared.url", check=False) == ""
        status = airlock("--engine", "bwrap", "--name", "shared", "status", cwd=project).stdout
        assert "sandbox:  shared (running)" in status
    finally:
        airlock("--engine", "bwrap", "--name", "shared", "stop", cwd=project)
        agent.kill()
        agent.communicate()
    assert data_dir(hermetic, "shared").is_dir()


# -- what the agent is given ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("GITHUB_PAT", "ghp_example"),
        ("DATABASE_URL", "postgres://app@db/app"),
        ("MIRROR_URL", "https://user:hunter2@mirror.example/simple"),
        ("SENTRY_DSN", "https://key@sentry.example/1"),
    ],
)
def test_pass_env_refuses_credential_looking_variables(project: Path, hermetic: Env, name: str, value: str) -> None:
    result = run_in_sandbox(project, "pe", "true", env={"AIRLOCK_PASS_ENV": name, name: value})
    assert result.returncode == 1
    assert f"AIRLOCK_PASS_ENV names {name}, which look like credentials" in result.stderr
    assert value not in result.stderr + result.stdout
    assert not data_dir(hermetic, "pe").exists()


def test_scratch_file_systems_are_bounded(project: Path, hermetic: Env) -> None:
    script = """\
for dir in /tmp /var/tmp /dev/shm; do
  if dd if=/dev/zero of=$dir/fill bs=1M count=12 2>/dev/null; then echo "$dir: unbounded"; else echo "$dir: full"; fi
  rm -f $dir/fill
done > probe.txt
"""
    assert run_in_sandbox(project, "tmp", script, env={"AIRLOCK_TMP_SIZE": "8m"}).returncode == 0
    assert probe_lines(hermetic, "tmp") == {"/tmp": "full", "/var/tmp": "full", "/dev/shm": "full"}
    bad = run_in_sandbox(project, "tmp", "true", env={"AIRLOCK_TMP_SIZE": "lots"})
    assert bad.returncode == 1
    assert "error: bad AIRLOCK_TMP_SIZE 'lots'" in bad.stderr


SUBMODULE_FILTER = """\
set -e
here=$(pwd)
mkdir /tmp/src && cd /tmp/src && git init -q && echo x > file && git add file
git -c user.name=a -c user.email=a@b commit -qm s
cd "$here"
git -c protocol.file.allow=always submodule -q add /tmp/src sub
git commit -qm "a submodule"
printf '#!/bin/sh\nid > %s/.git/PWNED-$1\ncat\n' "$here" > .git/evil.sh
chmod +x .git/evil.sh
filter='[filter "evil"]\\n\\tclean = %s/.git/evil.sh clean\\n\\tsmudge = %s/.git/evil.sh smudge\\n'
printf "$filter" "$here" "$here" >> .git/modules/sub/config
echo '* filter=evil' > sub/.gitattributes
echo changed >> sub/file
touch -d 2001-01-01 sub/file
echo draft > draft.txt
"""


@pytest.mark.parametrize("command", [("commit", "-m", "from the host"), ("save",)])
def test_host_side_git_never_runs_a_filter_planted_in_a_submodule(
    project: Path, hermetic: Env, command: tuple[str, ...]
) -> None:
    """The submodule's own config names a clean filter; git looking inside the submodule would run it."""
    assert run_in_sandbox(project, "subfilter", SUBMODULE_FILTER).returncode == 0
    done = airlock("--engine", "bwrap", "--name", "subfilter", *command, cwd=project)
    assert done.returncode in (0, 1), done.stderr
    planted = [path.name for path in data_dir(hermetic, "subfilter").rglob("PWNED-*")]
    assert planted == [], planted
