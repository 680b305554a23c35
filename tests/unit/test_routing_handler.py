"""The routing handler: a decision that must alert the command centre publishes the alert, once per attempt."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml

from services.routing.handlers import route_case
from shared.domain.case import CaseStatus
from shared.domain.classification.policy import DEFAULT_POLICY_PATH, parse_policy
from shared.domain.triage import Assessment, Category, DangerKind, Unit, Urgency
from shared.events import AlertKind, CaseAlert, CaseClassified, CaseClassifiedPayload, CaseRouted, Channel

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class RoutingStore:
    """The four store calls routing makes, in memory."""

    def __init__(self) -> None:
        self.cases: dict[str, dict[str, Any]] = {"GT-1": {"_id": "GT-1", "status": "classified", "text": "…",
                                                          "received_at": NOW}}
        self.routings: dict[tuple[str, int], dict[str, Any]] = {}

    async def get_case(self, case_id: str) -> dict[str, Any] | None:
        return self.cases.get(case_id)

    async def record_routing(self, case_id: str, attempt: int, doc: dict[str, Any]) -> bool:
        return self.routings.setdefault((case_id, attempt), doc) is doc

    async def get_routing(self, case_id: str, attempt: int) -> dict[str, Any] | None:
        return self.routings.get((case_id, attempt))

    async def advance(self, case_id: str, before: set[CaseStatus], after: CaseStatus, fields: dict[str, Any],
                      **_: Any) -> bool:
        case = self.cases[case_id]
        if CaseStatus(case["status"]) not in before:
            return False
        case.update(fields, status=after.value)
        return True


def _classified(danger: DangerKind | None) -> bytes:
    assessment = Assessment(category=Category.FAMILY, urgency=Urgency.CRITICAL, confidence=0.9, danger=danger)
    event = CaseClassified(event_id="ev-1.classified", case_id="GT-1", source_channel=Channel.HOTLINE_12345,
                           payload=CaseClassifiedPayload(assessment=assessment))
    return event.model_dump_json().encode()


async def _route(body: bytes, policy_data: dict[str, Any]) -> tuple[list[CaseRouted], list[CaseAlert]]:
    routed: list[CaseRouted] = []
    alerts: list[CaseAlert] = []

    async def emit(e: CaseRouted) -> None:
        routed.append(e)

    async def alert(e: CaseAlert) -> None:
        alerts.append(e)

    store = RoutingStore()
    for _ in range(2):  # a replay
        await route_case(body, store=store, emit=emit, alert=alert,  # type: ignore[arg-type]
                         policy=parse_policy(policy_data), max_bytes=100_000, now=NOW)
    return routed, alerts


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
