"""CloudEvents on the channel topic (shared/cloudevents.py): binary and structured mode read as the plain JSON
event would be, the event id derived from the CloudEvent's source and id, each refusal with its reason; and a
case event written as a CloudEvent in either mode, which the SDK reads back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from services.intake.handlers import read_channel_event
from shared import cloudevents as ce
from shared.config import Settings
from shared.events import SAFE_ID, CaseAlert, CaseAlertPayload, Channel, case_id_for
from shared.handling import Rejected

SETTINGS = Settings(dev_mode=True)
TIME = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
TEXT = "小区门口的路灯坏了两个星期，晚上出门黑漆漆的。"


def cloudevent(data: Any = None, **attributes: Any) -> CloudEvent:
    base: dict[str, Any] = {"id": "hotline-0001", "source": "/channels/12345", "type": ce.TYPE, "time": TIME,
                            "datacontenttype": "application/json"}
    return CloudEvent({**base, **attributes}, {"text": TEXT} if data is None else data)


def headers_of(message: kafka.KafkaMessage) -> list[tuple[str, bytes]]:
    return list(message.headers.items())


def binary(event: CloudEvent) -> tuple[bytes, list[tuple[str, bytes]]]:
    message = kafka.to_binary_event(event)
    return message.value, headers_of(message)


def structured(event: CloudEvent) -> tuple[bytes, list[tuple[str, bytes]]]:
    message = kafka.to_structured_event(event)
    return message.value, headers_of(message)


def read(value: bytes, headers: list[tuple[str, bytes]]) -> Any:
    return read_channel_event(value, SETTINGS, headers)


def refused(value: bytes, headers: list[tuple[str, bytes]]) -> Rejected:
    with pytest.raises(Rejected) as caught:
        read(value, headers)
    return caught.value


BINARY_HEADERS = [("ce_specversion", b"1.0"), ("ce_id", b"x-1"), ("ce_source", b"/channels/online"),
                  ("ce_type", ce.TYPE.encode()), ("content-type", b"application/json")]


def with_header(name: str, value: bytes | None) -> list[tuple[str, bytes]]:
    """The binary headers with `name` replaced (or dropped, for None)."""
    kept = [(n, v) for n, v in BINARY_HEADERS if n != name]
    return kept if value is None else [*kept, (name, value)]


DATA = json.dumps({"text": TEXT, "occurred_at": "2026-11-27T09:30:00+08:00"}, ensure_ascii=False).encode()


# --- reading ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encode", [binary, structured], ids=["binary", "structured"])
def test_a_cloudevent_reads_as_a_channel_event(encode: Any) -> None:
    event = read(*encode(cloudevent(subject="T-2026-0042")))
    assert event.channel is Channel.HOTLINE_12345  # from the source /channels/12345
    assert event.text == TEXT
    assert event.occurred_at == TIME  # from the time attribute
    assert event.external_ref == "T-2026-0042"  # from the subject
    assert event.event_id == ce.event_id_of("/channels/12345", "hotline-0001")
    assert SAFE_ID.fullmatch(event.event_id)


def test_the_same_cloudevent_twice_or_in_either_mode_is_one_event_id() -> None:
    first, again = cloudevent(), cloudevent()
    ids = {read(*binary(first)).event_id, read(*binary(again)).event_id, read(*structured(first)).event_id}
    assert len(ids) == 1
    other_source = read(*binary(cloudevent({"text": TEXT, "channel": "12345"}, source="/desks/12345")))
    other_id = read(*binary(cloudevent(id="hotline-0002")))
    assert len({*ids, other_source.event_id, other_id.event_id}) == 3
    assert case_id_for("12345", other_id.event_id) != case_id_for("12345", next(iter(ids)))


def test_the_data_may_name_its_own_event_id_channel_and_time() -> None:
    data = {"event_id": "letter-77", "channel": "letter", "occurred_at": "2026-11-20T08:00:00+08:00", "text": TEXT,
            "complainant": {"name": "王某", "phone": "13812345678"}}
    event = read(*structured(cloudevent(data, source="https://post.example/letters")))
    assert (event.event_id, event.channel, event.occurred_at.isoformat()) == (
        "letter-77", Channel.LETTER, "2026-11-20T08:00:00+08:00")
    assert event.complainant is not None and event.complainant.phone == "13812345678"


def test_traceparent_comes_from_the_tracing_extension() -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert read(*binary(cloudevent(traceparent=trace))).traceparent == trace


def test_plain_json_is_read_as_before_whatever_its_content_type() -> None:
    body = json.dumps({"event_id": "p-1", "channel": "online", "occurred_at": "2026-11-27T09:30:00+08:00",
                       "text": TEXT}, ensure_ascii=False).encode()
    for headers in ([], [("content-type", b"application/json")], [("content-type", b"text/plain")],
                    [("x-upstream", b"\xef\xbf\xbd")]):
        assert read(body, headers).event_id == "p-1"


def test_binary_content_type_may_carry_parameters_or_be_absent() -> None:
    assert read(DATA, with_header("content-type", b"application/json; charset=utf-8")).channel is Channel.ONLINE
    assert read(DATA, with_header("content-type", None)).channel is Channel.ONLINE


# --- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "reason", "names"), [
    (with_header("ce_id", None), "cloudevent_missing_attribute", "ce_id"),
    (with_header("ce_id", b""), "cloudevent_missing_attribute", "ce_id"),
    (with_header("ce_source", None), "cloudevent_missing_attribute", "ce_source"),
    (with_header("ce_type", None), "cloudevent_missing_attribute", "ce_type"),
    (with_header("ce_specversion", None), "cloudevent_missing_attribute", "ce_specversion"),
    (with_header("ce_specversion", b"0.3"), "cloudevent_unsupported_specversion", "1.0"),
    (with_header("ce_specversion", b"2.0"), "cloudevent_unsupported_specversion", "1.0"),
    (with_header("ce_type", b"com.example.order.created"), "cloudevent_unsupported_type", ce.TYPE),
    (with_header("ce_id", b"\xff\xfe"), "cloudevent_invalid_attribute", "ce_id is not UTF-8"),
    (with_header("ce_id", "x\ufffd".encode()), "cloudevent_invalid_attribute", "ce_id is not UTF-8"),
    (with_header("ce_time", b"yesterday"), "cloudevent_invalid_attribute", "time"),
    (with_header("ce_time", b"2026-11-27T09:30:00"), "cloudevent_invalid_attribute", "time"),
    (with_header("ce_Bad-Name", b"1"), "cloudevent_invalid_attribute", "bad-name"),
    ([*BINARY_HEADERS, ("ce_id", b"x-2")], "cloudevent_invalid_attribute", "ce_id appears twice"),
    (with_header("ce_source", b"/" + b"s" * 5000), "cloudevent_attribute_too_large", "ce_source"),
    ([*BINARY_HEADERS, *((f"ce_ext{i}", b"1") for i in range(40))], "cloudevent_attribute_too_large", "attributes"),
    (with_header("content-type", b"application/xml"), "cloudevent_unsupported_content_type", "application/json"),
    (with_header("ce_source", b"/channels/wechat"), "cloudevent_unknown_channel", "channel"),
    (with_header("ce_source", b"/channels/110"), "cloudevent_channel_mismatch", "110"),
])
def test_a_malformed_binary_cloudevent_is_refused_with_its_reason(
        headers: list[tuple[str, bytes]], reason: str, names: str) -> None:
    data = DATA if reason != "cloudevent_channel_mismatch" else json.dumps(
        {"text": TEXT, "channel": "12345", "occurred_at": "2026-11-27T09:30:00+08:00"}).encode()
    rejected = refused(data, headers)
    assert rejected.reason == reason, rejected
    assert names in rejected.detail, rejected.detail


@pytest.mark.parametrize(("value", "reason", "names"), [
    (b"", "cloudevent_data_missing", "empty"),
    (b"not json", "malformed_json", "Expecting value"),
    (b"[1, 2]", "schema_violation", "got list"),
    (b"\xff" + DATA, "invalid_utf8", "byte 0"),
    (b'{"text": "x", "occurred_at": "2026-11-27T09:30:00+08:00", "$where": "1"}', "forbidden_key", "$where"),
    (b'{"occurred_at": "2026-11-27T09:30:00+08:00"}', "schema_violation", "text"),
    (b"[" * 20_000, "malformed_json", ""),
    (json.dumps({"text": "噪" * 40_000}).encode(), "too_large", "bytes"),
])
def test_bad_data_in_a_binary_cloudevent_is_refused_as_plain_json_is(value: bytes, reason: str, names: str) -> None:
    rejected = refused(value, BINARY_HEADERS)
    assert (rejected.reason, names in rejected.detail) == (reason, True), rejected


def structured_body(**changes: Any) -> bytes:
    document: dict[str, Any] = {"specversion": "1.0", "id": "s-1", "source": "/channels/online", "type": ce.TYPE,
                                "datacontenttype": "application/json",
                                "data": {"text": TEXT, "occurred_at": "2026-11-27T09:30:00+08:00"}}
    document.update(changes)
    return json.dumps({k: v for k, v in document.items() if v is not ...}, ensure_ascii=False).encode()


STRUCTURED = [("content-type", b"application/cloudevents+json")]


@pytest.mark.parametrize(("value", "headers", "reason", "names"), [
    (b"{not json", STRUCTURED, "malformed_json", "line 1"),
    (b"\xff\xfe{}", STRUCTURED, "invalid_utf8", "byte 0"),
    (b'"a string"', STRUCTURED, "schema_violation", "got str"),
    (structured_body(data=...), STRUCTURED, "cloudevent_data_missing", "no data"),
    (structured_body(data=None), STRUCTURED, "cloudevent_data_missing", "no data"),
    (structured_body(data="路灯坏了"), STRUCTURED, "schema_violation", "got str"),
    (structured_body(data_base64="e30="), STRUCTURED, "cloudevent_unsupported_content_type", "data_base64"),
    (structured_body(id=...), STRUCTURED, "cloudevent_missing_attribute", "id"),
    (structured_body(id=""), STRUCTURED, "cloudevent_missing_attribute", "id"),
    (structured_body(id=42), STRUCTURED, "cloudevent_invalid_attribute", "id"),
    (structured_body(specversion="0.3"), STRUCTURED, "cloudevent_unsupported_specversion", "1.0"),
    (structured_body(type="cn.gov.district.grievance.complaint.v2"), STRUCTURED, "cloudevent_unsupported_type",
     ce.TYPE),
    (structured_body(time="soon"), STRUCTURED, "cloudevent_invalid_attribute", "time"),
    (structured_body(time=20261127), STRUCTURED, "cloudevent_invalid_attribute", "time"),
    (structured_body(subject="s" * 2000), STRUCTURED, "cloudevent_attribute_too_large", "subject"),
    (structured_body(datacontenttype="text/plain"), STRUCTURED, "cloudevent_unsupported_content_type", "json"),
    (structured_body(**{"$set": {"status": "closed"}}), STRUCTURED, "forbidden_key", "$set"),
    (structured_body(), [("content-type", b"application/cloudevents-batch+json")],
     "cloudevent_unsupported_content_type", "batches"),
    (structured_body(), [("content-type", b"application/cloudevents+avro")],
     "cloudevent_unsupported_content_type", "application/cloudevents+json"),
])
def test_a_malformed_structured_cloudevent_is_refused_with_its_reason(
        value: bytes, headers: list[tuple[str, bytes]], reason: str, names: str) -> None:
    rejected = refused(value, headers)
    assert rejected.reason == reason, rejected
    assert names in rejected.detail, rejected.detail


def test_a_refusal_never_quotes_personal_data() -> None:
    phone = "13712345678"
    rejected = refused(structured_body(data={"text": TEXT, "complainant": {"phone": f"call {phone}"}}), STRUCTURED)
    assert rejected.reason == "schema_violation" and phone not in str(rejected)
    rejected = refused(DATA, with_header("ce_source", f"/people/{phone}".encode()))
    assert rejected.reason == "cloudevent_unknown_channel" and phone not in str(rejected)


def test_every_reason_is_documented() -> None:
    assert all(reason.startswith("cloudevent_") for reason in ce.REASONS)


# --- writing ------------------------------------------------------------------------------------------


def alert() -> CaseAlert:
    return CaseAlert(event_id="GT-1.alert", case_id="GT-1", source_channel=Channel.HOTLINE_12345,
                     occurred_at=TIME, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                     payload=CaseAlertPayload(kind="overdue", unit="visitor", rule="visitor.accept", due="2026-12-14"))


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_a_case_event_is_written_as_a_cloudevent(mode: Any) -> None:
    event = alert()
    message = ce.to_kafka(event, source="/services/followup", mode=mode)
    assert message.key == b"GT-1"
    read_back = kafka.from_kafka(message, JSONFormat(), CloudEvent)
    assert read_back.get_id() == "GT-1.alert"
    assert read_back.get_source() == "/services/followup"
    assert read_back.get_type() == "cn.gov.district.grievance.case.alert.v1"
    assert read_back.get_subject() == "GT-1"
    assert read_back.get_time() == TIME
    assert read_back.get_extension("traceparent") == event.traceparent
    assert read_back.get_data() == json.loads(event.model_dump_json())
    assert CaseAlert.model_validate(read_back.get_data()) == event
    if mode == "binary":
        assert message.headers["ce_id"] == b"GT-1.alert"
        assert message.headers["content-type"] == b"application/json"
    else:
        assert message.headers == {"content-type": b"application/cloudevents+json"}


def test_the_writer_uses_the_given_type_prefix() -> None:
    cloudevent_ = ce.to_cloudevent(alert(), source="/s", type_prefix="org.example")
    assert cloudevent_.get_type() == "org.example.case.alert.v1"
