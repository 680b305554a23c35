"""Fakes of the gateway's store and publisher, and a client of the app wired to them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from services.open311.main import create_app
from services.open311.publish import PublishFailed
from shared.config import Settings
from shared.events import ChannelEvent

KEY = "portal-key-0123456789"
OTHER_KEY = "app-key-0123456789"
COMPLAINANT_KEY = "k3y-for-tests-a1b2c3d4e5f6g7h8i9j0-xyz"
NOW = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
BASE = "/open311/v2"


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"dev_mode": False, "complainant_key_secret": COMPLAINANT_KEY,
                              "open311_keys": {KEY: "portal", OTHER_KEY: "app"},
                              "open311_channels": {"app": "12345"}, **overrides}
    return Settings(**values)


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[ChannelEvent] = []
        self.down = False

    async def __call__(self, event: ChannelEvent) -> None:
        if self.down:
            raise PublishFailed("down")
        self.events.append(event)


class FakeStore:
    def __init__(self) -> None:
        self.requests: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.cases: dict[str, dict[str, Any]] = {}
        self.receipts: dict[str, str] = {}

    async def file(self, record: dict[str, Any]) -> None:
        self.requests.setdefault(record["_id"], dict(record))
        self.tokens.setdefault(record["token"], {"case_id": record["_id"], "upstream": record["upstream"]})

    async def record(self, case_id: str) -> dict[str, Any] | None:
        return self.requests.get(case_id)

    async def records(self, upstream: str, limit: int) -> list[dict[str, Any]]:
        found = sorted((r for r in self.requests.values() if r["upstream"] == upstream),
                       key=lambda r: r["requested_at"], reverse=True)
        return found[:limit]

    async def token(self, token: str) -> dict[str, Any] | None:
        return self.tokens.get(token)

    async def case_of_receipt(self, receipt: str) -> str | None:
        return self.receipts.get(receipt)

    async def case(self, case_id: str) -> dict[str, Any] | None:
        return self.cases.get(case_id)

    async def ping(self) -> bool:
        return True


def app_of(store: FakeStore, publisher: FakePublisher, **overrides: Any) -> FastAPI:
    return create_app(settings(**overrides), store=store, publish=publisher, clock=lambda: NOW)


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://open311")


def form(**fields: str) -> dict[str, str]:
    return {"api_key": KEY, "service_code": "neighbor", "description": "楼上邻居每天深夜装修，噪音很大，协商无果",
            "address_string": "临江新区海门路12号", "first_name": "三", "last_name": "张", "phone": "13800138000",
            "email": "zhang@example.com", **fields}


def routed_case(case_id: str, **fields: Any) -> dict[str, Any]:
    """A case document as the store keeps it (only what the gateway reads)."""
    return {"_id": case_id, "status": "routed", "unit": "mediation", "category": "neighbor",
            "text": "楼上邻居每天深夜装修，噪音很大，协商无果", "location": "临江新区海门路12号",
            "complainant": {"name": "张三", "phone": "13800138000"},
            "received_at": NOW, "updated_at": NOW,
            "deadlines": {"mediation_resolve": {"rule": "mediation.resolve", "start": "2026-11-27", "due": "2026-12-28",
                                                "source": "x", "opened_at": NOW, "met_at": None},
                          "hotline_help": {"rule": "hotline.help", "start": "2026-11-27", "due": "2026-12-11",
                                           "source": "x", "opened_at": NOW, "met_at": None},
                          "old": {"rule": "visitor.accept", "start": "2026-11-01", "due": "2026-11-20",
                                  "source": "x", "opened_at": NOW, "met_at": NOW}},
            "timeline": [{"id": "r", "at": NOW, "kind": "received", "detail": {}}],
            **fields}
