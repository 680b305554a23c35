"""`triage keys status | create | rotate`: the data key the complainant's name, phone and ID number are encrypted
under (in the store's `key_vault`), and the master key that wraps it (never in the store).

Rotating the master key, with no moment where a service cannot read: give intake, the desk API and this tool the
new key as ENCRYPTION_MASTER_KEY(_FILE) and the old one as ENCRYPTION_PREVIOUS_MASTER_KEY(_FILE) and restart them
(they open a data key wrapped by either); run `triage keys rotate`, which rewraps every data key under the new one
(the personal data itself is not encrypted again: only its data key's wrapping changes); then remove the previous
key and restart. From then on the old master key opens nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from shared.adapters.mongo import MongoStorage
from shared.adapters.mongo.personal import PersonalData
from shared.config import DEV_MASTER_KEY, ConfigurationRefused, Settings


def _personal(settings: Settings) -> tuple[MongoStorage, PersonalData]:
    current, previous = settings.master_keys()
    if not settings.dev_mode and DEV_MASTER_KEY in (current, previous):
        raise ConfigurationRefused("keys: set ENCRYPTION_MASTER_KEY_FILE (or ENCRYPTION_MASTER_KEY): the public "
                                   "development master key is for DEV_MODE only")
    storage = MongoStorage.from_settings(settings, "keys", personal_data=True)
    assert storage.personal is not None
    return storage, storage.personal


async def key_status(settings: Settings) -> list[dict[str, Any]]:
    """Each data key: its id and names, which master key wraps it (by fingerprint) and whether that is the
    current one, when it was made and last rewrapped."""
    storage, personal = _personal(settings)
    try:
        return [{"id": str(uuid.UUID(bytes=bytes(doc["_id"]))), "names": list(doc.get("keyAltNames", [])),
                 "wrapped_by": (wrapper := doc["masterKey"]["provider"]), "current": wrapper == personal.provider,
                 "created": doc.get("creationDate"), "rewrapped": doc.get("updateDate")}
                async for doc in personal.vault.find({})]
    finally:
        await storage.close()


async def create_key(settings: Settings, progress: Callable[[str], None] = print) -> str:
    """The data key, made now if no service has made it yet; returns its id."""
    storage, personal = _personal(settings)
    try:
        key_id = str(uuid.UUID(bytes=bytes(await personal.data_key())))
        progress(f"keys: data key {key_id} wrapped by {personal.provider}")
        return key_id
    finally:
        await storage.close()


async def rotate_keys(settings: Settings, progress: Callable[[str], None] = print) -> int:
    """Every data key rewrapped under the current master key; returns how many were rewrapped."""
    storage, personal = _personal(settings)
    try:
        rewrapped = await personal.rewrap()
        left = await personal.vault.count_documents({"masterKey.provider": {"$ne": personal.provider}})
        progress(f"keys rotate: {rewrapped} data keys rewrapped under {personal.provider}; {left} left under another")
        return rewrapped
    finally:
        await storage.close()
