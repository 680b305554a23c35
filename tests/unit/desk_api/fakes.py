"""The desk API's test doubles: an in-memory case store and publisher, and the helpers the tests share."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from services.desk_api.handlers import PublishFailed
from shared.adapters.mongo.documents import case_from_document
from shared.config import Settings
from shared.domain.queue import QueueEntry, entry_of
from shared.domain.triage import Unit
from shared.events import DeskAction

Document = dict[str, Any]

TOKENS = {f"token-{unit.value}-0123456789": unit for unit in Unit}
COMPLAINANT_KEY = SecretStr("unit-test-key-3f9a2c7e1b5d8046aa71c2e9")
T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
PHONE, ID_NUMBER, NAME = "13812345678", "11010519491231002X", "张三"
MASTER_KEY = SecretStr(base64.b64encode(bytes(range(7, 103))).decode())



def desk_settings(**overrides: Any) -> Settings:
    """Settings a deployment could start with: a strong key and a token per unit (no DEV_MODE)."""
    return Settings(dev_mode=False, complainant_key_secret=COMPLAINANT_KEY, desk_tokens=TOKENS,
                    encryption_master_key=MASTER_KEY, **overrides)


def auth(unit: Unit | str) -> dict[str, str]:
    return {"Authorization": f"Bearer token-{Unit(unit).value}-0123456789"}


class FakeSessions:
    def __init__(self) -> None:
        self.stored: dict[str, Mapping[str, Any]] = {}

    async def open(self, key: str, record: Mapping[str, Any]) -> None:
        self.stored[key] = dict(record)

    async def find(self, key: str) -> Mapping[str, Any] | None:
        return self.stored.get(key)

    async def close(self, key: str) -> None:
        self.stored.pop(key, None)


class FakeStore:
    """Case documents, timeline, action records, sessions and audit in memory; the queue is derived from
    the case documents as the real projection derives it (shared.domain.queue.entry_of)."""

    def __init__(self) -> None:
        self.cases: dict[str, Document] = {}
        self.timeline: list[Document] = []
        self.actions: dict[str, Document] = {}
        self.submissions: dict[str, Document] = {}
        self.disclosures: list[Document] = []
        self.decrypted: list[str] = []  # every complainant field a reveal asked to decrypt
        self.stale: list[QueueEntry] = []  # entries filed but no longer true (a move not yet taken out)
        self._sessions = FakeSessions()

    @property
    def sessions(self) -> FakeSessions:
        return self._sessions

    def add_case(self, case_id: str, unit: Unit, **fields: Any) -> Document:
        doc: Document = {
            "_id": case_id, "status": "routed", "unit": unit.value, "category": "neighbor", "urgency": "normal",
            "risk_flags": [], "text": "楼上漏水", "location": "临江新区", "channel": "12345",
            "complainant": {"name": NAME, "phone": PHONE, "id_number": ID_NUMBER},
            "complainant_key": "f" * 64, "received_at": T0, "repeat_count": 0, "needs_review": False, "version": 1,
        }
        doc.update(fields)
        self.cases[case_id] = doc
        return doc

    def _entry(self, doc: Mapping[str, Any]) -> QueueEntry | None:
        return entry_of(case_from_document(doc))

    async def ping(self) -> bool:
        return True

    async def queue(self, unit: Unit) -> list[QueueEntry]:
        entries = [e for e in (self._entry(d) for d in self.cases.values()) if e is not None and e.unit is unit]
        return [*entries, *(e for e in self.stale if e.unit is unit)]

    async def verify(self, unit: Unit, entries: Sequence[QueueEntry]) -> list[QueueEntry]:
        now = [self._entry(self.cases[e.case_id]) if e.case_id in self.cases else None for e in entries]
        return [e for e in now if e is not None and e.unit is unit]

    async def get_case(self, case_id: str) -> Document | None:
        return deepcopy(self.cases.get(case_id))

    async def timeline_of(self, case_id: str) -> list[Document]:
        return sorted((e for e in self.timeline if e["case_id"] == case_id), key=lambda e: e["at"])

    async def get_action(self, action_id: str) -> Document | None:
        return self.actions.get(action_id)

    async def claim_submission(self, action_id: str, record: Mapping[str, Any]) -> Document:
        return self.submissions.setdefault(action_id, dict(record))

    async def record_disclosure(self, record_id: str, record: Mapping[str, Any]) -> None:
        self.disclosures.append({"_id": record_id, **record})

    async def reveal_complainant(self, case: Mapping[str, Any], fields: Sequence[str]) -> dict[str, str]:
        self.decrypted.extend(fields)
        stored = case.get("complainant") or {}
        return {f: stored[f] for f in fields if isinstance(stored.get(f), str)}


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

