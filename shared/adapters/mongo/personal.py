"""Personal data encrypted field by field: PyMongo's explicit client-side encryption (libmongocrypt).

Each value of the complainant (name, phone, ID number) is encrypted on its own, AEAD_AES_256_CBC_HMAC_SHA_512
Random (nothing is ever looked up by it: repeats match on the keyed hash of the phone), under one data key kept
in the store's `key_vault` collection. The data key is wrapped by a master key that never reaches the store: a
local one here, each named `local:<fingerprint>` after its hash, so a key document says which master key wraps
it and a process can hold the previous master key beside the current one while `triage keys rotate` rewraps.

The first process to need the data key makes it. Two starting at once each make one, then claim the name with
an upsert on a fixed `_id` in `control` (the one unique index FerretDB has); the loser deletes its own key
before it has encrypted anything, so every process encrypts under the same key.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from bson.binary import STANDARD, Binary
from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.encryption import AsyncClientEncryption
from pymongo.encryption_shared import Algorithm
from pymongo.errors import DuplicateKeyError

Document = dict[str, Any]

KEY_VAULT = "key_vault"
DATA_KEY_NAME = "complainant"
CLAIM_ID = f"data_key:{DATA_KEY_NAME}"
ALGORITHM = Algorithm.AEAD_AES_256_CBC_HMAC_SHA_512_Random
ENCRYPTED_SUBTYPE = 6  # BSON's subtype for a client-side encrypted value


class Sealer(Protocol):
    """What the case codec needs: one value encrypted, one decrypted."""

    async def seal(self, value: str) -> Any: ...

    async def unseal(self, value: Any) -> str: ...


def provider_of(master_key: bytes) -> str:
    """The KMS provider name of a local master key: its fingerprint, so a key document names the master key
    that wraps it without revealing it."""
    return "local:k" + hashlib.sha256(master_key).hexdigest()[:16]


def is_sealed(value: Any) -> bool:
    return isinstance(value, Binary) and value.subtype == ENCRYPTED_SUBTYPE


class PersonalData:
    """The process's encrypter: the master keys it was given and the data key it found or made."""

    def __init__(self, client: AsyncMongoClient[Document], database: str, master_key: bytes,
                 previous_master_key: bytes | None = None) -> None:
        self.provider = provider_of(master_key)
        providers = {provider_of(key): {"key": key} for key in (previous_master_key, master_key) if key}
        self.vault = client[database][KEY_VAULT]
        self.control = client[database]["control"]
        self.encryption: AsyncClientEncryption[Document] = AsyncClientEncryption(
            providers, f"{database}.{KEY_VAULT}", client, CodecOptions(uuid_representation=STANDARD))
        self.key_id: Binary | None = None
        self._finding = asyncio.Lock()

    async def seal(self, value: str) -> Binary:
        key_id = self.key_id or await self.data_key()
        return await self.encryption.encrypt(value, ALGORITHM, key_id=key_id)

    async def unseal(self, value: Any) -> str:
        plain = await self.encryption.decrypt(value)
        return str(plain)

    async def data_key(self) -> Binary:
        """The id of the data key, made by the first process that needs it (see the module's note)."""
        async with self._finding:
            if self.key_id is None:
                claim = await self.control.find_one({"_id": CLAIM_ID})
                if claim is None:
                    claim = await self._claim(await self.encryption.create_data_key(self.provider))
                key_id: Binary = claim["key_id"]
                # Named for people reading the vault (`triage keys status`); whoever sees it unnamed names it.
                await self.vault.update_one({"_id": key_id, "keyAltNames": {"$ne": DATA_KEY_NAME}},
                                            {"$addToSet": {"keyAltNames": DATA_KEY_NAME}})
                self.key_id = key_id
            return self.key_id

    async def _claim(self, made: Binary) -> Document:
        try:
            claim = await self.control.find_one_and_update(
                {"_id": CLAIM_ID}, {"$setOnInsert": {"key_id": made, "at": datetime.now(UTC)}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:  # MongoDB: two upserts raced, the other inserted
            claim = await self.control.find_one({"_id": CLAIM_ID})
        assert claim is not None  # an upsert, or the document the other one inserted
        if claim["key_id"] != made:
            await self.encryption.delete_key(made)  # never used: the claimed key is everyone's
        return claim

    async def rewrap(self) -> int:
        """Every data key not yet under the current master key, rewrapped under it; returns how many."""
        result = await self.encryption.rewrap_many_data_key({"masterKey.provider": {"$ne": self.provider}},
                                                            provider=self.provider)
        return result.bulk_write_result.modified_count if result.bulk_write_result else 0

    async def close(self) -> None:
        await self.encryption.close()


class PersonalDataLocked(PermissionError):
    """A process without the master key met an encrypted value it was asked to read, or personal data to write."""


async def sealed_complainant(complainant: Mapping[str, str], sealer: Sealer | None) -> Document:
    if sealer is None:
        raise PersonalDataLocked("this process has no master key: it may not store personal data")
    return {field: await sealer.seal(value) for field, value in complainant.items()}  # ~0.1 ms each: no gather


async def unsealed_complainant(stored: Mapping[str, Any] | None, fields: Iterable[str],
                               sealer: Sealer | None) -> dict[str, str]:
    """The named fields of a stored complainant in the clear, and no others: a field not asked for is never
    decrypted. A plain string (a case stored before encryption) is taken as it is."""
    shown: dict[str, str] = {}
    for field in fields:
        value = (stored or {}).get(field)
        if isinstance(value, str):
            shown[field] = value
        elif is_sealed(value):
            if sealer is None:
                raise PersonalDataLocked("this process has no master key: it cannot decrypt personal data")
            shown[field] = await sealer.unseal(value)
    return shown
