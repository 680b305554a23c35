"""The routing handler: a decision that must alert the command centre publishes the alert, once per attempt."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml

from services.routing.handlers import route_case
from shared.adapters.memory import MemoryStorage
from shared.domain.case import Case
from shared.domain.classification.policy import DEFAULT_POLICY_PATH, parse_policy
from shared.domain.lifecycle import CaseStatus
from shared.domain.triage import Assessment, Category, DangerKind, Unit, Urgency
from shared.domain.workdays import default_calendar
from shared.events import AlertKind, CaseAlert, CaseClassified, CaseClassifiedPayload, CaseRouted, Channel, Envelope

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _storage() -> MemoryStorage:
    storage = MemoryStorage()
    case = Case(id="GT-1", channel="12345", text="…", received_at=NOW, version=0)
    storage.cases.stored[case.id] = case
    storage.cases.timelines[case.id] = []
    return storage


def _classified(danger: DangerKind | None) -> bytes:
    assessment = Assessment(category=Category.FAMILY, urgency=Urgency.CRITICAL, confidence=0.9, danger=danger)
    event = CaseClassified(event_id="ev-1.classified", case_id="GT-1", source_channel=Channel.HOTLINE_12345,
                           payload=CaseClassifiedPayload(assessment=assessment))
    return event.model_dump_json().encode()


async def _route(body: bytes, policy_data: dict[str, Any]) -> tuple[list[CaseRouted], list[CaseAlert]]:
    published: list[Envelope] = []

    async def publish(e: Envelope) -> None:
        published.append(e)

    storage = _storage()
    for _ in range(2):  # a replay
        await route_case(body, cases=storage.cases, publish=publish, policy=parse_policy(policy_data),
                         calendar=default_calendar(), max_bytes=100_000, now=NOW)
    assert storage.cases.stored["GT-1"].status is CaseStatus.ROUTED
    return ([e for e in published if isinstance(e, CaseRouted)], [e for e in published if isinstance(e, CaseAlert)])


async def test_a_danger_with_its_immediate_unit_raises_no_alert() -> None:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    routed, alerts = await _route(_classified(DangerKind.VIOLENCE), data)
    assert routed[0].payload.unit == Unit.POLICE and not alerts


async def test_a_critical_case_left_with_a_slow_unit_alerts_command_with_one_id() -> None:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["danger"]["routes"]["violence"]["unit"] = "mediation"
    routed, alerts = await _route(_classified(DangerKind.VIOLENCE), data)
    assert routed[0].payload.unit == Unit.MEDIATION and routed[0].payload.decision.needs_review
    assert [a.payload.kind for a in alerts] == [AlertKind.CRITICAL_ELSEWHERE] * 2
    assert alerts[0].payload.unit == Unit.COMMAND
    assert alerts[0].event_id == alerts[1].event_id  # the replay repeats it under the same id
