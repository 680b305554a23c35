"""Event contracts: one versioned pydantic model per topic.

Every event after intake travels in the same envelope (event id, case id, schema version, time,
source channel, trace context) with a typed payload. Upstream channels publish `ChannelEvent`, whose
JSON Schema (`triage schema`) is the contract they code against. No event after intake carries a
complainant's name, phone or ID number: those stay in the case store.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared.domain.lifecycle import Action, Satisfaction
from shared.domain.triage import Assessment, Category, RiskFlag, RoutingDecision, Unit, Urgency

SCHEMA_VERSION = 1


class Channel(StrEnum):
    HOTLINE_12345 = "12345"
    POLICE_110 = "110"
    LEGAL_12348 = "12348"
    LETTER = "letter"
    WALK_IN = "walk_in"
    ONLINE = "online"
    GRID = "grid"


# Identifiers end up in document ids and Kafka keys: keep them to a safe alphabet.
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
SafeId = Annotated[str, StringConstraints(pattern=f"^{SAFE_ID.pattern}$")]


def _no_control_chars(value: str) -> str:
    # C0 controls but line breaks and tabs, DEL, and the C1 controls (U+0080-U+009F: terminal escapes).
    if any((ord(c) < 32 and c not in "\n\r\t") or 0x7F <= ord(c) <= 0x9F for c in value):
        raise ValueError("control characters are not allowed")
    return value


def _plausible_time(value: datetime) -> datetime:
    # Far-off dates are typos or probes, and some (year 1) do not fit the store's date type.
    if not 2000 <= value.year <= 2100:
        raise ValueError("must be between the years 2000 and 2100")
    return value


CleanText = Annotated[str, AfterValidator(_no_control_chars)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Complainant(_Strict):
    """Personal data: stored on the case, never logged, never put on a downstream topic."""

    name: Annotated[CleanText, Field(max_length=64)] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{4,19}$")] | None = None
    id_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{15}([0-9]{2}[0-9Xx])?$")] | None = None


class ChannelEvent(_Strict):
    """A complaint as an upstream channel publishes it to `triage.channel-events.v1`."""

    schema_version: Literal[1] = 1
    event_id: SafeId = Field(description="Unique per channel; a redelivered event keeps its id.")
    channel: Channel
    occurred_at: Annotated[AwareDatetime, AfterValidator(_plausible_time)]
    text: Annotated[CleanText, Field(min_length=1, description="What the complainant said or wrote.")]
    complainant: Complainant | None = None
    location: Annotated[CleanText, Field(max_length=200)] | None = None
    external_ref: Annotated[CleanText, Field(max_length=128)] | None = Field(
        default=None, description="The channel's own ticket number, if it has one."
    )
    traceparent: Annotated[str, StringConstraints(max_length=128)] | None = None


def receipt_of(event: ChannelEvent) -> str:
    """The name of one incoming report: its channel and the channel's own event id."""
    return f"{event.channel.value}:{event.event_id}"


def case_id_for(channel: Channel | str, event_id: str) -> str:
    """The case a first report opens: derived from the event, so a redelivery finds the same case."""
    digest = hashlib.sha256(f"{Channel(channel).value}:{event_id}".encode()).hexdigest()
    return f"GT-{digest[:20].upper()}"


def utcnow() -> datetime:
    """Now, to the millisecond: what the store keeps, so a value read back compares equal."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Envelope(BaseModel):
    """What every case event carries besides its payload."""

    event_type: ClassVar[str]

    event_id: SafeId
    case_id: SafeId
    schema_version: int = SCHEMA_VERSION
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    source_channel: Channel
    traceparent: str | None = None

    def follow_up(self, event_cls: type[E], payload: Any, step: str) -> E:
        """The next event of the same case; its id derives from this one's, so a replay repeats it."""
        fields: dict[str, Any] = {
            "event_id": derive_event_id(self.event_id, step),
            "case_id": self.case_id,
            "source_channel": self.source_channel,
            "traceparent": self.traceparent,
            "payload": payload,
        }
        return event_cls(**fields)


E = TypeVar("E", bound=Envelope)


def derive_event_id(parent: str, step: str) -> str:
    candidate = f"{parent}.{step}"
    if len(candidate) <= 128:
        return candidate
    return f"{hashlib.sha256(parent.encode()).hexdigest()[:32]}.{step}"[:128]


class CaseReceivedPayload(BaseModel):
    text: str
    location: str | None = None
    received_at: AwareDatetime
    complainant_key: str | None = None
    repeat_count: int = 0


class CaseReceived(Envelope):
    event_type: ClassVar[str] = "case.received"
    payload: CaseReceivedPayload


class CaseClassifiedPayload(BaseModel):
    assessment: Assessment
    routing_attempt: int = 0
    excluded_units: list[Unit] = Field(default_factory=list)
    handback_reason: str | None = None


class CaseClassified(Envelope):
    event_type: ClassVar[str] = "case.classified"
    payload: CaseClassifiedPayload


class OpenedDeadline(BaseModel):
    """A legal time limit that started with this event; the period ends at 24:00 local time on `due`."""

    rule: str
    start: str = Field(description="ISO date")
    due: str = Field(description="ISO date, the last day")
    source: str


class CaseRoutedPayload(BaseModel):
    """What a desk receives: enough to act, nothing personal."""

    unit: Unit
    category: Category
    urgency: Urgency
    risk_flags: list[RiskFlag] = Field(default_factory=list)
    decision: RoutingDecision
    routing_attempt: int = 0
    text: str
    location: str | None = None
    received_at: AwareDatetime
    deadlines: list[OpenedDeadline] = Field(
        default_factory=list, description="The limits that started with this routing: the follow-up times them.")


class CaseRouted(Envelope):
    event_type: ClassVar[str] = "case.routed"
    payload: CaseRoutedPayload


class DeskActionPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit: Unit = Field(description="The desk acting; it must be the unit the case is with.")
    action: Action
    actor: Annotated[CleanText, Field(min_length=1, max_length=64)] = Field(
        description="The officer acting (their name as they signed in), for the audit trail.")
    note: Annotated[CleanText, Field(max_length=2000)] | None = None
    reason: Annotated[CleanText, Field(max_length=500)] | None = Field(
        default=None, description="Required to hand back (why the unit is wrong) and to request an extension."
    )
    extension_days: Annotated[int, Field(ge=1, le=30)] | None = None
    satisfaction: Satisfaction | None = Field(default=None, description="Required for a return visit.")
    solved: bool | None = Field(
        default=None, description="A return visit's second answer: whether the complainant says the matter is "
        "solved (解决率 counts the visits that asked).")
    amount: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)] | None = Field(
        default=None, description="The sum a mediation agreement settles (元), if any; record_agreement only.")


class DeskAction(Envelope):
    event_type: ClassVar[str] = "desk.action"
    payload: DeskActionPayload


class AlertKind(StrEnum):
    REMINDER = "reminder"
    OVERDUE = "overdue"
    ESCALATED = "escalated"
    # a critical case routed to a unit that cannot act at once: the command centre must know now
    CRITICAL_ELSEWHERE = "critical_elsewhere"


class CaseAlertPayload(BaseModel):
    kind: AlertKind
    unit: Unit
    rule: str
    due: str = Field(description="The deadline's last day, ISO date (the period ends at 24:00 that day).")


class CaseAlert(Envelope):
    event_type: ClassVar[str] = "case.alert"
    payload: CaseAlertPayload


class Milestone(StrEnum):
    """What an upstream system hears of its case, one event each (`triage.case-updates.v1`)."""

    RECEIVED = "received"  # the case id, and the channel's own ticket number
    ROUTED = "routed"  # to a unit, with the legal due date
    REROUTED = "rerouted"  # routed again after a hand-back
    ACCEPTED = "accepted"  # 签收
    HANDED_BACK = "handed_back"  # 退单
    EXTENDED = "extended"  # 延期: the new due date
    RESOLVED = "resolved"  # 办结, with the answer to the complainant
    RETURN_VISIT = "return_visit"  # 回访: the satisfaction, and whether it is solved
    CLOSED = "closed"
    REOPENED = "reopened"
    ESCALATED = "escalated"  # 督办: to the town command centre


class CaseUpdatePayload(BaseModel):
    """No personal data: no name, no phone, no complaint text; the answer is what the complainant was told."""

    milestone: Milestone
    at: AwareDatetime
    external_ref: str | None = Field(default=None, description="The channel's own ticket number.")
    unit: Unit | None = Field(default=None, description="The unit the case is with after this milestone.")
    due: str | None = Field(default=None, description="The legal due date (ISO day), when routed or extended.")
    answer: str | None = Field(default=None, description="The answer given to the complainant (resolved).")
    satisfaction: Satisfaction | None = None
    solved: bool | None = None


class CaseUpdated(Envelope):
    """One milestone of a case, for the upstream system it came from. Its id derives from the case's timeline
    entry, and the feed carries it once (services/feed)."""

    event_type: ClassVar[str] = "case.updated"
    payload: CaseUpdatePayload


EVENT_TYPES: dict[str, type[Envelope]] = {
    cls.event_type: cls for cls in (CaseReceived, CaseClassified, CaseRouted, DeskAction, CaseAlert)
}
