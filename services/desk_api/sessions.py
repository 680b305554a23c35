"""Sessions: a unit's desk token, or a supervisor token, is exchanged once for a session of one named officer.

The cookie holds a random id; the store keeps only its digest, with the unit, the officer, the session's
CSRF token and its expiry. Signing out deletes the record, so a copied cookie is worthless afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.domain.triage import Unit

COOKIE = "desk_session"
SUPERVISOR_COOKIE = "supervisor_session"
SUPERVISOR = "supervisor"  # a session's unit field: every unit, read-only
SIGN_IN_COOKIE = "desk_signin"  # double-submit token of the sign-in form, which has no session yet
_OFFICER = re.compile(r"^[^\x00-\x1f\x7f-\x9f<>\"'&]{1,32}$")


class SessionBook(Protocol):
    async def open(self, key: str, record: Mapping[str, Any]) -> None: ...

    async def find(self, key: str) -> Mapping[str, Any] | None: ...

    async def close(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Session:
    """Someone signed in: a desk officer of a unit, or a supervisor (`unit` None: every unit, read-only)."""

    unit: Unit | None
    officer: str
    csrf: str
    expires: datetime

    def csrf_matches(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf.encode(), str(presented).encode())


@dataclass(frozen=True, slots=True)
class DeskSession(Session):
    unit: Unit


def valid_officer(name: str) -> str | None:
    """The officer's name as it will stand on every action, or None when it cannot be one."""
    name = " ".join(name.split())
    return name if _OFFICER.match(name) else None


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8")).hexdigest()


class Sessions:
    def __init__(self, book: SessionBook, lifetime: timedelta,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.book = book
        self.lifetime = lifetime
        self.clock = clock

    async def sign_in(self, unit: Unit | None, officer: str) -> tuple[str, Session]:
        """A desk's session (`unit`), or a supervisor's (None)."""
        cookie = secrets.token_urlsafe(32)
        session = Session(unit, officer, secrets.token_urlsafe(24), self.clock() + self.lifetime)
        await self.book.open(_key(cookie), {"unit": unit.value if unit else SUPERVISOR, "officer": officer,
                                            "csrf": session.csrf, "expires": session.expires, "opened": self.clock()})
        return cookie, session

    async def current(self, cookie: str | None) -> DeskSession | None:
        """The desk session of this cookie; None for none, an expired one, or a supervisor's."""
        session = await self._find(cookie)
        if session is None or session.unit is None:
            return None
        return DeskSession(session.unit, session.officer, session.csrf, session.expires)

    async def supervisor(self, cookie: str | None) -> Session | None:
        session = await self._find(cookie)
        return session if session is not None and session.unit is None else None

    async def _find(self, cookie: str | None) -> Session | None:
        if not cookie or len(cookie) > 128:
            return None
        record = await self.book.find(_key(cookie))
        if record is None:
            return None
        expires = record["expires"]
        expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
        if expires <= self.clock():
            await self.book.close(_key(cookie))
            return None
        unit = None if record["unit"] == SUPERVISOR else Unit(record["unit"])
        return Session(unit, str(record["officer"]), str(record["csrf"]), expires)

    async def sign_out(self, cookie: str) -> None:
        await self.book.close(_key(cookie))
