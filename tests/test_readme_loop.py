"""README's loop, verbatim, as a new user runs it on the bwrap engine: in a terminal, answering prompts.

The commands are read from README's "The loop" block at test time, so the test follows the README
rather than a copy of it. Each runs in a real pseudo-terminal, as typed; the agent is the shell
agent (`AGENT=shell`), to which the test types what an agent would do: write a file and commit it.
Prompts are answered as they appear (reading the terminal until one shows is the synchronisation).
Afterwards the agent's commit is on the user's branch and on origin, reviewed, and the sandbox is gone.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
from pathlib import Path

from conftest import Env, data_dir, git

ROOT = Path(__file__).resolve().parent.parent
AGENT_TYPES = "echo 'hello from the agent' > hello.txt && git add hello.txt && git commit -q -m 'agent: hello'; exit\n"
ANSWERS = {
    r"Mark .* as reviewed\?": "y",
    r"Fetch the commits of .* before removing it\?": "y",
    r"Remove sandbox .*\?": "y",
}
"""What a user answers to each question the loop asks; any other question fails the test."""


def loop_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## The loop\n.*?```sh\n(.*?)\n```", readme, re.S)
    assert block, "README has no loop"
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [command for command in commands if command.startswith("git ")]


def in_terminal(command: str, cwd: Path, typed: str = "", timeout: float = 120) -> tuple[int, str]:
    """Run ``command`` (a shell line) on a new pseudo-terminal; type ``typed`` first, then answer prompts."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        ["sh", "-c", command], cwd=cwd, stdin=follower, stdout=follower, stderr=follower, start_new_session=True
    )
    os.close(follower)
    if typed:
        os.write(leader, typed.encode())
    seen = ""
    while True:
        ready, _, _ = select.select([leader], [], [], timeout)
        assert ready, f"{command}: no output for {timeout} s; so far:\n{seen}"
        try:
            chunk = os.read(leader, 65536).decode("utf-8", "replace")
        except OSError:  # the terminal closed: every process on it is gone
            break
        if not chunk:
            break
        seen += chunk
        last = seen.rstrip("\r\n").rsplit("\n", 1)[-1]
        if last.endswith("]: "):
            answer = next((reply for question, reply in ANSWERS.items() if re.search(question, last)), None)
            assert answer is not None, f"{command}: unexpected question {last!r}"
            os.write(leader, f"{answer}\n".encode())
    os.close(leader)
    return process.wait(timeout=timeout), seen


def test_the_readme_loop_works_verbatim_on_bwrap(project: Path, hermetic: Env, tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "-u", "origin", "main")
    hermetic.mp.setenv("AIRLOCK_ENGINE", "bwrap")
    hermetic.mp.setenv("AGENT", "shell")
    commands = loop_commands()
    assert commands[0].startswith("git airlock up") and "git push" in commands

    for command in commands:
        typed = AGENT_TYPES if command.startswith("git airlock up") else ""
        status, output = in_terminal(command, project, typed)
        assert status == 0, f"{command} exited {status}:\n{output}"
        assert "Traceback" not in output

    assert git(project, "log", "-1", "--format=%s", "main").strip() == "agent: hello"
    assert (project / "hello.txt").read_text() == "hello from the agent\n"
    assert git(project, "rev-parse", "main") == git(project, "rev-parse", "origin/main")
    assert git(project, "status", "--porcelain") == ""
    (name,) = [
        ref.split("/")[3]
        for ref in git(project, "for-each-ref", "--format=%(refname)", "refs/airlock/reviewed/").split()
    ]
    assert not data_dir(hermetic, name).exists()
    assert git(project, "remote").split() == ["origin"]
