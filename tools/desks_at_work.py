"""Demo desks for `triage run`: stand-ins for the units' staff, working through the desk API what has waited in
their queues, so that a newcomer's run shows the supervisors' rates moving, not only cases arriving. They leave
a case alone for its first PATIENCE, so a person at the workbench gets there first; `triage run --no-desks`
leaves every case to people."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

log = logging.getLogger(__name__)
PATIENCE = timedelta(seconds=30)
ROUND_SECONDS = 3.0
PER_ROUND = 12  # actions per desk per round: more than `triage run`'s complaints bring (each case needs 3 or 4)
SATISFACTION = (("satisfied", True), ("satisfied", True), ("satisfied", True), ("basically_satisfied", True),
                ("basically_satisfied", False), ("dissatisfied", False))


def next_step(unit: str, status: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    """What a desk does next with a case in this status; None: nothing for the desk (it waits on others)."""
    if status in ("routed", "reopened", "escalated"):
        return "accept", {}
    if status == "accepted" and unit == "mediation" and rng.random() < 0.6:
        return "record_agreement", {"note": "双方自愿达成调解协议", "amount": str(rng.randrange(500, 20_000, 100))}
    if status in ("accepted", "in_progress"):
        return "resolve", {"note": "已依法处理并答复来电人（演示）"}
    if status == "resolved":
        satisfaction, solved = rng.choice(SATISFACTION)
        return "return_visit", {"satisfaction": satisfaction, "solved": solved}
    return None


async def desks_at_work(base_url: str, tokens: dict[str, str], seed: int | None = None) -> None:
    """Forever (until cancelled): every few seconds, each desk takes the cases that have waited longest."""
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        while True:
            for token, unit in tokens.items():
                try:
                    await _round(client, unit, {"Authorization": f"Bearer {token}"}, rng)
                except httpx.HTTPError as exc:  # the app restarting, say: try again next round
                    log.debug("demo desk %s skipped a round: %s", unit, exc)
            await asyncio.sleep(ROUND_SECONDS)


async def _round(client: httpx.AsyncClient, unit: str, auth: dict[str, str], rng: random.Random) -> None:
    queue = (await client.get(f"/desks/{unit}/cases", params={"limit": 200}, headers=auth)).json()
    waited = datetime.now(UTC) - PATIENCE
    done = 0
    for row in sorted(queue.get("cases", []), key=lambda r: r["received_at"]):
        if done == PER_ROUND or datetime.fromisoformat(row["received_at"]) > waited:
            break
        step = next_step(unit, row["status"], rng)
        if step is None:
            continue
        action, fields = step
        await client.post(f"/desks/{unit}/cases/{row['case_id']}/actions", headers=auth,
                          json={"action": action, "actor": "演示坐席", **fields})
        done += 1
