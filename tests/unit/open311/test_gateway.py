"""The Open311 GeoReport v2 gateway against fakes: the service list, posting, tokens and reading back."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import httpx
import pytest

from shared.config import ConfigurationRefused, Settings
from shared.domain.triage import Category
from shared.events import Channel, case_id_for
from tests.unit.open311.fakes import (
    BASE,
    KEY,
    NOW,
    OTHER_KEY,
    FakePublisher,
    FakeStore,
    app_of,
    client_of,
    form,
    routed_case,
    settings,
)

PERSONAL = ("张三", "13800138000", "zhang@example.com")


def errors_of(reply: httpx.Response, status: int) -> list[str]:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert [e["code"] for e in body] == [status] * len(body) and body
    return [e["description"] for e in body]


async def post(client: httpx.AsyncClient, ext: str = "json", headers: dict[str, str] | None = None,
               **fields: str) -> httpx.Response:
    return await client.post(f"{BASE}/requests.{ext}", data=form(**fields), headers=headers)


async def filed(client: httpx.AsyncClient, store: FakeStore, **fields: str) -> tuple[str, str]:
    """Post a request and let intake make its case: (token, case id)."""
    reply = await post(client, **fields)
    assert reply.status_code == 200, reply.text
    token = reply.json()[0]["token"]
    case_id = case_id_for(Channel.ONLINE, token)
    store.cases[case_id] = routed_case(case_id)
    return token, case_id


async def test_discovery_in_json_and_xml(client: httpx.AsyncClient) -> None:
    for path in ("discovery", "discovery.json"):
        body = (await client.get(f"{BASE}/{path}")).json()
        assert body["endpoints"][0]["url"].endswith("/open311/v2")
    xml = await client.get(f"{BASE}/discovery.xml")
    assert xml.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(xml.content)
    assert root.tag == "discovery" and root.find("endpoints/endpoint/url") is not None


async def test_services_are_the_taxonomy_in_chinese(client: httpx.AsyncClient) -> None:
    services = (await client.get(f"{BASE}/services.json")).json()
    assert [s["service_code"] for s in services] == [c.value for c in Category]
    neighbor = next(s for s in services if s["service_code"] == "neighbor")
    assert neighbor["service_name"] == "邻里纠纷" and neighbor["group"] == "矛盾纠纷调处中心"
    assert neighbor["metadata"] is False and neighbor["type"] == "realtime" and "邻里" in neighbor["keywords"]
    xml = ET.fromstring((await client.get(f"{BASE}/services.xml")).content)
    assert xml.tag == "services" and len(xml.findall("service")) == len(Category)
    assert xml.find("service/metadata").text == "false"  # type: ignore[union-attr]
    definition = (await client.get(f"{BASE}/services/labor.json")).json()
    assert definition == {"service_code": "labor", "attributes": []}
    assert ET.fromstring((await client.get(f"{BASE}/services/labor.xml")).content).tag == "service_definition"
    assert errors_of(await client.get(f"{BASE}/services/nope.json"), 404)


async def test_a_post_publishes_a_channel_event_and_answers_a_token(
        client: httpx.AsyncClient, publisher: FakePublisher, store: FakeStore) -> None:
    reply = await post(client)
    assert reply.status_code == 200, reply.text
    [answer] = reply.json()
    event = publisher.events[0]
    assert answer["token"] == event.event_id and answer["service_notice"]
    assert event.channel is Channel.ONLINE and event.text.startswith("楼上邻居")
    assert event.complainant is not None and event.complainant.name == "张三"
    assert event.complainant.phone == "13800138000"
    assert event.location == "临江新区海门路12号" and event.external_ref == "open311:portal"
    assert store.requests[case_id_for(Channel.ONLINE, answer["token"])]["service_code"] == "neighbor"
    assert not any(p in reply.text for p in PERSONAL)


async def test_an_upstream_reports_as_its_channel(client: httpx.AsyncClient, publisher: FakePublisher) -> None:
    assert (await post(client, api_key=OTHER_KEY)).status_code == 200
    assert publisher.events[0].channel is Channel.HOTLINE_12345


async def test_the_same_idempotency_key_gives_the_same_token(client: httpx.AsyncClient) -> None:
    first = await post(client, headers={"Idempotency-Key": "portal-4711"})
    again = await post(client, headers={"Idempotency-Key": "portal-4711"})
    other = await post(client, headers={"Idempotency-Key": "portal-4712"})
    assert first.json()[0]["token"] == again.json()[0]["token"] != other.json()[0]["token"]


async def test_posting_in_xml(client: httpx.AsyncClient) -> None:
    reply = await post(client, "xml")
    root = ET.fromstring(reply.content)
    assert root.tag == "service_requests" and root.find("request/token") is not None


@pytest.mark.parametrize("key", [None, "", "wrong-key-0123456789"])
async def test_a_wrong_or_missing_key_is_refused(client: httpx.AsyncClient, publisher: FakePublisher,
                                                 key: str | None) -> None:
    fields = form(api_key=key or "")
    if key is None:
        del fields["api_key"]
    reply = await client.post(f"{BASE}/requests.json", data=fields)
    assert errors_of(reply, 403)
    assert not publisher.events


async def test_a_wrong_key_in_xml_is_refused_in_xml(client: httpx.AsyncClient) -> None:
    reply = await post(client, "xml", api_key="wrong-key-0123456789")
    assert reply.status_code == 403
    root = ET.fromstring(reply.content)
    assert root.tag == "errors" and root.find("error/code").text == "403"  # type: ignore[union-attr]


@pytest.mark.parametrize(("fields", "word"), [
    ({"service_code": ""}, "service_code"),
    ({"service_code": "parking"}, "service_code"),
    ({"description": "  "}, "description"),
    ({"address_string": ""}, "location"),
    ({"address_string": "", "lat": "31.9"}, "lat and long"),
    ({"address_string": "", "lat": "91", "long": "121"}, "out of range"),
    ({"address_string": "", "lat": "nan", "long": "121"}, "out of range"),
    ({"phone": "call me"}, "phone"),
    ({"media_url": "javascript:alert(1)"}, "media_url"),
    ({"description": "x" * 4001}, "description"),
])
async def test_missing_or_bad_fields_are_refused(client: httpx.AsyncClient, publisher: FakePublisher,
                                                 fields: dict[str, str], word: str) -> None:
    problems = errors_of(await post(client, **fields), 400)
    assert any(word in p for p in problems), problems
    assert not publisher.events


async def test_coordinates_or_an_address_id_are_a_location(client: httpx.AsyncClient, publisher: FakePublisher,
                                                           store: FakeStore) -> None:
    assert (await post(client, address_string="", lat="31.98", long="121.17")).status_code == 200
    assert (await post(client, address_string="", address_id="A-17")).status_code == 200
    assert publisher.events[0].location == "31.980000,121.170000"
    assert publisher.events[1].location == "地址编号 A-17"
    assert [r["lat"] for r in store.requests.values()] == [31.98, None]


async def test_an_oversized_body_is_refused(client: httpx.AsyncClient, publisher: FakePublisher) -> None:
    assert errors_of(await post(client, description="长" * 20_000), 413)
    assert not publisher.events


async def test_a_flood_is_limited_per_key(store: FakeStore, publisher: FakePublisher) -> None:
    async with client_of(app_of(store, publisher, open311_rate_per_minute=3)) as client:
        for _ in range(3):
            assert (await post(client)).status_code == 200
        limited = await post(client)
        assert errors_of(limited, 429) and int(limited.headers["Retry-After"]) >= 1
        assert (await post(client, api_key=OTHER_KEY)).status_code == 200  # another upstream has its own budget
    assert len(publisher.events) == 4


async def test_kafka_down_is_a_503_to_try_again(client: httpx.AsyncClient, publisher: FakePublisher) -> None:
    publisher.down = True
    assert errors_of(await post(client), 503)


async def test_a_token_gives_the_case_id_once_the_case_exists(client: httpx.AsyncClient, store: FakeStore) -> None:
    token = (await post(client)).json()[0]["token"]
    assert errors_of(await client.get(f"{BASE}/tokens/{token}.json"), 404)
    case_id = case_id_for(Channel.ONLINE, token)
    store.cases[case_id] = routed_case(case_id)
    assert (await client.get(f"{BASE}/tokens/{token}.json")).json() == [{"service_request_id": case_id,
                                                                          "token": token}]
    root = ET.fromstring((await client.get(f"{BASE}/tokens/{token}.xml")).content)
    assert root.find("request/service_request_id").text == case_id  # type: ignore[union-attr]


async def test_a_token_of_a_merged_report_names_the_case_it_joined(client: httpx.AsyncClient,
                                                                  store: FakeStore) -> None:
    token = (await post(client)).json()[0]["token"]
    store.receipts[f"online:{token}"] = "GT-EARLIER"
    store.cases["GT-EARLIER"] = routed_case("GT-EARLIER")
    assert (await client.get(f"{BASE}/tokens/{token}.json")).json()[0]["service_request_id"] == "GT-EARLIER"
    assert (await client.get(f"{BASE}/requests/GT-EARLIER.json")).status_code == 200


async def test_an_open_request_as_its_upstream_reads_it(client: httpx.AsyncClient, store: FakeStore) -> None:
    _token, case_id = await filed(client, store)
    reply = await client.get(f"{BASE}/requests/{case_id}.json", params={"api_key": KEY})
    [request] = reply.json()
    assert request["service_request_id"] == case_id and request["status"] == "open"
    assert request["service_code"] == "neighbor" and request["service_name"] == "邻里纠纷"
    assert request["agency_responsible"] == "矛盾纠纷调处中心"
    assert request["description"].startswith("楼上邻居") and request["address"] == "临江新区海门路12号"
    assert request["status_notes"] is None
    assert request["requested_datetime"] == "2026-11-27T09:30:00+08:00"
    assert request["expected_datetime"] == "2026-12-11T23:59:59+08:00"  # the nearest limit still open
    assert not any(p in reply.text for p in PERSONAL)


@pytest.mark.parametrize("status", ["resolved", "return_visit", "closed"])
async def test_a_case_with_its_answer_is_closed_with_the_answer_as_notes(
        client: httpx.AsyncClient, store: FakeStore, status: str) -> None:
    _token, case_id = await filed(client, store)
    later = NOW + timedelta(days=3)
    store.cases[case_id].update(status=status, timeline=[
        {"id": "a", "at": NOW, "kind": "resolve", "detail": {"note": "第一次答复"}},
        {"id": "b", "at": later, "kind": "resolve", "detail": {"note": "已约谈双方，装修改到白天", "actor": "李四"}},
    ])
    [request] = (await client.get(f"{BASE}/requests/{case_id}.json", params={"api_key": KEY})).json()
    assert request["status"] == "closed" and request["status_notes"] == "已约谈双方，装修改到白天"
    assert request["updated_datetime"] == "2026-11-30T09:30:00+08:00"
    assert request["expected_datetime"] is None


async def test_a_reopened_case_is_open_again(client: httpx.AsyncClient, store: FakeStore) -> None:
    _token, case_id = await filed(client, store)
    store.cases[case_id]["status"] = "reopened"
    [request] = (await client.get(f"{BASE}/requests/{case_id}.json", params={"api_key": KEY})).json()
    assert request["status"] == "open"


async def test_without_its_key_a_request_shows_no_text_place_or_answer(client: httpx.AsyncClient,
                                                                     store: FakeStore) -> None:
    _token, case_id = await filed(client, store, address_string="", lat="31.98", long="121.17")
    for params in ({}, {"api_key": OTHER_KEY}):
        reply = await client.get(f"{BASE}/requests/{case_id}.json", params=params)
        [request] = reply.json()
        assert request["status"] == "open" and request["agency_responsible"] == "矛盾纠纷调处中心"
        assert request["description"] is None and request["address"] is None and request["lat"] is None
        assert "楼上邻居" not in reply.text and not any(p in reply.text for p in PERSONAL)
    [own] = (await client.get(f"{BASE}/requests/{case_id}.json", params={"api_key": KEY})).json()
    assert (own["lat"], own["long"]) == (31.98, 121.17)


async def test_a_request_in_xml(client: httpx.AsyncClient, store: FakeStore) -> None:
    _token, case_id = await filed(client, store)
    store.cases[case_id]["text"] = "<script>&噪音</script>"
    reply = await client.get(f"{BASE}/requests/{case_id}.xml", params={"api_key": KEY})
    root = ET.fromstring(reply.content)
    assert root.tag == "service_requests"
    assert root.find("request/description").text == "<script>&噪音</script>"  # type: ignore[union-attr]
    assert b"<script>" not in reply.content


async def test_cases_not_filed_here_are_not_found(client: httpx.AsyncClient, store: FakeStore) -> None:
    store.cases["GT-HOTLINE"] = routed_case("GT-HOTLINE")
    assert errors_of(await client.get(f"{BASE}/requests/GT-HOTLINE.json", params={"api_key": KEY}), 404)
    reply = await client.get(f"{BASE}/requests/GT-HOTLINE.xml")
    assert reply.status_code == 404 and ET.fromstring(reply.content).tag == "errors"


async def test_the_list_is_an_upstreams_own_requests(client: httpx.AsyncClient, store: FakeStore) -> None:
    _t1, first = await filed(client, store)
    _t2, second = await filed(client, store, service_code="labor")
    store.cases[second]["status"] = "closed"
    _t3, _foreign = await filed(client, store, api_key=OTHER_KEY)
    assert errors_of(await client.get(f"{BASE}/requests.json"), 403)
    listed = (await client.get(f"{BASE}/requests.json", params={"api_key": KEY})).json()
    assert {r["service_request_id"] for r in listed} == {first, second}
    by_code = (await client.get(f"{BASE}/requests.json", params={"api_key": KEY, "service_code": "labor"})).json()
    assert [r["service_request_id"] for r in by_code] == [second]
    open_only = (await client.get(f"{BASE}/requests.json", params={"api_key": KEY, "status": "open"})).json()
    assert [r["service_request_id"] for r in open_only] == [first]
    by_id = (await client.get(f"{BASE}/requests.json",
                              params={"api_key": KEY, "service_request_id": f"{first},{_foreign}"})).json()
    assert [r["service_request_id"] for r in by_id] == [first]
    later = (await client.get(f"{BASE}/requests.json",
                              params={"api_key": KEY, "start_date": "2026-11-28T00:00:00Z"})).json()
    assert later == []
    assert errors_of(await client.get(f"{BASE}/requests.json", params={"api_key": KEY, "status": "pending"}), 400)
    assert errors_of(await client.get(f"{BASE}/requests.json", params={"api_key": KEY, "start_date": "soon"}), 400)
    xml = ET.fromstring((await client.get(f"{BASE}/requests.xml", params={"api_key": KEY})).content)
    assert len(xml.findall("request")) == 2


async def test_the_list_is_capped(store: FakeStore, publisher: FakePublisher) -> None:
    async with client_of(app_of(store, publisher, open311_max_results=2)) as client:
        for _ in range(3):
            await filed(client, store)
        assert len((await client.get(f"{BASE}/requests.json", params={"api_key": KEY})).json()) == 2


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    await client.get(f"{BASE}/services.json")
    assert (await client.get("/health")).json()["status"] == "ok"
    assert "triage_open311_requests" in (await client.get("/metrics")).text


async def test_unknown_paths_and_formats_answer_the_error_list(client: httpx.AsyncClient) -> None:
    assert errors_of(await client.get(f"{BASE}/services.csv"), 404)
    assert errors_of(await client.get(f"{BASE}/nothing.json"), 404)
    assert errors_of(await client.put(f"{BASE}/requests.json"), 405)


def test_a_deployment_without_keys_refuses_to_start() -> None:
    with pytest.raises(ConfigurationRefused, match="OPEN311_KEYS"):
        app_of(FakeStore(), FakePublisher(), open311_keys={})
    assert not settings().development_defaults(serves_open311=True)


@pytest.mark.parametrize("keys", ['{"short": "portal"}', '{"a-long-enough-key": "Portal Upstream"}', '["x"]'])
def test_unusable_keys_are_refused(keys: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPEN311_KEYS", keys)
    with pytest.raises(ValueError, match="OPEN311_KEYS"):
        Settings()


def test_an_unknown_channel_is_refused() -> None:
    with pytest.raises(ConfigurationRefused, match="OPEN311_CHANNELS"):
        app_of(FakeStore(), FakePublisher(), open311_channels={"portal": "fax"})
