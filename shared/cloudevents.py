"""CloudEvents 1.0 on Kafka (the `cloudevents` SDK's Kafka binding): reading a channel event sent as one, and
writing any event as one.

Reading (intake, `triage.channel-events.v1`). A record is one of three things, told apart as the Kafka protocol
binding says:
- **binary** mode: any `ce_*` header. The attributes are the headers (`ce_specversion`, `ce_id`, `ce_source`,
  `ce_type`, optional `ce_time`, `ce_subject`, extensions), `content-type` is `application/json` (or absent),
  and the value is the data: a ChannelEvent-shaped JSON object.
- **structured** mode: `content-type: application/cloudevents+json`. The value is the whole CloudEvent as
  JSON, its `data` the ChannelEvent-shaped object.
- anything else: the plain ChannelEvent JSON of before, unchanged.

Only `specversion` 1.0 and the type `TYPE` are accepted. The data is a ChannelEvent whose `event_id`,
`channel`, `occurred_at`, `external_ref` and `traceparent` may be left out and taken from the CloudEvent:
- `event_id`: the data's own, else `ce-` and a hash of the CloudEvent's `source` and `id` (which together name
  one event, by the spec), so a redelivered CloudEvent is the same report and opens one case;
- `channel`: the data's own, else the source's when the source is `/channels/<channel>` (`/channels/12345`);
  a source of that form naming another channel than the data is refused;
- `occurred_at` from `time`, `external_ref` from `subject`, `traceparent` from the distributed-tracing extension.

What cannot be read is refused (`Rejected`, so dead-lettered) with one of the `REASONS` below, or with the
reasons the plain JSON gets (`too_large`, `invalid_utf8`, `malformed_json`, `forbidden_key`, `schema_violation`).
A detail names the attribute at fault, never its value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

from cloudevents.core.bindings import kafka
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared.events import Channel, Envelope
from shared.handling import Rejected, parse_json_object

TYPE: Final = "cn.gov.district.grievance.complaint.v1"
SPECVERSION: Final = "1.0"
SOURCE_PREFIX: Final = "/channels/"  # a source `/channels/<channel>` names the channel
STRUCTURED: Final = "application/cloudevents+json"
BATCH: Final = "application/cloudevents-batch+json"
JSON: Final = "application/json"
MAX_ATTRIBUTE_CHARS: Final = 1024  # any one attribute (an id, a source, a subject...)
MAX_ATTRIBUTES: Final = 32
REQUIRED: Final = ("specversion", "id", "source", "type")

REASONS: Final = {
    "cloudevent_missing_attribute": "a required attribute (specversion, id, source, type) is missing or empty",
    "cloudevent_unsupported_specversion": "specversion is not 1.0",
    "cloudevent_unsupported_type": f"type is not {TYPE}",
    "cloudevent_unsupported_content_type": "the data is not application/json (or the format not JSON)",
    "cloudevent_invalid_attribute": "an attribute is malformed: not UTF-8, a bad time, a bad extension name, twice",
    "cloudevent_attribute_too_large": f"an attribute over {MAX_ATTRIBUTE_CHARS} characters, or over "
    f"{MAX_ATTRIBUTES} attributes",
    "cloudevent_data_missing": "the CloudEvent carries no data",
    "cloudevent_unknown_channel": "neither the data nor the source names a channel",
    "cloudevent_channel_mismatch": "the source names another channel than the data",
}

Headers = Sequence[tuple[str, bytes]]
Mode = Literal["binary", "structured", "plain"]


def _media_type(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return text.split(";", 1)[0].strip().lower()


def relevant_headers(headers: Headers) -> tuple[tuple[str, bytes], ...]:
    """The headers that decide how a record reads: `ce_*` and `content-type`, names in lower case."""
    return tuple((name.lower(), value or b"") for name, value in headers
                 if name.lower().startswith(kafka.CE_PREFIX) or name.lower() == "content-type")


def mode_of(headers: Headers) -> Mode:
    names = [name.lower() for name, _ in headers]
    if any(name.startswith(kafka.CE_PREFIX) for name in names):
        return "binary"
    content_type = next((_media_type(v) for n, v in headers if n.lower() == "content-type"), None)
    if content_type is not None and content_type.startswith("application/cloudevents"):
        return "structured"
    return "plain"


def event_id_of(source: str, ce_id: str) -> str:
    """The event id of a CloudEvent whose data names none: `source` and `id` name one event (CloudEvents 1.0)."""
    digest = hashlib.sha256(json.dumps([source, ce_id], ensure_ascii=False).encode()).hexdigest()
    return f"ce-{digest[:32]}"


def channel_of_source(source: str) -> str | None:
    """The channel a source of the form `/channels/<channel>` names, else None."""
    if not source.startswith(SOURCE_PREFIX):
        return None
    name = source[len(SOURCE_PREFIX):]
    return name if name in {c.value for c in Channel} else None


def channel_event_fields(value: bytes, headers: Headers, *, max_bytes: int) -> dict[str, Any] | None:
    """The ChannelEvent fields of a CloudEvent record, to validate as a ChannelEvent; None for a plain record
    (its value is the ChannelEvent JSON itself). Raises Rejected for a CloudEvent that cannot be read."""
    ce_headers = relevant_headers(headers)
    match mode_of(ce_headers):
        case "plain":
            return None
        case "binary":
            event, data = _read_binary(value, ce_headers, max_bytes)
        case "structured":
            event, data = _read_structured(value, ce_headers, max_bytes)
    return _fields(event, data)


def _check_sizes(attributes: Mapping[str, Any], name: str) -> None:
    if len(attributes) > MAX_ATTRIBUTES:
        raise Rejected("cloudevent_attribute_too_large", f"{len(attributes)} attributes, the limit is {MAX_ATTRIBUTES}")
    for key, value in attributes.items():
        if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_CHARS:
            raise Rejected("cloudevent_attribute_too_large",
                           f"{name.format(key[:40])}: {len(value)} characters, the limit is {MAX_ATTRIBUTE_CHARS}")


def _check_required(attributes: Mapping[str, Any], name: str) -> None:
    for attribute in REQUIRED:
        if attributes.get(attribute) in (None, ""):
            raise Rejected("cloudevent_missing_attribute", f"{name.format(attribute)} is missing or empty")
    if attributes["specversion"] != SPECVERSION:
        raise Rejected("cloudevent_unsupported_specversion",
                       f"{name.format('specversion')} must be {SPECVERSION}")
    if attributes["type"] != TYPE:
        raise Rejected("cloudevent_unsupported_type", f"{name.format('type')} must be {TYPE}")


def _check_content_type(content_type: Any, name: str) -> None:
    if content_type is not None and (not isinstance(content_type, str) or _media_type(content_type) != JSON):
        raise Rejected("cloudevent_unsupported_content_type", f"{name} must be {JSON}")


def _sdk_read(read: Any) -> CloudEvent:
    """Run one of the SDK's readers, its refusals turned into reasons that name the attribute."""
    try:
        event = read()
    except CloudEventValidationError as exc:
        raise Rejected("cloudevent_invalid_attribute", "; ".join(
            f"{attribute}: {'; '.join(str(e) for e in errors)}" for attribute, errors in exc.errors.items())[:500]
        ) from None
    except (ValueError, TypeError, AttributeError, OverflowError):
        raise Rejected("cloudevent_invalid_attribute", "time is not an RFC 3339 timestamp") from None
    if not isinstance(event, CloudEvent):  # v0.3 and others were refused by their specversion before this
        raise Rejected("cloudevent_unsupported_specversion", f"specversion must be {SPECVERSION}")
    return event


class _DataAsBytes(JSONFormat):
    """The JSON format with the data left as the record's bytes: the SDK maps the headers to attributes, and
    the data goes through the same guarded parser as a plain event (size, UTF-8, depth, MongoDB keys)."""

    def read_data(self, body: bytes, datacontenttype: str | None) -> bytes:
        return body


def _read_binary(value: bytes, headers: Headers, max_bytes: int) -> tuple[CloudEvent, Any]:
    attributes: dict[str, bytes] = {}
    for name, raw in headers:
        if name in attributes:
            raise Rejected("cloudevent_invalid_attribute", f"header {name[:40]} appears twice")
        attributes[name] = raw
    texts: dict[str, str] = {}
    for name, raw in attributes.items():
        text = raw.decode("utf-8", "replace")
        if "\ufffd" in text:  # not UTF-8 (the consumer replaced it), or no value at all
            raise Rejected("cloudevent_invalid_attribute", f"header {name[:40]} is not UTF-8")
        texts[name] = text
    _check_sizes(texts, "header {}")
    _check_required({name.removeprefix(kafka.CE_PREFIX): v for name, v in texts.items()
                     if name.startswith(kafka.CE_PREFIX)}, "ce_{}")
    _check_content_type(texts.get("content-type"), "the content-type header")
    message = kafka.KafkaMessage(headers={name: text.encode() for name, text in texts.items()}, key=None, value=value)
    event = _sdk_read(lambda: kafka.from_binary(message, _DataAsBytes(), CloudEvent))
    if not value:
        raise Rejected("cloudevent_data_missing", "the record's value (the data) is empty")
    return event, parse_json_object(value, max_bytes=max_bytes)


def _read_structured(value: bytes, headers: Headers, max_bytes: int) -> tuple[CloudEvent, Any]:
    content_type = _media_type(dict(headers).get("content-type"))
    if content_type == BATCH:
        raise Rejected("cloudevent_unsupported_content_type", "batches of CloudEvents are not accepted: one a record")
    if content_type != STRUCTURED:
        raise Rejected("cloudevent_unsupported_content_type", f"the structured format must be {STRUCTURED}")
    document = parse_json_object(value, max_bytes=max_bytes)
    _check_sizes(document, "{}")
    _check_required(document, "{}")
    _check_content_type(document.get("datacontenttype"), "datacontenttype")
    if "data_base64" in document:
        raise Rejected("cloudevent_unsupported_content_type", f"data_base64: the data must be {JSON}")
    message = kafka.KafkaMessage(headers={"content-type": STRUCTURED.encode()}, key=None, value=value)
    event = _sdk_read(lambda: kafka.from_structured(message, JSONFormat(), CloudEvent))
    if "data" not in document or document["data"] is None:
        raise Rejected("cloudevent_data_missing", "the CloudEvent has no data")
    return event, event.get_data()


def _fields(event: CloudEvent, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Rejected("schema_violation", f"data: expected a JSON object, got {type(data).__name__}")
    fields = dict(data)
    fields.setdefault("event_id", event_id_of(event.get_source(), event.get_id()))
    named = channel_of_source(event.get_source())
    if "channel" not in fields:
        if named is None:
            raise Rejected("cloudevent_unknown_channel",
                           f"the data has no channel and the source is not {SOURCE_PREFIX}<channel>")
        fields["channel"] = named
    elif named is not None and fields["channel"] != named:
        raise Rejected("cloudevent_channel_mismatch", f"the source names the channel {named}, the data another")
    attributes = event.get_attributes()
    if "occurred_at" not in fields and isinstance(attributes.get("time"), datetime):
        fields["occurred_at"] = attributes["time"].isoformat()
    if "external_ref" not in fields and event.get_subject():
        fields["external_ref"] = event.get_subject()
    if "traceparent" not in fields and isinstance(attributes.get("traceparent"), str):
        fields["traceparent"] = attributes["traceparent"]
    return fields


# --- writing ----------------------------------------------------------------------------------------


def to_cloudevent(event: Envelope, *, source: str, type_prefix: str = "cn.gov.district.grievance") -> CloudEvent:
    """A case event as a CloudEvent: its id, time and case (subject) as attributes, its JSON as the data; the
    type is `<type_prefix>.<event type>.v<schema version>` (case.routed → `….case.routed.v1`)."""
    attributes: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": event.event_id,
        "source": source,
        "type": f"{type_prefix}.{event.event_type}.v{event.schema_version}",
        "time": event.occurred_at,
        "subject": event.case_id,
        "datacontenttype": JSON,
    }
    if event.traceparent:
        attributes["traceparent"] = event.traceparent
    return CloudEvent(attributes, event.model_dump(mode="json"))


def to_kafka(event: Envelope, *, source: str, mode: Literal["binary", "structured"] = "binary",
             type_prefix: str = "cn.gov.district.grievance") -> kafka.KafkaMessage:
    """A case event as a Kafka record in either CloudEvents mode (key: the case id, so a case keeps its order).
    Publish `message.value` with `message.headers` and `message.key`."""
    cloudevent = to_cloudevent(event, source=source, type_prefix=type_prefix)

    def key_of(_: Any) -> bytes:
        return event.case_id.encode()

    write = kafka.to_binary if mode == "binary" else kafka.to_structured
    return write(cloudevent, JSONFormat(), key_of)
