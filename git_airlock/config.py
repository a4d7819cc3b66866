"""Settings and where each one came from.

Precedence, highest first: command-line flags, environment variables (the
names code-airlock users know), ``sandbox.conf`` in the repository root,
``sandbox.conf`` in the user config directory (both ``KEY=VALUE`` lines,
parsed and never sourced), ``git config airlock.*`` (repository, then
global), then built-in defaults. ``git airlock config`` prints every value
with its source, so nobody has to guess.

A file in the repository can come from a sandbox: whatever an agent commits
lands there once merged. So the repository's ``sandbox.conf`` may carry only
the settings in :data:`~git_airlock.settingkeys.REPOSITORY_KEYS`, which choose conveniences (the
agent, names, the review tool); the others loosen isolation, move credentials
or choose where and how a sandbox runs, and come only from places an agent
cannot write: flags, the environment, the user's own ``sandbox.conf``, git
config. A repository file that sets one is an error, not a silent override.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from git_airlock.errors import AirlockError
from git_airlock.modes import EngineChoice, NetworkPolicy, PrePushMode
from git_airlock.process import probe
from git_airlock.settingkeys import ALIASES, BOOLEANS, KEYS, PRESET_KEY, REPOSITORY_KEYS

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
KEYS_BY_ENV = {key.env: key for key in KEYS if key.env}
SANDBOX_CONF = "sandbox.conf"


@dataclass(frozen=True)
class Settings:
    """Effective values plus, for each, the source it came from."""

    values: Mapping[str, str]
    sources: Mapping[str, str] = field(default_factory=dict)
    preset_values: Mapping[str, str] = field(default_factory=dict)
    """Each custom preset's git config value by name, as written (checked when used)."""

    def __getattr__(self, attr: str) -> str:
        try:
            return self.values[attr]
        except KeyError:
            raise AttributeError(attr) from None

    @property
    def resolve_pairs(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        for item in self.values["egress_resolve"].split(","):
            host, sep, address = item.strip().partition("=")
            if item.strip() and (not sep or not host or not address):
                raise AirlockError(f"bad AIRLOCK_EGRESS_RESOLVE entry {item.strip()!r}", hint="use host=address")
            if sep:
                pairs.append((host.strip().lower(), address.strip()))
        return tuple(pairs)

    @property
    def service_url_pairs(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        for item in self.values["service_urls"].split(","):
            name, sep, url = item.strip().partition("=")
            if item.strip() and (not sep or not url.startswith(("http://", "https://"))):
                raise AirlockError(f"bad AIRLOCK_SERVICE_URLS entry {item.strip()!r}", hint="use service=https://host")
            if sep:
                pairs.append((name.strip(), url.strip()))
        return tuple(pairs)

    @property
    def pass_env_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.values["pass_env"].split(",") if name.strip())

    @property
    def tmp_size_bytes(self) -> int:
        """``AIRLOCK_TMP_SIZE`` in bytes."""
        return self._size("tmp_size", 1024**2, "1m", "512m or 4g")

    @property
    def save_max_file_size_bytes(self) -> int:
        """``AIRLOCK_SAVE_MAX_FILE_SIZE`` in bytes."""
        return self._size("save_max_file_size", 1, "1", "500k or 1g")

    def _size(self, attr: str, least: int, least_text: str, examples: str) -> int:
        """A size setting in bytes: a number with an optional k, m or g (powers of 1024)."""
        text = self.values[attr].strip().lower()
        scale = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1:], 1)
        digits = text[:-1] if scale > 1 else text
        if not digits.isdigit() or int(digits) * scale < least:
            env = next(key.env for key in KEYS if key.attr == attr)
            raise AirlockError(
                f"bad {env} {self.values[attr]!r}",
                hint=f"give a size of at least {least_text}, e.g. {examples}",
            )
        return int(digits) * scale

    def flag(self, attr: str) -> bool:
        return self.values[attr].strip().lower() in TRUE

    @property
    def engine_choice(self) -> EngineChoice:
        return cast(EngineChoice, self.values["engine"])

    @property
    def network_policy(self) -> NetworkPolicy:
        return cast(NetworkPolicy, self.values["global_network_policy"])

    @property
    def pre_push(self) -> PrePushMode:
        return cast(PrePushMode, self.values["pre_push"])

    @property
    def presets(self) -> dict[str, tuple[str, ...]]:
        """Custom presets (``git config airlock.preset.NAME "host,*.domain"``), each rule validated."""
        from git_airlock.policy import validate_rule

        return {
            name: tuple(validate_rule(part) for part in value.split(",") if part.strip())
            for name, value in self.preset_values.items()
        }

    @property
    def seed_path_list(self) -> tuple[str, ...]:
        return tuple(path.strip() for path in self.values["seed_paths"].split(",") if path.strip())


def parse_sandbox_conf(text: str, path: str = SANDBOX_CONF) -> dict[str, str]:
    """``{attr: value}`` from a ``sandbox.conf``, read as bash reads assignments (see
    :mod:`git_airlock.shellwords`). Unknown keys and keys set twice are refused, so a typo does not
    silently leave a sandbox with a setting the user thought they changed."""
    from git_airlock.shellwords import assignments

    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, key, value in assignments(text, path):
        where = f"{path}:{number}"
        key = ALIASES.get(key, key)
        if key not in KEYS_BY_ENV:
            known = ", ".join(sorted(KEYS_BY_ENV))
            raise AirlockError(f"{where}: unknown setting {key!r}", hint=f"known settings: {known}")
        if key in lines:
            raise AirlockError(
                f"{where}: {key} is set twice (first on line {lines[key]})", hint="keep one of the two lines"
            )
        lines[key] = number
        values[KEYS_BY_ENV[key].attr] = value
    return values


def user_sandbox_conf() -> str:
    """The user's own ``sandbox.conf``, beside git-airlock's other configuration (no agent writes there)."""
    from platformdirs import user_config_dir

    return os.path.join(user_config_dir("git-airlock"), SANDBOX_CONF)


def _read_conf(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise AirlockError(f"cannot read {path}: {exc}") from exc
    return parse_sandbox_conf(text, path)


def _not_from_the_repository(path: str, attr: str) -> AirlockError:
    key = next(key for key in KEYS if key.attr == attr)
    return AirlockError(
        f"{path} sets {key.env}, which a file in the repository may not set: "
        "an agent's commit could have put it there, and it changes how sandboxes are isolated",
        hint=f"remove it from {SANDBOX_CONF}; set it in {user_sandbox_conf()}, "
        f"with `git config {key.git} VALUE`, or as {key.env} in the environment",
    )


def read_git_config(repo_dir: str | None) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """``airlock.*`` from git config, one git call: ``{attr: (value, scope)}`` and the custom
    presets (``airlock.preset.NAME``) as ``{NAME: value}``."""
    argv = ["git"]
    if repo_dir:
        argv += ["-C", repo_dir]
    argv += ["config", "--show-scope", "-z", "--get-regexp", r"^airlock\."]
    proc = probe(argv)
    if proc is None:
        return {}, {}
    by_git_key = {key.git.lower(): key for key in KEYS}
    found: dict[str, tuple[str, str]] = {}
    presets: dict[str, str] = {}
    # with --show-scope -z each entry is "<scope>\0<key>\n<value>\0"
    fields = proc.stdout.split("\0")
    for scope, entry in zip(fields[0::2], fields[1::2], strict=False):  # trailing "" after the last NUL
        name, _, value = entry.partition("\n")
        if name.lower().startswith(_PRESET_PREFIX):
            presets[name[len(_PRESET_PREFIX) :]] = value
            found["presets"] = ("", scope)
            continue
        key = by_git_key.get(name.lower())
        if key is not None:
            found[key.attr] = (value, scope)  # later (more local) scopes win
    return found, presets


_PRESET_PREFIX = PRESET_KEY.removesuffix("<name>")
_MODE_NAMES = {"engine": "engine", "global_network_policy": "network policy", "pre_push": "airlock.prePush value"}
"""How errors name a mode setting whose value is unknown (others by their git config key)."""


def load_settings(
    flags: Mapping[str, str | None],
    environ: Mapping[str, str],
    repo_root: str | None,
    git_dir_hint: str | None = None,
) -> Settings:
    """Layer the sources; ``flags`` maps attr -> value or None when not given."""
    values = {key.attr: key.default for key in KEYS}
    sources = {key.attr: "default" for key in KEYS}

    from_git, presets = read_git_config(repo_root or git_dir_hint)
    for attr, (value, scope) in from_git.items():
        values[attr], sources[attr] = value, f"git config ({scope})"
    values["presets"] = "; ".join(f"{name}={hosts}" for name, hosts in sorted(presets.items()))
    for attr, value in _read_conf(user_sandbox_conf()).items():
        values[attr], sources[attr] = value, f"{SANDBOX_CONF} (user)"
    if repo_root:
        conf_path = os.path.join(repo_root, SANDBOX_CONF)
        for attr, value in _read_conf(conf_path).items():
            if attr not in REPOSITORY_KEYS:
                raise _not_from_the_repository(conf_path, attr)
            values[attr], sources[attr] = value, SANDBOX_CONF
    for key in KEYS:
        if not key.env:
            continue  # git config only (see Key)
        for name in (key.env, *(alias for alias, target in ALIASES.items() if target == key.env)):
            if environ.get(name):
                values[key.attr], sources[key.attr] = environ[name], f"environment ({name})"
    for attr, given in flags.items():
        if given is not None:
            values[attr], sources[attr] = given, "command line"

    for attr in BOOLEANS:
        if values[attr].strip().lower() not in TRUE + FALSE:
            key = next(key for key in KEYS if key.attr == attr)
            raise AirlockError(
                f"{key.env} is {values[attr]!r} (from {sources[attr]}), which is neither true nor false",
                hint="use true or false (also 1/0, yes/no, on/off)",
            )
    for key in KEYS:
        if key.choices and values[key.attr] not in key.choices:
            what = _MODE_NAMES.get(key.attr, key.git)
            raise AirlockError(
                f"unknown {what} {values[key.attr]!r} (from {sources[key.attr]})",
                hint=f"use one of: {', '.join(key.choices)}",
            )
    return Settings(values, sources, presets)
