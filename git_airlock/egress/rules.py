"""Which host:port a sandbox may reach, in sbx's rule syntax so one ALLOW list serves both engines.

``api.example.com`` (that host), ``*.example.com`` (its sub-domains, not
``example.com`` itself and never a look-alike such as ``evil-example.com``),
an optional ``:port``; deny rules win over allow rules.
"""

from __future__ import annotations

from git_airlock.policy import validate_rule


class Rule:
    __slots__ = ("host", "port", "wildcard")

    def __init__(self, text: str) -> None:
        text = validate_rule(text)
        host, sep, port = text.rpartition(":") if ":" in text else (text, "", "")
        self.port = int(port) if sep else None
        self.wildcard = host.startswith("*.")
        self.host = host[2:] if self.wildcard else host

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        host = host.lower().rstrip(".")
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


class Rules:
    """An allow list and a deny list; ``allow_all`` lets everything through that is not denied."""

    def __init__(self, allow: list[str], deny: list[str] = (), allow_all: bool = False) -> None:
        self.allow = [Rule(text) for text in allow]
        self.deny = [Rule(text) for text in deny]
        self.allow_all = allow_all

    def allows(self, host: str, port: int) -> bool:
        if any(rule.matches(host, port) for rule in self.deny):
            return False
        return self.allow_all or any(rule.matches(host, port) for rule in self.allow)
