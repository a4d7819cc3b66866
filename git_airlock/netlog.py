"""What a sandbox did on the network, from its connection log: per destination, and what to allow.

Entries come from the bwrap gate's JSON lines (one per attempt) or from ``sbx policy log --json``
(one per destination and verdict, with a ``count``). Both are the sandbox's doing, so every field
is checked and every name is shown sanitised by the caller. Three verdicts are kept apart:
*blocked* by the policy (the only ones worth allowing), *refused* for another reason (a malformed
request, a server name that does not match: never suggested), and *failed* (allowed, but the
upstream could not be reached).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from git_airlock.egress.rules import NOT_ALLOWED, WEB_PORTS


@dataclass
class Destination:
    """One ``host:port`` a sandbox tried to reach, with what became of the attempts."""

    sandbox: str
    host: str
    port: int | str
    """A number, unless the log holds something else (shown as it is, never suggested)."""
    allowed: int = 0
    blocked: int = 0
    """Refused by the network policy."""
    refused: int = 0
    """Refused for another reason (see the module)."""
    failed: int = 0
    bytes: int = 0
    credentials: set[str] = field(default_factory=set)
    """Services whose credential the gate put on requests here (a credential endpoint)."""

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def read_lines(paths: Iterable[str]) -> list[str]:
    """The lines of every log file that exists (a rotated one first, when given first)."""
    lines: list[str] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines.extend(handle)
        except FileNotFoundError:
            continue
    return lines


def parse(lines: Iterable[str]) -> list[dict[str, object]]:
    """The entries of JSON lines, skipping what is not an object."""
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def summarize(entries: Iterable[dict[str, object]]) -> list[Destination]:
    """Per destination, busiest first."""
    table: dict[tuple[str, str, int | str], Destination] = {}
    for entry in entries:
        try:
            sandbox, host, raw_port = str(entry["sandbox"]), str(entry["host"]), str(entry["port"])
            count = int(str(entry.get("count", 1)))
        except (KeyError, TypeError, ValueError):
            continue
        port: int | str = int(raw_port) if raw_port.isdigit() else raw_port
        row = table.setdefault((sandbox, host, port), Destination(sandbox, host, port))
        action = entry.get("action")
        if action == "allowed":
            row.allowed += count
        elif action == "failed":
            row.failed += count
        elif action == "blocked" and entry.get("reason", NOT_ALLOWED) == NOT_ALLOWED:
            row.blocked += count
        else:
            row.refused += count
        for size in (entry.get("sent", 0), entry.get("received", 0)):
            row.bytes += size if isinstance(size, int) and size > 0 else 0
        if isinstance(entry.get("credential"), str):
            row.credentials.add(str(entry["credential"]))
    return sorted(table.values(), key=lambda row: (-(row.allowed + row.blocked + row.refused + row.failed), row.where))


_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go"})
"""Second-level labels under which country domains register names (example.co.uk)."""


def registrable_domain(host: str) -> str:
    """The name a host's owner registered (api.github.com -> github.com; a.example.co.uk ->
    example.co.uk). An approximation of the public suffix list, good enough to group hosts; an
    address stays as it is."""
    labels = host.rstrip(".").split(".")
    if len(labels) <= 2 or all(label.isdigit() for label in labels):
        return host
    keep = 3 if len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


@dataclass(frozen=True)
class Suggestion:
    """Blocked destinations under one registrable domain, and the rules that would open them."""

    domain: str
    attempts: int
    destinations: tuple[tuple[str, int], ...]
    """(host:port, attempts), busiest first."""
    hosts_rule: str
    """The exact destinations: a rule per host (naming a port other than 443 and 80)."""
    domain_rule: str
    """The domain and every host under it (on ports 443 and 80)."""

    @property
    def preset_name(self) -> str:
        """A git config variable name for the preset: letters, digits and ``-``."""
        return "".join(char if char.isalnum() else "-" for char in self.domain).strip("-") or "extra"


def _is_host(host: str) -> bool:
    """Whether ``host`` is a name a rule can hold (sbx's log is not checked the way the gate's names are)."""
    from git_airlock.errors import AirlockError
    from git_airlock.policy import validate_rule

    try:
        validate_rule(host)
    except AirlockError:
        return False
    return not host.startswith("*.")


def _domain_rule(domain: str, ports: set[int | str]) -> str:
    """``domain`` and everything under it, on the web ports and each other port seen blocked."""
    suffixes = ([""] if ports & WEB_PORTS else []) + [f":{port}" for port in sorted(ports - WEB_PORTS, key=str)]
    return ",".join(f"{name}{suffix}" for suffix in suffixes for name in (domain, f"*.{domain}"))


def suggest(destinations: Iterable[Destination]) -> list[Suggestion]:
    """What to allow, per registrable domain, for the destinations the policy blocked; busiest first."""
    groups: dict[str, list[Destination]] = {}
    for row in destinations:
        if row.blocked and isinstance(row.port, int) and _is_host(row.host):
            groups.setdefault(registrable_domain(row.host), []).append(row)
    found = []
    for domain, rows in groups.items():
        rows.sort(key=lambda row: (-row.blocked, row.where))
        rules = sorted({row.host if row.port in WEB_PORTS else row.where for row in rows})
        found.append(
            Suggestion(
                domain,
                sum(row.blocked for row in rows),
                tuple((row.where, row.blocked) for row in rows),
                ",".join(rules),
                ",".join(rules) if domain == rows[0].host else _domain_rule(domain, {row.port for row in rows}),
            )
        )
    return sorted(found, key=lambda item: (-item.attempts, item.domain))
