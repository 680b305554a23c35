"""How the status feed writes a milestone: keyed by the upstream channel, as the event's JSON or, for the
consumers that want them, as a binary-mode CloudEvent carrying the same JSON."""

from __future__ import annotations

import json

from services.feed.relay import feed_key, feed_record
from shared.domain.milestones import milestones_of
from shared.events import Channel
from tests.unit.test_figures import november


def test_a_milestone_as_json_and_as_a_cloudevent() -> None:
    story = november()[0]
    update = milestones_of(story.case.id, Channel.HOTLINE_12345, "12345-0001", story.timeline)[3]  # resolved
    assert feed_key(update) == b"12345"
    value, headers = feed_record(update)
    assert json.loads(value)["payload"]["answer"] == "已调解" and dict(headers) == {"event-type": b"case.updated"}
    value, headers = feed_record(update, cloudevents=True)
    attributes = dict(headers)
    assert attributes["ce_id"] == update.event_id.encode() and attributes["ce_specversion"] == b"1.0"
    assert attributes["ce_type"] == b"cn.gov.district.grievance.case.updated.v1"
    assert attributes["ce_subject"] == story.case.id.encode()
    assert json.loads(value)["event_id"] == update.event_id  # the relay reads its own feed back by this id
