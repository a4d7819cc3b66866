"""Every setting git-airlock has: its names (environment, git config), default, meaning, and who may set it.

One table, read by the settings loader (:mod:`git_airlock.config`), ``git airlock config``, shell
completion and the generated reference in README and the man page, so no setting can exist in one
of them and not the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from git_airlock.modes import ENGINE_CHOICES, NETWORK_POLICIES, PRE_PUSH_MODES


@dataclass(frozen=True)
class Key:
    """One setting: its attribute name, environment variable, git config key, default.

    A key with no environment variable is read from git config alone: the settings that guard
    what leaves a sandbox (review, pushes) and what it may reach (presets) are the user's
    word, never a file's, and the pre-push hook reads its one key without loading the rest.
    """

    attr: str
    env: str
    git: str
    default: str
    doc: str
    choices: tuple[str, ...] = ()
    """The values allowed, when the setting is a mode; anything else is refused at load."""


PRESET_KEY = "airlock.preset.<name>"
"""The git config keys of custom presets, one per preset (shown by ``git airlock config`` together)."""

KEYS: tuple[Key, ...] = (
    Key("agent", "AGENT", "airlock.agent", "claude", "agent to run in the sandbox"),
    Key("sandbox_name", "SANDBOX_NAME", "airlock.sandboxName", "", "sandbox name (default: derived from the repo)"),
    Key("repo_dir", "REPO_DIR", "airlock.repoDir", "", "repository to work on (default: the current one)"),
    Key("engine", "AIRLOCK_ENGINE", "airlock.engine", "auto", "sandbox engine: sbx, bwrap or auto", ENGINE_CHOICES),
    Key(
        "egress_resolve",
        "AIRLOCK_EGRESS_RESOLVE",
        "airlock.egressResolve",
        "",
        "host=address pairs the bwrap egress proxy dials instead of asking DNS (comma-separated)",
    ),
    Key(
        "service_urls",
        "AIRLOCK_SERVICE_URLS",
        "airlock.serviceUrls",
        "",
        "service=URL pairs that replace a model API's address behind the egress gate (comma-separated)",
    ),
    Key(
        "pass_env",
        "AIRLOCK_PASS_ENV",
        "airlock.passEnv",
        "",
        "host environment variables handed to the agent (comma-separated; bwrap engine)",
    ),
    Key(
        "tmp_size",
        "AIRLOCK_TMP_SIZE",
        "airlock.tmpSize",
        "2g",
        "size limit of each in-memory scratch file system of a bwrap sandbox (/tmp, /var/tmp, /dev/shm)",
    ),
    Key(
        "global_network_policy",
        "GLOBAL_NETWORK_POLICY",
        "airlock.globalNetworkPolicy",
        "balanced",
        "network policy sbx is initialised with (allow-all, balanced, deny-all)",
        NETWORK_POLICIES,
    ),
    Key(
        "allow",
        "ALLOW",
        "airlock.allow",
        "",
        "hosts `lockdown` allows (comma-separated; default: agents' APIs, GitHub, npm)",
    ),
    Key("review_tool", "REVIEW_TOOL", "airlock.reviewTool", "vscode", "git difftool used by `review`"),
    Key(
        "tmux_session", "TMUX_SESSION", "airlock.tmuxSession", "", "tmux session name (default: git-airlock-<sandbox>)"
    ),
    Key("tmux_attach", "TMUX_ATTACH", "airlock.tmuxAttach", "true", "attach to the tmux session after `up --tmux`"),
    Key("use_tmux", "USE_TMUX", "airlock.useTmux", "false", "start `up` and `run` in a tmux session, as --tmux does"),
    Key(
        "seed_config",
        "SEED_CONFIG",
        "airlock.seedConfig",
        "false",
        "copy the agent's user-level instruction files in, as --seed-config does",
    ),
    Key(
        "seed_paths",
        "SEED_PATHS",
        "airlock.seedPaths",
        "",
        "more files or folders under your HOME to copy into a new sandbox's HOME (comma-separated; "
        "names that look like credentials are left out)",
    ),
    Key(
        "keep_agent_state",
        "AIRLOCK_KEEP_AGENT_STATE",
        "airlock.keepAgentState",
        "false",
        "new bwrap sandboxes share the agent's own config folders (login, preferences, memory), kept for you "
        "across `rm`: what one sandbox writes there the next reads (never from a repository's sandbox.conf)",
    ),
    Key(
        "fetch_submodules",
        "FETCH_SUBMODULES",
        "airlock.fetchSubmodules",
        "true",
        "fetch also brings the sandbox's commits in submodules you have initialised",
    ),
    Key("pr_branch", "PR_BRANCH", "airlock.prBranch", "", "branch `pr` pushes (default: airlock/<sandbox>)"),
    Key(
        "save_max_file_size",
        "AIRLOCK_SAVE_MAX_FILE_SIZE",
        "airlock.saveMaxFileSize",
        "100m",
        "files larger than this are left out (and listed) when `save` or `rm` keeps the agent's uncommitted work",
    ),
    Key(
        "merge_commit",
        "AIRLOCK_MERGE_COMMIT",
        "airlock.mergeCommit",
        "auto",
        "`merge` fast-forwards when it can (auto), or always writes a merge commit carrying the "
        "Assisted-by/Reviewed-by trailers (always), as --no-ff does",
        ("auto", "always"),
    ),
    Key(
        "require_review",
        "",
        "airlock.requireReview",
        "true",
        "`merge` and `pr` refuse commits nobody reviewed unless you confirm; false makes that a warning",
    ),
    Key(
        "pre_push",
        "",
        "airlock.prePush",
        "warn",
        "what the pre-push hook does with unreviewed sandbox commits: warn, block or off",
        PRE_PUSH_MODES,
    ),
    Key(
        "push_notes",
        "",
        "airlock.pushNotes",
        "false",
        "the pre-push hook also pushes the provenance notes (refs/notes/airlock) to the same remote",
    ),
    Key(
        "presets",
        "",
        PRESET_KEY,
        "",
        "custom network presets a balanced sandbox may also reach: `git config airlock.preset.NAME "
        '"host,*.domain"`, one key per preset',
    ),
)
ALIASES = {"SEED_USER_CONFIG": "SEED_CONFIG"}
"""Other names code-airlock users know for a setting."""
BOOLEANS = (
    "tmux_attach", "use_tmux", "seed_config", "keep_agent_state", "fetch_submodules", "require_review", "push_notes",
)  # fmt: skip
REPOSITORY_KEYS = frozenset({"agent", "sandbox_name", "review_tool", "tmux_session", "tmux_attach", "use_tmux"})
"""What a ``sandbox.conf`` in the repository (hence possibly an agent's) may set; see :mod:`git_airlock.config`."""
