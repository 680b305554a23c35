"""The event parsers under hypothesis, with a fixed budget (derandomized): whatever bytes and headers arrive,
a parser returns an event or refuses it with a reason to dead-letter (`Rejected`), never anything else, and a
refusal's detail never repeats a phone number it was given."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.cloudevents import channel_event_fields
from shared.events import EVENT_TYPES, ChannelEvent
from shared.handling import Rejected, parse_event, validate_event

BUDGET = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
PHONE = "13812345678"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40) | st.just(PHONE),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20)
MODELS = [ChannelEvent, *EVENT_TYPES.values()]


def refused_or_parsed(attempt: Any) -> None:
    try:
        attempt()
    except Rejected as refused:
        assert refused.reason and PHONE not in refused.detail


@BUDGET
@given(st.binary(max_size=600), st.sampled_from(MODELS))
def test_any_bytes(body: bytes, model: Any) -> None:
    refused_or_parsed(lambda: parse_event(body, model, max_bytes=4096))


@BUDGET
@given(st.dictionaries(st.sampled_from(["event_id", "case_id", "channel", "text", "payload", "occurred_at",
                                        "source_channel", "complainant", "$where", "a.b"]), json_values, max_size=8),
       st.sampled_from(MODELS))
def test_any_json_object(data: dict[str, Any], model: Any) -> None:
    refused_or_parsed(lambda: parse_event(json.dumps(data).encode(), model, max_bytes=65536))
    refused_or_parsed(lambda: validate_event(data, model))


ce_names = st.sampled_from(["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject",
                            "ce_traceparent", "content-type", "ce_bad name", "x-other"])


@BUDGET
@given(st.lists(st.tuples(ce_names, st.binary(max_size=60) | st.sampled_from(
    [b"1.0", b"cn.gov.district.grievance.complaint.v1", b"/channels/12345", b"application/cloudevents+json",
     b"application/json", b"2026-11-27T09:30:00+08:00"])), max_size=8),
       st.binary(max_size=400) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_cloudevent_headers(headers: list[tuple[str, bytes]], value: bytes) -> None:
    refused_or_parsed(lambda: channel_event_fields(value, headers, max_bytes=4096))
