"""What every route of the desk app is given: the desk's use cases, who is who, the calendar and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from fastapi import Request

from services.desk_api.auth import DeskAuthority, TokenAuthority
from services.desk_api.handlers import Desk
from services.desk_api.sessions import Sessions
from services.desk_api.supervision import Supervision
from shared.domain.workdays import Calendar, local_date


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

    def today(self) -> date:
        return local_date(self.clock())


def context(request: Request) -> Context:
    found = request.app.state.context
    assert isinstance(found, Context)
    return found
