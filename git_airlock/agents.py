"""The agents git-airlock knows: how to start them headless, what they need.

One table, no per-agent code paths elsewhere: commands look up an
:class:`Agent` and use its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from git_airlock.errors import AirlockError


@dataclass(frozen=True)
class Agent:
    name: str
    auth_hint: str
    headless: tuple[str, ...] | None = None
    """Arguments before the task for a non-interactive run; None: task passed plainly."""
    hosts: tuple[str, ...] = ()
    """Network hosts the agent needs (its model API and login endpoints)."""
    credentials: tuple[str, ...] = ()
    """Environment variable names of the credentials it reads."""
    seed_files: tuple[str, ...] = field(default=())
    """User-level instruction files and folders (relative to HOME) that ``--seed-config`` copies."""
    npm_package: str = ""
    """Where the agent's CLI comes from, for install hints."""

    def headless_args(self, task: str) -> tuple[list[str], bool]:
        """Arguments for running ``task`` unattended, and whether the mapping is a guess."""
        if self.headless is None:
            return [task], True
        return [*self.headless, task], False


AGENTS: dict[str, Agent] = {
    agent.name: agent
    for agent in (
        Agent(
            "claude",
            "log in with /login inside Claude Code, or keep a key on the host: `sbx secret set -g anthropic`",
            headless=("-p",),
            hosts=("api.anthropic.com", "claude.ai", "console.anthropic.com", "statsig.anthropic.com"),
            credentials=("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"),
            seed_files=(".claude/CLAUDE.md", ".claude/agents", ".claude/commands", ".claude/skills"),
            npm_package="@anthropic-ai/claude-code",
        ),
        Agent(
            "codex",
            "sign in inside Codex, or keep a key on the host: `sbx secret set -g openai`",
            headless=("exec", "--dangerously-bypass-approvals-and-sandbox"),
            hosts=("api.openai.com", "auth.openai.com", "chatgpt.com"),
            credentials=("OPENAI_API_KEY",),
            seed_files=(".codex/AGENTS.md", ".codex/prompts"),
            npm_package="@openai/codex",
        ),
        Agent(
            "opencode",
            "run `opencode auth login` inside the sandbox, or keep provider keys on the host with "
            "`sbx secret set -g <provider>`",
            headless=("run",),
            hosts=("api.anthropic.com", "api.openai.com", "opencode.ai", "models.dev"),
            credentials=("ANTHROPIC_API_KEY", "OPENAI_API_KEY"),
            seed_files=(".config/opencode/AGENTS.md", ".config/opencode/agent", ".config/opencode/command"),
            npm_package="opencode-ai",
        ),
        Agent(
            "gemini",
            "sign in with Google inside Gemini CLI, or keep a key on the host: `sbx secret set -g google`",
            headless=("-p",),
            hosts=("generativelanguage.googleapis.com", "oauth2.googleapis.com", "accounts.google.com"),
            credentials=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            seed_files=(".gemini/GEMINI.md", ".gemini/commands"),
            npm_package="@google/gemini-cli",
        ),
        Agent(
            "copilot",
            "run /login inside Copilot CLI, or keep a token on the host: `sbx secret set -g github`",
            hosts=("api.githubcopilot.com", "github.com", "api.github.com"),
            credentials=("GH_TOKEN", "GITHUB_TOKEN"),
            seed_files=(".copilot/copilot-instructions.md",),
            npm_package="@github/copilot",
        ),
        Agent(
            "cursor",
            "run `cursor-agent login` inside the sandbox, or set CURSOR_API_KEY with `sbx secret set`",
            hosts=("api.cursor.sh", "api2.cursor.sh", "cursor.com"),
            credentials=("CURSOR_API_KEY",),
            seed_files=(".cursor/rules",),
        ),
        Agent(
            "droid",
            "run /login inside Droid, or set FACTORY_API_KEY with `sbx secret set`",
            hosts=("api.factory.ai", "app.factory.ai"),
            credentials=("FACTORY_API_KEY",),
            seed_files=(".factory/AGENTS.md", ".factory/droids", ".factory/commands"),
        ),
        Agent(
            "kiro",
            "sign in inside Kiro CLI with `kiro-cli login`",
            hosts=("prod.us-east-1.auth.desktop.kiro.dev", "q.us-east-1.amazonaws.com"),
            seed_files=(".kiro/steering",),
        ),
        Agent("shell", "no login needed: a plain shell in the sandbox", headless=("-c",)),
    )
}


def get_agent(name: str) -> Agent:
    try:
        return AGENTS[name]
    except KeyError:
        raise AirlockError(
            f"unknown agent {name!r}",
            hint="choose one of: " + ", ".join(AGENTS) + " (--agent NAME, AGENT=..., or git config airlock.agent)",
        ) from None
