"""Network allowlists: parsing, validation, the default list.

Rules follow sbx's syntax so one ``ALLOW`` value serves every engine: exact
hosts, ``*.domain`` wildcards, an optional ``:port``. Anything else (a bare
``*``, a URL with a scheme or path, an empty entry, a bad port) is refused
before any command runs.
"""

from __future__ import annotations

import re

from git_airlock.errors import AirlockError

DEFAULT_ALLOW: tuple[str, ...] = (
    "api.anthropic.com",
    "*.anthropic.com",
    "claude.ai",
    "api.openai.com",
    "*.openai.com",
    "chatgpt.com",
    "github.com",
    "*.github.com",
    "*.githubusercontent.com",
    "registry.npmjs.org",
    "*.npmjs.org",
    "*.npmjs.com",
)

TOOLING_PRESETS: dict[str, tuple[str, ...]] = {
    "npm": ("registry.npmjs.org", "*.npmjs.org"),
    "pypi": ("pypi.org", "files.pythonhosted.org"),
    "github": ("github.com", "*.github.com", "*.githubusercontent.com"),
    "debian": (
        "deb.debian.org",
        "security.debian.org",
        "archive.ubuntu.com",
        "security.ubuntu.com",
        "ports.ubuntu.com",
    ),
}
"""Package registries and GitHub: allowed in balanced mode next to the agent's own hosts. ``debian`` is what
apt needs inside a sandbox, of which the agent is root: Debian's and Ubuntu's archives (their mirrors over
HTTP on port 80, as apt's default sources name them; apt checks what it fetches against its keys)."""


_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


def validate_rule(rule: str) -> str:
    """Return the normalised rule or raise a clear error saying what is wrong with it."""
    text = rule.strip()
    hint = "rules look like api.example.com, *.example.com or example.com:443"
    if not text:
        raise AirlockError("empty entry in the allowlist", hint=hint)
    if "://" in text or "/" in text:
        raise AirlockError(f"allowlist entry {text!r} is a URL; give a host name", hint=hint)
    host, sep, port = text.rpartition(":") if ":" in text else (text, "", "")
    if sep and (not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535):
        raise AirlockError(f"allowlist entry {text!r} has a bad port {port!r}", hint=hint)
    if host in ("*", "**"):
        raise AirlockError(
            f"allowlist entry {text!r} would allow every host",
            hint="use `git airlock unlock` or GLOBAL_NETWORK_POLICY=allow-all to open the network on purpose",
        )
    if not _HOST.match(host):
        raise AirlockError(f"allowlist entry {text!r} is not a host name", hint=hint)
    return text.lower()


def parse_allowlist(value: str) -> list[str]:
    """Split a comma-separated list (sbx's syntax), validating every entry; empty means the default."""
    if not value.strip():
        return list(DEFAULT_ALLOW)
    return [validate_rule(entry) for entry in value.split(",")]
