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

import json
import re
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
    service_environment: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    """(credential variable, variables): for an agent that takes a model API's endpoint and key in variables
    of its own, and runs another way without them. Where the sandbox has the credential variable (the host
    holds that service's key: it is the placeholder), the variables of the first such entry are set;
    ``{NAME}`` in a value is the sandbox's variable ``NAME`` (the gate's URL, the placeholder)."""
    base_url_config: tuple[tuple[str, str], ...] = ()
    """(variable, ``-c`` setting): an API base URL the agent takes from its config rather than the environment."""
    config: tuple[tuple[str, str], ...] = ()
    """(``-c`` setting, TOML value) given in every sandbox: the agent's switches against updates and telemetry
    that exist only in its configuration, put on its command line rather than into its config file."""
    home_files: HomeFiles | None = None
    """Answers to the agent's first-start questions, written into the sandbox's HOME before it starts."""
    state: tuple[str, ...] = ()
    """The agent's own folders under HOME (its login, preferences, memory): what ``airlock.keepAgentState``
    keeps for the user and gives to every new sandbox."""
    state_environment: tuple[tuple[str, str], ...] = ()
    """Variables that keep all of that state inside those folders, where state is kept (``{HOME}`` in a value
    is the sandbox's HOME)."""

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
        for credential, variables in self.service_environment:
            if credential in env:
                extra.update({name: value.format_map(env) for name, value in variables})
                break
        return extra

    def kept_state_environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """What the agent gets on top where its state is kept for the user (``state``)."""
        return {name: value.format_map(env) for name, value in self.state_environment}

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
    return {f"{_claude_config_dir(env)}.claude.json": state}


def _claude_config_dir(env: Mapping[str, str]) -> str:
    """Where Claude Code keeps ``.claude.json``, relative to HOME (with a slash): HOME itself, or
    ``CLAUDE_CONFIG_DIR`` where that is set (state kept for the user: all of it in ``~/.claude``)."""
    folder, home = env.get("CLAUDE_CONFIG_DIR"), env.get("HOME", "")
    if not folder or not home or not folder.startswith(home.rstrip("/") + "/"):
        return ""
    return folder[len(home.rstrip("/")) + 1 :].rstrip("/") + "/"


def _gemini_home(env: Mapping[str, str], workspace: str) -> dict[str, dict[str, object]]:
    """Gemini CLI's settings for a sandbox, and its first start answered where the host holds the key.

    Its switches against calling home exist only in ``~/.gemini/settings.json`` (docs/reference/
    configuration.md): ``privacy.usageStatisticsEnabled`` (usage statistics to play.googleapis.com),
    ``general.enableAutoUpdateNotification`` (the update check against the npm registry) and
    ``general.enableAutoUpdate`` (its ``npm install -g`` into the read-only /usr), ``ide.enabled`` (the
    IDE companion); they are written at every start. The workspace is trusted in
    ``~/.gemini/trustedFolders.json`` (docs/cli/trusted-folders.md), as ``--skip-trust`` does headless. With
    a key held on the host the auth type is the API key's (``security.auth.selectedType``): with
    ``GOOGLE_GEMINI_BASE_URL`` set and none selected it would pick its "gateway" type and refuse to start
    (``Invalid auth method selected``), and an interactive start would ask how to log in.
    """
    settings: dict[str, object] = {
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "ide": {"enabled": False, "hasSeenNudge": True},
    }
    if env.get("GEMINI_API_KEY"):
        settings["security"] = {"auth": {"selectedType": "gemini-api-key"}}
    return {".gemini/settings.json": settings, ".gemini/trustedFolders.json": {workspace: "TRUST_FOLDER"}}


DROID_MODELS = (
    ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "anthropic", "claude-sonnet-4-6", "Claude Sonnet 4.6"),
    ("OPENAI_API_KEY", "OPENAI_BASE_URL", "openai", "gpt-5.4", "GPT-5.4"),
)
"""(credential variable, base URL variable, Droid's provider, model, name): the custom model Droid gets where
the host holds that key. The model IDs are in Droid's own catalog (`droid exec --help`), which names them as
the providers' APIs do; ``anthropic`` speaks the Messages API, ``openai`` the Responses API."""


def _droid_home(env: Mapping[str, str], workspace: str) -> dict[str, dict[str, object]]:
    """Droid's custom model on the gate's credential endpoint, where the host holds a model key.

    A custom model lives in ``~/.factory/settings.json`` under ``customModels`` (docs.factory.ai/cli/byok):
    its ``baseUrl`` is the gate's URL, and its ``apiKey`` names the variable that holds the placeholder
    (``${ANTHROPIC_API_KEY}``, expanded by Droid), so no key is written. The first custom model is what
    ``droid exec`` runs on; others the user adds stay, and ``"model": "custom:ID"`` picks one. Without a
    host-held key nothing is written: the user logs in to Factory inside.
    """
    for credential, base_url, provider, model, name in DROID_MODELS:
        if credential in env and base_url in env:
            entry = {
                "model": model,
                "displayName": f"{name} (key on the host)",
                "baseUrl": env[base_url],
                "apiKey": "${" + credential + "}",
                "provider": provider,
            }
            return {".factory/settings.json": {"customModels": [entry]}}
    return {}


def _opencode_config(settings: Mapping[str, object]) -> str:
    """``settings`` as the JSON of ``OPENCODE_CONFIG_CONTENT`` in ``service_environment``: JSON's braces doubled,
    so that only a ``{NAME}`` inside a value (the gate's URL) stands for the sandbox's variable."""
    doubled = json.dumps(settings, separators=(",", ":")).replace("{", "{{").replace("}", "}}")
    return re.sub(r"\{\{([A-Z_][A-Z0-9_]*)\}\}", r"{\1}", doubled)


def _opencode_home(env: Mapping[str, str], workspace: str) -> dict[str, dict[str, object]]:
    """OpenCode's config folder with its plugin SDK counted as installed, so that no start calls the npm registry.

    At every start OpenCode 1.18 installs ``@opencode-ai/plugin`` from registry.npmjs.org into each config folder
    it reads (``~/.config/opencode``, a project's ``.opencode``), in the background; no switch turns that off.
    Its ``Npm.install`` (read in its bundle) skips a folder whose ``node_modules`` exists and whose
    ``package-lock.json`` lists every dependency it wants, so the sandbox's config folder gets both. The SDK
    only serves plugins the user writes in TypeScript there (their ``import``); a plugin the user adds to
    that folder's ``package.json`` is installed as before (through the gate, where the network allows it).
    """
    folder = ".config/opencode"
    return {
        f"{folder}/package-lock.json": {"packages": {"": {"dependencies": {"@opencode-ai/plugin": "*"}}}},
        f"{folder}/node_modules/.package-lock.json": {},
    }


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
            state=(".claude",),
            state_environment=(("CLAUDE_CONFIG_DIR", "{HOME}/.claude"),),  # .claude.json goes there too
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
            state=(".codex",),
            npm_package="@openai/codex",
            key_aliases=(("CODEX_API_KEY", "OPENAI_API_KEY"),),  # codex exec reads CODEX_API_KEY
            base_url_config=(("OPENAI_BASE_URL", "openai_base_url"),),  # it ignores OPENAI_BASE_URL
            config=(
                ("analytics.enabled", "false"),  # its analytics (ab.chatgpt.com)
                ("features.plugins", "false"),  # the plugin marketplace synced at start (chatgpt.com, github.com)
                ("check_for_update_on_startup", "false"),  # the interactive UI's update check (api.github.com)
            ),
        ),
        Agent(  # https://github.com/anomalyco/opencode (docs/cli.mdx, docs/permissions.mdx, docs/config.mdx,
            # docs/models.mdx), its flag module (the OPENCODE_* variables, read in opencode-ai 1.18's bundle)
            "opencode",
            "run `opencode auth login` inside the sandbox (sbx: or keep provider keys on the host with "
            "`sbx secret set -g <provider>`); bwrap: or keep an Anthropic or OpenAI key on the host: "
            "`git airlock secret set anthropic`",
            headless=("run",),  # its permissions already default to allow
            # the model APIs of a key on the host; opencode.ai serves OpenCode Zen (its own models and login)
            hosts=("api.anthropic.com", "api.openai.com", "opencode.ai"),
            credentials=("ANTHROPIC_API_KEY", "OPENAI_API_KEY"),
            seed_files=(".config/opencode/AGENTS.md", ".config/opencode/agent", ".config/opencode/command"),
            state=(".config/opencode", ".local/share/opencode"),  # its config; its logins, sessions, logs
            npm_package="opencode-ai",
            environment=(
                ("OPENCODE_DISABLE_AUTOUPDATE", "1"),  # update check (registry.npmjs.org, api.github.com), upgrade
                ("OPENCODE_DISABLE_MODELS_FETCH", "1"),  # the catalog from models.opencode.ai: its bundled one
                ("OPENCODE_DISABLE_LSP_DOWNLOAD", "1"),  # language servers fetched from GitHub, npm, go, gem
                ("OPENCODE_DISABLE_SHARE", "1"),  # sessions shared to opencode.ai
            ),
            # Its AI SDK providers read ANTHROPIC_BASE_URL and OPENAI_BASE_URL, but Anthropic's wants the
            # /v1 in it (the gate's endpoint has none, as Claude Code wants it): the config inline
            # (OPENCODE_CONFIG_CONTENT, docs/config.mdx) puts it there. Naming the host key's provider
            # there makes it the default: with no model chosen (`--model`, config `model`, the last one
            # used), OpenCode takes the best model of the first provider its config names (defaultModel in
            # its bundle), so the choice does not hang on the order it lists its providers in (its free Zen
            # models on opencode.ai among them); with both keys on the host, Anthropic's.
            service_environment=(
                (
                    "ANTHROPIC_API_KEY",
                    (
                        (
                            "OPENCODE_CONFIG_CONTENT",
                            _opencode_config(
                                {"provider": {"anthropic": {"options": {"baseURL": "{ANTHROPIC_BASE_URL}/v1"}}}}
                            ),
                        ),
                    ),
                ),
                ("OPENAI_API_KEY", (("OPENCODE_CONFIG_CONTENT", _opencode_config({"provider": {"openai": {}}})),)),
            ),
            home_files=_opencode_home,
        ),
        Agent(  # https://github.com/google-gemini/gemini-cli (docs/cli/cli-reference.md, trusted-folders.md,
            # docs/reference/configuration.md), `gemini --help` (@google/gemini-cli 0.61)
            "gemini",
            "sign in with Google inside Gemini CLI, or keep a key on the host: `sbx secret set -g google`",
            headless=("--approval-mode", "yolo", "--skip-trust", "-p"),
            hosts=(
                "generativelanguage.googleapis.com",  # the Gemini API, with a key
                "cloudcode-pa.googleapis.com",  # the model API of a Google login (code_assist/server.ts)
                "oauth2.googleapis.com",  # a Google login's tokens, and its user info (code_assist/oauth2.ts)
                "www.googleapis.com",
                "accounts.google.com",
            ),
            credentials=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            seed_files=(".gemini/GEMINI.md", ".gemini/commands"),
            state=(".gemini",),
            npm_package="@google/gemini-cli",
            environment=(("GEMINI_TELEMETRY_ENABLED", "false"),),  # overrides any settings file's telemetry
            home_files=_gemini_home,
        ),
        Agent(  # `copilot --help`, `copilot help environment`, `copilot help providers` (@github/copilot 1.0.102)
            "copilot",
            "run /login inside Copilot CLI (sbx: or keep a token on the host, `sbx secret set -g github`); "
            "bwrap: or keep an Anthropic or OpenAI key on the host for its own-key mode, "
            "`git airlock secret set anthropic` and the model in COPILOT_MODEL (airlock.passEnv)",
            # --allow-all: tools, paths and URLs without asking (the sandbox is the boundary; -p cannot ask);
            # --disable-client-telemetry: its telemetry to api.github.com (no variable but COPILOT_OFFLINE stops it)
            headless=("--allow-all", "--no-ask-user", "--disable-client-telemetry", "-p"),
            # docs.github.com/copilot/reference/copilot-allowlist-reference: login, api.github.com/copilot_internal,
            # the model API at *.githubcopilot.com (individual., business., enterprise.)
            hosts=("api.githubcopilot.com", "*.githubcopilot.com", "github.com", "api.github.com"),
            credentials=("COPILOT_GITHUB_TOKEN", "GH_TOKEN", "GITHUB_TOKEN", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"),
            seed_files=(".copilot/copilot-instructions.md",),
            state=(".copilot",),
            npm_package="@github/copilot",
            environment=(("COPILOT_AUTO_UPDATE", "false"),),  # its downloads of newer versions
            # its own-key mode (`copilot help providers`): COPILOT_PROVIDER_BASE_URL set, it sends the model's
            # requests there rather than to GitHub, with no GitHub login; COPILOT_OFFLINE then leaves out
            # every other call (telemetry, GitHub's MCP server, web tools, updates). Its GitHub login cannot go
            # through the gate: the API's host comes from GH_HOST, a host name it reaches over HTTPS itself.
            service_environment=(
                (
                    "ANTHROPIC_API_KEY",
                    (
                        ("COPILOT_PROVIDER_TYPE", "anthropic"),  # the key in x-api-key, /v1/messages
                        ("COPILOT_PROVIDER_BASE_URL", "{ANTHROPIC_BASE_URL}"),
                        ("COPILOT_PROVIDER_API_KEY", "{ANTHROPIC_API_KEY}"),
                        ("COPILOT_OFFLINE", "true"),
                    ),
                ),
                (
                    "OPENAI_API_KEY",
                    (
                        ("COPILOT_PROVIDER_TYPE", "openai"),  # a bearer key, /v1/chat/completions
                        ("COPILOT_PROVIDER_BASE_URL", "{OPENAI_BASE_URL}"),
                        ("COPILOT_PROVIDER_API_KEY", "{OPENAI_API_KEY}"),
                        ("COPILOT_OFFLINE", "true"),
                    ),
                ),
            ),
        ),
        Agent(  # https://cursor.com/docs/cli (installed with its own script, not npm)
            "cursor",
            "run `cursor-agent login` inside the sandbox, or set CURSOR_API_KEY with `sbx secret set`",
            command="cursor-agent",
            headless=("-p", "--force"),
            hosts=("api.cursor.sh", "api2.cursor.sh", "cursor.com"),
            credentials=("CURSOR_API_KEY",),
            seed_files=(".cursor/rules",),
            state=(".cursor",),
        ),
        Agent(  # https://docs.factory.ai/cli/droid-exec/overview, `droid exec --help` (@factory/cli 0.225)
            "droid",
            "run /login inside Droid (or set FACTORY_API_KEY with `sbx secret set`); bwrap: or keep an Anthropic "
            "or OpenAI key on the host for its own-key mode: `git airlock secret set anthropic`",
            headless=("exec", "--auto", "high"),  # high: edits, commands, git commit, without asking
            # its API and login; its sign-in tokens refresh at api.workos.com/user_management
            hosts=("api.factory.ai", "app.factory.ai", "api.workos.com"),
            credentials=("FACTORY_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"),
            seed_files=(".factory/AGENTS.md", ".factory/droids", ".factory/commands"),
            state=(".factory",),
            npm_package="@factory/cli",
            environment=(("FACTORY_DROID_AUTO_UPDATE_ENABLED", "false"),),  # its updater (read in its bundle)
            # With a model key held on the host, Droid runs on that key (_droid_home) in its Airgap Mode
            # (docs.factory.ai/enterprise/airgapped-deployment): no sign-in, the custom models only, and none of
            # its calls to Factory (feature flags, billing limits, sessions, telemetry.factory.ai, update
            # checks), which it otherwise makes even for a custom model. The public build turns the mode on
            # from FACTORY_AIRGAP_ENABLED (its bundle: `airgapEnabled` from the build, or that variable).
            service_environment=(
                ("ANTHROPIC_API_KEY", (("FACTORY_AIRGAP_ENABLED", "true"),)),
                ("OPENAI_API_KEY", (("FACTORY_AIRGAP_ENABLED", "true"),)),
            ),
            home_files=_droid_home,
        ),
        Agent(  # https://kiro.dev/docs/cli/headless/
            "kiro",
            "sign in inside Kiro CLI with `kiro-cli login`",
            command="kiro-cli",
            headless=("chat", "--no-interactive", "--trust-all-tools"),
            hosts=("prod.us-east-1.auth.desktop.kiro.dev", "q.us-east-1.amazonaws.com"),
            seed_files=(".kiro/steering",),
            state=(".kiro",),
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
