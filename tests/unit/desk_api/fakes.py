"""The desk API's test doubles: an in-memory case store and publisher, and the helpers the tests share."""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from services.desk_api.handlers import PublishFailed
from shared.config import Settings
from shared.domain.triage import Unit
from shared.events import DeskAction

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


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk")


def assert_error(response: httpx.Response, status: int, code: str) -> Document:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: Document = response.json()
    assert body["error"] == code
    assert "detail" in body
    return body


# --- authentication and scope -------------------------------------------------------------------------

