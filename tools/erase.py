"""`triage erase --phone P` and `triage retention [--days N]`: a complainant's personal data removed on their
request, and every closed case's after the retention period (RETENTION_DAYS).

Each case is changed through the case repository like any other step (`Case.erase_personal_data`: version
checked, retried when a service wrote it meanwhile), so a racing service never writes the data back. The cases,
their timelines and the supervisors' figures stay (the facts never held personal data). Each run is written
to `erasure_audit` with the keyed hash of the phone, never the number. The cases collection is read whole to
find them: a tool's scan, never a request's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.mongo import MongoStorage
from shared.config import Settings
from shared.domain.repeats import complainant_key, repeat_keys
from shared.handling import Contended

ATTEMPTS = 20


async def erase_complainant(settings: Settings, phone: str, progress: Callable[[str], None] = print) -> list[str]:
    """Every case of the complainant with this phone number, erased; returns their ids."""
    key = complainant_key(phone, settings.complainant_key_secret.get_secret_value().encode())
    storage = MongoStorage.from_settings(settings, "erase")
    try:
        found = [str(doc["_id"]) async for doc in storage.db["cases"].find({"complainant_key": key}, {"_id": 1})]
        request = f"request-{uuid.uuid4().hex[:12]}"
        erased = [case_id for case_id in found if await _erase(storage, case_id, request, "complainant's request")]
        # The repeat index's list of this complainant's recent cases goes too: it is filed under the keyed hash.
        await storage.repeats.erase(repeat_keys(key, "")[0])
        await _audit(storage, request, {"why": "complainant's request", "complainant_key": key, "cases": erased})
        progress(f"erase: {len(erased)} cases of that complainant erased ({request})")
        return erased
    finally:
        await storage.close()


async def apply_retention(settings: Settings, days: int, now: datetime | None = None,
                          progress: Callable[[str], None] = print) -> list[str]:
    """Every case closed more than `days` ago that still holds personal data, erased; returns their ids."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    storage = MongoStorage.from_settings(settings, "retention")
    try:
        found = [str(doc["_id"]) async for doc in storage.db["cases"].find(
            {"status": "closed", "closed_at": {"$lt": cutoff}, "complainant": {"$ne": None}}, {"_id": 1})]
        run = f"retention-{uuid.uuid4().hex[:12]}"
        why = f"closed more than {days} days ago"
        erased = [case_id for case_id in found if await _erase(storage, case_id, run, why)]
        await _audit(storage, run, {"why": why, "cases": erased})
        progress(f"retention: {len(erased)} closed cases erased ({run})")
        return erased
    finally:
        await storage.close()


async def _erase(storage: MongoStorage, case_id: str, cause: str, why: str) -> bool:
    for _ in range(ATTEMPTS):
        case = await storage.cases.get(case_id)
        if case is None:
            return False
        change = case.erase_personal_data(cause, why, datetime.now(UTC))
        try:
            await storage.cases.save(case, change)
        except Contended:  # a service saved the case meanwhile: erase it as it is now
            continue
        return change.changed
    raise Contended(f"case {case_id} kept changing while it was erased")


async def _audit(storage: MongoStorage, run: str, record: dict[str, Any]) -> None:
    await storage.db["erasure_audit"].insert_one({"_id": run, "at": datetime.now(UTC), **record})
