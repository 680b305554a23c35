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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.store import CaseStore
from tools.demo import load_samples, make_events, publish_events

Db = AsyncDatabase[dict[str, Any]]
UNITS = ("police", "mediation", "visitor", "legal", "command")


def desk_tokens() -> dict[str, str]:
    """One fresh token per desk for this run (token → unit)."""
    return {f"demo-{unit}-{uuid.uuid4().hex}": unit for unit in UNITS}


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


async def _cases(db: Db, ids: list[str]) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d async for d in db.cases.find({"_id": {"$in": ids}})}


async def _settled(db: Db, action_ids: list[str]) -> bool:
    for action_id in action_ids:  # by key: the store answers those without scanning
        if not await db.desk_actions.find_one({"_id": action_id, "outcome": {"$in": ["applied", "rejected"]}}):
            return False
    return True


async def run_lifecycle(kafka: str, mongodb: str, database: str, desk_url: str, tokens: dict[str, str],
                        cases: int = 40, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    events = make_events(cases, load_samples(), uuid.uuid4().hex[:8], rng)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb, tz_aware=True)
    db = client[database]
    store = CaseStore(client, database)
    desks = Desks(desk_url, {unit: token for token, unit in tokens.items()})
    try:
        await store.set_clock_offset(0)
        sent = await publish_events(kafka, events)

        ids = sorted(sent)  # case ids: every complaint here opens its own case

        async def all_routed() -> bool:
            for case_id in ids:  # by key: the store answers those without scanning
                if not await db.cases.find_one({"_id": case_id, "status": "routed"}, {"_id": 1}):
                    return False
            return True

        await _wait(all_routed)
        case = await _cases(db, ids)

        # Morning: every desk looks at its queue. One case in five is handed back as wrongly routed.
        handed_back = [cid for i, cid in enumerate(ids) if i % 5 == 0]
        for cid in handed_back:
            desks.act(case[cid]["unit"], cid, "hand_back", reason="不属于本单位职责，请重新分派")
        # A desk tries to resolve a case it has not accepted: the state machine refuses.
        desks.act(case[ids[1]]["unit"], ids[1], "resolve", note="已处理")
        await _wait(lambda: _settled(db, [a for _, a in desks.submitted]))

        async def rerouted() -> bool:
            n = await db.routings.count_documents({"case_id": {"$in": handed_back}, "attempt": 1})
            return n == len(handed_back) and await db.cases.count_documents(
                {"_id": {"$in": handed_back}, "status": "routed"}) == len(handed_back)

        await _wait(rerouted)
        case = await _cases(db, ids)

        # Everything in the queues is accepted; petitions get notes and one asks for more time, twice.
        for cid in ids:
            desks.act(case[cid]["unit"], cid, "accept")
        await _wait(lambda: _settled(db, [a for _, a in desks.submitted]))
        visitor_cases = [cid for cid in ids if case[cid]["unit"] == "visitor"]
        for cid in visitor_cases[:1]:
            desks.act("visitor", cid, "request_extension", reason="需调取多年前的补偿档案", extension_days=30)
            desks.act("visitor", cid, "request_extension", reason="再延一次")
        mediation_cases = [cid for cid in ids if case[cid]["unit"] == "mediation"]
        for cid in mediation_cases[:2]:
            desks.act("mediation", cid, "record_agreement", note="双方达成调解协议，分期支付")

        # Afternoon: two thirds are resolved; return visits close most and reopen a few.
        to_resolve = [cid for i, cid in enumerate(ids) if i % 3 != 2]
        for cid in to_resolve:
            desks.act(case[cid]["unit"], cid, "resolve", note="已办结并答复来电人")
        await _wait(lambda: _settled(db, [a for _, a in desks.submitted]))
        for i, cid in enumerate(to_resolve):
            satisfaction = "dissatisfied" if i % 6 == 0 else ("basically_satisfied" if i % 2 else "satisfied")
            desks.act(case[cid]["unit"], cid, "return_visit", satisfaction=satisfaction)
        await _wait(lambda: _settled(db, [a for _, a in desks.submitted]))

        # The clock runs on: the open third meets its reminders, then its deadlines, then escalation.
        for days in (3, 10, 20, 45, 80):
            await store.set_clock_offset(days * 86400)
            await asyncio.sleep(2.5)

        async def timers_done() -> bool:
            return await db.timers.count_documents({"case_id": {"$in": ids}, "state": {"$in": ["pending", "firing"]},
                                                    "due_at": {"$lte": datetime.now(UTC) + timedelta(days=80)}}) == 0

        await _wait(timers_done)
        outcomes = Counter([(d["action"], d["outcome"]) async for d in db.desk_actions.find({"case_id": {"$in": ids}})])
        kinds = Counter([e["kind"] for c in (await _cases(db, ids)).values() for e in c.get("timeline", [])])
        final = Counter([d["status"] async for d in db.cases.find({"_id": {"$in": ids}})])
        return {
            "routed": len(ids),
            "accepted": outcomes[("accept", "applied")],
            "handed_back": outcomes[("hand_back", "applied")],
            "rerouted": await db.routings.count_documents({"case_id": {"$in": ids}, "attempt": {"$gte": 1}}),
            "extended": outcomes[("request_extension", "applied")],
            "resolved": outcomes[("resolve", "applied")],
            "reminded": kinds["reminder"],
            "overdue": kinds["overdue"],
            "escalated": kinds["escalated"],
            "reopened": final["reopened"],
            "closed": final["closed"],
            "rejected_actions": sum(n for (_, outcome), n in outcomes.items() if outcome == "rejected"),
            "lost": len(sent) - len(case),
        }
    finally:
        await client.close()
