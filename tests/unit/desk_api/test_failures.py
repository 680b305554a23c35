"""Outages, unexpected failures, unknown paths, logs without personal data, and the desk API's settings."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest
from pydantic import ValidationError
from pymongo import AsyncMongoClient

from services.desk_api.auth import TokenAuthority
from services.desk_api.main import create_app
from shared.adapters.mongo import MongoDeskReads, MongoStorage
from shared.config import ConfigurationRefused, Settings, get_settings
from shared.domain.triage import Unit
from tests.unit.desk_api.fakes import (
    ID_NUMBER,
    NAME,
    PHONE,
    Document,
    FakePublisher,
    FakeStore,
    _client,
    assert_error,
    auth,
    desk_settings,
)


async def test_store_outage_is_503_not_a_traceback(publisher: FakePublisher) -> None:
    # The real MongoDB adapter pointed at a port where nothing listens: the adapter's error handling is exercised.
    client_: AsyncMongoClient[Document] = AsyncMongoClient("mongodb://127.0.0.1:1", serverSelectionTimeoutMS=150,
                                                           connectTimeoutMS=150, tz_aware=True)
    store = MongoDeskReads(MongoStorage(client_, "desk_api_unit"))
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


def test_unparseable_token_settings_do_not_echo_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_TOKENS", '{"s3cr3t-police-xyz": police}')
    with pytest.raises(Exception) as info:
        Settings()
    assert "s3cr3t-police-xyz" not in str(info.value) and "s3cr3t-police-xyz" not in repr(info.value)



async def test_an_address_that_keeps_failing_is_refused_for_the_rest_of_the_minute(
        client: httpx.AsyncClient) -> None:
    """Guessing tokens: after DESK_FAILED_ATTEMPTS_PER_MINUTE (10) failures, even the right token is refused."""
    for _ in range(10):
        assert (await client.get("/desks/police/cases", headers={"Authorization": "Bearer guess-0123456789"})
                ).status_code == 401
    locked = await client.get("/desks/police/cases", headers=auth(Unit.POLICE))
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert locked.json()["error"] == "too_many_attempts"
    page = await client.get("/desk/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    signin = await client.post("/desk/signin", data={"csrf": token.group(1), "token": "token-police-0123456789",
                                                     "officer": "李"})
    assert signin.status_code == 429  # the sign-in form too
