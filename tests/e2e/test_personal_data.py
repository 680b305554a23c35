"""Personal data at rest on the real FerretDB: complaints with a name, phone and ID number (through the channel
topic and the Open311 gateway) are routed, and no document of any collection, key vault included, holds any of
them in the clear; the owning desk's reveal shows what its unit may see, another unit gets nothing. The data key
is made once however many processes start at once, and a master-key rotation leaves the old key useless."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import bson
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import EncryptionError

from services.desk_api.disclosure import in_full
from shared.adapters.mongo import MongoDeskReads, MongoStorage
from shared.adapters.mongo.personal import KEY_VAULT, PersonalData, is_sealed
from shared.config import Settings
from shared.domain.case import Case
from shared.domain.triage import Unit
from shared.events import Channel, ChannelEvent, Complainant, case_id_for
from shared.ports import StoreUnavailable
from tests.conftest import OPEN311_KEY, channel_event, eventually, publish, token
from tests.e2e.test_open311 import post_until_routed
from tools import infra
from tools.keys import rotate_keys
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e]
Db = AsyncDatabase[dict[str, Any]]


def digits(n: int) -> str:
    return "".join(random.choice("0123456789") for _ in range(n))


async def clear_anywhere(db: Db, secrets: list[str]) -> list[str]:
    """Each secret found in the clear in some document of some collection, as `collection: secret`."""
    found = []
    for name in await db.list_collection_names():
        async for doc in db[name].find({}):
            raw = bson.encode(doc)
            found += [f"{name}: {s}" for s in secrets if s.encode() in raw or s in str(doc)]
    return found


async def test_no_personal_data_is_stored_in_the_clear_and_only_the_owning_desk_reveals_it(
        fleet: Fleet, producer: AIOKafkaProducer, db: Db, desk_url: str) -> None:
    name, phone, id_number = "司马" + random.choice("甲乙丙丁戊") + "测", "139" + digits(8), "3201" + digits(14)
    event = channel_event(f"加密测试{uuid.uuid4().hex[:6]}：小区地下车库的消防通道被私家车长期占用，物业不管，出了火灾怎么办",
                          complainant={"name": name, "phone": phone, "id_number": id_number})
    await publish(producer, event)
    case_id = case_id_for("12345", event["event_id"])
    case = await eventually(lambda: db.cases.find_one({"_id": case_id, "status": "routed"}), 60, "the case routed")
    assert all(map(is_sealed, case["complainant"].values())) and set(case["complainant"]) == {
        "name", "phone", "id_number"}
    assert case["complainant_masked"]["phone"] == phone[:3] + "****" + phone[-4:]

    # Through the Open311 gateway: first and last name and phone become the case's complainant.
    portal_phone, portal_name = "137" + digits(8), ("诸葛", "测" + random.choice("一二三四五"))
    root = f"http://127.0.0.1:{fleet['open311'].port}/open311/v2"
    async with httpx.AsyncClient(base_url=root, timeout=10) as http:
        portal_case, _ = await post_until_routed(http, db, {
            "api_key": OPEN311_KEY, "service_code": "neighbor", "address_string": "临江新区幸福里9栋",
            "description": f"加密测试{uuid.uuid4().hex[:6]}：隔壁装修每天早上六点就开始电钻，老人孩子都睡不好觉",
            "first_name": portal_name[1], "last_name": portal_name[0], "phone": portal_phone,
            "email": "someone@example.org"}, f"e2e-crypt-{uuid.uuid4().hex[:8]}")

    unit = Unit(case["unit"])
    async with httpx.AsyncClient(base_url=desk_url, timeout=10) as desk:
        shown = (await desk.post(f"/desks/{unit.value}/cases/{case_id}/reveal", params={"officer": "加密测试"},
                                 headers={"Authorization": f"Bearer {token(unit.value)}"})).json()["complainant"]
        full = {"name": name, "phone": phone, "id_number": id_number}
        assert {f: shown[f] for f in in_full(unit)} == {f: full[f] for f in in_full(unit)}
        other = next(u for u in Unit if u is not unit)
        refused = await desk.post(f"/desks/{other.value}/cases/{case_id}/reveal", params={"officer": "x"},
                                  headers={"Authorization": f"Bearer {token(other.value)}"})
        assert refused.status_code == 404 and phone not in refused.text and name not in refused.text

    secrets = [name, phone, id_number, portal_phone, "".join(portal_name), "someone@example.org"]
    assert await clear_anywhere(db, secrets) == []
    assert KEY_VAULT in await db.list_collection_names()
    assert await db[KEY_VAULT].count_documents({}) == 1  # one data key, made by intake when it started
    assert await db.cases.find_one({"_id": portal_case, "complainant_masked.name": "诸***"})


@pytest.fixture
async def scratch(endpoints: infra.Endpoints) -> AsyncIterator[tuple[AsyncMongoClient[dict[str, Any]], str]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(endpoints.mongodb_uri, tz_aware=True)
    database = f"triage_keys_{uuid.uuid4().hex[:8]}"
    yield client, database
    await client.drop_database(database)
    await client.close()


async def test_processes_starting_at_once_agree_on_one_data_key(
        scratch: tuple[AsyncMongoClient[dict[str, Any]], str]) -> None:
    client, database = scratch
    key = os.urandom(96)
    starting = [PersonalData(client, database, key) for _ in range(6)]
    try:
        ids = await asyncio.gather(*(p.data_key() for p in starting))
        assert len(set(ids)) == 1
        [vault_key] = await client[database][KEY_VAULT].find({}).to_list()
        assert vault_key["_id"] == ids[0] and vault_key["keyAltNames"] == ["complainant"]
    finally:
        for p in starting:
            await p.close()


async def test_after_rotation_the_new_master_key_opens_old_cases_and_the_old_key_opens_nothing(
        endpoints: infra.Endpoints, scratch: tuple[AsyncMongoClient[dict[str, Any]], str]) -> None:
    client, database = scratch
    old, new = (SecretStr(base64.b64encode(os.urandom(96)).decode()) for _ in range(2))

    def settings(**keys: SecretStr) -> Settings:
        return Settings(dev_mode=False, mongodb_uri=endpoints.mongodb_uri, mongodb_database=database, **keys)

    before = MongoStorage.from_settings(settings(encryption_master_key=old), "rotation-test", personal_data=True)
    try:
        event = ChannelEvent(event_id="ev-rot", channel=Channel.HOTLINE_12345, occurred_at=datetime.now(UTC),
                             text="轮换测试", complainant=Complainant(name="上官测试", phone="13600001234",
                                                                      id_number="11010519491231002X"))
        case, change = Case.receive(event, case_id="GT-ROT", text=event.text, complainant_key=None,
                                    now=datetime.now(UTC))
        await before.cases.add(case, change)
    finally:
        await before.close()
    rewrapped = await rotate_keys(settings(encryption_master_key=new, encryption_previous_master_key=old),
                                  progress=lambda _: None)
    assert rewrapped == 1
    doc = await client[database].cases.find_one({"_id": "GT-ROT"})
    assert doc is not None

    after = MongoStorage.from_settings(settings(encryption_master_key=new), "rotation-test", personal_data=True)
    stale = MongoStorage.from_settings(settings(encryption_master_key=old), "rotation-test", personal_data=True)
    try:
        fields = ["name", "phone", "id_number"]
        assert await MongoDeskReads(after).reveal_complainant(doc, fields) == {
            "name": "上官测试", "phone": "13600001234", "id_number": "11010519491231002X"}
        with pytest.raises(StoreUnavailable) as refused:  # the desk answers 503; the cause is the key
            await MongoDeskReads(stale).reveal_complainant(doc, fields)
        assert isinstance(refused.value.__cause__, EncryptionError)
    finally:
        await after.close()
        await stale.close()
