"""Erasure on the real FerretDB: a complainant's request removes their name, phone, ID number and keyed phone
hash from every case of theirs, and only theirs; the retention period does the same for cases closed long ago.
Both are audited without the number, and the cases and their timelines stay."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.mongo import MongoStorage
from shared.adapters.mongo.personal import is_sealed
from shared.config import Settings
from shared.domain.case import Case
from shared.domain.change import Change
from shared.domain.lifecycle import CaseStatus
from shared.domain.repeats import complainant_key, repeat_keys
from shared.events import Channel, ChannelEvent, Complainant
from tools import infra
from tools.erase import apply_retention, erase_complainant

pytestmark = [pytest.mark.e2e]
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
ASKING, OTHER = "13800001111", "13900002222"


@pytest.fixture
async def settings(endpoints: infra.Endpoints) -> AsyncIterator[Settings]:
    found = Settings(dev_mode=True, mongodb_uri=endpoints.mongodb_uri,
                     mongodb_database=f"triage_erase_{uuid.uuid4().hex[:8]}")
    yield found
    storage = MongoStorage.from_settings(found, "erase-test")
    await storage.client.drop_database(found.mongodb_database)
    await storage.close()


async def file_case(storage: MongoStorage, settings: Settings, n: int, phone: str, *,
                    closed_days_ago: int | None = None) -> str:
    event = ChannelEvent(event_id=f"ev-{n}", channel=Channel.HOTLINE_12345, occurred_at=NOW, text=f"第{n}件诉求",
                         complainant=Complainant(name="刘秀兰", phone=phone, id_number="11010519491231002X"))
    key = complainant_key(phone, settings.complainant_key_secret.get_secret_value().encode())
    case, change = Case.receive(event, case_id=f"GT-E{n}", text=event.text, complainant_key=key, now=NOW)
    if closed_days_ago is not None:
        case.status, case.closed_at = CaseStatus.CLOSED, NOW - timedelta(days=closed_days_ago)
    await storage.cases.add(case, change)
    await storage.repeats.file_under(repeat_keys(key, event.text), case.id)
    return case.id


async def test_a_request_erases_every_case_of_that_complainant_and_no_other(settings: Settings) -> None:
    storage = MongoStorage.from_settings(settings, "erase-test", personal_data=True)  # intake's part: it encrypts
    try:
        mine = [await file_case(storage, settings, 1, ASKING), await file_case(storage, settings, 2, ASKING,
                                                                                closed_days_ago=3)]
        theirs = await file_case(storage, settings, 3, OTHER)
        assert sorted(await erase_complainant(settings, ASKING, progress=lambda _: None)) == sorted(mine)
        for case_id in mine:
            raw = await storage.db["cases"].find_one({"_id": case_id})
            assert raw is not None and raw.get("complainant") is None and raw.get("complainant_key") is None
            assert raw.get("complainant_masked") is None
            assert ASKING not in str(raw) and "刘秀兰" not in str(raw) and "11010519491231002X" not in str(raw)
            assert raw["timeline"][-1]["kind"] == "personal_data_erased" and raw["text"]  # the case stays
        kept = await storage.db["cases"].find_one({"_id": theirs})
        assert kept is not None and is_sealed(kept["complainant"]["phone"])
        assert kept["complainant_masked"]["phone"] == "139****2222"
        [audit] = await storage.db["erasure_audit"].find({}).to_list()
        assert sorted(audit["cases"]) == sorted(mine) and ASKING not in str(audit)
        key = complainant_key(ASKING, settings.complainant_key_secret.get_secret_value().encode())
        assert await storage.repeats.file_under([f"who:{key}"], "GT-AFTER") == {f"who:{key}": []}  # filed nowhere
        assert await erase_complainant(settings, ASKING, progress=lambda _: None) == []  # nothing left to erase
    finally:
        await storage.close()


async def test_retention_erases_what_was_closed_long_ago(settings: Settings) -> None:
    storage = MongoStorage.from_settings(settings, "erase-test", personal_data=True)  # intake's part: it encrypts
    try:
        old = await file_case(storage, settings, 4, OTHER, closed_days_ago=800)
        recent = await file_case(storage, settings, 5, OTHER, closed_days_ago=10)
        still_open = await file_case(storage, settings, 6, OTHER)
        assert await apply_retention(settings, 730, NOW, progress=lambda _: None) == [old]
        for case_id, erased in ((old, True), (recent, False), (still_open, False)):
            raw = await storage.db["cases"].find_one({"_id": case_id})
            assert raw is not None and (raw.get("complainant") is None) is erased, case_id
        await storage.cases.save(*_no_change(await storage.cases.get(old)))  # a later save writes nothing back
        raw = await storage.db["cases"].find_one({"_id": old})
        assert raw is not None and raw.get("complainant") is None
    finally:
        await storage.close()


def _no_change(case: Case | None) -> tuple[Case, Change]:
    assert case is not None
    return case, Change()
