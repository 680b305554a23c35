"""What a step of a case's life produces: the fields it set, the timeline entries it added, the deadlines it
opened or moved, the events to publish; and the parts of a case those are made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.domain.deadlines import Deadline
from shared.events import Envelope


class TimelineEntry(BaseModel):
    id: str
    at: datetime
    kind: str
    detail: dict[str, Any] = Field(default_factory=dict)


class OpenDeadline(BaseModel):
    """A legal time limit the case is held to; dates are ISO days, the period ending at 24:00 local time."""

    rule: str
    start: str
    due: str
    source: str
    opened_at: datetime
    met_at: datetime | None = None
    extended_by: str | None = None  # the extension rule that moved `due`

    @property
    def is_open(self) -> bool:
        return self.met_at is None


class Matter(BaseModel):
    """This case is matter `index` of `of` in one complaint (一单多诉)."""

    index: int
    of: int


def deadline_key(rule: str) -> str:
    """A deadline's key under `deadlines`: a dot would read as a path in a document store."""
    return rule.replace(".", "_")


@dataclass
class Change:
    """What one step did: fields set, timeline entries added, deadlines to time, events to publish."""

    fields: set[str] = field(default_factory=set)
    entries: list[TimelineEntry] = field(default_factory=list)
    deadlines: list[Deadline] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.fields or self.entries)

    def __add__(self, other: Change) -> Change:
        return Change(self.fields | other.fields, [*self.entries, *other.entries],
                      [*self.deadlines, *other.deadlines], [*self.events, *other.events])
