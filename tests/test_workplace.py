"""The sandbox as a workplace: the agent is root of its own system, and nothing of it is root on the host.

A user's session, for real: the agent adds a package source (a Debian repository standing in on
127.0.0.1, reached through the egress gate), installs a package with apt, runs it and commits what it
printed; the commit comes home through fetch and merge; the host's system is as it was; another
sandbox has no such package; the package survives stop/up and goes with rm. Run as root and as an
ordinary user, whose sandboxes map differently (``people``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import debrepo
import pytest
from people import Person

from conftest import Env

INSTALL = """\
set -e
echo "{source}" > /etc/apt/sources.list.d/airlock-test.list
only="-o Dir::Etc::sourcelist=/etc/apt/sources.list.d/airlock-test.list -o Dir::Etc::sourceparts=-"
apt-get $only update -q
apt-get $only install -y -q {package}
{package} > greeting.txt
stat -c %U /var/lib/{package} > owner.txt
git add greeting.txt owner.txt
git commit -q -m "what the package says"
"""


@pytest.fixture(scope="module")
def deb_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[debrepo.Served]:
    folder = tmp_path_factory.mktemp("debian")
    with debrepo.serve(debrepo.build(folder)) as served:
        yield served


def gate_to(served: debrepo.Served) -> dict[str, str]:
    """The settings that let a sandbox reach the stand-in: its name resolved to 127.0.0.1, and allowed."""
    return {"AIRLOCK_EGRESS_RESOLVE": f"{debrepo.HOST}=127.0.0.1"}


def allow_repository(person: Person, project: Path, served: debrepo.Served) -> None:
    person.git(project, "config", "airlock.preset.debtest", f"{debrepo.HOST}:{served.port}")


def host_system() -> dict[str, str]:
    """What of the host's system a sandbox must never change: its package database and the package's paths."""
    status = Path("/var/lib/dpkg/status").read_bytes()
    return {
        "dpkg": hashlib.sha256(status).hexdigest(),
        "program": str(Path(f"/usr/bin/{debrepo.PACKAGE}").exists()),
        "state": str(Path(f"/var/lib/{debrepo.PACKAGE}").exists()),
        "conf": str(Path(f"/etc/{debrepo.PACKAGE}.conf").exists()),
        "user": str(debrepo.PACKAGE in Path("/etc/passwd").read_text()),
    }


def meta(person: Person, name: str) -> dict:
    return json.loads((person.data_dir(name) / "meta.json").read_text())


def test_the_agent_installs_a_package_and_its_work_comes_home(
    person: Person, deb_repository: debrepo.Served, hermetic: Env
) -> None:
    project = person.project()
    allow_repository(person, project, deb_repository)
    before = host_system()
    script = INSTALL.format(source=deb_repository.source_line, package=debrepo.PACKAGE)
    ran = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "apt", "run", script, cwd=project,
                         env=gate_to(deb_repository))  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 new commit" in ran.stdout + ran.stderr
    assert any(path.endswith(f"/{debrepo.PACKAGE}_1.0_all.deb") for path in deb_repository.asked)  # via the gate
    assert person.airlock("--engine", "bwrap", "--name", "apt", "approve", cwd=project).returncode == 0
    merged = person.airlock("--engine", "bwrap", "--name", "apt", "merge", cwd=project)
    assert merged.returncode == 0, merged.stderr
    assert (project / "greeting.txt").read_text() == debrepo.GREETING + "\n"
    # the package's own system user owns its folder under /var, which is the sandbox's own (no overlay)
    assert (project / "owner.txt").read_text() == debrepo.PACKAGE + "\n"
    assert host_system() == before

    # the package is in this sandbox's layer only: another sandbox does not have it
    other = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "other", "up", "--", "-c",
                           f"command -v {debrepo.PACKAGE} > seen.txt || echo absent > seen.txt; "
                           "dpkg -s airlock-hello >/dev/null 2>&1 && echo known >> seen.txt || true",
                           cwd=project)  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert (person.data_dir("other") / "upper" / "seen.txt").read_text() == "absent\n"

    # it survives stop and up, and shows in status
    assert person.airlock("--engine", "bwrap", "--name", "apt", "stop", cwd=project).returncode == 0
    again = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "apt", "up", "--", "-c",
                           f"{debrepo.PACKAGE} > again.txt", cwd=project)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (person.data_dir("apt") / "upper" / "again.txt").read_text() == debrepo.GREETING + "\n"
    status = person.airlock("--engine", "bwrap", "--name", "apt", "status", cwd=project)
    assert "system layer" in status.stdout, status.stdout
    assert host_system() == before

    # rm takes the layer along
    layer = person.data_dir("apt") / "system"
    assert layer.is_dir()
    removed = person.airlock("--engine", "bwrap", "--name", "apt", "rm", "--yes", "--no-fetch", cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert not layer.exists() and not person.data_dir("apt").exists()
    assert host_system() == before


WHO_OWNS = """\
set -e
echo made > made.txt
mkdir -p /usr/local/share/mine && echo mine > /usr/local/share/mine/file
chown 42:42 /usr/local/share/mine/file
cp /bin/true suid-true && chmod 4755 suid-true
touch /etc/made-inside
"""


def test_what_the_agent_makes_is_owned_by_its_own_uids(person: Person, hermetic: Env) -> None:
    project = person.project()
    made = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "own", "up", "--", "-c", WHO_OWNS,
                          cwd=project)  # fmt: skip
    assert made.returncode == 0, made.stderr
    ids = meta(person, "own")["ids"]
    root_uid = ids["uid"][0][1]
    assert root_uid != 0
    if person.is_root:
        assert root_uid >= 0x70000000  # a block of its own
    else:
        assert root_uid == person.uid and ids["uid"][1][1] != 0  # the user's own uid, then its subordinate range
    data = person.data_dir("own")
    for path in (data / "upper" / "made.txt", data / "upper" / "suid-true", data / "home"):
        assert path.stat().st_uid == root_uid, path
    suid = (data / "upper" / "suid-true").stat()
    assert suid.st_mode & stat.S_ISUID and suid.st_uid != 0  # setuid, as the sandbox root's uid: harmless here
    mine = data / "system" / "upper" / "usr" / "local" / "share" / "mine" / "file"
    assert mine.stat().st_uid not in (0, root_uid)  # uid 42 inside: another unprivileged uid of its range
    assert (data / "system" / "upper" / "etc" / "made-inside").exists()
    assert not Path("/etc/made-inside").exists()
    removed = person.airlock("--engine", "bwrap", "--name", "own", "rm", "--yes", "--no-fetch", cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert not data.exists()  # also what belonged to uid 42 inside


def test_a_fresh_layer_is_small_and_hides_the_hosts_secrets(person: Person, hermetic: Env) -> None:
    project = person.project()
    look = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "fresh", "up", "--", "-c",
                          "ls /etc > etc.txt; ls /var/lib > varlib.txt; ls /etc/ssl > ssl.txt; "
                          "cat /etc/shadow > shadow.txt 2>&1; ls /var/log > log.txt", cwd=project)  # fmt: skip
    assert look.returncode == 0, look.stderr
    upper = person.data_dir("fresh") / "upper"
    etc = (upper / "etc.txt").read_text().split()
    assert {"apt", "dpkg", "passwd", "ssl", "os-release"} <= set(etc)
    assert not {"ssh", "sudoers", "machine-id", "subuid"} & set(etc)
    assert set((upper / "varlib.txt").read_text().split()) <= {"dpkg", "apt"}
    assert "private" not in (upper / "ssl.txt").read_text().split()
    assert (upper / "log.txt").read_text() == ""
    host_shadow = Path("/etc/shadow").read_text() if person.is_root else ""
    assert all(line.split(":")[1] in ("*", "!", "!*") for line in (upper / "shadow.txt").read_text().splitlines())
    assert not host_shadow or (upper / "shadow.txt").read_text() != host_shadow
    layer = person.data_dir("fresh") / "system" / "upper"
    used = sum(p.lstat().st_blocks * 512 for p in layer.rglob("*"))
    assert used < 1024 * 1024, used


def test_a_layer_made_over_an_older_system_still_starts_and_says_so(hermetic: Env, person: Person) -> None:
    project = person.project()
    assert person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "old", "up", "--", "-c", "true",
                          cwd=project).returncode == 0  # fmt: skip
    status = Path("/var/lib/dpkg/status")
    times = status.stat()
    os.utime(status, ns=(times.st_atime_ns, times.st_mtime_ns + 1_000_000_000))  # as after an upgrade
    try:
        up = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "old", "up", "--", "-c",
                            "echo started > started.txt", cwd=project)  # fmt: skip
        shown = person.airlock("--engine", "bwrap", "--name", "old", "status", cwd=project)
    finally:
        os.utime(status, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert up.returncode == 0, up.stderr
    assert (person.data_dir("old") / "upper" / "started.txt").exists()
    assert "made over an older system" in up.stderr
    assert "made over an older system" in shown.stdout


def doctor_line(person: Person, project: Path, check: str) -> str:
    shown = person.airlock("--engine", "bwrap", "doctor", cwd=project)
    found = [line for line in shown.stdout.splitlines() if line.split()[1:2] == [check]]
    assert len(found) == 1, shown.stdout
    return found[0]


def test_doctor_says_who_the_sandboxes_are_and_whether_they_get_a_system(person: Person, hermetic: Env) -> None:
    project = person.project()
    uids, system = doctor_line(person, project, "uids"), doctor_line(person, project, "system")
    assert uids.startswith("OK") and system.startswith("OK"), (uids, system)
    assert ("uids of its own" in uids) if person.is_root else ("subordinate range" in uids)
    assert ("id-mapped" in system) if person.is_root else ("fuse-overlayfs" in system)


@pytest.fixture
def without_fuse() -> Iterator[None]:
    """/dev/fuse as a machine without udev leaves it: root's alone."""
    fuse = Path("/dev/fuse")
    mode = stat.S_IMODE(fuse.stat().st_mode)
    fuse.chmod(0o600)
    try:
        yield
    finally:
        fuse.chmod(mode)


def test_a_user_without_fuse_gets_a_clear_line_and_a_working_sandbox(
    ordinary_user: Person, hermetic: Env, without_fuse: None
) -> None:
    from people import another

    person = another(ordinary_user, hermetic.tmp.name)
    project = person.project()
    system = doctor_line(person, project, "system")
    assert system.startswith("WARN") and "/dev/fuse" in system and "read-only" in system
    made = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "nofuse", "up", "--", "-c",
                          "id -u > uid.txt; touch /usr/x 2>/dev/null && echo wrote > usr.txt || echo refused > usr.txt",
                          cwd=project)  # fmt: skip
    assert made.returncode == 0, made.stderr
    upper = person.data_dir("nofuse") / "upper"
    assert (upper / "uid.txt").read_text() == "0\n"  # still root of itself, over a read-only system
    assert (upper / "usr.txt").read_text() == "refused\n"
    assert meta(person, "nofuse")["system"] == "none"


@pytest.fixture
def user_without_subordinate_ids(ordinary_user: Person, hermetic: Env) -> Iterator[Person]:
    """The same user with its /etc/subuid and /etc/subgid lines taken away (put back afterwards)."""
    from people import another

    saved = {path: Path(path).read_text() for path in ("/etc/subuid", "/etc/subgid")}
    for path, text in saved.items():
        kept = [line for line in text.splitlines(keepends=True) if not line.startswith(ordinary_user.name + ":")]
        Path(path).write_text("".join(kept))
    try:
        yield another(ordinary_user, hermetic.tmp.name)
    finally:
        for path, text in saved.items():
            Path(path).write_text(text)


def test_a_user_without_subordinate_ids_is_told_and_still_gets_root_of_itself(
    user_without_subordinate_ids: Person,
) -> None:
    person = user_without_subordinate_ids
    project = person.project()
    uids = doctor_line(person, project, "uids")
    assert uids.startswith("WARN") and "usermod --add-subuids" in uids
    made = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "single", "up", "--", "-c",
                          "id -u > uid.txt; cat /proc/self/uid_map > map.txt", cwd=project)  # fmt: skip
    assert made.returncode == 0, made.stderr
    upper = person.data_dir("single") / "upper"
    assert (upper / "uid.txt").read_text() == "0\n"
    assert (upper / "map.txt").read_text().split() == ["0", str(person.uid), "1"]  # itself alone, never root
    apt = person.data_dir("single") / "system" / "upper" / "etc" / "apt" / "apt.conf.d" / "00git-airlock-sandbox"
    assert 'APT::Sandbox::User "root"' in apt.read_text()  # apt cannot drop to _apt, which does not exist here


def test_ls_and_json_show_each_layers_size(person: Person, hermetic: Env) -> None:
    project = person.project()
    for name, script in (("small", "true"), ("big", "head -c 3000000 /dev/urandom > /usr/local/big")):
        made = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", name, "up", "--", "-c", script,
                              cwd=project)  # fmt: skip
        assert made.returncode == 0, made.stderr
    listed = person.airlock("--engine", "bwrap", "ls", "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    sizes = {row["name"]: row["layer_bytes"] for row in json.loads(listed.stdout)}
    assert sizes["small"] < 1024 * 1024 <= 3_000_000 <= sizes["big"]
    text = person.airlock("--engine", "bwrap", "ls", cwd=project).stdout
    assert text.splitlines()[0].split()[-1] == "layer" and "MiB" in text


def test_the_debian_preset_lets_apt_reach_the_archives(hermetic: Env, person: Person) -> None:
    project = person.project()
    shown = person.airlock("--engine", "bwrap", "presets", cwd=project)
    line = next(line for line in shown.stdout.splitlines() if line.split()[:1] == ["debian"])
    assert "deb.debian.org" in line and "security.debian.org" in line


UNMOUNTABLE = "the sandbox's system layer"


def test_a_layer_that_cannot_be_mounted_names_its_folder_and_the_way_back(person: Person, hermetic: Env) -> None:
    project = person.project()
    assert person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "broken", "up", "--", "-c", "true",
                          cwd=project).returncode == 0  # fmt: skip
    work = person.data_dir("broken") / "system" / "work" / "usr"
    person.run(["sh", "-c", 'rm -rf "$0" && echo not-a-folder > "$0"', str(work)], project)
    again = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "broken", "up", "--", "-c",
                           "echo ran > ran.txt", cwd=project)  # fmt: skip
    assert again.returncode == 125, again.stderr  # the sandbox never started: the agent never ran
    assert UNMOUNTABLE in again.stderr and str(person.data_dir("broken") / "system" / "upper" / "usr") in again.stderr
    assert "hint:" in again.stderr and "git airlock rm" in again.stderr
    assert not (person.data_dir("broken") / "upper" / "ran.txt").exists()
    removed = person.airlock("--engine", "bwrap", "--name", "broken", "rm", "--yes", "--no-fetch", cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "broken", "up", "--", "-c", "true",
                          cwd=project).returncode == 0  # fmt: skip


@pytest.fixture
def small_disk(person: Person, hermetic: Env) -> Iterator[Person]:
    """``person`` with its HOME (and with it every sandbox's data) on a small file system of its own."""
    mount = person.folder("small-disk")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        if not person.is_root:
            os.chown(mount, person.uid, person.gid)
        moved = Person(person.name, person.uid, person.gid, mount, bin=person.bin, code=person.code)
        moved.prepare()
        yield moved
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_a_full_disk_while_the_agent_installs_leaves_a_sandbox_that_works_once_space_is_freed(
    small_disk: Person, deb_repository: debrepo.Served
) -> None:
    person = small_disk
    project = person.project()
    allow_repository(person, project, deb_repository)
    script = INSTALL.format(source=deb_repository.source_line, package=debrepo.PACKAGE)
    made = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "full", "up", "--", "-c", "true",
                          cwd=project)  # fmt: skip
    assert made.returncode == 0, made.stderr
    filler = person.base / "filler"
    person.run(["sh", "-c", f"dd if=/dev/zero of={filler} bs=1M 2>/dev/null; true"], project)  # the disk is full
    full = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "full", "run", script, cwd=project,
                          env=gate_to(deb_repository))  # fmt: skip
    assert full.returncode != 0  # apt could not write its files
    filler.unlink()  # space is freed
    again = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "full", "run",
                           "dpkg --configure -a; rm -f greeting.txt owner.txt; " + script, cwd=project,
                           env=gate_to(deb_repository))  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert (person.data_dir("full") / "upper" / "greeting.txt").read_text() == debrepo.GREETING + "\n"


LEAVE_WORK = """\
set -e
cat ~/notes/seeded.md > seen-seed.txt
echo done > committed.txt && git add committed.txt seen-seed.txt && git commit -q -m "agent's commit"
echo draft > draft.txt
chmod 600 draft.txt
"""


def test_host_side_git_works_on_what_the_sandbox_root_owns(person: Person, hermetic: Env) -> None:
    """fetch, commit, save, review, merge and rm's capture read and write the clone the sandbox's root owns;
    the seeded file becomes the sandbox root's, so the agent can change it."""
    project = person.project()
    (person.home / "notes").mkdir()
    (person.home / "notes" / "seeded.md").write_text("from the host\n")
    if not person.is_root:
        for path in (person.home / "notes", person.home / "notes" / "seeded.md"):
            os.chown(path, person.uid, person.gid)
    seeds = {"SEED_PATHS": "notes"}
    made = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "loop", "up", "--", "-c", LEAVE_WORK,
                          cwd=project, env=seeds)  # fmt: skip
    assert made.returncode == 0, made.stderr
    home = person.data_dir("loop") / "home"
    root_uid = meta(person, "loop")["ids"]["uid"][0][1]
    assert (home / "notes" / "seeded.md").stat().st_uid == root_uid  # the agent's to change
    assert (person.data_dir("loop") / "upper" / "seen-seed.txt").read_text() == "from the host\n"
    status = person.airlock("--engine", "bwrap", "--name", "loop", "status", cwd=project)
    assert "1 uncommitted change" in status.stdout, status.stdout + status.stderr
    committed = person.airlock("--engine", "bwrap", "--name", "loop", "commit", "-m", "the draft", cwd=project)
    assert committed.returncode == 0, committed.stderr
    fetched = person.airlock("--engine", "bwrap", "--name", "loop", "fetch", cwd=project)
    assert fetched.returncode == 0, fetched.stderr
    log = person.git(project, "log", "--format=%s", "sandbox-loop/main")
    assert log.splitlines()[:2] == ["the draft", "agent's commit"]
    assert person.airlock("--engine", "bwrap", "--name", "loop", "approve", cwd=project).returncode == 0
    assert person.airlock("--engine", "bwrap", "--name", "loop", "merge", cwd=project).returncode == 0
    assert (project / "draft.txt").read_text() == "draft\n"
    again = person.airlock("--engine", "bwrap", "--agent", "shell", "--name", "loop", "up", "--", "-c",
                           "echo later > later.txt", cwd=project)  # fmt: skip
    assert again.returncode == 0, again.stderr
    saved = person.airlock("--engine", "bwrap", "--name", "loop", "save", cwd=project)
    assert saved.returncode == 0, saved.stderr
    removed = person.airlock("--engine", "bwrap", "--name", "loop", "rm", "--yes", cwd=project)
    assert removed.returncode == 0, removed.stderr
    kept = person.git(project, "for-each-ref", "--format=%(refname)", "refs/airlock/wip/loop/")
    assert kept.strip(), removed.stderr  # the uncommitted later.txt was kept before the sandbox went
    assert not person.data_dir("loop").exists()


def test_a_key_in_the_users_environment_never_reaches_the_sandbox(hermetic: Env, project: Path) -> None:
    """bwrap's own process inside (the sandbox's PID 1) keeps the environment bwrap starts with: it must
    hold nothing of the user's, where a key the gate is to use may well be."""
    from conftest import key_seen_in_sandbox

    key, token = "sk-ant-api03-" + "k" * 40, "ghp_" + "t" * 36
    env = {"ANTHROPIC_API_KEY": key, "GITHUB_TOKEN": token}
    for network in ("balanced", "deny-all"):
        policy = {**env, "GLOBAL_NETWORK_POLICY": network}
        found, seen = key_seen_in_sandbox(project, hermetic, f"env-{network}", key, policy)
        assert found == [], found
        assert not any(token in line for line in seen)  # the scan read every /proc/*/environ, PID 1's too


def test_roots_sandboxes_get_blocks_of_their_own_whatever_its_home(hermetic: Env) -> None:
    """Root's blocks are machine-wide: a second root HOME (another container user, a CI job) never gets a
    block that root's other sandboxes hold. (An ordinary user's sandboxes map its own subordinate range.)"""
    if os.getuid() != 0:
        pytest.skip("the blocks are root's: only root's sandboxes take them")
    person = Person("root", 0, 0, hermetic.tmp)
    person.prepare()
    other = Person("root", 0, 0, hermetic.tmp / "another-home")
    other.base.mkdir()
    other.prepare()
    bases = []
    for who in (person, other):
        project = who.project()
        made = who.airlock("--engine", "bwrap", "--agent", "shell", "--name", "same", "up", "--", "-c", "true",
                           cwd=project)  # fmt: skip
        assert made.returncode == 0, made.stderr
        bases.append(meta(who, "same")["ids"]["uid"][0][1])
    assert bases[0] != bases[1]


def test_the_layer_never_spends_the_blocks_a_file_system_keeps_for_root(hermetic: Env) -> None:
    """overlayfs writes with its mounter's credentials, which for root's sandboxes are root's: the agent
    filling its /usr must stop where an ordinary user stops, leaving root's reserved blocks alone. (An
    ordinary user's layer is written by fuse-overlayfs as that user: it never had root's reserve.)"""
    if os.getuid() != 0:
        pytest.skip("the reserve is root's: only root's sandboxes mount their layer as root")
    person = Person("root", 0, 0, hermetic.tmp)
    image = hermetic.tmp / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(96 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-m", "20", str(image)], check=True)
    mount = person.folder("ext4-disk")
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        if not person.is_root:
            os.chown(mount, person.uid, person.gid)
        moved = Person(person.name, person.uid, person.gid, mount, bin=person.bin, code=person.code)
        moved.prepare()
        project = moved.project()
        fill = "dd if=/dev/zero of=/usr/fill bs=1M 2>/dev/null; dd if=/dev/zero of=fill bs=1M 2>/dev/null; true"
        made = moved.airlock("--engine", "bwrap", "--agent", "shell", "--name", "fill", "up", "--", "-c", fill,
                             cwd=project)  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert meta(moved, "fill")["system"] == "overlay" and meta(moved, "fill")["layout"] == "overlay"
        disk = os.statvfs(mount)
        reserved = (disk.f_bfree - disk.f_bavail) * disk.f_frsize
        assert disk.f_bavail * disk.f_frsize < 4 * 1024 * 1024  # the agent did fill what it may use
        assert disk.f_bfree * disk.f_frsize >= 0.9 * reserved > 10 * 1024 * 1024  # root's reserve is still there
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_what_the_host_adds_to_etc_or_var_while_a_sandbox_runs_stays_out_of_it(project: Path, hermetic: Env) -> None:
    """The sandbox's /etc is a layer over a copy, and its /var is its own: a file the host writes there
    later (a new shadow is written as /etc/nshadow first, a service drops its state in /var/lib) never
    shows inside, not even to the sandbox's root."""
    from conftest import running_agent, sandbox_file

    late_etc, late_var = Path("/etc/profile.d/zz-airlock-late.sh"), Path("/var/lib/airlock-late")
    look = ("echo ready; read line; cat /etc/profile.d/zz-airlock-late.sh > etc.txt 2>&1; "
            "ls /var/lib > var.txt; cat /var/lib/airlock-late/secret > secret.txt 2>&1")  # fmt: skip
    try:
        with running_agent(project, "late", look):
            late_etc.write_text("export LATE=host-only\n")
            late_var.mkdir()
            (late_var / "secret").write_text("host-only\n")
    finally:
        late_etc.unlink(missing_ok=True)
        shutil.rmtree(late_var, ignore_errors=True)
    assert "host-only" not in sandbox_file(hermetic, "late", "etc.txt").read_text()
    assert "airlock-late" not in sandbox_file(hermetic, "late", "var.txt").read_text().split()
    assert "host-only" not in sandbox_file(hermetic, "late", "secret.txt").read_text()
    assert "No such file" in sandbox_file(hermetic, "late", "secret.txt").read_text()
