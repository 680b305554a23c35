"""Parsing untrusted events and telling transient failures from permanent ones."""

from __future__ import annotations

import json

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DuplicateKeyError,
    EncryptionError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from shared.events import ChannelEvent
from shared.handling import Backoff, Rejected, chains, is_transient, parse_event, retry_transient

GOOD = {"event_id": "abc-1", "channel": "12345", "occurred_at": "2026-11-27T09:30:00+08:00", "text": "楼上漏水"}


def parse(body: bytes | dict[str, object]) -> ChannelEvent:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return parse_event(raw, ChannelEvent, max_bytes=4096)


def reason_of(body: bytes | dict[str, object]) -> str:
    with pytest.raises(Rejected) as caught:
        parse(body)
    return caught.value.reason


def test_a_good_event_parses() -> None:
    assert parse(GOOD).text == "楼上漏水"


@pytest.mark.parametrize(("body", "reason"), [
    (b"{", "malformed_json"),
    (b"\xff\xfe", "invalid_utf8"),
    (b"[1, 2]", "schema_violation"),
    ({**GOOD, "channel": "fax"}, "schema_violation"),
    ({**GOOD, "text": 42}, "schema_violation"),
    ({k: v for k, v in GOOD.items() if k != "text"}, "schema_violation"),
    ({**GOOD, "case_id": "GT-FORGED"}, "schema_violation"),
    ({**GOOD, "complainant": {"$ne": None}}, "forbidden_key"),
    ({**GOOD, "complainant": {"name.first": "王"}}, "forbidden_key"),
    ({**GOOD, "text": "bell\x07"}, "schema_violation"),
    ({**GOOD, "event_id": "../../etc"}, "schema_violation"),
    ({**GOOD, "occurred_at": "2026-11-27T09:30:00"}, "schema_violation"),
    ({**GOOD, "text": "长" * 2000}, "too_large"),
])
def test_bad_events_are_rejected_with_a_reason(body: bytes | dict[str, object], reason: str) -> None:
    assert reason_of(body) == reason


def test_rejection_details_never_echo_the_input() -> None:
    with pytest.raises(Rejected) as caught:
        parse({**GOOD, "complainant": {"phone": "not-a-phone-13812345678x"}})
    assert "13812345678" not in caught.value.detail
    assert "complainant.phone" in caught.value.detail


@pytest.mark.parametrize("exc", [AutoReconnect("x"), ServerSelectionTimeoutError("x"),
                                 KafkaConnectionError(), KafkaTimeoutError(), ConnectionRefusedError()])
def test_outages_are_transient(exc: Exception) -> None:
    assert is_transient(exc)


def test_a_lost_upsert_race_is_retried() -> None:
    # The store only upserts: a duplicate key means a concurrent upsert of the same id got there first.
    assert is_transient(DuplicateKeyError("E11000"))


def test_an_encryption_failure_waits_rather_than_dead_letters_every_complaint() -> None:
    assert is_transient(EncryptionError(ConnectionFailure("key vault unreachable")))
    assert is_transient(EncryptionError(Exception("KMS provider `local:k0` is not configured")))


@pytest.mark.parametrize("exc", [
    OperationFailure("[msg_update.go:133 handler.(*Handler).updateDocument] context canceled", 1),  # FerretDB stopping
    OperationFailure("[db.go:167 fsql.(*DB).InTransaction] sql: transaction has already been committed or rolled back",
                     1),  # FerretDB stopping under an update
    OperationFailure("[collection.go:177 sqlite.(*collection).UpdateAll.func1] database is locked (5) (SQLITE_BUSY)", 1),
    OperationFailure("interrupted at shutdown", 11600),
    OperationFailure("shutdown in progress", 91),
])
def test_a_store_going_down_mid_operation_is_transient(exc: Exception) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [MessageSizeTooLargeError(), ValueError("x"), OperationFailure("bad update", 9),
                                 OperationFailure("internal error", 1)])
def test_other_failures_are_not(exc: Exception) -> None:
    assert not is_transient(exc)


async def test_retry_waits_out_an_outage_with_growing_capped_delays() -> None:
    delays: list[float] = []
    attempts = iter([AutoReconnect("down"), AutoReconnect("down"), AutoReconnect("down"), None])

    async def operation() -> str:
        if exc := next(attempts):
            raise exc
        return "done"

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    assert await retry_transient(operation, service="t", backoff=Backoff(0.1, 0.3), sleep=sleep) == "done"
    assert delays == [0.1, 0.2, 0.3]


async def test_retry_gives_up_at_once_on_a_permanent_failure() -> None:
    async def operation() -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError):
        await retry_transient(operation, service="t")


def test_chains_keep_each_keys_records_in_order_and_apart_from_others() -> None:
    batch = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]
    assert chains(batch, lambda r: [r[0]]) == [[("a", 1), ("a", 3)], [("b", 2), ("b", 5)], [("c", 4)]]


def test_chains_join_records_that_share_any_key() -> None:
    # Intake: a report joins another's chain through the complainant, a third through the same text.
    keys = {1: ["who:x", "text:p"], 2: ["text:q"], 3: ["who:x", "text:q"], 4: ["text:r"], 5: []}
    assert chains([1, 2, 3, 4, 5], lambda r: keys[r]) == [[1, 2, 3], [4], [5]]


def test_chains_of_an_empty_batch() -> None:
    assert chains([], lambda r: [r]) == []
