"""Desk settings and bearer-token authentication: one token, one unit."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain.triage import Unit

MIN_TOKEN_LENGTH = 8


class DeskSettings(BaseSettings):
    """The desk API's own settings (the shared `Settings` holds the broker and store addresses)."""

    # Errors must never echo a token into a log: hide the input in validation messages.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    # DESK_TOKENS='{"s3cr3t-police": "police", ...}'; several tokens per unit allow rotation.
    desk_tokens: dict[str, Unit] = Field(default_factory=dict, repr=False)
    # Cases read per queue request before sorting by deadline in Python (FerretDB has no $min over a map).
    desk_queue_scan_limit: int = Field(default=1000, ge=50, le=10_000)
    desk_publish_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    desk_max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)

    @field_validator("desk_tokens", mode="before")
    @classmethod
    def _tokens_are_usable(cls, tokens: Any) -> Any:
        # Checked before pydantic's own validation, whose error locations would name the token (a dict key).
        units = {u.value for u in Unit}
        if not isinstance(tokens, Mapping):
            raise ValueError("DESK_TOKENS must be a JSON object of token to unit")
        for token, unit in tokens.items():
            if unit not in units:
                raise ValueError("every desk token must map to one of: " + ", ".join(sorted(units)))
            if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
                raise ValueError(f"every desk token needs at least {MIN_TOKEN_LENGTH} characters and no spaces")
        return tokens

def _digest(token: str) -> bytes:
    # Fixed-length digests make compare_digest's time independent of the tokens' lengths.
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenAuthority:
    """Knows the tokens only as digests; compares in constant time and always against every token."""

    def __init__(self, tokens: Mapping[str, Unit]) -> None:
        self._digests = [(_digest(token), Unit(unit)) for token, unit in tokens.items()]

    @property
    def empty(self) -> bool:
        return not self._digests

    def unit_for(self, authorization: str | None) -> Unit | None:
        """The unit an `Authorization: Bearer <token>` header speaks for, or None."""
        token = bearer_token(authorization)
        if token is None:
            return None
        presented = _digest(token)
        found: Unit | None = None
        for digest, unit in self._digests:
            # No early exit: the time taken does not depend on which token matched.
            if hmac.compare_digest(presented, digest):
                found = unit
        return found


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
