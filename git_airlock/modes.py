"""The modes a setting can take, as types mypy checks and tuples the parsers check against.

Kept apart from :mod:`git_airlock.config` because the pre-push hook needs one of them and must
not pay for the settings machinery (it imports no dataclasses) on every push.
"""

from __future__ import annotations

from typing import Literal, get_args

NetworkPolicy = Literal["allow-all", "balanced", "deny-all"]
"""How open a sandbox's network is: everything, the agent's hosts plus presets, nothing."""
PrePushMode = Literal["warn", "block", "off"]
"""What the pre-push hook does with unreviewed sandbox commits."""
EngineChoice = Literal["auto", "sbx", "bwrap"]
"""Which engine runs sandboxes; ``auto`` takes sbx when it is installed, else bubblewrap."""

NETWORK_POLICIES: tuple[NetworkPolicy, ...] = get_args(NetworkPolicy)
PRE_PUSH_MODES: tuple[PrePushMode, ...] = get_args(PrePushMode)
ENGINE_CHOICES: tuple[EngineChoice, ...] = get_args(EngineChoice)
