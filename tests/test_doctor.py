"""`git airlock doctor`: one OK/WARN/FAIL line per check, against the sbx emulator."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from conftest import FAKES, Env, airlock


def lines_for(output: str, what: str) -> list[str]:
    """The report lines about ``what`` (the check name is padded to a column)."""
    return [line for line in output.splitlines() if re.match(rf"^(OK|WARN|FAIL)\s+{re.escape(what)}\s{{2,}}", line)]


def kvm_usable() -> bool:
    return os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)


def test_doctor_reports_sbx_git_tmux_and_daemon(project: Path, hermetic: Env) -> None:
    result = airlock("doctor", cwd=project)

    (sbx,) = lines_for(result.stdout, "sbx")
    assert sbx.startswith("OK")
    assert "test emulator" in sbx and "v0.43.0" in sbx
    assert str(FAKES / "sbx") in sbx, "doctor names the sbx it found on PATH"

    (daemon,) = lines_for(result.stdout, "sbx daemon")
    assert daemon.startswith("OK") and "reachable" in daemon

    (git_line,) = lines_for(result.stdout, "git")
    assert git_line.startswith("OK")
    assert subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip() in git_line

    (tmux,) = lines_for(result.stdout, "tmux")
    assert tmux.startswith("OK")
    assert subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip() in tmux

    (identity,) = lines_for(result.stdout, "sbx identity")
    assert identity.startswith("OK") and "Docker Sandboxes" in identity

    assert not lines_for(result.stdout, "sbx login")
    # doctor asks the daemon with `sbx ls --json`, reads settings and secrets, and changes nothing
    assert ["version"] in hermetic.sbx_calls()
    assert ["--help"] in hermetic.sbx_calls()
    assert ["ls", "--json"] in hermetic.sbx_calls()
    assert ["settings", "get", "ssh.agentForwardingEnabled"] in hermetic.sbx_calls()
    assert ["secret", "ls"] in hermetic.sbx_calls()
    assert {call[0] for call in hermetic.sbx_calls()} <= {"version", "--help", "ls", "settings", "secret"}
    assert not (hermetic.sbx_state / "state.json").exists() or "settings" not in hermetic.sbx_state_json()

    # the only check this machine decides is virtualization: the exit status follows it
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert all("virtualization" in line for line in fails), fails
    if fails:
        assert result.returncode == 1
        assert "error: some checks failed" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""


def test_doctor_refuses_another_program_named_sbx(project: Path, hermetic: Env) -> None:
    impostor = hermetic.tmp / "impostor"
    impostor.mkdir()
    script = impostor / "sbx"
    script.write_text("#!/bin/sh\necho 'sbx 1.0.0 - sandboxed dev environments'\n")
    script.chmod(0o755)
    hermetic.mp.setenv("PATH", os.pathsep.join([str(impostor), os.environ["PATH"]]))
    result = airlock("doctor", cwd=project)
    assert result.returncode == 1
    (identity,) = lines_for(result.stdout, "sbx identity")
    assert identity.startswith("FAIL") and f"{script} is not Docker Sandboxes' sbx" in identity
    assert "another program installs as `sbx`" in identity
    assert not lines_for(result.stdout, "sbx daemon"), "no daemon check against someone else's program"


def test_doctor_virtualization_line_matches_dev_kvm(project: Path) -> None:
    if not os.path.exists("/proc/version"):  # not Linux: a different check applies
        return
    result = airlock("doctor", cwd=project)
    (virt,) = lines_for(result.stdout, "virtualization")
    if kvm_usable():
        assert virt.startswith("OK") and "/dev/kvm is usable" in virt
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert virt.startswith("FAIL") and "/dev/kvm" in virt
        assert result.returncode == 1


def test_doctor_works_outside_a_repository(hermetic: Env) -> None:
    elsewhere = hermetic.tmp / "not-a-repo"
    elsewhere.mkdir()
    result = airlock("doctor", cwd=elsewhere)
    assert lines_for(result.stdout, "sbx")[0].startswith("OK")
    assert lines_for(result.stdout, "git")[0].startswith("OK")
    assert not (elsewhere / ".git").exists()


def test_doctor_daemon_down(project: Path, hermetic: Env) -> None:
    result = airlock("doctor", cwd=project, env={"SBX_FAKE_DAEMON": "down"})
    assert result.returncode == 1
    (sbx,) = lines_for(result.stdout, "sbx")
    assert sbx.startswith("OK"), "the CLI itself is installed; only its daemon is down"
    (daemon,) = lines_for(result.stdout, "sbx daemon")
    assert daemon.startswith("FAIL  sbx daemon")
    assert "cannot connect to sandboxd" in daemon
    assert "(hint: `sbx diagnose`)" in daemon
    assert not lines_for(result.stdout, "sbx login"), "a daemon failure is not a login failure"
    assert "error: some checks failed" in result.stderr
    assert "hint: fix the FAIL lines above" in result.stderr


def test_doctor_logged_out_via_knob(project: Path) -> None:
    result = airlock("doctor", cwd=project, env={"SBX_FAKE_LOGIN": "out"})
    assert result.returncode == 1
    (login,) = lines_for(result.stdout, "sbx login")
    assert login.startswith("FAIL  sbx login")
    assert "not logged in" in login
    assert "run `sbx login`" in login
    assert not lines_for(result.stdout, "sbx daemon"), "a login failure is not a daemon failure"
    assert "hint:" in result.stderr


def test_doctor_after_sbx_logout_and_login(project: Path, hermetic: Env) -> None:
    sbx = str(FAKES / "sbx")
    assert subprocess.run([sbx, "logout"], capture_output=True).returncode == 0
    logged_out = airlock("doctor", cwd=project)
    assert logged_out.returncode == 1
    assert lines_for(logged_out.stdout, "sbx login")[0].startswith("FAIL")

    assert subprocess.run([sbx, "login"], capture_output=True).returncode == 0
    logged_in = airlock("doctor", cwd=project)
    assert not lines_for(logged_in.stdout, "sbx login")
    assert lines_for(logged_in.stdout, "sbx daemon")[0].startswith("OK")


def test_doctor_without_sbx(project: Path, hermetic: Env, no_sbx: None) -> None:
    result = airlock("doctor", cwd=project)
    assert result.returncode == 1
    (sbx,) = lines_for(result.stdout, "sbx")
    assert sbx.startswith("FAIL  sbx")
    assert "not installed" in sbx
    assert "docs.docker.com/ai/sandboxes" in sbx
    assert not lines_for(result.stdout, "sbx daemon"), "no daemon check without the CLI"
    # the other checks still run
    assert lines_for(result.stdout, "git")[0].startswith("OK")
    assert lines_for(result.stdout, "tmux")[0].startswith("OK")
    assert re.search(r"^error: ", result.stderr, re.M)
    assert re.search(r"^hint: ", result.stderr, re.M)
    assert hermetic.sbx_calls() == []
