"""The complainant as the case codec stores it: each value encrypted, the masked view beside it, nothing in the
clear; a loaded case without it; erasure removing both; a reveal decrypting only the fields asked for. A fake
encrypter stands in for libmongocrypt (which needs a key vault on a server: the e2e tests use the real one)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import BSON
from bson.binary import Binary

from shared.adapters.mongo.cases import MongoCases
from shared.adapters.mongo.documents import (
    CASE_PROJECTION,
    MASKED,
    PERSONAL,
    case_document,
    case_fields,
    case_from_document,
    personal_fields,
)
from shared.adapters.mongo.personal import PersonalDataLocked, is_sealed, provider_of, unsealed_complainant
from shared.domain.case import Case
from shared.domain.change import Change
from shared.events import Channel, ChannelEvent, Complainant

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
NAME, PHONE, ID_NUMBER = "欧阳明月", "13912345678", "11010519491231002X"


class FakeSealer:
    """Reversible, and unreadable in the document (each byte flipped), counting what it did."""

    def __init__(self) -> None:
        self.sealed: list[str] = []
        self.unsealed: list[str] = []

    async def seal(self, value: str) -> Binary:
        self.sealed.append(value)
        return Binary(bytes(b ^ 0xFF for b in value.encode()), 6)

    async def unseal(self, value: Any) -> str:
        plain = bytes(b ^ 0xFF for b in value).decode()
        self.unsealed.append(plain)
        return plain


def received(complainant: Complainant | None = None) -> Case:
    event = ChannelEvent(event_id="ev-1", channel=Channel.HOTLINE_12345, occurred_at=NOW, text="楼上漏水三个月",
                         complainant=complainant or Complainant(name=NAME, phone=PHONE, id_number=ID_NUMBER))
    case, _ = Case.receive(event, case_id="GT-1", text=event.text, complainant_key="k" * 64, now=NOW)
    return case


def clear_in(doc: dict[str, Any]) -> list[str]:
    """Which of the personal values can be read in the document's BSON bytes."""
    raw = BSON.encode(doc)
    return [v for v in (NAME, PHONE, ID_NUMBER) if v.encode() in raw]


async def test_a_new_case_stores_each_value_encrypted_and_the_masked_view_beside_them() -> None:
    case, sealer = received(), FakeSealer()
    doc = case_document(case, [])
    assert PERSONAL not in doc  # the codec alone never writes the complainant
    doc.update(await personal_fields(case, sealer))
    assert set(doc[PERSONAL]) == {"name", "phone", "id_number"} and all(map(is_sealed, doc[PERSONAL].values()))
    assert doc[MASKED] == {"name": "欧***", "phone": "139****5678", "id_number": "110***********002X"}
    assert clear_in(doc) == [] and sorted(sealer.sealed) == sorted([NAME, PHONE, ID_NUMBER])
    assert doc["complainant_key"] == "k" * 64  # the keyed hash stays: repeats are found by it


async def test_a_process_without_the_master_key_refuses_to_store_a_complainant() -> None:
    with pytest.raises(PersonalDataLocked):
        await personal_fields(received(), None)


async def test_erasure_removes_the_encrypted_values_and_the_masked_view() -> None:
    case = received()
    case.erase_personal_data("request-1", "complainant's request", NOW)
    assert case_fields(case, {"complainant", "complainant_key"}) == {"complainant": None, "complainant_key": None}
    assert await personal_fields(case, None) == {PERSONAL: None, MASKED: None}  # erasing needs no key


async def test_a_case_is_loaded_without_its_complainant() -> None:
    case, sealer = received(), FakeSealer()
    doc = {**case_document(case, []), **await personal_fields(case, sealer)}
    assert CASE_PROJECTION[PERSONAL] == CASE_PROJECTION[MASKED] == 0
    loaded = case_from_document(doc)
    assert loaded.complainant is None and loaded.complainant_key == "k" * 64 and sealer.unsealed == []


class FakeCollection:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    async def update_one(self, query: dict[str, Any], update: dict[str, Any], upsert: bool = False) -> Any:
        self.updates.append(update)
        return type("Result", (), {"upserted_id": query["_id"], "matched_count": 1})()


class NoProjection:
    async def saved(self, case: Case, change: Change, timeline: Callable[[], Any]) -> None:
        pass


async def test_the_repository_encrypts_on_insert_and_writes_only_what_a_step_changed() -> None:
    collection, sealer = FakeCollection(), FakeSealer()
    cases = MongoCases(collection, None, NoProjection(), sealer)  # type: ignore[arg-type]
    case = received()
    await cases.add(case, Change())
    [insert] = collection.updates
    assert clear_in(insert) == [] and all(map(is_sealed, insert["$setOnInsert"][PERSONAL].values()))
    # A later step (here a merge's counter) rewrites no complainant: a service without the key can save it.
    loaded = case_from_document({"_id": case.id, **insert["$setOnInsert"]})
    change = Change()
    loaded._set(change, repeat_count=1)
    await MongoCases(collection, None, NoProjection(), None).save(loaded, change)  # type: ignore[arg-type]
    assert set(collection.updates[-1]["$set"]) == {"repeat_count", "version"}
    # Erasure writes None over both, with or without the key.
    erased = loaded.erase_personal_data("request-1", "complainant's request", NOW)
    await MongoCases(collection, None, NoProjection(), None).save(loaded, erased)  # type: ignore[arg-type]
    assert {k: collection.updates[-1]["$set"][k] for k in (PERSONAL, MASKED)} == {PERSONAL: None, MASKED: None}


async def test_a_reveal_decrypts_only_the_fields_asked_for() -> None:
    case, sealer = received(), FakeSealer()
    stored = (await personal_fields(case, sealer))[PERSONAL]
    assert await unsealed_complainant(stored, ["name", "phone"], sealer) == {"name": NAME, "phone": PHONE}
    assert sealer.unsealed == [NAME, PHONE]
    assert await unsealed_complainant(None, ["name"], sealer) == {}
    # A case stored before encryption is read as it is; without the key an encrypted value stays locked.
    assert await unsealed_complainant({"name": NAME}, ["name"], None) == {"name": NAME}
    with pytest.raises(PersonalDataLocked):
        await unsealed_complainant(stored, ["name"], None)


def test_a_master_key_is_named_by_its_fingerprint_not_its_bytes() -> None:
    key = bytes(range(96))
    name = provider_of(key)
    assert name.startswith("local:k") and name == provider_of(bytes(range(96))) != provider_of(bytes(96))
    assert key.hex()[:16] not in name
