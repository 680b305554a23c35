"""What a desk can do, whatever it asks through (the pages or the JSON API): read its queue and its cases,
submit an action, reveal a complainant. Behind two ports: the desk store and the event publisher.

An action is published as a DeskAction event and nothing more: the follow-up, the one writer of a case's
status, checks it against the state machine and records the outcome, which the desk reads back by its id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from services.desk_api.disclosure import disclose, in_full, masked_view
from services.desk_api.sessions import SessionBook
from shared.domain.queue import QueueEntry, QueueFilter, QueuePage, queue_page
from shared.domain.triage import Unit
from shared.events import SAFE_ID, Channel, DeskAction, DeskActionPayload
from shared.publishing import PublishFailed

__all__ = ["Desk", "DeskStore", "KeyReused", "NotFound", "Publish", "PublishFailed"]
log = logging.getLogger(__name__)

Document = dict[str, Any]
Publish = Callable[[DeskAction], Awaitable[None]]


class DeskStore(Protocol):
    @property
    def sessions(self) -> SessionBook: ...

    async def ping(self) -> bool: ...

    async def queue(self, unit: Unit) -> list[QueueEntry]:
        """Every entry of the unit's queue, in no particular order."""
        ...

    async def verify(self, unit: Unit, entries: Sequence[QueueEntry]) -> list[QueueEntry]:
        """The entries as their cases stand now, without those that are no longer the unit's open work."""
        ...

    async def get_case(self, case_id: str) -> Document | None: ...

    async def timeline_of(self, case_id: str) -> list[Document]: ...

    async def get_action(self, action_id: str) -> Document | None: ...

    async def claim_submission(self, action_id: str, record: Mapping[str, Any]) -> Document:
        """Keep the first submission under this id; returns the one kept."""
        ...

    async def record_disclosure(self, record_id: str, record: Mapping[str, Any]) -> None: ...

    async def reveal_complainant(self, case: Mapping[str, Any], fields: Sequence[str]) -> dict[str, str]:
        """The named fields of the case's complainant in the clear, decrypted; no other field is decrypted."""
        ...


class NotFound(Exception):
    """No such case for this desk: another unit's case is as unknown as a missing one."""


class KeyReused(Exception):
    """An Idempotency-Key already named a different request."""


@dataclass
class Desk:
    store: DeskStore
    publish: Publish

    async def queue(self, unit: Unit, wanted: QueueFilter, page: int, page_size: int) -> QueuePage:
        """The page of the unit's queue, each row checked against its case as it stands now."""
        found = queue_page(await self.store.queue(unit), wanted, page, page_size)
        return replace(found, entries=await self.store.verify(unit, found.entries))

    async def case(self, unit: Unit, case_id: str) -> Document:
        if not SAFE_ID.fullmatch(case_id):
            raise NotFound(case_id)
        case = await self.store.get_case(case_id)
        if case is None or case.get("unit") != unit.value:
            raise NotFound(case_id)
        return case

    async def action(self, unit: Unit, action_id: str) -> Document | None:
        """The follow-up's record of an action, None while it has not decided; NotFound for another unit's."""
        if not SAFE_ID.fullmatch(action_id):
            raise NotFound(action_id)
        record = await self.store.get_action(action_id)
        if record is not None and record.get("unit") != unit.value:
            raise NotFound(action_id)
        return record

    async def submit(self, case_id: str, payload: DeskActionPayload, *, key: str | None = None,
                     traceparent: str | None = None, now: datetime) -> str:
        """Publish the action; returns its id. The same `key` (a client's Idempotency-Key, or the form's own)
        gives the same id, so a retried submission is one action: the follow-up decides each id once."""
        case = await self.case(payload.unit, case_id)
        action_id = f"DA-{uuid.uuid4().hex}"
        if key is not None:
            action_id = "DA-" + hashlib.sha256(f"{payload.unit.value}\0{key}".encode()).hexdigest()[:32]
            request = _fingerprint(case_id, payload)
            kept = await self.store.claim_submission(action_id, {
                "request": request, "case_id": case_id, "unit": payload.unit.value, "action": payload.action.value,
                "actor": payload.actor, "at": now})
            if kept["request"] != request:
                raise KeyReused(key)
        event = DeskAction(event_id=action_id, case_id=case_id, source_channel=Channel(str(case.get("channel"))),
                           traceparent=traceparent, payload=payload)
        await self.publish(event)
        log.info("desk action submitted: %s", payload.action.value,
                 extra={"case_id": case_id, "event_id": action_id, "unit": payload.unit.value})
        return action_id

    async def reveal(self, unit: Unit, officer: str, case_id: str, now: datetime) -> dict[str, str] | None:
        """The complainant as this unit may see them, written to the audit trail first: who, when, which case."""
        case = await self.case(unit, case_id)  # another unit's case stops here, before anything is decrypted
        plain = await self.store.reveal_complainant(case, in_full(unit)) if case.get("complainant") else None
        shown = disclose(plain, unit, masked_view(case))
        await self.store.record_disclosure(f"DR-{uuid.uuid4().hex}", {
            "case_id": case_id, "unit": unit.value, "officer": officer, "at": now,
            "fields": sorted(shown or {})})
        log.info("complainant revealed", extra={"case_id": case_id, "unit": unit.value})
        return shown


def _fingerprint(case_id: str, payload: DeskActionPayload) -> str:
    body = json.dumps({"case": case_id, **payload.model_dump(mode="json")}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()
