"""The agents git-airlock knows: how to start them, headless and not, and what they need.

One table, no per-agent code paths elsewhere: commands look up an :class:`Agent`
and hand it to the engine in its ``SandboxSpec``; engines use its fields. An
engine re-entering a sandbox it made, where no command names the agent, finds
the one the sandbox recorded with :func:`recorded_agent`. Inside a sandbox the sandbox is the
boundary, so each agent's headless form runs without per-tool permission
prompts, and every sandbox gets the agent's own switches that stop it
updating itself (into a read-only /usr) or calling home for telemetry. Each
entry cites where its flags come from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from git_airlock.errors import AirlockError

HomeFiles = Callable[[Mapping[str, str], str], dict[str, dict[str, object]]]
"""(the sandbox's environment, its workspace path) -> JSON to merge into files under the sandbox's HOME."""


@dataclass(frozen=True)
class Agent:
    name: str
    auth_hint: str
    command: str = ""
    """The executable (default: the agent's name)."""
    headless: tuple[str, ...] | None = None
    """Arguments before the task for a non-interactive run that acts without prompts; None: task passed plainly."""
    hosts: tuple[str, ...] = ()
    """Network hosts the agent needs to start and work (its model API and login endpoints; not its updater)."""
    credentials: tuple[str, ...] = ()
    """Environment variable names of the credentials it reads."""
    seed_files: tuple[str, ...] = field(default=())
    """User-level instruction files and folders (relative to HOME) that ``--seed-config`` copies."""
    npm_package: str = ""
    """Where the agent's CLI comes from on npm (``git airlock agents install``)."""
    environment: tuple[tuple[str, str], ...] = ()
    """Variables set in every sandbox: the agent's own switches against updates and telemetry."""
    key_aliases: tuple[tuple[str, str], ...] = ()
    """(variable the agent reads, variable git-airlock sets): where the agent wants a credential elsewhere."""
    base_url_config: tuple[tuple[str, str], ...] = ()
    """(variable, ``-c`` setting): an API base URL the agent takes from its config rather than the environment."""
    config: tuple[tuple[str, str], ...] = ()
    """(``-c`` setting, TOML value) given in every sandbox: the agent's switches against updates and telemetry
    that exist only in its configuration, put on its command line rather than into its config file."""
    home_files: HomeFiles | None = None
    """Answers to the agent's first-start questions, written into the sandbox's HOME before it starts."""

    @property
    def executable(self) -> str:
        return self.command or self.name

    def headless_args(self, task: str) -> tuple[list[str], bool]:
        """Arguments for running ``task`` unattended, and whether the mapping is a guess."""
        if self.headless is None:
            return [task], True
        return [*self.headless, task], False

    def sandbox_environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """What the agent gets on top of ``env`` (the sandbox's): its switches, credentials where it looks."""
        extra = dict(self.environment)
        for wanted, given in self.key_aliases:
            if given in env:
                extra[wanted] = env[given]
        return extra

    def leading_args(self, env: Mapping[str, str]) -> list[str]:
        """Arguments before any other: configuration the agent reads only from its command line or files."""
        args = [arg for setting, value in self.config for arg in ("-c", f"{setting}={value}")]
        for variable, setting in self.base_url_config:
            if variable in env:
                args += ["-c", f'{setting}="{env[variable]}"']
        return args


def _claude_home(env: Mapping[str, str], workspace: str) -> dict[str, dict[str, object]]:
    """Claude Code's first start, answered where the host holds the credential (so there is no login).

    Claude Code 2.1 keeps these in ``~/.claude.json``: onboarding done, the API key in the
    environment approved by its last 20 characters (``customApiKeyResponses``), and the
    workspace trusted (``projects[path].hasTrustDialogAccepted``). Without a host-held
    credential nothing is written: the user logs in inside.
    """
    key = env.get("ANTHROPIC_API_KEY", "")
    if not key and not env.get("CLAUDE_CODE_OAUTH_TOKEN"):
        return {}
    state: dict[str, object] = {
        "hasCompletedOnboarding": True,
        "projects": {workspace: {"hasTrustDialogAccepted": True}},
    }
    if key:
        state["customApiKeyResponses"] = {"approved": [key[-20:]], "rejected": []}
    return {".claude.json": state}


AGENTS: dict[str, Agent] = {
    agent.name: agent
    for agent in (
        Agent(  # https://code.claude.com/docs/en/permission-modes, /env-vars, /network-config
            "claude",
            "log in with /login inside Claude Code, or keep a key on the host: `sbx secret set -g anthropic`",
            headless=("--dangerously-skip-permissions", "-p"),
            hosts=("api.anthropic.com", "claude.ai", "claude.com", "platform.claude.com", "console.anthropic.com"),
            credentials=("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"),
            seed_files=(".claude/CLAUDE.md", ".claude/agents", ".claude/commands", ".claude/skills"),
            npm_package="@anthropic-ai/claude-code",
            environment=(
                ("IS_SANDBOX", "1"),  # Claude Code's own switch for running inside a sandbox
                ("DISABLE_AUTOUPDATER", "1"),  # its updater would `npm install -g` into the read-only /usr
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),  # telemetry, error reports, update checks
                ("CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL", "1"),  # plugin downloads at start
            ),
            home_files=_claude_home,
        ),
        Agent(  # https://developers.openai.com/codex/noninteractive, /config-reference, /environment-variables
            "codex",
            "sign in inside Codex, or keep a key on the host: `sbx secret set -g openai`",
            headless=("exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"),
            hosts=("api.openai.com", "auth.openai.com", "chatgpt.com"),
            credentials=("OPENAI_API_KEY", "CODEX_API_KEY"),
            seed_files=(".codex/AGENTS.md", ".codex/prompts"),
            npm_package="@openai/codex",
            key_aliases=(("CODEX_API_KEY", "OPENAI_API_KEY"),),  # codex exec reads CODEX_API_KEY
            base_url_config=(("OPENAI_BASE_URL", "openai_base_url"),),  # it ignores OPENAI_BASE_URL
            config=(
                ("analytics.enabled", "false"),  # its analytics (ab.chatgpt.com)
                ("features.plugins", "false"),  # the plugin marketplace synced at start (chatgpt.com, github.com)
                ("check_for_update_on_startup", "false"),  # the interactive UI's update check (api.github.com)
            ),
        ),
        Agent(  # https://github.com/anomalyco/opencode (docs/cli.mdx, docs/permissions.mdx)
            "opencode",
            "run `opencode auth login` inside the sandbox, or keep provider keys on the host with "
            "`sbx secret set -g <provider>`",
            headless=("run",),  # its permissions already default to allow
            hosts=("api.anthropic.com", "api.openai.com", "opencode.ai", "models.dev"),
            credentials=("ANTHROPIC_API_KEY", "OPENAI_API_KEY"),
            seed_files=(".config/opencode/AGENTS.md", ".config/opencode/agent", ".config/opencode/command"),
            npm_package="opencode-ai",
            environment=(("OPENCODE_DISABLE_AUTOUPDATE", "1"),),
        ),
        Agent(  # https://github.com/google-gemini/gemini-cli (docs/cli/cli-reference.md, trusted-folders.md)
            "gemini",
            "sign in with Google inside Gemini CLI, or keep a key on the host: `sbx secret set -g google`",
            headless=("--approval-mode", "yolo", "--skip-trust", "-p"),
            hosts=("generativelanguage.googleapis.com", "oauth2.googleapis.com", "accounts.google.com"),
            credentials=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            seed_files=(".gemini/GEMINI.md", ".gemini/commands"),
            npm_package="@google/gemini-cli",
        ),
        Agent(  # `copilot --help`, `copilot help environment` (@github/copilot 1.0)
            "copilot",
            "run /login inside Copilot CLI, or keep a token on the host: `sbx secret set -g github`",
            headless=("--allow-all-tools", "--no-ask-user", "-p"),
            hosts=("api.githubcopilot.com", "github.com", "api.github.com"),
            credentials=("GH_TOKEN", "GITHUB_TOKEN"),
            seed_files=(".copilot/copilot-instructions.md",),
            npm_package="@github/copilot",
            environment=(("COPILOT_AUTO_UPDATE", "false"),),
        ),
        Agent(  # https://cursor.com/docs/cli (installed with its own script, not npm)
            "cursor",
            "run `cursor-agent login` inside the sandbox, or set CURSOR_API_KEY with `sbx secret set`",
            command="cursor-agent",
            headless=("-p", "--force"),
            hosts=("api.cursor.sh", "api2.cursor.sh", "cursor.com"),
            credentials=("CURSOR_API_KEY",),
            seed_files=(".cursor/rules",),
        ),
        Agent(  # https://docs.factory.ai/cli/droid-exec/overview
            "droid",
            "run /login inside Droid, or set FACTORY_API_KEY with `sbx secret set`",
            headless=("exec", "--auto", "high"),
            hosts=("api.factory.ai", "app.factory.ai"),
            credentials=("FACTORY_API_KEY",),
            seed_files=(".factory/AGENTS.md", ".factory/droids", ".factory/commands"),
        ),
        Agent(  # https://kiro.dev/docs/cli/headless/
            "kiro",
            "sign in inside Kiro CLI with `kiro-cli login`",
            command="kiro-cli",
            headless=("chat", "--no-interactive", "--trust-all-tools"),
            hosts=("prod.us-east-1.auth.desktop.kiro.dev", "q.us-east-1.amazonaws.com"),
            seed_files=(".kiro/steering",),
        ),
        Agent("shell", "no login needed: a plain shell in the sandbox", command="bash", headless=("-c",)),
    )
}


def recorded_agent(name: str) -> Agent:
    """The agent a sandbox recorded by name when it was made, for re-entering it (``shell``): the one
    place an engine maps a name to an agent. A record older than that field is the plain shell's."""
    return get_agent(name or "shell")


def get_agent(name: str) -> Agent:
    try:
        return AGENTS[name]
    except KeyError:
        raise AirlockError(
            f"unknown agent {name!r}",
            hint="choose one of: " + ", ".join(AGENTS) + " (--agent NAME, AGENT=..., or git config airlock.agent)",
        ) from None
