"""The MongoDB adapter: every port of shared/ports.py over PyMongo's AsyncMongoClient.

Collections are private to the adapter; each port's module names the documents it keeps. What FerretDB
alone needs is in ferretdb.py, switched off when the server turns out to be MongoDB.
"""

from __future__ import annotations

import logging

from pymongo import ASCENDING, AsyncMongoClient

from shared.adapters.mongo.cases import MongoCases, MongoReceipts, MongoRepeatIndex
from shared.adapters.mongo.desk import MongoDeskReads
from shared.adapters.mongo.ferretdb import Document, GroupCommit, VersionClaims, is_ferretdb
from shared.adapters.mongo.figures import MongoFigures
from shared.adapters.mongo.monitoring import StoreCommandCounter
from shared.adapters.mongo.personal import PersonalData
from shared.adapters.mongo.queue import MongoDeskQueue
from shared.adapters.mongo.records import MongoActionLog, MongoClock, MongoDeadLetters
from shared.adapters.mongo.timers import MongoTimerBook
from shared.adapters.projection import Projection
from shared.config import Settings

log = logging.getLogger(__name__)

__all__ = ["MongoDeskReads", "MongoStorage"]


class MongoStorage:
    """The store of one service: its ports, and the connection they share."""

    def __init__(self, client: AsyncMongoClient[Document], database: str, figures_fresh_seconds: float = 0.0,
                 figures_settled_seconds: float = 0.0, personal: PersonalData | None = None, service: str = "") -> None:
        self.client = client
        self.service = service  # the process this store serves: it adopts what it writes, at start
        self.db = client[database]
        self.personal = personal  # only where personal data is written or revealed: intake and the desk API
        commit = GroupCommit()
        self.desk_queue = MongoDeskQueue(self.db["desk_queue"], self.db["desk_queue_log"])
        self.figures = MongoFigures(self.db["figures"], self.db["figures_log"], fresh_seconds=figures_fresh_seconds,
                                    settled_seconds=figures_settled_seconds)
        self.cases = MongoCases(self.db["cases"], VersionClaims(self.db["case_versions"]),
                                Projection(self.desk_queue, self.figures), personal)
        self.receipts = MongoReceipts(self.db["receipts"])
        self.repeats = MongoRepeatIndex(self.db["repeat_index"], self.db["repeat_index_log"])
        self.timers = MongoTimerBook(self.db["timer_buckets"], self.db["timer_buckets_log"], self.db["timer_claims"],
                                     self.db["control"], commit)
        self.actions = MongoActionLog(self.db["desk_actions"])
        self.dead_letters = MongoDeadLetters(self.db["dead_letters"])
        self.clock = MongoClock(self.db["control"])

    @classmethod
    def from_settings(cls, settings: Settings, service: str = "", *, personal_data: bool = False) -> MongoStorage:
        """The store of a service; with `personal_data`, the master keys to encrypt and decrypt the complainant
        (a service without them never sees a complainant in the clear, nor stores one)."""
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.mongodb_uri,
            tz_aware=True,
            serverSelectionTimeoutMS=5_000,
            connectTimeoutMS=5_000,
            appname=f"grievance-triage-{service}" if service else "grievance-triage",
            maxPoolSize=settings.mongodb_max_connections,  # few enough for FerretDB: see ferretdb.py
            event_listeners=[StoreCommandCounter(service or "unknown")],
        )
        personal = PersonalData(client, settings.mongodb_database, *settings.master_keys()) if personal_data else None
        return cls(client, settings.mongodb_database, settings.figures_fresh_seconds, settings.figures_settled_seconds,
                   personal, service)

    async def prepare(self) -> None:
        """Learn which server this is, and create the desks' index (MongoDB uses it; FerretDB scans)."""
        mongodb = not await is_ferretdb(self.db)
        if mongodb:
            self.cases.claims = None  # MongoDB compares the version in the update itself
            log.info("store is MongoDB: version checks in the update, no claims")
        await self.db["cases"].create_index([("unit", ASCENDING), ("status", ASCENDING)])
        # What an earlier version kept in documents two processes updated at once, now logs of revisions, is
        # filed again by the service that writes it: one kind of process each, not every service at once.
        if self.service == "followup" and (moved := await self.timers.adopt(self.db["timer_days"])):
            log.info("filed the timers of %d day buckets of the earlier timer index in the buckets' logs", moved)
        if self.service == "intake" and (moved := await self.repeats.adopt(self.db["repeat_keys"])):
            log.info("filed the cases of %d keys of the earlier repeat index in the keys' logs", moved)
        if self.personal is not None:
            if mongodb:  # the key vault's usual guard; FerretDB has no partial index (the claim guards there too)
                await self.personal.vault.create_index("keyAltNames", unique=True,
                                                       partialFilterExpression={"keyAltNames": {"$exists": True}})
            await self.personal.data_key()  # found or made now, so two services starting at once agree on one

    async def ping(self) -> bool:
        try:
            await self.db.command("ping")
        except Exception:
            return False
        return True

    async def close(self) -> None:
        if self.personal is not None:
            await self.personal.close()
        await self.client.close()
