"""Reading sbx's policy rules and comparing host patterns, for a lockdown of one sandbox.

Why this is needed: sbx has no per-sandbox default policy ("This is the initial
global policy, not a per-sandbox default ... Per-sandbox rules ... apply on top",
https://docs.docker.com/reference/cli/sbx/policy/init/), and its deny rules win
over allow rules whatever their scope ("If a resource matches both an allow and a
deny rule, the deny rule takes precedence",
https://docs.docker.com/reference/cli/sbx/policy/allow/; "Deny wins",
https://docs.docker.com/ai/sandboxes/governance/concepts/#rule-evaluation). So one
sandbox is narrowed to ALLOW by denying it, one by one, the allow rules it sees
that ALLOW does not cover; a sandbox-wide deny of ``**`` would also block ALLOW.

Host patterns (https://docs.docker.com/ai/sandboxes/governance/concepts/#network-rules):
``example.com`` that host only, ``*.example.com`` one sub-domain level,
``**.example.com`` any depth, ``**`` every host, and an optional ``:port``
(without one, every port). A pattern is modelled as the labels every matching
host ends with plus how many labels may come before them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from git_airlock.errors import AirlockError

UNBOUNDED = 10_000
"""More labels than any host name can have (253 characters): 'any depth'."""


@dataclass(frozen=True)
class Pattern:
    suffix: tuple[str, ...]
    """The labels every matching host ends with."""
    fewest: int
    """How many labels at least come before the suffix."""
    most: int
    port: str | None


def matches_every_host(text: str) -> bool:
    """``**`` (with or without a port): left open, it leaves the sandbox open."""
    return pattern(text).suffix == ()


def pattern(text: str) -> Pattern:
    """Parse one sbx resource; an IP, CIDR range or odd form compares only with itself (exact)."""
    host, port = text.lower(), None
    if host.count(":") == 1:
        host, port = host.split(":")
    if host == "**":
        return Pattern((), 1, UNBOUNDED, port)
    if host.startswith("**."):
        return Pattern(tuple(host[3:].split(".")), 1, UNBOUNDED, port)
    if host.startswith("*."):
        return Pattern(tuple(host[2:].split(".")), 1, 1, port)
    return Pattern(tuple(host.split(".")), 0, 0, port)


def _extra_labels(inner: Pattern, outer: Pattern) -> int | None:
    """How many more suffix labels ``inner`` names than ``outer``, or None when the suffixes disagree."""
    extra = len(inner.suffix) - len(outer.suffix)
    if extra < 0 or inner.suffix[extra:] != outer.suffix:
        return None
    return extra


def overlaps(a: str, b: str) -> bool:
    """True when some host (and port) matches both patterns."""
    first, second = pattern(a), pattern(b)
    if first.port and second.port and first.port != second.port:
        return False
    for inner, outer in ((first, second), (second, first)):
        extra = _extra_labels(inner, outer)
        if extra is not None:
            return inner.fewest + extra <= outer.most and inner.most + extra >= outer.fewest
    return False


def covers(outer_text: str, inner_text: str) -> bool:
    """True when every host (and port) ``inner_text`` matches is matched by ``outer_text`` too."""
    outer, inner = pattern(outer_text), pattern(inner_text)
    if outer.port and inner.port != outer.port:
        return False
    extra = _extra_labels(inner, outer)
    return extra is not None and inner.fewest + extra >= outer.fewest and inner.most + extra <= outer.most


@dataclass(frozen=True)
class Rule:
    scope: str
    """``global`` or ``sandbox:NAME``."""
    decision: str
    resources: tuple[str, ...]
    editable: bool
    origin: str


def read_rules(output: str) -> list[Rule]:
    """The network rules in ``sbx policy ls SANDBOX --json`` output.

    ``--json`` exists since sbx v0.35.0 ("`--json` for automation", release notes quoted in
    https://github.com/docker/docs/pull/25535); Docker documents no field of it. The fields read
    here (``scope``, ``resource_type``, ``decision``, ``resources``, ``editable``, ``origin``) are
    the ones public tools that drive sbx read from it. Anything else is refused rather than
    guessed: a lockdown that misread the rules would leave hosts open.
    """
    problem = AirlockError(
        "could not read the rules in `sbx policy ls --json` (sbx 0.35 or later prints them)",
        hint="update sbx, or lock every sandbox down with `git airlock lockdown --global`",
    )
    try:
        data = json.loads(output)
    except json.JSONDecodeError as exc:
        raise problem from exc
    items = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise problem
    rules = []
    for item in items:
        if not isinstance(item, dict) or item.get("resource_type") != "network":
            continue
        resources = item.get("resources")
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise problem
        if item.get("decision") not in ("allow", "deny") or not isinstance(item.get("scope"), str):
            raise problem
        rules.append(
            Rule(
                item["scope"], item["decision"], tuple(resources), item.get("editable") is True, str(item.get("origin"))
            )
        )
    return rules


def is_own(rule: Rule, sandbox: str) -> bool:
    """A rule scoped to ``sandbox`` that the user can edit: lockdown's, or one added by hand.

    Kit rules (a built-in agent's hosts) and organisation rules are not the user's to remove.
    """
    return rule.scope == f"sandbox:{sandbox}" and rule.editable and rule.origin not in ("kit", "org")


def own_resources(rules: list[Rule], sandbox: str) -> list[str]:
    """The resources of ``sandbox``'s own rules, each once."""
    found: list[str] = []
    for rule in rules:
        if is_own(rule, sandbox):
            found.extend(r for r in rule.resources if r not in found)
    return found


def narrowing(rules: list[Rule], sandbox: str, allow: list[str]) -> tuple[list[str], list[str]]:
    """(resources to deny for ``sandbox``, resources left open because denying them would block ALLOW).

    Every allow rule the sandbox sees (global, or scoped to it and not its own, which lockdown
    removes first) is denied unless it
    overlaps an ALLOW entry; one that overlaps without being covered by ALLOW (``**.github.com``
    against ``api.github.com``) is reported, since its other hosts stay reachable.
    """
    deny: list[str] = []
    left_open: list[str] = []
    for rule in rules:
        if rule.decision != "allow" or rule.scope not in ("global", f"sandbox:{sandbox}") or is_own(rule, sandbox):
            continue
        for resource in rule.resources:
            if resource in deny or resource in left_open:
                continue
            if not any(overlaps(resource, host) for host in allow):
                deny.append(resource)
            elif not any(covers(host, resource) for host in allow):
                left_open.append(resource)
    return deny, left_open
