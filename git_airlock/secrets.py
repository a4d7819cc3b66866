"""Credentials kept on the host: a file only you can read, or the host environment.

``git airlock secret set SERVICE`` stores a value (read from a hidden prompt
or standard input, never from the command line) in ``secrets.json`` under
the user config directory, created with mode 0600 in a 0700 directory.
When nothing is stored, the service's usual variable in the host environment
(``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``) is used at sandbox start. Values
are never printed, logged or put on a command line.
"""

from __future__ import annotations

import json
import os

from git_airlock.errors import AirlockError


def store_path() -> str:
    from platformdirs import user_config_dir

    return os.path.join(user_config_dir("git-airlock"), "secrets.json")


def _load() -> dict[str, str]:
    try:
        with open(store_path(), encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise AirlockError(f"cannot read {store_path()}: {exc}", hint="fix or remove the file") from exc
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save(data: dict[str, str]) -> None:
    path = store_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def set_secret(service: str, value: str) -> None:
    if not value.strip():
        raise AirlockError("empty credential: nothing stored", hint="paste the key when asked, or pipe it in")
    data = _load()
    data[service] = value.strip()
    _save(data)


def remove_secret(service: str) -> bool:
    data = _load()
    if service not in data:
        return False
    del data[service]
    _save(data)
    return True


def stored_services() -> list[str]:
    return sorted(_load())


def lookup(service: str, env_name: str) -> str | None:
    """The credential for ``service``: stored first, else the host environment."""
    return _load().get(service) or os.environ.get(env_name) or None
