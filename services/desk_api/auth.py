"""Bearer-token authentication: one token, one holder (a desk token's unit, `Settings.desk_tokens`; a
supervisor token's role, `Settings.supervisor_tokens`)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Generic, TypeVar

from shared.domain.triage import Unit

H = TypeVar("H")


def _digest(token: str) -> bytes:
    # Fixed-length digests make compare_digest's time independent of the tokens' lengths.
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenAuthority(Generic[H]):
    """Knows the tokens only as digests; compares in constant time and always against every token."""

    def __init__(self, tokens: Mapping[str, H]) -> None:
        self._digests = [(_digest(token), holder) for token, holder in tokens.items()]

    @property
    def empty(self) -> bool:
        return not self._digests

    def unit_for(self, authorization: str | None) -> H | None:
        """Whom an `Authorization: Bearer <token>` header speaks for (a desk token: its unit), or None."""
        token = bearer_token(authorization)
        if token is None:
            return None
        presented = _digest(token)
        found: H | None = None
        for digest, holder in self._digests:
            # No early exit: the time taken does not depend on which token matched.
            if hmac.compare_digest(presented, digest):
                found = holder
        return found


DeskAuthority = TokenAuthority[Unit]


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
