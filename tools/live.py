"""`triage run` (what `make run` does): everything up, the desks' workbench with a token per unit, a steady
stream of complaints, routed cases shown as they reach their desks, and a clean stop on Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid

from faststream.kafka import KafkaBroker

from shared import topics
from shared.config import bootstrap_servers
from shared.events import CaseRouted
from tools import infra
from tools.demo import load_samples, make_events
from tools.desks_at_work import PATIENCE, desks_at_work
from tools.lifecycle import desk_tokens, supervisor_token
from tools.processes import PIPELINE, WITH_DESK_API, WITH_OPEN311, start_pipeline

_UNIT_LABELS = {
    "police": "派出所", "mediation": "调处中心", "visitor": "来访中心", "legal": "法律服务", "command": "指挥中心",
}


async def _stream(kafka: str, rate: float) -> None:
    rng = random.Random()
    samples = load_samples()
    run_id = uuid.uuid4().hex[:8]
    # No logger: the routed cases are the output. Topics: the broker's defaults, as in shared/runtime.py.
    broker = KafkaBroker(bootstrap_servers(kafka), client_id="triage-live", logger=None, allow_auto_create_topics=False)

    @broker.subscriber(topics.CASE_ROUTED, group_id=f"triage.live.{run_id}", auto_offset_reset="latest")
    async def show(event: CaseRouted) -> None:
        p = event.payload
        flags = ",".join(f.value for f in p.risk_flags)
        print(f"{event.case_id}  → {p.unit.value:<9} {_UNIT_LABELS[p.unit.value]:<5} {p.category.value:<16} "
              f"{p.urgency.value:<8} {flags:<24} {p.text[:36]}", flush=True)

    async with broker:
        await broker.start()
        print(f"feeding {rate:g} complaints/s into {topics.CHANNEL_EVENTS}; Ctrl-C to stop", flush=True)
        n = 0
        while True:
            event = make_events(1, samples, f"{run_id}-{n}", rng)[0]
            await broker.publish(event.model_dump(mode="json"), topics.CHANNEL_EVENTS, key=event.event_id.encode())
            n += 1
            await asyncio.sleep(1 / rate)


def _workbench(url: str, tokens: dict[str, str], supervisor: str) -> str:
    """What a newcomer needs to sign in: the addresses, and each unit's token (fresh for this run)."""
    width = max(len(label) for label in _UNIT_LABELS.values())
    lines = [f"desk workbench (工作台): {url}/desk/   sign in with a unit's token and your name",
             f"desk API (OpenAPI): {url}/openapi.json"]
    lines += [f"  {unit:<9} {_UNIT_LABELS[unit]:<{width}}  {token}" for token, unit in tokens.items()]
    lines += [f"supervisors' figures (督导): {url}/supervisor/   token {supervisor}"]
    return "\n".join(lines)


async def _run(kafka: str, rate: float, desk_url: str, tokens: dict[str, str], desks: bool) -> None:
    working = asyncio.create_task(desks_at_work(desk_url, tokens)) if desks else None
    try:
        await _stream(kafka, rate)
    finally:
        if working is not None:
            working.cancel()


def run_live(rate: float, desks: bool = True) -> int:
    tokens, supervisor = desk_tokens(), supervisor_token()
    open311_key = f"demo-portal-{uuid.uuid4().hex}"
    access = {"DESK_TOKENS": json.dumps(tokens), "SUPERVISOR_TOKENS": json.dumps([supervisor]),
              "OPEN311_KEYS": json.dumps({open311_key: "portal"})}
    endpoints, fleet = start_pipeline(access, {**PIPELINE, **WITH_DESK_API, **WITH_OPEN311})
    desk_url = f"http://127.0.0.1:{fleet['desk_api'].port}"
    print(_workbench(desk_url, tokens, supervisor), flush=True)
    print(f"Open311 gateway: http://127.0.0.1:{fleet['open311'].port}/open311/v2/   api_key {open311_key}\n"
          f"status feed: {topics.CASE_UPDATES} (`triage feed --follow`)", flush=True)
    if desks:
        print(f"demo desks work what has waited {PATIENCE.seconds} s in their queues (--no-desks: leave it all to "
              "you)", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(endpoints.kafka_bootstrap, rate, desk_url, tokens, desks))
    finally:
        print("\nstopping services ...", flush=True)
        fleet.stop()
        print("stopping local infrastructure ...", flush=True)
        infra.down()
    return 0
