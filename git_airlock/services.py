"""Model API services whose credentials stay on the host.

Inside a bwrap sandbox the agent sees a base URL on the egress gate
(``ANTHROPIC_BASE_URL=http://127.0.0.1:3128/airlock/anthropic``) and a
placeholder key. The gate forwards such requests to the service's real API
host over TLS, swapping the placeholder for the real credential. So the
credential goes to that one host only, and the sandbox never holds it: not
in its environment, files, argv or process list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

PLACEHOLDER = "airlock-placeholder-credential"


@dataclass(frozen=True)
class Service:
    name: str
    upstream: str
    """The real API's base URL."""
    base_url_env: str
    base_url_suffix: str
    """Appended to the gate URL (OpenAI clients expect the /v1 in the base URL)."""
    key_env: str
    """The environment variable the agent reads its key from (gets the placeholder)."""
    header: str
    prefix: str = ""
    """What goes before the credential in the header (``Bearer ``)."""


SERVICES: dict[str, Service] = {
    service.name: service
    for service in (  # where two share a base URL variable, the first with a credential takes it
        Service("anthropic", "https://api.anthropic.com", "ANTHROPIC_BASE_URL", "", "ANTHROPIC_API_KEY", "x-api-key"),
        Service(  # a Claude subscription's token, from `claude setup-token`
            "claude",
            "https://api.anthropic.com",
            "ANTHROPIC_BASE_URL",
            "",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "authorization",
            "Bearer ",
        ),
        Service(
            "openai", "https://api.openai.com", "OPENAI_BASE_URL", "/v1", "OPENAI_API_KEY", "authorization", "Bearer "
        ),
        Service(  # the Gemini API; Gemini CLI takes its base URL from GOOGLE_GEMINI_BASE_URL (docs/reference/
            # configuration.md), its @google/genai SDK sends the key in x-goog-api-key
            "google",
            "https://generativelanguage.googleapis.com",
            "GOOGLE_GEMINI_BASE_URL",
            "",
            "GEMINI_API_KEY",
            "x-goog-api-key",
        ),
    )
}


class Endpoint(TypedDict):
    """A credential endpoint as the egress gate's configuration holds it: where and how, never the credential."""

    upstream: str
    header: str
    prefix: str
    key_env: str


class CredentialEndpoint(Endpoint):
    """An endpoint with the credential the gate puts on its requests (held in the gate's memory only)."""

    secret: str
