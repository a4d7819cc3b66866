"""Credentials kept on the host: the OS keyring, a file only you can read, or the host environment.

``git airlock secret set SERVICE`` reads a value from a hidden prompt or
standard input, never from the command line, and keeps it in the OS keyring
(macOS Keychain, Windows Credential Locker, the Secret Service of GNOME or
KDE, via the ``keyring`` library) where one answers; elsewhere (a server, a
container, no desktop session) in ``secrets.json`` under the user config
directory, created with mode 0600 in a 0700 directory. ``secrets.json`` also
records which services live in the keyring, so listing them never touches the
keyring (which may ask to be unlocked). When nothing is stored, the service's
usual variable in the host environment (``ANTHROPIC_API_KEY``,
``OPENAI_API_KEY``) is used at sandbox start. Values are never printed,
logged or put on a command line.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Literal, TypedDict

from git_airlock.errors import AirlockError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend


class InKeyring(TypedDict):
    store: Literal["keyring"]


KEYRING_SERVICE = "git-airlock"
"""The keyring entry's service name; the username is the credential's service (``anthropic``)."""
IN_KEYRING: InKeyring = {"store": "keyring"}
"""What ``secrets.json`` holds for a credential kept in the keyring (a string is the value itself)."""


def store_path() -> str:
    from platformdirs import user_config_dir

    return os.path.join(user_config_dir("git-airlock"), "secrets.json")


def _load() -> dict[str, str | InKeyring]:
    try:
        with open(store_path(), encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise AirlockError(f"cannot read {store_path()}: {exc}", hint="fix or remove the file") from exc
    if not isinstance(data, dict):
        return {}
    return {str(k): v if v == IN_KEYRING else str(v) for k, v in data.items()}


def _save(data: dict[str, str | InKeyring]) -> None:
    from git_airlock.jsonfile import write_json

    path = store_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_json(path, data)  # 0600


def os_keyring() -> KeyringBackend | None:
    """The OS keyring's backend, or None where none answers (``keyring`` then offers only its fail backend)."""
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or backend.priority <= 0:
            return None
    except Exception:  # no keyring library, or a backend that fails while being chosen
        return None
    return backend


def require_keyring() -> KeyringBackend:
    """The OS keyring's backend, or a clear error where none answers."""
    backend = os_keyring()
    if backend is None:
        raise AirlockError(
            "no OS keyring answers here (no desktop session or Secret Service)",
            hint="use `--store file`, or start the keyring (gnome-keyring, KWallet) first",
        )
    return backend


def _keyring_error(action: str, exc: Exception) -> AirlockError:
    return AirlockError(
        f"the OS keyring refused to {action}: {exc}",
        hint="unlock the keyring and try again, or use `git airlock secret set --store file SERVICE`",
    )


def set_secret(service: str, value: str, store: str = "auto") -> str:
    """Keep ``value`` for ``service``; returns where (``keyring`` or ``file``). ``store``: auto, keyring, file."""
    value = value.strip()
    if not value:
        raise AirlockError("empty credential: nothing stored", hint="paste the key when asked, or pipe it in")
    backend = require_keyring() if store == "keyring" else None if store == "file" else os_keyring()
    data = _load()
    previous = data.get(service)
    if backend is not None:
        try:
            backend.set_password(KEYRING_SERVICE, service, value)
        except Exception as exc:  # keyring backends raise their own types
            raise _keyring_error("store the credential", exc) from exc
        data[service] = IN_KEYRING
    else:
        if previous == IN_KEYRING:
            _forget_in_keyring(service)
        data[service] = value
    _save(data)
    return "keyring" if backend is not None else "file"


def _forget_in_keyring(service: str) -> None:
    backend = os_keyring()
    if backend is None:
        return
    try:
        backend.delete_password(KEYRING_SERVICE, service)
    except Exception as exc:
        from keyring.errors import PasswordDeleteError

        if not isinstance(exc, PasswordDeleteError):  # already gone is fine
            raise _keyring_error("remove the credential", exc) from exc


def remove_secret(service: str) -> bool:
    data = _load()
    if service not in data:
        return False
    if data[service] == IN_KEYRING:
        _forget_in_keyring(service)
    del data[service]
    _save(data)
    return True


def stored_services() -> dict[str, str]:
    """Service -> where its credential is kept (``keyring`` or ``file``), without reading any value."""
    return {name: "keyring" if entry == IN_KEYRING else "file" for name, entry in sorted(_load().items())}


def available(service: str, env_name: str) -> bool:
    """Whether the host holds a credential for ``service``, without reading it (no keyring prompt)."""
    return service in _load() or bool(os.environ.get(env_name))


def lookup(service: str, env_name: str) -> str | None:
    """The credential for ``service``: stored first, else the host environment."""
    entry = _load().get(service)
    value = entry if isinstance(entry, str) else None
    if entry == IN_KEYRING:
        backend = os_keyring()
        try:
            value = backend.get_password(KEYRING_SERVICE, service) if backend else None
        except Exception:  # a locked or vanished keyring: the endpoint then says no credential is stored
            value = None
    return value or os.environ.get(env_name) or None
