"""Bearer-token authentication: one token, one unit (the tokens are `Settings.desk_tokens`)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from shared.domain.triage import Unit


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
