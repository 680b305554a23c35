"""How every consumer treats a message: parse, do the work, retry what is transient, dead-letter the rest.

At-least-once with idempotent effects: a handler returns (and FastStream commits the offset) only after
its store writes and publishes succeeded. Store or broker outages are retried with capped backoff for as
long as they last; an event that can never succeed is dead-lettered with its reason and the consumer
carries on with the next one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from aiokafka.errors import KafkaError, KafkaTimeoutError
from pydantic import BaseModel, ValidationError
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    EncryptionError,
    ExecutionTimeout,
    OperationFailure,
    WTimeoutError,
)

from shared.metrics import RETRIES

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


class Rejected(Exception):
    """The event cannot be processed as it is: it is dead-lettered with this reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Contended(Exception):
    """Another writer holds what this one needs; it will let go (or its event will come again)."""


def is_transient(exc: BaseException) -> bool:
    """Failures of the store or the broker that pass by themselves: worth waiting for.

    A duplicate key is one: the store only ever upserts, so it means a concurrent upsert of the same id
    won the race, and the retry finds its document (MongoDB's own advice for upserts)."""
    if isinstance(exc, Contended | ConnectionFailure | ExecutionTimeout | WTimeoutError | KafkaTimeoutError):
        return True
    if isinstance(exc, DuplicateKeyError):
        return True
    if isinstance(exc, EncryptionError):
        # The key vault out of reach, or a master key that does not open the data key (a rotation half done):
        # either fails every complaint alike, so wait for it (consumer lag shows it) rather than dead-letter all.
        return True
    if isinstance(exc, OperationFailure) and _server_stopping(exc):
        return True
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False))
    return isinstance(exc, ConnectionError | TimeoutError)


# MongoDB's codes for an operation cut short by a shutdown or a step-down.
_SHUTDOWN_CODES = {91, 11600, 11602}
# FerretDB's internal errors (code 1) that pass: a request cut short as it stops (its context cancelled, or
# its SQLite transaction rolled back under it), and SQLite busy with another writer.
_FERRETDB_PASSING = ("context canceled", "transaction has already been committed or rolled back", "SQLITE_BUSY")


def _server_stopping(exc: OperationFailure) -> bool:
    """A server going down answers the operations in flight with an error, not a dropped connection:
    MongoDB with a shutdown code, FerretDB with an internal error (see _FERRETDB_PASSING)."""
    return exc.code in _SHUTDOWN_CODES or (exc.code == 1 and any(text in str(exc) for text in _FERRETDB_PASSING))


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.2
    maximum: float = 5.0


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    service: str,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run `operation` until it succeeds or fails for a reason that waiting will not cure."""
    delay = backoff.initial
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            RETRIES.labels(service, type(exc).__name__).inc()
            log.warning("transient failure, retrying in %.1fs: %s", delay, type(exc).__name__)
            await sleep(delay)
            delay = min(delay * 2, backoff.maximum)


# --- batches ----------------------------------------------------------------------------------------


def chains(records: Sequence[R], keys_of: Callable[[R], Iterable[Hashable]]) -> list[list[R]]:
    """Split a batch into chains that may run side by side: records sharing any key (a case id; for
    intake, a complainant or a text) fall into one chain, in batch order; a record without keys is a chain
    of its own. Chains touch disjoint documents, so running them concurrently changes no outcome."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[Hashable, int] = {}
    for index, record in enumerate(records):
        root(index)
        for key in keys_of(record):
            if key in owner:
                parent[root(index)] = root(owner[key])
            else:
                owner[key] = index
    grouped: dict[int, list[R]] = {}
    for index, record in enumerate(records):
        grouped.setdefault(root(index), []).append(record)
    return list(grouped.values())


# --- parsing untrusted bytes ------------------------------------------------------------------------


def _forbidden_key(value: Any, path: str = "") -> str | None:
    """The first key that MongoDB would read as an operator or a path, wherever it is nested."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str) or key.startswith("$") or "." in key or "\x00" in key:
                return f"{path}{key!r}"
            if found := _forbidden_key(inner, f"{path}{key}."):
                return found
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            if found := _forbidden_key(inner, f"{path}[{index}]."):
                return found
    return None


_PERSONAL = re.compile(r"\d{5,}|[\u4e00-\u9fff]")  # digits of a phone or ID number, or a name


def describe_validation_error(error: ValidationError, limit: int = 5) -> str:
    """A readable summary that never echoes the input (it may carry personal data): not the values, and
    not an unknown key that looks like a phone number or a name."""
    parts = []
    for item in error.errors(include_input=False, include_url=False)[:limit]:
        where = ".".join("<key>" if _PERSONAL.search(str(p)) else str(p) for p in item["loc"]) or "(event)"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_event(body: bytes, model: type[M], *, max_bytes: int) -> M:
    """Decode and validate one event, or raise Rejected naming exactly what is wrong with it."""
    return validate_event(parse_json_object(body, max_bytes=max_bytes), model)


def validate_event(data: dict[str, Any], model: type[M]) -> M:
    """Validate JSON that `parse_json_object` decoded as `model`, or raise Rejected naming what is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Rejected("schema_violation", describe_validation_error(exc)) from None


def parse_json_object(body: bytes, *, max_bytes: int) -> dict[str, Any]:
    """Decode one JSON object from untrusted bytes, or raise Rejected naming what is wrong: its size, its
    encoding, its syntax (or depth), its type, or a key MongoDB would read as an operator or a path."""
    if len(body) > max_bytes:
        raise Rejected("too_large", f"{len(body)} bytes, the limit is {max_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("invalid_utf8", f"byte {exc.start} is not valid UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Rejected("malformed_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise Rejected("malformed_json", "nested too deeply") from None
    if not isinstance(data, dict):
        raise Rejected("schema_violation", f"expected a JSON object, got {type(data).__name__}")
    if key := _forbidden_key(data):
        raise Rejected("forbidden_key", f"key {key} looks like a MongoDB operator or path")
    return data


@dataclass(frozen=True)
class Source:
    """Where a consumed message came from, for dead-letter records and logs."""

    topic: str
    partition: int
    offset: int

    @property
    def id(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True)
class DeadLetter:
    service: str
    source: Source
    reason: str
    detail: str
    at: datetime
    body: bytes

    def headers(self) -> dict[str, str]:
        return {
            "x-dlq-reason": self.reason,
            "x-dlq-detail": self.detail[:1000],
            "x-dlq-service": self.service,
            "x-dlq-source": self.source.id,
            "x-dlq-at": self.at.isoformat(),
        }

    def record(self) -> dict[str, Any]:
        """What the store keeps: the reason and where, not the body (it may hold personal data)."""
        return {
            "service": self.service,
            "reason": self.reason,
            "detail": self.detail[:1000],
            "source": self.source.id,
            "at": self.at,
            "size": len(self.body),
            "body_sha256": hashlib.sha256(self.body).hexdigest(),
        }
