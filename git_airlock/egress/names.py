"""Host names as the gate accepts them, and how it compares them.

A name goes to the resolver only once it is a DNS name or an IP address
written in full: Python's resolver encodes names with the ``idna`` codec,
which raises on an empty or over-long label (``.github.com``, ``a..b``), and
the C resolver reads shorthand such as ``127.1`` or ``0x7f.1`` as addresses,
so such names would either crash a connection's task or reach a host that no
rule names. Names compare as DNS compares them: case-insensitively, a
trailing dot (the root) ignored.
"""

from __future__ import annotations

import ipaddress
import re

MAX_NAME = 253
"""Bytes of a DNS name in text form, its trailing dot left out (RFC 1035's 255 on the wire)."""
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)", re.ASCII)
_NUMBER = re.compile(r"[0-9]+", re.ASCII)


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def valid_host(host: str) -> bool:
    """A DNS name (labels of 1-63 letters, digits or hyphens, no hyphen first or last) or an IP address.

    A name whose last label is a number must be an IPv4 address in full: no top-level
    domain is numeric, and the C resolver would read ``1.2.3`` as the address 1.2.0.3.
    """
    if is_ip(host):
        return True
    name = host.removesuffix(".")
    labels = name.split(".")
    return (
        len(name) <= MAX_NAME and all(_LABEL.fullmatch(label) for label in labels) and not _NUMBER.fullmatch(labels[-1])
    )


def same_host(a: str, b: str) -> bool:
    """Whether two names are one host for DNS: case-insensitively, a trailing dot ignored."""
    return a.lower().removesuffix(".") == b.lower().removesuffix(".")


def names_target(authority: str, host: str, port: int) -> bool:
    """Whether a ``Host`` header's value names ``host:port`` (without a port it names 80, as http:// does)."""
    name, colon, number = authority.rpartition(":")
    if not colon:
        name, number = authority, "80"
    return bool(_NUMBER.fullmatch(number)) and len(number) <= 5 and int(number) == port and same_host(name, host)
