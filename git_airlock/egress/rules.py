"""Which host:port a sandbox may reach, in sbx's rule syntax so one ALLOW list serves both engines.

``api.example.com`` (that host), ``*.example.com`` (its sub-domains, not
``example.com`` itself and never a look-alike such as ``evil-example.com``),
an optional ``:port``; deny rules win over allow rules.

An allow rule without a port allows ports 443 and 80 only: a rule written for
a web host must not open its SSH, database or admin ports too. Another port
needs a rule naming it (``git.example.com:22``). A deny rule without a port
denies every port, so that a rule meant to shut a host out does.

sbx's documentation says nothing precise about a rule without a port. Its
rule syntax (https://docs.docker.com/ai/sandboxes/governance/concepts/) gives
``example.com:443`` as "example.com on port 443 only" and ``example.com`` as
that host, without a word on ports; ``sbx policy check network``
(https://docs.docker.com/reference/cli/sbx/policy/check/network/) evaluates a
bare host "with port 443" and URLs with their scheme's default port; and its
policy page (https://docs.docker.com/ai/sandboxes/security/policy/) allows
non-HTTP TCP such as SSH "by adding a policy rule for the destination IP
address and port". Ports 443 and 80 fit all three.
"""

from __future__ import annotations

from collections.abc import Iterable

from git_airlock.policy import validate_rule

NOT_ALLOWED = "not allowed by the network policy"
"""The reason the gate logs for a destination its rules refuse (as opposed to a malformed request)."""
WEB_PORTS = frozenset({443, 80})
"""What an allow rule without a port allows."""


class Rule:
    __slots__ = ("host", "ports", "wildcard")

    def __init__(self, text: str, default_ports: frozenset[int] | None) -> None:
        """``default_ports``: the ports a rule without one matches (None: every port)."""
        text = validate_rule(text)
        host, sep, port = text.rpartition(":") if ":" in text else (text, "", "")
        self.ports = frozenset({int(port)}) if sep else default_ports
        self.wildcard = host.startswith("*.")
        self.host = host[2:] if self.wildcard else host

    def matches(self, host: str, port: int) -> bool:
        if self.ports is not None and port not in self.ports:
            return False
        host = host.lower().rstrip(".")
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


class Rules:
    """An allow list and a deny list; ``allow_all`` lets everything through that is not denied."""

    def __init__(self, allow: Iterable[str], deny: Iterable[str] = (), allow_all: bool = False) -> None:
        self.allow = [Rule(text, WEB_PORTS) for text in allow]
        self.deny = [Rule(text, None) for text in deny]
        self.allow_all = allow_all

    def allows(self, host: str, port: int) -> bool:
        if any(rule.matches(host, port) for rule in self.deny):
            return False
        return self.allow_all or any(rule.matches(host, port) for rule in self.allow)
