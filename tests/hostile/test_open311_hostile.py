"""Hostile input at the Open311 gateway: malformed forms, huge fields, wrong keys and floods are each refused
with the spec's error list and its reason, and the gateway keeps answering."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.open311.fakes import BASE, KEY, FakePublisher, FakeStore, app_of, client_of, form


def refused(reply: httpx.Response, status: int, word: str) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body and all(e["code"] == status for e in body)
    assert any(word in e["description"] for e in body), body


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
async def client(publisher: FakePublisher) -> httpx.AsyncClient:
    return client_of(app_of(FakeStore(), publisher, open311_rate_per_minute=1000))


async def still_answers(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{BASE}/services.json")).status_code == 200
    assert (await client.post(f"{BASE}/requests.json", data=form())).status_code == 200


@pytest.mark.parametrize(("body", "ctype", "status", "word"), [
    (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded", 400, "UTF-8"),
    (b'{"api_key": "x"}', "application/json", 400, "x-www-form-urlencoded"),
    (b"", "text/plain", 400, "x-www-form-urlencoded"),
    ("&".join(f"f{i}=1" for i in range(500)).encode(), "application/x-www-form-urlencoded", 400, "fields"),
    (f"api_key={KEY}&service_code=labor&service_code=fraud&description=x&address_string=y".encode(),
     "application/x-www-form-urlencoded", 400, "more than once"),
    (f"api_key={KEY}&service_code=labor&description=%00%1b[31m&address_string=y".encode(),
     "application/x-www-form-urlencoded", 400, "description"),
    (f"api_key={KEY}&service_code=../../etc&description=x&address_string=y".encode(),
     "application/x-www-form-urlencoded", 400, "service_code"),
])
async def test_malformed_forms(client: httpx.AsyncClient, publisher: FakePublisher, body: bytes, ctype: str,
                               status: int, word: str) -> None:
    refused(await client.post(f"{BASE}/requests.json", content=body, headers={"content-type": ctype}), status, word)
    assert not publisher.events
    await still_answers(client)


@pytest.mark.parametrize("field", ["description", "address_string", "first_name", "phone", "email", "media_url",
                                   "device_id", "service_code"])
async def test_huge_fields(client: httpx.AsyncClient, publisher: FakePublisher, field: str) -> None:
    reply = await client.post(f"{BASE}/requests.json", data=form(**{field: "x" * 5000}))
    assert reply.status_code == 400 and field.split("_")[0] in reply.text
    refused(await client.post(f"{BASE}/requests.json", data=form(**{field: "x" * 200_000})), 413, "bytes")
    assert not publisher.events
    await still_answers(client)


async def test_a_lying_content_length_is_caught_while_streaming(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"description=" + b"x" * 1024

    reply = await client.post(f"{BASE}/requests.json", content=chunks(),
                              headers={"content-type": "application/x-www-form-urlencoded"})
    refused(reply, 413, "bytes")
    await still_answers(client)


@pytest.mark.parametrize("key", ["wrong", KEY + " ", KEY.upper(), "' OR 1=1 --", "a" * 10_000])
async def test_wrong_keys(client: httpx.AsyncClient, publisher: FakePublisher, key: str) -> None:
    refused(await client.post(f"{BASE}/requests.json", data=form(api_key=key)), 403, "api_key")
    refused(await client.get(f"{BASE}/requests.json", params={"api_key": key[:200]}), 403, "api_key")
    assert key not in (await client.get(f"{BASE}/requests.xml", params={"api_key": key[:200]})).text or key == "wrong"
    assert not publisher.events
    await still_answers(client)


async def test_a_flood_of_wrong_keys_is_limited_and_others_keep_their_budget(publisher: FakePublisher) -> None:
    async with client_of(app_of(FakeStore(), publisher, open311_rate_per_minute=5)) as client:
        statuses = [(await client.post(f"{BASE}/requests.json", data=form(api_key=f"guess-{i:08d}"))).status_code
                    for i in range(20)]
        assert statuses[:5] == [403] * 5 and set(statuses[5:]) == {429}
        refused(await client.get(f"{BASE}/services.json"), 429, "too many")  # the same address, read or write
        assert (await client.post(f"{BASE}/requests.json", data=form())).status_code == 200  # the real key's budget


async def test_a_flood_of_posts_is_limited(publisher: FakePublisher) -> None:
    async with client_of(app_of(FakeStore(), publisher, open311_rate_per_minute=10)) as client:
        statuses = [(await client.post(f"{BASE}/requests.json", data=form())).status_code for _ in range(30)]
        assert statuses.count(200) == 10 and statuses.count(429) == 20
        assert (await client.get("/health")).status_code == 200
    assert len(publisher.events) == 10


@pytest.mark.parametrize("path", ["/requests/..%2F..%2Fetc.json", "/requests/%00.xml", "/tokens/" + "x" * 5000 + ".json",
                                  "/services/<script>.xml", "/requests/GT-1.exe"])
async def test_hostile_paths(client: httpx.AsyncClient, path: str) -> None:
    reply = await client.get(BASE + path)
    assert reply.status_code == 404
    assert "<script>" not in reply.text
    await still_answers(client)
