"""README's install and test commands are what CI runs, and neither needs pip on the system Python.

Debian 12+ and Ubuntu 23.04+ refuse `pip install` into the system Python (PEP 668), so the documented
commands install into a virtual environment (`pipx`/`uv tool` for users, `.venv` for development), and
`.ci/run` runs exactly those commands: CI proves the README, not a variant of it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def code_after(heading: str) -> str:
    """The first ```sh block after the line starting with ``heading``."""
    start = README.index(heading)
    match = re.search(r"```sh\n(.*?)\n```", README[start:], re.S)
    assert match, heading
    return match.group(1)


def commands(text: str) -> list[list[str]]:
    """Each command of a shell text, as words, without what only quietens or elevates it."""
    noise = {"-q", "-qq", "$SUDO", ">/dev/null"}
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith(("set ", "cd ", "SUDO=", "if ", "export ", "command -v")):
            continue
        for part in line.split("&&"):
            words = [word for word in shlex.split(part.replace("$SUDO", "")) if word not in noise]
            if words:
                found.append(words)
    return found


def test_ci_runs_the_readme_development_install_and_test_commands() -> None:
    install = commands(code_after("For development"))
    test = commands(code_after("## Run the tests"))
    assert commands(CI) == [*install, [".venv/bin/ruff", "check", "."], [".venv/bin/mypy"], *test]


def test_no_documented_command_installs_into_the_system_python() -> None:
    documented = "\n".join(re.findall(r"```sh\n(.*?)\n```", README, re.S))
    for words in commands(documented) + commands(CI):
        system_pip = words[:3] == ["python3", "-m", "pip"] or (words[0] in ("pip", "pip3") and "install" in words)
        assert not system_pip, f"installs into whatever Python is first on PATH: {shlex.join(words)}"
    assert "pipx install ." in README and "uv tool install ." in README


def test_ci_lints_the_sbx_emulator_too() -> None:
    """The emulator is a Python script without the .py suffix, which ruff would skip unless told."""
    files = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--show-files", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert str(ROOT / "tests" / "fakes" / "sbx") in files.stdout.split()
