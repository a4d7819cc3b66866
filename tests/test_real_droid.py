"""Factory's Droid in a bwrap sandbox, driven through a whole task by a stand-in of Anthropic's or OpenAI's API.

Droid's own way to a model is Factory's: a login or ``FACTORY_API_KEY``, and every request (the model's
included, ``/api/llm/...``) to api.factory.ai, plus telemetry.factory.ai. Its custom models
(docs.factory.ai/cli/byok: ``customModels`` in ``~/.factory/settings.json``, ``baseUrl`` and an ``apiKey``
that may name a variable) take any base URL, the gate's credential endpoint included; but even on a custom
model Droid still calls Factory at start (feature flags, billing limits, sessions, telemetry: eight
connections to api.factory.ai and one to telemetry.factory.ai in a run of Droid 0.225). Its Airgap
Mode (docs.factory.ai/enterprise/airgapped-deployment) leaves all of that out and needs no login; the
public build turns it on from ``FACTORY_AIRGAP_ENABLED``. So where the host holds an Anthropic (or OpenAI)
key, every sandbox gets a custom model on the gate's endpoint with the placeholder, and that mode.

The model is ``fakes/messages_api.py``: HTTPS on 127.0.0.1 with a certificate for api.anthropic.com, which
the gate trusts through ``SSL_CERT_FILE`` and dials through ``AIRLOCK_SERVICE_URLS`` and
``AIRLOCK_EGRESS_RESOLVE``. It answers with two calls of Droid's ``Execute`` tool that create and commit a
file, then a final text; ``fakes/responses_api.py`` does the same for an OpenAI key.

Without a key on the host Droid runs as installed: the headless form parses and fails on the Factory
login, and the gate's log names where it went (resolved to loopback: nothing real is reached).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import (
    Env,
    airlock,
    approve_and_merge,
    assert_gate_dialled_only,
    data_dir,
    gate_log,
    git,
    key_seen_in_sandbox,
    net_rows,
    sandbox_names,
    sandbox_setenv,
)
from fakes import messages_api, responses_api
from fakes.messages_api import HOST_NAME, MessagesApi, certificate
from fakes.responses_api import ResponsesApi
from git_airlock.agents import AGENTS
from git_airlock.services import PLACEHOLDER

pytestmark = pytest.mark.npm

TASK = "create hello.txt containing hi and commit it"
HEADLESS = ["exec", "--auto", "high"]
BASE_URL = "http://127.0.0.1:3128/airlock/anthropic"
FACTORY_HOSTS = ("telemetry.factory.ai", "relay.factory.ai", "downloads.factory.ai", "auth.workos.com")
"""Factory's hosts besides Droid's preset (the list of them in its bundle): its telemetry, relay, downloads
and login. Resolved to loopback with the preset's, so nothing a sandbox tries reaches Factory."""


def commands(project: Path) -> tuple[str, str]:
    """What the model runs, in two calls: Droid-Shield, which checks a commit for secrets, refuses a
    commit that is not a command of its own naming git's repository by its absolute path (``git -C``)."""
    clone = f"/workspace/{project.name}"
    return f"echo hi > hello.txt && git -C {clone} add hello.txt", f'git -C {clone} commit -m "add hello"'


class ExecuteApi(MessagesApi):
    """The Messages API stand-in, scripted for Droid 0.225's shell tool (``Execute``): one call per command
    of ``steps``, each the next answer once the previous one's result came back, then the final text."""

    def __init__(self, cert: Path, key: Path, steps: tuple[str, ...]) -> None:
        super().__init__(cert, key, " && ".join(steps), tool="Execute")
        self.steps = steps

    def reply_for(self, request: messages_api.Request) -> messages_api.Reply:
        body = request.body or {}
        if "Execute" not in request.tool_names():
            return messages_api.Reply([{"type": "text", "text": self.side}], "end_turn", "side")
        calls = sum(
            block.get("type") == "tool_use"
            for message in body.get("messages") or []
            if message.get("role") == "assistant" and isinstance(message.get("content"), list)
            for block in message["content"]
        )
        if calls >= len(self.steps):
            return messages_api.Reply([{"type": "text", "text": self.final}], "end_turn", "final")
        use = {
            "type": "tool_use",
            "id": self.next_id("toolu"),
            "name": "Execute",
            "input": execute_input(self.steps[calls]),
        }
        return messages_api.Reply([use], "tool_use", "tool_use")


def execute_input(command: str) -> dict[str, str]:
    """A call of Droid 0.225's shell tool (``Execute``) in the arguments its schema requires: a 3-8 word
    summary, the command, the risk level with its reason."""
    return {
        "summary": "Create and commit hello file",
        "command": command,
        "riskLevelReason": "A local change, reversible.",
        "riskLevel": "medium",
    }


class ExecuteResponses(ResponsesApi):
    """The Responses API stand-in, scripted for ``Execute`` as :class:`ExecuteApi` is: one function call
    per command of ``steps``, each once the previous one's output came back (known by its call id, whether
    the client resends the conversation or not), then the final text."""

    def __init__(self, directory: Path, steps: tuple[str, ...]) -> None:
        super().__init__(directory, " && ".join(steps))
        self.steps = steps
        self.calls: dict[str, int] = {}
        """The call ids the stand-in handed out, with the step each ran."""

    def reply_for(self, request: responses_api.Request) -> responses_api.Reply:
        if "Execute" not in request.tool_names():
            return responses_api.Reply([self._message(self.side)], "side")
        done = [self.calls[item["call_id"]] for item in request.tool_outputs() if item.get("call_id") in self.calls]
        step = max(done) + 1 if done else 0
        if step >= len(self.steps):
            return responses_api.Reply([self._message(self.final)], "final")
        call_id = self.next_id("call")
        self.calls[call_id] = step
        item = {
            "type": "function_call",
            "id": self.next_id("fc"),
            "call_id": call_id,
            "name": "Execute",
            "arguments": json.dumps(execute_input(self.steps[step])),
            "status": "completed",
        }
        return responses_api.Reply([item], "function")


@pytest.fixture
def api(tmp_path: Path, project: Path) -> Iterator[ExecuteApi]:
    """The stand-in model, serving until the test ends."""
    cert, key = certificate(tmp_path)
    with ExecuteApi(cert, key, commands(project)) as server:
        yield server


@pytest.fixture
def resolve() -> dict[str, str]:
    """Every host Droid might dial, resolved to loopback for the gate."""
    hosts = (HOST_NAME, *AGENTS["droid"].hosts, *FACTORY_HOSTS)
    return {"AIRLOCK_EGRESS_RESOLVE": ",".join(f"{host}=127.0.0.1" for host in hosts)}


@pytest.fixture(scope="session")
def platform_package(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """Droid's native build for this machine, as npm installs it beside ``@factory/cli`` (its optional
    dependency ``@factory/cli-<platform>-<arch>``): downloaded the first time it is asked for, once per session.

    The registry this suite installs from has ``@factory/cli`` without that dependency at the same version,
    so `agents install droid` brings the launcher alone; its launcher finds the build in the same
    ``node_modules``, whatever its version, as it would after a complete install."""
    found: list[Path] = []

    def download() -> Path:
        if not found:
            platform = subprocess.run(
                ["node", "-p", "process.platform + '-' + process.arch"], capture_output=True, text=True, check=True
            ).stdout.strip()
            prefix = tmp_path_factory.mktemp("droid-build")
            subprocess.run(
                ["npm", "install", "--global", "--prefix", str(prefix), "--ignore-scripts", "--no-audit",
                 "--no-fund", f"--cache={prefix / 'npm-cache'}", f"@factory/cli-{platform}"],
                check=True, capture_output=True, timeout=600,
            )  # fmt: skip
            found.append(prefix / "lib" / "node_modules" / "@factory" / f"cli-{platform}")
        return found[0]

    return download


@pytest.fixture
def droid_installed(
    project: Path, hermetic: Env, install_agent: Callable[[str, Path], None], platform_package: Callable[[], Path]
) -> None:
    """`agents install droid` for the test's sandboxes, completed with the native build where the registry's
    copy left it out."""
    install_agent("droid", project)
    factory = hermetic.home / ".local/share/git-airlock/agents/npm/lib/node_modules/@factory"
    if not [*factory.glob("cli-*"), *factory.glob("cli/node_modules/@factory/cli-*")]:
        subprocess.run(["cp", "-al", str(platform_package()), str(factory)], check=True)


@pytest.fixture
def droid_ready(
    project: Path, api: ExecuteApi, resolve: dict[str, str], droid_installed: None
) -> tuple[str, dict[str, str]]:
    """Droid installed for the user's sandboxes and an Anthropic key held on the host.

    Returns the key (random: a leak is found by value) and what points the egress gate at the stand-in.
    Only the commands that start a sandbox get it: npm, in `agents install`, keeps the public authorities."""
    key = "sk-ant-test-" + secrets.token_hex(20)
    stored = airlock("--engine", "bwrap", "secret", "set", "anthropic", cwd=project, input=key + "\n")
    assert stored.returncode == 0, stored.stderr
    env = {
        **resolve,
        "AIRLOCK_SERVICE_URLS": f"anthropic=https://{HOST_NAME}:{api.port}",
        "SSL_CERT_FILE": str(api.cert),
    }
    return key, env


def droid_command(argv: list[str]) -> list[str]:
    """The agent's part of the sandbox's command line: from ``droid`` on."""
    return argv[len(argv) - argv[::-1].index("droid") - 1 :]


def test_run_drives_droid_headless_through_the_gate(
    project: Path, hermetic: Env, api: ExecuteApi, droid_ready: tuple[str, dict[str, str]]
) -> None:
    """`run` is all a user types: Droid, on a custom model at the gate's endpoint, acts without asking,
    commits, and the commit comes home through review; the key reaches the model API and nothing in the
    sandbox, and nothing but the model API is dialled (no Factory login, flags, sessions or telemetry)."""
    key, env = droid_ready
    base = git(project, "rev-parse", "HEAD").strip()

    dry = airlock("--engine", "bwrap", "--agent", "droid", "--dry-run", "run", TASK, cwd=project, env=env)
    assert dry.returncode == 0, dry.stderr
    assert key not in dry.stdout + dry.stderr
    sandbox_env, argv = sandbox_setenv(dry.stdout)
    assert droid_command(argv) == ["droid", *HEADLESS, TASK]
    assert sandbox_env["ANTHROPIC_API_KEY"] == PLACEHOLDER
    assert sandbox_env["ANTHROPIC_BASE_URL"] == BASE_URL
    assert sandbox_env["FACTORY_AIRGAP_ENABLED"] == "true"
    assert sandbox_env["FACTORY_DROID_AUTO_UPDATE_ENABLED"] == "false"

    result = airlock("--engine", "bwrap", "--agent", "droid", "run", TASK, cwd=project, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "droid finished and made 1 new commit(s)" in result.stderr
    assert "Done: hello.txt is committed." in result.stdout
    (name,) = sandbox_names(project)

    # the custom model Droid ran on, as written into its HOME: the gate's URL, the key by variable name
    settings = json.loads((data_dir(hermetic, name) / "home" / ".factory" / "settings.json").read_text())
    (model,) = settings["customModels"]
    assert (model["baseUrl"], model["apiKey"], model["provider"]) == (BASE_URL, "${ANTHROPIC_API_KEY}", "anthropic")

    # fetched by `run` itself: the commit Droid's Execute tool made in the sandbox's clone
    tip = f"refs/remotes/sandbox-{name}/main"
    assert git(project, "log", "-1", "--format=%s%n%P", tip).split() == ["add", "hello", base]
    assert git(project, "show", f"{tip}:hello.txt") == "hi\n"

    # the conversation: the task, two Execute calls (Droid 0.225's tool and schema), their results, the end
    kinds = [kind for _, kind in api.replies if kind != "side"]
    assert kinds == ["tool_use", "tool_use", "final"], kinds
    asked, committing = [request for request, kind in api.replies if kind == "tool_use"]
    (answered,) = [request for request, kind in api.replies if kind == "final"]
    assert asked.method == "POST" and asked.route == "/v1/messages" and asked.body["stream"] is True
    assert asked.body["model"] == model["model"]
    assert TASK in json.dumps(asked.body["messages"])
    (execute,) = [tool for tool in asked.body["tools"] if tool["name"] == "Execute"]
    assert set(execute["input_schema"]["required"]) == {"summary", "command", "riskLevelReason", "riskLevel"}
    assert [result.get("is_error") for result in committing.tool_results()] == [None]
    (outcome,) = answered.tool_results()
    assert outcome.get("is_error") is not True and "add hello" in json.dumps(outcome["content"])
    assert answered.headers["user-agent"].startswith("factory-cli/0.")

    # every request carried the real key (the gate put it on), and the gate dialled nothing else
    seen = api.seen()
    for request in seen:
        assert request.headers.get("x-api-key") == key, request.path
        assert request.headers["host"] == f"{HOST_NAME}:{api.port}"
        assert PLACEHOLDER not in json.dumps(request.headers)
    assert_gate_dialled_only(hermetic, name, HOST_NAME, api.port, "anthropic", key)
    (row,) = net_rows(project)
    assert row[:3] == [f"{HOST_NAME}:{api.port}", str(len(seen)), "0"]

    # the key: in nothing the sandbox keeps (HOME with Droid's settings, sessions and logs, clone, layer),
    # nor in what it sees while it runs
    leaks, seen_env = key_seen_in_sandbox(project, hermetic, name, key, env)
    assert leaks == []
    assert f"ANTHROPIC_API_KEY={PLACEHOLDER}" in seen_env

    approve_and_merge(project)
    assert git(project, "log", "-1", "--format=%s").strip() == "add hello"
    assert (project / "hello.txt").read_text() == "hi\n"


def test_run_drives_droid_on_an_openai_key(
    project: Path, hermetic: Env, tmp_path: Path, resolve: dict[str, str], droid_installed: None
) -> None:
    """With an OpenAI key on the host instead, Droid's custom model is an ``openai`` one: the Responses API
    at the gate's openai endpoint (``/v1`` in its base URL), the key as a bearer token; the run is the same."""
    key = "sk-proj-test-" + secrets.token_hex(20)
    stored = airlock("--engine", "bwrap", "secret", "set", "openai", cwd=project, input=key + "\n")
    assert stored.returncode == 0, stored.stderr
    with ExecuteResponses(tmp_path, commands(project)) as api:
        env = {
            "AIRLOCK_EGRESS_RESOLVE": resolve["AIRLOCK_EGRESS_RESOLVE"] + f",{responses_api.HOST_NAME}=127.0.0.1",
            "AIRLOCK_SERVICE_URLS": f"openai=https://{responses_api.HOST_NAME}:{api.port}",
            "SSL_CERT_FILE": str(api.authority),
        }
        result = airlock("--engine", "bwrap", "--agent", "droid", "run", TASK, cwd=project, env=env, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "droid finished and made 1 new commit(s)" in result.stderr
        (name,) = sandbox_names(project)
        assert git(project, "show", f"refs/remotes/sandbox-{name}/main:hello.txt") == "hi\n"
        settings = json.loads((data_dir(hermetic, name) / "home" / ".factory" / "settings.json").read_text())
        (model,) = settings["customModels"]
        assert model["baseUrl"] == "http://127.0.0.1:3128/airlock/openai/v1" and model["provider"] == "openai"
        assert model["apiKey"] == "${OPENAI_API_KEY}"

        kinds = [kind for _, kind in api.replies if kind != "side"]
        assert kinds == ["function", "function", "final"], kinds
        asked = next(request for request, kind in api.replies if kind == "function")
        assert asked.route == "/v1/responses" and asked.body["stream"] is True and asked.body["model"] == model["model"]
        assert TASK in json.dumps(asked.body["input"])
        (answered,) = [request for request, kind in api.replies if kind == "final"]
        assert any("add hello" in json.dumps(output) for output in answered.tool_outputs())
        for request in api.seen():
            assert request.headers.get("authorization") == f"Bearer {key}", request.path
            assert PLACEHOLDER not in json.dumps(request.headers)
        assert_gate_dialled_only(hermetic, name, responses_api.HOST_NAME, api.port, "openai", key)
        leaks, _ = key_seen_in_sandbox(project, hermetic, name, key, env)
        assert leaks == []


def test_without_a_key_droid_wants_its_factory_login(
    project: Path, hermetic: Env, resolve: dict[str, str], droid_installed: None
) -> None:
    """With no key on the host Droid runs as installed (no custom model, no Airgap Mode): it starts in the
    sandbox, takes the headless flags, and stops on the missing Factory login, not on a flag; the gate's
    log names what it tried, Factory's API and its telemetry, and nothing there answered."""
    dry = airlock("--engine", "bwrap", "--agent", "droid", "--dry-run", "run", TASK, cwd=project, env=resolve)
    sandbox_env, argv = sandbox_setenv(dry.stdout)
    assert droid_command(argv) == ["droid", *HEADLESS, TASK]
    assert not {"FACTORY_AIRGAP_ENABLED", "ANTHROPIC_API_KEY", "FACTORY_API_KEY"} & set(sandbox_env)

    version = airlock("--engine", "bwrap", "--agent", "droid", "up", "--", "--version", cwd=project, env=resolve)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip().startswith("0.")

    result = airlock("--engine", "bwrap", "--agent", "droid", "run", TASK, cwd=project, env=resolve, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert "Authentication failed. Please log in using /login or set a valid FACTORY_API_KEY" in said, said
    assert "unknown option" not in said.lower()
    (name,) = sandbox_names(project)
    log = gate_log(hermetic, name)
    tried = {(entry["host"], entry["action"]) for entry in log}
    assert ("api.factory.ai", "failed") in tried, log  # its preset: allowed, dialled at loopback, no answer
    assert tried <= {("api.factory.ai", "failed"), ("telemetry.factory.ai", "blocked")}, log
    assert {entry.get("credential") for entry in log} == {None}
    home = data_dir(hermetic, name) / "home" / ".factory" / "settings.json"
    assert not home.exists() or "customModels" not in json.loads(home.read_text())
