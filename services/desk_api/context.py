"""What every route of the desk app is given: the desk's use cases, who is who, the calendar and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from fastapi import Request

from services.desk_api.auth import DeskAuthority, TokenAuthority
from services.desk_api.errors import ApiError
from services.desk_api.handlers import Desk
from services.desk_api.sessions import Sessions
from services.desk_api.supervision import Supervision
from shared.domain.workdays import Calendar, local_date
from shared.limits import RateLimit


@dataclass
class Context:
    desk: Desk
    authority: DeskAuthority
    supervisors: TokenAuthority[str]
    sessions: Sessions
    supervision: Supervision
    calendar: Calendar
    clock: Callable[[], datetime]
    max_body_bytes: int
    secure_cookies: bool

    failures: RateLimit  # failed sign-ins and token attempts, per client address

    def today(self) -> date:
        return local_date(self.clock())

    def check_not_locked_out(self, request: Request) -> None:
        """429 for a client that failed to sign in or present a token too often this minute."""
        if self.failures.over(_client(request)):
            raise ApiError(429, "too_many_attempts", "too many failed attempts from this address; try again later",
                           {"Retry-After": str(self.failures.retry_after())})

    def failed_attempt(self, request: Request) -> None:
        self.failures.allow(_client(request))


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def context(request: Request) -> Context:
    found = request.app.state.context
    assert isinstance(found, Context)
    return found
