"""The desk HTTP API against in-memory fakes of the case store and the publisher."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from pymongo import AsyncMongoClient

from services.desk_api.auth import TokenAuthority
from services.desk_api.disclosure import DISCLOSURE
from services.desk_api.handlers import PublishFailed
from services.desk_api.main import KafkaPublisher, create_app
from shared import topics
from shared.adapters.mongo import MongoDeskReads, MongoStorage
from shared.config import ConfigurationRefused, Settings, get_settings
from shared.domain.lifecycle import Action, CaseStatus
from shared.domain.triage import Unit
from shared.events import Channel, DeskAction

Document = dict[str, Any]

TOKENS = {f"token-{unit.value}-0123456789": unit for unit in Unit}
COMPLAINANT_KEY = SecretStr("unit-test-key-3f9a2c7e1b5d8046aa71c2e9")
T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
PHONE, ID_NUMBER, NAME = "13812345678", "11010519491231002X", "张三"


def desk_settings(**overrides: Any) -> Settings:
    """Settings a deployment could start with: a strong key and a token per unit (no DEV_MODE)."""
    return Settings(dev_mode=False, complainant_key_secret=COMPLAINANT_KEY, desk_tokens=TOKENS, **overrides)


def auth(unit: Unit | str) -> dict[str, str]:
    return {"Authorization": f"Bearer token-{Unit(unit).value}-0123456789"}


class FakeStore:
    """Cases, timeline and action records in memory; queries limited to what FerretDB serves here."""

    def __init__(self) -> None:
        self.cases: dict[str, Document] = {}
        self.timeline: list[Document] = []
        self.actions: dict[str, Document] = {}
        self.queries: list[Mapping[str, Any]] = []

    def add_case(self, case_id: str, unit: Unit, **fields: Any) -> Document:
        doc: Document = {
            "_id": case_id, "status": "routed", "unit": unit.value, "category": "neighbor", "urgency": "normal",
            "risk_flags": [], "text": "楼上漏水", "location": "临江新区", "channel": "12345",
            "complainant": {"name": NAME, "phone": PHONE, "id_number": ID_NUMBER},
            "complainant_key": "f" * 64, "received_at": T0, "repeat_count": 0, "needs_review": False,
        }
        doc.update(fields)
        self.cases[case_id] = doc
        return doc

    @staticmethod
    def _matches(doc: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
        for field, condition in query.items():
            value = doc.get(field)
            if isinstance(condition, Mapping):
                for op, operand in condition.items():
                    if op == "$in" and value not in operand:
                        return False
                    if op == "$ne" and value == operand:
                        return False
                    if op not in ("$in", "$ne"):
                        raise AssertionError(f"operator {op} is outside what the desk API should use")
            elif value != condition:
                return False
        return True

    async def ping(self) -> bool:
        return True

    async def find_cases(self, query: Mapping[str, Any], limit: int) -> list[Document]:
        self.queries.append(query)
        found = [deepcopy(c) for c in self.cases.values() if self._matches(c, query)]
        found.sort(key=lambda c: c["received_at"])
        return [{k: v for k, v in c.items() if k != "complainant"} for c in found[:limit]]

    async def get_case(self, case_id: str) -> Document | None:
        return deepcopy(self.cases.get(case_id))

    async def timeline_of(self, case_id: str) -> list[Document]:
        return sorted((e for e in self.timeline if e["case_id"] == case_id), key=lambda e: e["at"])

    async def get_action(self, action_id: str) -> Document | None:
        return self.actions.get(action_id)


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[DeskAction] = []
        self.fail = False

    async def __call__(self, event: DeskAction) -> None:
        if self.fail:
            raise PublishFailed("broker down")
        self.events.append(event)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk")


@pytest.fixture
async def client(store: FakeStore, publisher: FakePublisher) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(desk_settings(), store=store, publish=publisher)
    async with _client(app) as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: str) -> Document:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: Document = response.json()
    assert body["error"] == code
    assert "detail" in body
    return body


# --- authentication and scope -------------------------------------------------------------------------


async def test_missing_token_is_401(client: httpx.AsyncClient, store: FakeStore) -> None:
    store.add_case("GT-1", Unit.POLICE)
    for path in ("/desks/police/cases", "/desks/police/cases/GT-1", "/desks/police/actions/DA-1"):
        response = await client.get(path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert_error(await client.post("/desks/police/cases/GT-1/actions", json={}), 401, "unauthorized")


@pytest.mark.parametrize("header", [
    "Bearer wrong-token-0123456789",
    "Bearer token-police-012345678",  # a prefix of a real token
    "Basic token-police-0123456789",  # a real token under another scheme
    "Bearer ",
    "token-police-0123456789",
])
async def test_wrong_token_is_401(client: httpx.AsyncClient, header: str) -> None:
    assert_error(await client.get("/desks/police/cases", headers={"Authorization": header}), 401, "unauthorized")


async def test_another_units_queue_is_404(client: httpx.AsyncClient, store: FakeStore) -> None:
    store.add_case("GT-1", Unit.MEDIATION)
    assert_error(await client.get("/desks/mediation/cases", headers=auth(Unit.POLICE)), 404, "not_found")
    # A desk that does not exist answers exactly like one that is not yours.
    other = await client.get("/desks/mediation/cases", headers=auth(Unit.POLICE))
    unknown = await client.get("/desks/nosuchunit/cases", headers=auth(Unit.POLICE))
    assert other.json() == unknown.json() and unknown.status_code == 404
    assert store.queries == []  # refused before touching the store


async def test_another_units_case_is_404(client: httpx.AsyncClient, store: FakeStore,
                                         publisher: FakePublisher) -> None:
    store.add_case("GT-MED", Unit.MEDIATION)
    missing = await client.get("/desks/police/cases/GT-NONE", headers=auth(Unit.POLICE))
    assert_error(missing, 404, "not_found")
    # Through the police desk's own path: the case exists but is not with the police.
    mine = await client.get("/desks/police/cases/GT-MED", headers=auth(Unit.POLICE))
    assert mine.status_code == 404 and mine.json() == missing.json()
    # Through the mediation desk's path with a police token.
    assert_error(await client.get("/desks/mediation/cases/GT-MED", headers=auth(Unit.POLICE)), 404, "not_found")
    action = await client.post("/desks/police/cases/GT-MED/actions", headers=auth(Unit.POLICE),
                               json={"action": "accept", "actor": "officer.li"})
    assert_error(action, 404, "not_found")
    assert publisher.events == []


# --- the queue ----------------------------------------------------------------------------------------


def _deadline(rule: str, due: str) -> Document:
    return {"rule": rule, "start": "2026-09-01", "due": due, "source": "test", "opened_at": T0}


async def test_own_queue_is_filtered_and_sorted_by_deadline(client: httpx.AsyncClient, store: FakeStore) -> None:
    hour = timedelta(hours=1)
    store.add_case("GT-LATE", Unit.VISITOR, received_at=T0,
                   deadlines={"visitor_accept": _deadline("visitor.accept", "2026-09-20")})
    store.add_case("GT-SOON", Unit.VISITOR, received_at=T0 + hour, overdue=True,
                   deadlines={"visitor_accept": _deadline("visitor.accept", "2026-09-30"),
                              "hotline_complaint": _deadline("hotline.complaint", "2026-09-10")})
    store.add_case("GT-NONE-CRIT", Unit.VISITOR, received_at=T0 + 2 * hour, urgency="critical")
    store.add_case("GT-NONE-LOW", Unit.VISITOR, received_at=T0 + 3 * hour, urgency="low")
    store.add_case("GT-SAME-DAY-HIGH", Unit.VISITOR, received_at=T0 + 4 * hour, urgency="high", status="accepted",
                   deadlines={"visitor_accept": _deadline("visitor.accept", "2026-09-20")})
    store.add_case("GT-CLOSED", Unit.VISITOR, status="closed",
                   deadlines={"visitor_accept": _deadline("visitor.accept", "2026-09-02")})
    store.add_case("GT-OTHER-UNIT", Unit.LEGAL, deadlines={"x": _deadline("legal_aid.decision", "2026-09-02")})

    response = await client.get("/desks/visitor/cases", headers=auth(Unit.VISITOR))
    assert response.status_code == 200
    body = response.json()
    ids = [c["case_id"] for c in body["cases"]]
    # Nearest due first; the same day goes to the more urgent; no deadline last, critical before low.
    assert ids == ["GT-SOON", "GT-SAME-DAY-HIGH", "GT-LATE", "GT-NONE-CRIT", "GT-NONE-LOW"]
    assert body["unit"] == "visitor" and body["count"] == 5 and body["truncated"] is False
    first = body["cases"][0]
    assert first["next_deadline"]["due"] == "2026-09-10" and first["next_deadline"]["rule"] == "hotline.complaint"
    assert first["overdue"] is True
    assert "complainant" not in first and "complainant_key" not in first  # a queue shows nobody's data

    async def ids_for(query: str) -> list[str]:
        r = await client.get(f"/desks/visitor/cases?{query}", headers=auth(Unit.VISITOR))
        assert r.status_code == 200, r.text
        return [c["case_id"] for c in r.json()["cases"]]

    assert await ids_for("status=accepted") == ["GT-SAME-DAY-HIGH"]
    assert await ids_for("status=closed&status=accepted") == ["GT-CLOSED", "GT-SAME-DAY-HIGH"]
    assert await ids_for("status=closed,accepted") == ["GT-CLOSED", "GT-SAME-DAY-HIGH"]
    assert await ids_for("overdue=true") == ["GT-SOON"]
    assert "GT-SOON" not in await ids_for("overdue=false")
    assert len(await ids_for("overdue=false")) == 4
    assert await ids_for("limit=2") == ["GT-SOON", "GT-SAME-DAY-HIGH"]
    assert all(q["unit"] == "visitor" for q in store.queries)


async def test_met_deadlines_do_not_order_the_queue_but_show_in_detail(client: httpx.AsyncClient,
                                                                        store: FakeStore) -> None:
    met = {**_deadline("visitor.accept", "2026-09-03"), "met_at": T0}
    store.add_case("GT-MET", Unit.VISITOR, status="accepted",
                   deadlines={"visitor_accept": met, "visitor_resolve": _deadline("visitor.resolve", "2026-11-02")})
    store.add_case("GT-OPEN", Unit.VISITOR, deadlines={"visitor_accept": _deadline("visitor.accept", "2026-09-16")})
    body = (await client.get("/desks/visitor/cases", headers=auth(Unit.VISITOR))).json()
    assert [c["case_id"] for c in body["cases"]] == ["GT-OPEN", "GT-MET"]
    assert body["cases"][1]["next_deadline"]["rule"] == "visitor.resolve"
    detail = (await client.get("/desks/visitor/cases/GT-MET", headers=auth(Unit.VISITOR))).json()["case"]
    assert [(d["rule"], "met_at" in d) for d in detail["deadlines"]] == [("visitor.accept", True),
                                                                         ("visitor.resolve", False)]


@pytest.mark.parametrize(("query", "field"), [
    ("status=lost", "status"), ("overdue=maybe", "overdue"), ("limit=0", "limit"), ("limit=201", "limit"),
    ("limit=ten", "limit"),
])
async def test_queue_rejects_bad_filters(client: httpx.AsyncClient, query: str, field: str) -> None:
    body = assert_error(await client.get(f"/desks/police/cases?{query}", headers=auth(Unit.POLICE)),
                        422, "invalid_query")
    assert [p["field"] for p in body["detail"]] == [field]


async def test_queue_scan_bound_is_reported(store: FakeStore, publisher: FakePublisher) -> None:
    for i in range(60):
        store.add_case(f"GT-{i:03d}", Unit.LEGAL, received_at=T0 + timedelta(minutes=i))
    async with _client(create_app(desk_settings(desk_queue_scan_limit=50), store=store, publish=publisher)) as c:
        body = (await c.get("/desks/legal/cases?limit=200", headers=auth(Unit.LEGAL))).json()
    assert body["count"] == 50 and body["truncated"] is True


# --- detail and masking -------------------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "phone", "id_number"), [
    (Unit.POLICE, PHONE, ID_NUMBER),
    (Unit.VISITOR, PHONE, ID_NUMBER),
    (Unit.MEDIATION, PHONE, "110***********002X"),
    (Unit.LEGAL, PHONE, "110***********002X"),
    (Unit.COMMAND, "138****5678", "110***********002X"),
])
async def test_detail_masks_per_unit(client: httpx.AsyncClient, store: FakeStore, unit: Unit, phone: str,
                                     id_number: str) -> None:
    store.add_case("GT-1", unit, deadlines={"mediation_resolve": _deadline("mediation.resolve", "2026-10-01")},
                   signature=[1, 2, 3])
    store.timeline += [
        {"_id": "GT-1:b", "case_id": "GT-1", "at": T0 + timedelta(minutes=5), "kind": "routed",
         "detail": {"unit": unit.value, "complainant": {"phone": PHONE}}},
        {"_id": "GT-1:a", "case_id": "GT-1", "at": T0, "kind": "received", "detail": {"channel": "12345"}},
        {"_id": "GT-2:a", "case_id": "GT-2", "at": T0, "kind": "received", "detail": {}},
    ]
    response = await client.get(f"/desks/{unit.value}/cases/GT-1", headers=auth(unit))
    assert response.status_code == 200, response.text
    body = response.json()
    case = body["case"]
    assert case["complainant"] == {"name": NAME, "phone": phone, "id_number": id_number}
    assert case["case_id"] == "GT-1" and case["unit"] == unit.value and case["text"] == "楼上漏水"
    assert case["deadlines"][0]["due"] == "2026-10-01"
    assert "complainant_key" not in case and "signature" not in case
    assert [e["kind"] for e in body["timeline"]] == ["received", "routed"]
    assert body["timeline"][1]["detail"] == {"unit": unit.value}  # personal keys never shown
    if phone != PHONE:
        assert PHONE not in response.text
    if id_number != ID_NUMBER:
        assert ID_NUMBER not in response.text


def test_every_unit_has_a_disclosure_policy() -> None:
    assert set(DISCLOSURE) == set(Unit)


# --- actions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ({"action": "fly", "actor": "a1"}, "action"),
    ({"action": "classify", "actor": "a1"}, "action"),  # a pipeline step, not a desk action
    ({"actor": "a1"}, "action"),
    ({"action": "hand_back", "actor": "a1"}, "reason"),
    ({"action": "request_extension", "actor": "a1", "reason": "   "}, "reason"),
    ({"action": "return_visit", "actor": "a1"}, "satisfaction"),
    ({"action": "return_visit", "actor": "a1", "satisfaction": "thrilled"}, "satisfaction"),
    ({"action": "progress_note", "actor": "a1", "note": "x" * 2001}, "note"),
    ({"action": "accept", "actor": "a1", "unit": "police"}, "unit"),
    ({"action": "accept"}, "actor"),
    ({"action": "accept", "actor": "a1", "colour": "red"}, "colour"),
    ({"action": "progress_note", "actor": "a1", "note": "bell\x07"}, "note"),
])
async def test_invalid_actions_are_422(client: httpx.AsyncClient, store: FakeStore, publisher: FakePublisher,
                                       body: Document, field: str) -> None:
    store.add_case("GT-1", Unit.POLICE)
    response = await client.post("/desks/police/cases/GT-1/actions", headers=auth(Unit.POLICE), json=body)
    detail = assert_error(response, 422, "invalid_action")["detail"]
    assert field in [p["field"] for p in detail], detail
    assert all(p["message"] for p in detail)
    assert publisher.events == []


async def test_action_messages_say_what_is_wrong(client: httpx.AsyncClient, store: FakeStore) -> None:
    store.add_case("GT-1", Unit.POLICE)

    async def messages(body: Document) -> str:
        r = await client.post("/desks/police/cases/GT-1/actions", headers=auth(Unit.POLICE), json=body)
        return " | ".join(p["message"] for p in r.json()["detail"])

    assert "unknown action" in await messages({"action": "fly", "actor": "a"})
    assert "reason is required to hand back" in await messages({"action": "hand_back", "actor": "a"})
    assert "satisfaction" in await messages({"action": "return_visit", "actor": "a"})
    assert "at most 2000 characters" in await messages({"action": "progress_note", "actor": "a", "note": "x" * 2001})


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
async def test_malformed_action_bodies_are_422(client: httpx.AsyncClient, store: FakeStore, raw: bytes) -> None:
    store.add_case("GT-1", Unit.POLICE)
    response = await client.post("/desks/police/cases/GT-1/actions", headers=auth(Unit.POLICE), content=raw)
    assert response.status_code == 422 and response.json()["error"] in ("invalid_json", "invalid_body")


async def test_oversize_body_is_413(client: httpx.AsyncClient, store: FakeStore) -> None:
    store.add_case("GT-1", Unit.POLICE)
    body = {"action": "progress_note", "actor": "a", "note": "x" * 40_000}
    assert_error(await client.post("/desks/police/cases/GT-1/actions", headers=auth(Unit.POLICE), json=body),
                 413, "body_too_large")


async def test_a_valid_action_publishes_one_desk_action(client: httpx.AsyncClient, store: FakeStore,
                                                        publisher: FakePublisher) -> None:
    store.add_case("GT-1", Unit.VISITOR, channel="letter")
    response = await client.post(
        "/desks/visitor/cases/GT-1/actions", headers=auth(Unit.VISITOR),
        json={"action": "request_extension", "actor": "clerk.wang", "reason": "需要调取档案", "extension_days": 30},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "submitted"
    [event] = publisher.events
    assert body["action_id"] == event.event_id and event.event_id.startswith("DA-")
    assert event.case_id == "GT-1" and event.source_channel is Channel.LETTER
    assert event.payload.unit is Unit.VISITOR and event.payload.action is Action.REQUEST_EXTENSION
    assert event.payload.reason == "需要调取档案" and event.payload.extension_days == 30
    DeskAction.model_validate_json(event.model_dump_json())  # what goes on the topic reads back

    again = await client.post("/desks/visitor/cases/GT-1/actions", headers=auth(Unit.VISITOR),
                              json={"action": "accept", "actor": "clerk.wang"})
    assert again.json()["action_id"] != body["action_id"]  # every submission is its own event
    assert len(publisher.events) == 2


async def test_broker_failure_is_503_and_nothing_claimed(client: httpx.AsyncClient, store: FakeStore,
                                                         publisher: FakePublisher) -> None:
    store.add_case("GT-1", Unit.POLICE)
    publisher.fail = True
    response = await client.post("/desks/police/cases/GT-1/actions", headers=auth(Unit.POLICE),
                                 json={"action": "accept", "actor": "a1"})
    assert_error(response, 503, "broker_unavailable")


async def test_kafka_publisher_keys_by_case_on_the_desk_actions_topic() -> None:
    sent: list[tuple[Any, str, Any, Any]] = []

    class StubBroker:
        async def connect(self) -> None:
            return None

        async def stop(self) -> None:
            return None

        async def publish(self, message: Any, topic: str, *, key: Any, headers: Any) -> None:
            sent.append((message, topic, key, headers))

    publisher = KafkaPublisher("127.0.0.1:1", timeout=1.0)
    publisher.broker = StubBroker()  # type: ignore[assignment]
    event = DeskAction.model_validate({
        "event_id": "DA-1", "case_id": "GT-9", "source_channel": "12345",
        "payload": {"unit": "police", "action": "accept", "actor": "a1"},
    })
    await publisher(event)
    await publisher.close()
    assert sent == [(event, topics.DESK_ACTIONS, b"GT-9", {"event-type": "desk.action"})]


async def test_action_status_pending_then_recorded(client: httpx.AsyncClient, store: FakeStore) -> None:
    pending = await client.get("/desks/legal/actions/DA-abc", headers=auth(Unit.LEGAL))
    assert pending.json() == {"action_id": "DA-abc", "status": "submitted"}
    store.actions["DA-abc"] = {"_id": "DA-abc", "unit": "legal", "case_id": "GT-1", "action": "resolve",
                               "outcome": "rejected", "reason": "cannot resolve a case that is routed"}
    recorded = (await client.get("/desks/legal/actions/DA-abc", headers=auth(Unit.LEGAL))).json()
    assert recorded["status"] == "rejected" and recorded["reason"].startswith("cannot resolve")
    assert_error(await client.get("/desks/police/actions/DA-abc", headers=auth(Unit.POLICE)), 404, "not_found")
    assert_error(await client.get("/desks/legal/actions/DA-abc", headers=auth(Unit.POLICE)), 404, "not_found")
    store.actions["DA-nounit"] = {"_id": "DA-nounit", "outcome": "applied"}  # cannot tell whose: not shown
    assert_error(await client.get("/desks/legal/actions/DA-nounit", headers=auth(Unit.LEGAL)), 404, "not_found")


# --- untrusted text, outages, health ------------------------------------------------------------------


async def test_script_tags_in_complaints_are_escaped_not_stripped(client: httpx.AsyncClient,
                                                                  store: FakeStore) -> None:
    text = '</script><script>alert("x")</script> & 邻居 <b>'
    store.add_case("GT-1", Unit.MEDIATION, text=text, location="<img src=x onerror=alert(1)>")
    for path in ("/desks/mediation/cases/GT-1", "/desks/mediation/cases"):
        response = await client.get(path, headers=auth(Unit.MEDIATION))
        raw = response.content.decode()
        assert "<" not in raw and ">" not in raw and "&" not in raw
        assert "\\u003c/script\\u003e" in raw and "\\u0026" in raw
    detail = (await client.get("/desks/mediation/cases/GT-1", headers=auth(Unit.MEDIATION))).json()["case"]
    assert detail["text"] == text and detail["location"] == "<img src=x onerror=alert(1)>"


async def test_store_outage_is_503_not_a_traceback(publisher: FakePublisher) -> None:
    # The real MongoDB adapter pointed at a port where nothing listens: the adapter's error handling is exercised.
    client_: AsyncMongoClient[Document] = AsyncMongoClient("mongodb://127.0.0.1:1", serverSelectionTimeoutMS=150,
                                                           connectTimeoutMS=150, tz_aware=True)
    store = MongoDeskReads(MongoStorage(client_, "desk_api_unit"), ["status"])
    app = create_app(desk_settings(), store=store, publish=publisher)
    try:
        async with _client(app) as c:
            for path in ("/desks/police/cases", "/desks/police/cases/GT-1", "/desks/police/actions/DA-1"):
                response = await c.get(path, headers=auth(Unit.POLICE))
                assert_error(response, 503, "store_unavailable")
                assert "Traceback" not in response.text
            response = await c.post("/desks/police/cases/GT-1/actions", headers=auth(Unit.POLICE),
                                    json={"action": "accept", "actor": "a1"})
            assert_error(response, 503, "store_unavailable")
            health = await c.get("/health")
            assert health.status_code == 503 and health.json()["store"] is False
    finally:
        await client_.close()
    assert publisher.events == []


async def test_unexpected_failure_is_a_json_500(publisher: FakePublisher) -> None:
    class Broken(FakeStore):
        async def get_case(self, case_id: str) -> Document | None:
            raise RuntimeError(f"boom with {PHONE}")

    app = create_app(desk_settings(), store=Broken(), publish=publisher)
    async with _client(app) as c:
        response = await c.get("/desks/police/cases/GT-1", headers=auth(Unit.POLICE))
    assert_error(response, 500, "internal_error")
    assert PHONE not in response.text


async def test_health_and_metrics_need_no_token(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    await client.get("/desks/police/cases", headers=auth(Unit.POLICE))
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'triage_desk_api_requests_total{route="/desks/{unit}/cases",status="200",unit="police"}' in metrics.text


async def test_unknown_paths_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/nowhere"), 404, "not_found")
    assert_error(await client.delete("/desks/police/cases", headers=auth(Unit.POLICE)), 405, "method_not_allowed")


async def test_no_personal_data_in_logs(client: httpx.AsyncClient, store: FakeStore,
                                        caplog: pytest.LogCaptureFixture) -> None:
    store.add_case("GT-1", Unit.POLICE)
    with caplog.at_level(logging.DEBUG):
        await client.get("/desks/police/cases/GT-1", headers=auth(Unit.POLICE))
        await client.post("/desks/police/cases/GT-1/actions", headers=auth(Unit.POLICE),
                          json={"action": "progress_note", "actor": "a1", "note": f"called {PHONE}"})
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "desk action submitted" in logged
    for secret in (PHONE, ID_NUMBER, NAME, "token-police-0123456789"):
        assert secret not in logged


# --- settings and tokens ------------------------------------------------------------------------------


def test_tokens_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_TOKENS", json.dumps({"s3cr3t-police": "police", "s3cr3t-police-2": "police",
                                                  "s3cr3t-legal": "legal"}))
    authority = TokenAuthority(Settings().desk_tokens)
    assert authority.unit_for("Bearer s3cr3t-police") is Unit.POLICE
    assert authority.unit_for("bearer  s3cr3t-police-2 ") is Unit.POLICE
    assert authority.unit_for("Bearer s3cr3t-legal") is Unit.LEGAL
    assert authority.unit_for("Bearer s3cr3t") is None
    assert authority.unit_for(None) is None


@pytest.mark.parametrize("tokens", [{"short": "police"}, {"has space-123": "police"}, {"s3cr3t-x-123": "army"}])
def test_bad_token_settings_fail_without_echoing_the_token(monkeypatch: pytest.MonkeyPatch,
                                                           tokens: dict[str, str]) -> None:
    monkeypatch.setenv("DESK_TOKENS", json.dumps(tokens))
    with pytest.raises(ValidationError) as info:
        Settings()
    assert next(iter(tokens)) not in str(info.value)


def test_the_deployed_app_is_built_when_served_and_refused_without_its_secrets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from services.desk_api import main

    for name in ("DEV_MODE", "DESK_TOKENS", "COMPLAINANT_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no .env
    get_settings.cache_clear()
    main._deployed_app.cache_clear()
    try:
        with pytest.raises(ConfigurationRefused, match=r"COMPLAINANT_KEY_SECRET.*DESK_TOKENS"):
            main.app  # noqa: B018 -- what uvicorn does to find the app
        get_settings.cache_clear()
        monkeypatch.setenv("DEV_MODE", "true")
        assert callable(main.app)
    finally:
        get_settings.cache_clear()
        main._deployed_app.cache_clear()


def test_case_status_default_excludes_closed() -> None:
    from services.desk_api.models import parse_queue_query

    query = parse_queue_query([], None, None)
    assert CaseStatus.CLOSED not in query.statuses and CaseStatus.ROUTED in query.statuses
    assert query.mongo_filter(Unit.POLICE)["status"]["$in"][0] == "received"


def test_unparseable_token_settings_do_not_echo_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_TOKENS", '{"s3cr3t-police-xyz": police}')
    with pytest.raises(Exception) as info:
        Settings()
    assert "s3cr3t-police-xyz" not in str(info.value) and "s3cr3t-police-xyz" not in repr(info.value)
