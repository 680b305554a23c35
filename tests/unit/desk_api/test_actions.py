"""Desk actions: validated, published once to the desk-actions topic, their outcome read back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.desk_api.main import ActionPublisher
from shared import topics
from shared.domain.lifecycle import Action
from shared.domain.triage import Unit
from shared.events import Channel, DeskAction
from tests.unit.desk_api.fakes import (
    Document,
    FakePublisher,
    FakeStore,
    assert_error,
    auth,
)


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
    assert "answer given to the complainant" in await messages({"action": "resolve", "actor": "a"})


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

    publisher = ActionPublisher("127.0.0.1:1", timeout=1.0)
    publisher.kafka.broker = StubBroker()  # type: ignore[assignment]
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




async def test_an_idempotency_key_makes_a_retried_post_one_action(client: httpx.AsyncClient, store: FakeStore,
                                                                   publisher: FakePublisher) -> None:
    store.add_case("GT-1", Unit.POLICE)
    headers = {**auth(Unit.POLICE), "Idempotency-Key": "pos-7f3a-0001"}
    body = {"action": "accept", "actor": "王警官"}
    first = await client.post("/desks/police/cases/GT-1/actions", headers=headers, json=body)
    retried = await client.post("/desks/police/cases/GT-1/actions", headers=headers, json=body)
    assert first.status_code == retried.status_code == 202
    assert first.json()["action_id"] == retried.json()["action_id"]
    assert {e.event_id for e in publisher.events} == {first.json()["action_id"]}  # one action, however often sent
    # The same key from another desk is another action; the same key for another request is refused.
    other = await client.post("/desks/police/cases/GT-1/actions", headers=headers,
                              json={"action": "escalate", "actor": "王警官"})
    assert_error(other, 422, "idempotency_key_reused")
    bad = await client.post("/desks/police/cases/GT-1/actions", headers={**headers, "Idempotency-Key": "a b"},
                            json=body)
    assert_error(bad, 422, "invalid_idempotency_key")


async def test_the_openapi_document_describes_the_desk_api(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert {"/desks/{unit}/cases", "/desks/{unit}/cases/{case_id}", "/desks/{unit}/cases/{case_id}/actions",
            "/desks/{unit}/cases/{case_id}/reveal", "/desks/{unit}/actions/{action_id}"} <= set(document["paths"])
    post = document["paths"]["/desks/{unit}/cases/{case_id}/actions"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in post["parameters"]}
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    assert not any(path.startswith("/desk/") for path in document["paths"])  # the pages are not the API
    assert (await client.get("/docs")).status_code == 404  # its pages load scripts from a CDN


async def test_json_nested_past_the_parsers_depth_is_422(client: httpx.AsyncClient, store: FakeStore) -> None:
    store.add_case("GT-1", Unit.POLICE)
    reply = await client.post("/desks/police/cases/GT-1/actions", content=b"[" * 10_000,
                              headers={**auth(Unit.POLICE), "Content-Type": "application/json"})
    assert_error(reply, 422, "invalid_json")
