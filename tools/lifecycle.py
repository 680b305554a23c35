"""`triage demo --lifecycle`: a scripted day at the five desks, on the real infrastructure.

Desks accept, hand back, extend, resolve and make return visits through the desk API; a simulated clock
then passes the deadlines so reminders, overdue notices and escalations fire from the durable timers.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from shared.adapters.mongo import MongoStorage
from shared.domain.case import Case
from shared.domain.lifecycle import CaseStatus
from shared.domain.workdays import local_date
from tools.demo import load_samples, make_events, publish_events

UNITS = ("police", "mediation", "visitor", "legal", "command")


def desk_tokens() -> dict[str, str]:
    """One fresh token per desk for this run (token → unit)."""
    return {f"demo-{unit}-{uuid.uuid4().hex}": unit for unit in UNITS}


def supervisor_token() -> str:
    """A fresh supervisors' token for this run."""
    return f"demo-supervisor-{uuid.uuid4().hex}"


@dataclass
class Desks:
    """The five desks, talking to the desk API as their staff's screens would."""

    base_url: str
    tokens: dict[str, str]  # unit → token
    submitted: list[tuple[str, str]] = field(default_factory=list)  # (unit, action id)

    def act(self, unit: str, case_id: str, action: str, **fields: Any) -> str:
        body = json.dumps({"action": action, "actor": f"{unit}-desk-1", **fields}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/desks/{unit}/cases/{case_id}/actions", data=body, method="POST",
            headers={"Authorization": f"Bearer {self.tokens[unit]}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            action_id = str(json.loads(reply.read())["action_id"])
        self.submitted.append((unit, action_id))
        return action_id


async def _wait(probe: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := await probe():
            return found
        await asyncio.sleep(0.3)
    raise TimeoutError("the pipeline did not get there in time")


async def _cases(storage: MongoStorage, ids: list[str]) -> dict[str, Case]:
    found = await asyncio.gather(*(storage.cases.get(cid) for cid in ids))
    return {case.id: case for case in found if case is not None}


async def _outcomes(storage: MongoStorage, action_ids: list[str]) -> list[Mapping[str, Any] | None]:
    return list(await asyncio.gather(*(storage.actions.get(a) for a in action_ids)))


async def _settled(storage: MongoStorage, action_ids: list[str]) -> bool:
    return all(r is not None and r["outcome"] in ("applied", "rejected") for r in await _outcomes(storage, action_ids))


def _unit(case: Case) -> str:
    assert case.unit is not None
    return case.unit.value


async def run_lifecycle(kafka: str, mongodb: str, database: str, desk_url: str, tokens: dict[str, str],
                        cases: int = 40, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    events = make_events(cases, load_samples(), uuid.uuid4().hex[:8], rng)
    storage = MongoStorage(AsyncMongoClient(mongodb, tz_aware=True), database)
    desks = Desks(desk_url, {unit: token for token, unit in tokens.items()})

    def submitted() -> list[str]:
        return [a for _, a in desks.submitted]

    try:
        await storage.clock.set_offset_seconds(0)
        sent = await publish_events(kafka, events)
        ids = sorted(sent)  # case ids: every complaint here opens its own case

        async def all_routed() -> bool:
            found = await _cases(storage, ids)
            return len(found) == len(ids) and all(c.status is CaseStatus.ROUTED for c in found.values())

        await _wait(all_routed)
        case = await _cases(storage, ids)

        # Morning: every desk looks at its queue. One case in five is handed back as wrongly routed.
        handed_back = [cid for i, cid in enumerate(ids) if i % 5 == 0]
        for cid in handed_back:
            desks.act(_unit(case[cid]), cid, "hand_back", reason="不属于本单位职责，请重新分派")
        # A desk tries to resolve a case it has not accepted: the state machine refuses.
        desks.act(_unit(case[ids[1]]), ids[1], "resolve", note="已处理")
        await _wait(lambda: _settled(storage, submitted()))

        async def rerouted() -> bool:
            found = (await _cases(storage, handed_back)).values()
            return all("1" in c.routings and c.status is CaseStatus.ROUTED for c in found)

        await _wait(rerouted)
        case = await _cases(storage, ids)

        # Everything in the queues is accepted; petitions get notes and one asks for more time, twice.
        for cid in ids:
            desks.act(_unit(case[cid]), cid, "accept")
        await _wait(lambda: _settled(storage, submitted()))
        visitor_cases = [cid for cid in ids if _unit(case[cid]) == "visitor"]
        for cid in visitor_cases[:1]:
            desks.act("visitor", cid, "request_extension", reason="需调取多年前的补偿档案", extension_days=30)
            desks.act("visitor", cid, "request_extension", reason="再延一次")
        mediation_cases = [cid for cid in ids if _unit(case[cid]) == "mediation"]
        for cid in mediation_cases[:2]:
            desks.act("mediation", cid, "record_agreement", note="双方达成调解协议，分期支付")

        # Afternoon: two thirds are resolved; return visits close most and reopen a few.
        to_resolve = [cid for i, cid in enumerate(ids) if i % 3 != 2]
        for cid in to_resolve:
            desks.act(_unit(case[cid]), cid, "resolve", note="已办结并答复来电人")
        await _wait(lambda: _settled(storage, submitted()))
        for i, cid in enumerate(to_resolve):
            satisfaction = "dissatisfied" if i % 6 == 0 else ("basically_satisfied" if i % 2 else "satisfied")
            desks.act(_unit(case[cid]), cid, "return_visit", satisfaction=satisfaction)
        await _wait(lambda: _settled(storage, submitted()))

        # The clock runs on: the open third meets its reminders, then its deadlines, then escalation.
        days = 80
        for passed in (3, 10, 20, 45, days):
            await storage.clock.set_offset_seconds(passed * 86400)
            await asyncio.sleep(2.5)

        async def timers_done() -> bool:
            """The scan has finished every timer due before yesterday (simulated): its cursor moved past them."""
            cursor = await storage.timers.cursor()
            return cursor is not None and cursor >= (local_date(datetime.now(UTC)) + timedelta(days - 1)).isoformat()

        await _wait(timers_done)
        records = [r for r in await _outcomes(storage, submitted()) if r is not None]
        outcomes = Counter([(r["action"], r["outcome"]) for r in records])
        timelines = await asyncio.gather(*(storage.cases.timeline(cid) for cid in ids))
        kinds = Counter([e.kind for timeline in timelines for e in timeline])
        final = await _cases(storage, ids)
        statuses = Counter([c.status.value for c in final.values()])
        return {
            "routed": len(ids),
            "accepted": outcomes[("accept", "applied")],
            "handed_back": outcomes[("hand_back", "applied")],
            "rerouted": sum(len(c.routings) - 1 for c in final.values()),
            "extended": outcomes[("request_extension", "applied")],
            "resolved": outcomes[("resolve", "applied")],
            "reminded": kinds["reminder"],
            "overdue": kinds["overdue"],
            "escalated": kinds["escalated"],
            "reopened": statuses["reopened"],
            "closed": statuses["closed"],
            "rejected_actions": sum(n for (_, outcome), n in outcomes.items() if outcome == "rejected"),
            "lost": len(sent) - len(case),
        }
    finally:
        await storage.close()
