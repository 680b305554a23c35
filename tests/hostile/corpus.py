"""The hostile input corpus, as data: what is published, where, and what must come of it.

Each `HostileInput` is one message put on a topic as it is, and its expected outcome: dead-lettered by a
named service with a named reason (and a detail that names what is wrong without quoting personal data),
or handled: it opens its own case, which is routed with the listed fields stored exactly as sent.

Event ids carry a tag unique to the test session, and every corpus message shares one Kafka key, so the
corpus lands on one partition and is consumed in the order listed here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared import topics
from shared.events import case_id_for

RUN = uuid.uuid4().hex[:8]
KEY = f"hostile-{RUN}".encode()
OCCURRED_AT = "2026-11-27T09:30:00+08:00"

# Personal data the corpus carries; none of it may reach a dead letter's detail or a service's log.
NAME = "欧阳明珠"
PHONE = "13712345678"
ID_NUMBER = "11010119900307123X"
PERSONAL = (NAME, PHONE, ID_NUMBER)
COMPLAINANT = {"name": NAME, "phone": PHONE, "id_number": ID_NUMBER}

# Ordinary complaints, each a different matter: none is similar enough to another to be merged as a repeat.
ORDINARY = {
    "sentinel": "小区门口的路灯坏了两个星期，晚上出门黑漆漆的，老人容易摔倒。",
    "mediation": "婆婆和我们因为拆迁款分配闹翻了，想请调解员帮忙说和一下。",
    "barrier": "菜市场旁边的烧烤摊每天晚上油烟很大，熏得我们家窗户都不敢开。",
    "replay_marker": "我家楼下的下水道堵了，污水漫到人行道上，臭气熏天。",
    "replay_forged": "网购的电饭煲收到就是坏的，商家拒绝退货，平台客服也不管。",
    "after_flood": "学校门口有黑车长期揽客，接送孩子很不安全，希望有人管一管。",
    "race": "公交站台的顶棚被大风吹坏了，下雨天等车的人都淋湿了。",
    "final": "村里的自来水这几天发黄有异味，老人小孩都不敢喝。",
    "handback": "我租的房子到期了，房东扣着押金不退，说墙面有划痕要赔偿。",
    "poison_0": "公园里的健身器材坏了好几件，螺丝都松了，孩子玩的时候很危险。",
    "poison_1": "楼下餐馆把泔水直接倒进雨水井，夏天一到味道特别难闻。",
}
SENTINEL_COMPLAINANT = {"name": "司马青", "phone": "13800007777"}
IMPOSTOR = {"name": "冒名顶替", "phone": "13911112222"}
RACE_PHONE = "13766660000"
# Never stored: the text of every event that must be dead-lettered.
REJECTED_TEXT = "物业擅自把小区绿地改成收费停车场，业主们都不同意。"

# A flood from one number: one matter reported 40 times (20 identical, 20 reworded) and four other matters
# five times each. The first report of each matter opens its case; the rest must join it.
FLOOD_PHONE = "13755550000"
FLOOD_MATTERS = (
    "我家隔壁的工厂每天夜里两点开始机器轰鸣，震得整栋楼都在响，已经持续一个多月了，家里老人孩子都睡不着觉。",
    "在社区医院看病被多收了挂号费，收据上写的和实际付的钱对不上。",
    "儿子在驾校报名交了五千块，半年了还没有安排练车。",
    "单元电梯上个月维修后又坏了，物业说没有钱修。",
    "门口的共享单车乱停乱放，挡住了轮椅出入。",
)


def flood_variant(matter: int, n: int) -> str:
    return f"{FLOOD_MATTERS[matter]}（这是第{n}次反映）"


def flood_plan() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(matter, text) of the openers, then of the 55 reports that follow in one burst."""
    openers = [(m, FLOOD_MATTERS[m]) for m in range(len(FLOOD_MATTERS))]
    burst = [(0, FLOOD_MATTERS[0])] * 19 + [(0, flood_variant(0, n)) for n in range(2, 22)]
    burst += [(m, flood_variant(m, n)) for n in range(2, 6) for m in range(1, len(FLOOD_MATTERS))]
    return openers, burst


# PII smuggled in as a key rather than a value (see the case "personal-data-as-key").
PHONE_AS_KEY = "13698765432"

_serial = itertools.count()


def event_id(prefix: str = "hostile") -> str:
    return f"{prefix}-{RUN}-{next(_serial):03d}"


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def sha256(raw: bytes) -> str:
    """How a dead letter names the body it refused."""
    return hashlib.sha256(raw).hexdigest()


def event(text: Any = REJECTED_TEXT, *, channel: Any = "online", drop: tuple[str, ...] = (), **extra: Any
          ) -> dict[str, Any]:
    """A channel event, as an upstream channel would publish it, with `extra` fields added or replaced."""
    body: dict[str, Any] = {"event_id": event_id(), "channel": channel, "occurred_at": OCCURRED_AT, "text": text,
                            **extra}
    for name in drop:
        body.pop(name)
    return body


def event_with(keys: Mapping[str, Any]) -> dict[str, Any]:
    """A well-formed event with `keys` added: keys no keyword argument could spell."""
    return {**event(), **keys}


def desk_action(case_id: Any, **payload: Any) -> dict[str, Any]:
    """A DeskAction event as the desk API would publish it to the desk-actions topic."""
    return {
        "event_id": event_id("DA-hostile"), "case_id": case_id, "schema_version": 1, "occurred_at": OCCURRED_AT,
        "source_channel": "online",
        "payload": {"unit": "command", "action": "accept", "actor": "intruder", **payload},
    }


SENTINEL_EVENT: dict[str, Any] = {"event_id": event_id(), "channel": "12345", "occurred_at": OCCURRED_AT,
                  "text": ORDINARY["sentinel"], "complainant": SENTINEL_COMPLAINANT}
SENTINEL_CASE = case_id_for("12345", SENTINEL_EVENT["event_id"])


# --- outcomes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLettered:
    """Dead-lettered once by `service` with `reason`; the detail names `names` and none of `secrets`."""

    reason: str
    names: str = ""
    service: str = "intake"
    secrets: tuple[str, ...] = PERSONAL


@dataclass(frozen=True)
class Routed:
    """Handled as a legitimate complaint: its own case (no merge), routed, `stored` fields kept verbatim."""

    stored: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HostileInput:
    name: str
    body: bytes | dict[str, Any]
    expect: DeadLettered | Routed
    topic: str = topics.CHANNEL_EVENTS
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def raw(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else encode(self.body)

    @property
    def sha256(self) -> str:
        return sha256(self.raw)

    @property
    def case_id(self) -> str | None:
        """The case a channel event would open: derived from its channel and event id, if both are usable."""
        if self.topic != topics.CHANNEL_EVENTS or not isinstance(self.body, dict):
            return None
        channel, eid = self.body.get("channel"), self.body.get("event_id")
        if not isinstance(channel, str) or not isinstance(eid, str):
            return None
        try:
            return case_id_for(channel, eid)
        except ValueError:
            return None


def _tagged(prefix: bytes) -> bytes:
    """A broken body that still carries the session's tag, so its hash is unique to this run."""
    return prefix.replace(b"@", RUN.encode())


SCRIPT_TEXT = "<script>alert(1)</script> 楼下的理发店每天晚上音响开得很大，吵得孩子没法写作业。"
SCRIPT_NAME = "<img src=x onerror=alert(1)>"
SCRIPT_LOCATION = "</script><script>alert(2)</script>"
SCRIPT_REF = "<b>&amp;</b>"

TEXT_PLAIN = (("content-type", b"text/plain"),)
HUNDRED_KB_TEXT = "楼上装修噪音" * (100 * 1024 // len("楼上装修噪音".encode()) + 1)


def _with_bytes(raw: bytes) -> bytes:
    """A well-formed event whose text has `raw` spliced into it, byte for byte."""
    return encode(event("楼道\u2603灯坏了")).replace("\u2603".encode(), raw)


CE_TYPE = "cn.gov.district.grievance.complaint.v1"
CE_STRUCTURED = (("content-type", b"application/cloudevents+json"),)


def ce_binary(**changes: bytes | None) -> tuple[tuple[str, bytes], ...]:
    """The headers of a binary-mode CloudEvent from the online portal, with `changes` (None drops one)."""
    headers: dict[str, bytes | None] = {"ce_specversion": b"1.0", "ce_id": event_id("ce").encode(),
                                        "ce_source": b"/channels/online", "ce_type": CE_TYPE.encode(),
                                        "content-type": b"application/json", **changes}
    return tuple((name, value) for name, value in headers.items() if value is not None)


def ce_structured(**changes: Any) -> dict[str, Any]:
    """A structured-mode CloudEvent whose data is a channel event, with `changes` (None drops one)."""
    document = {"specversion": "1.0", "id": event_id("ce"), "source": "/channels/online", "type": CE_TYPE,
                "datacontenttype": "application/json", "data": event(complainant=COMPLAINANT), **changes}
    return {name: value for name, value in document.items() if value is not None}


S = DeadLettered
SV = "schema_violation"
FK = "forbidden_key"

CORPUS: tuple[HostileInput, ...] = (
    # --- malformed JSON -----------------------------------------------------------------------------
    HostileInput("malformed-json-truncated", _tagged(b'{"event_id": "h-@", "channel": '), S("malformed_json")),
    HostileInput("malformed-json-single-quotes", _tagged(b"{'event_id': 'h-@', 'text': 'x'}"), S("malformed_json")),
    HostileInput("malformed-json-trailing-garbage", encode(event()) + b"}}", S("malformed_json", "Extra data")),
    HostileInput("malformed-json-empty-body", b"", S("malformed_json")),
    HostileInput("malformed-json-raw-control-byte", _with_bytes(b"\x01"), S("malformed_json", "control character")),
    HostileInput("malformed-json-utf8-bom", b"\xef\xbb\xbf" + encode(event()), S("malformed_json", "BOM")),
    HostileInput("malformed-json-deeply-nested", _tagged(b'{"h": "@", "x": ') + b"[" * 20_000,
                 S("malformed_json"), headers=TEXT_PLAIN),
    HostileInput("not-an-object-array", _tagged(b'["h-@"]'), S(SV, "got list")),
    HostileInput("not-an-object-null", b"null", S(SV, "got NoneType")),
    HostileInput("not-an-object-string", _tagged(b'"h-@"'), S(SV, "got str")),
    # --- wrong types --------------------------------------------------------------------------------
    HostileInput("text-as-number", event(12345), S(SV, "text")),
    HostileInput("text-as-nan", encode(event()).replace(json.dumps(REJECTED_TEXT, ensure_ascii=False).encode(),
                                                        b"NaN"), S(SV, "text")),
    HostileInput("text-as-null", event(None), S(SV, "text")),
    HostileInput("text-as-list", event([REJECTED_TEXT]), S(SV, "text")),
    HostileInput("channel-as-list", event(channel=["12345"]), S(SV, "channel")),
    HostileInput("channel-as-number", event(channel=12345), S(SV, "channel")),
    HostileInput("event-id-as-number", event(event_id=12345), S(SV, "event_id")),
    HostileInput("event-id-path-traversal", event(event_id="../../cases/x"), S(SV, "event_id")),
    HostileInput("occurred-at-not-a-date", event(occurred_at="yesterday"), S(SV, "occurred_at")),
    HostileInput("occurred-at-without-zone", event(occurred_at="2026-11-27T09:30:00"), S(SV, "occurred_at")),
    HostileInput("occurred-at-out-of-range", event(occurred_at="0001-01-01T00:00:00+14:00"), S(SV, "occurred_at")),
    HostileInput("schema-version-2", event(schema_version=2), S(SV, "schema_version")),
    HostileInput("complainant-as-string", event(complainant=f"{NAME} {PHONE}"), S(SV, "complainant")),
    HostileInput("phone-as-number", event(complainant={"name": NAME, "phone": int(PHONE)}), S(SV, "phone")),
    HostileInput("phone-in-prose", event(complainant={"name": NAME, "phone": f"call {PHONE}"}), S(SV, "phone")),
    HostileInput("id-number-malformed", event(complainant={"name": NAME, "id_number": ID_NUMBER + "99"}),
                 S(SV, "id_number")),
    HostileInput("name-too-long", event(complainant={"name": NAME * 20, "phone": PHONE}), S(SV, "name")),
    # --- missing fields -----------------------------------------------------------------------------
    HostileInput("missing-text", event(drop=("text",), complainant=COMPLAINANT), S(SV, "text")),
    HostileInput("missing-channel", event(drop=("channel",)), S(SV, "channel")),
    HostileInput("missing-event-id", _tagged(b'{"channel": "online", "occurred_at": "2026-11-27T09:30:00+08:00", '
                                             b'"text": "h-@"}'), S(SV, "event_id")),
    HostileInput("missing-occurred-at", event(drop=("occurred_at",)), S(SV, "occurred_at")),
    HostileInput("empty-object", b"{}", S(SV, "event_id")),
    HostileInput("blank-text", event(" \n\t "), S(SV, "text")),
    # --- unknown channel ----------------------------------------------------------------------------
    HostileInput("unknown-channel", event(channel="wechat", complainant=COMPLAINANT), S(SV, "channel")),
    HostileInput("empty-channel", event(channel=""), S(SV, "channel")),
    # --- size ---------------------------------------------------------------------------------------
    HostileInput("text-100kb", event(HUNDRED_KB_TEXT, complainant=COMPLAINANT), S("too_large", "bytes")),
    HostileInput("text-9000-characters", event("噪" * 9000), S("text_too_long", "9000 characters")),
    # --- invalid UTF-8 ------------------------------------------------------------------------------
    HostileInput("invalid-utf8-leading-bytes", b"\xff\xfe" + encode(event()), S("invalid_utf8", "byte 0")),
    HostileInput("invalid-utf8-in-text", _with_bytes(b"\xc3\x28"), S("invalid_utf8")),
    HostileInput("invalid-utf8-overlong-slash", _with_bytes(b"\xc0\xaf"), S("invalid_utf8")),
    HostileInput("invalid-utf8-surrogate-bytes", _with_bytes(b"\xed\xa0\x80"), S("invalid_utf8")),
    HostileInput("lone-surrogate-escape", json.dumps(event("a\ud800b")).encode(), S(SV, "text")),
    # --- control characters -------------------------------------------------------------------------
    HostileInput("text-nul", event("楼道\u0000灯坏了"), S(SV, "control characters")),
    HostileInput("text-ansi-escape", event("\u001b[2J\u001b[31m楼道灯坏了"), S(SV, "control characters")),
    HostileInput("text-del", event("楼道灯\u007f坏了"), S(SV, "control characters")),
    HostileInput("text-backspaces", event("楼道灯坏了\b\b\b\b"), S(SV, "control characters")),
    HostileInput("name-bell", event(complainant={"name": "欧阳\u0007明珠", "phone": PHONE}),
                 S(SV, "complainant.name")),
    HostileInput("name-nul", event(complainant={"name": f"{NAME}\u0000", "phone": PHONE}), S(SV, "complainant.name")),
    HostileInput("location-escape", event(location="\u001b]0;pwned\u0007"), S(SV, "location")),
    HostileInput("text-c1-control", event("\u009b31m装修公司收了定金以后就不来施工了，电话也打不通。"),
                 S(SV, "control characters")),
    HostileInput("text-newlines-and-tabs", event("楼上的狗每天叫到半夜。\n物业说管不了。\t已经反映过三次"),
                 Routed({"text": "楼上的狗每天叫到半夜。\n物业说管不了。\t已经反映过三次"})),
    # --- MongoDB operators and dotted keys, in every place a key can be ----------------------------
    HostileInput("top-level-where", event_with({"$where": "sleep(5000)"}), S(FK, "$where")),
    HostileInput("top-level-set", event_with({"$set": {"status": "closed"}}), S(FK, "$set")),
    HostileInput("top-level-dotted", event_with({"complainant.phone": PHONE}), S(FK, "complainant.phone")),
    HostileInput("top-level-dollar-only", event_with({"$": 1}), S(FK, "$")),
    HostileInput("top-level-nul-key", event_with({"text\u0000": "x"}), S(FK, "text")),
    HostileInput("complainant-where", event(complainant={"$where": "this.phone.length > 0", "name": NAME}),
                 S(FK, "$where")),
    HostileInput("complainant-gt", event(complainant={"phone": {"$gt": ""}}), S(FK, "$gt")),
    HostileInput("complainant-ne", event(complainant={"name": {"$ne": None}, "phone": PHONE}), S(FK, "$ne")),
    HostileInput("complainant-regex", event(complainant={"$regex": ".*"}), S(FK, "$regex")),
    HostileInput("complainant-dotted", event(complainant={"name.first": NAME, "phone": PHONE}), S(FK, "name.first")),
    HostileInput("complainant-list-of-operators", event(complainant=[{"$gt": ""}]), S(FK, "$gt")),
    HostileInput("text-operator", event({"$gt": ""}), S(FK, "$gt")),
    HostileInput("event-id-operator", event(event_id={"$ne": ""}), S(FK, "$ne")),
    HostileInput("location-operator", event(location={"$regex": "^"}), S(FK, "$regex")),
    HostileInput("occurred-at-operator", event(occurred_at={"$gt": ""}), S(FK, "$gt")),
    HostileInput("nested-dotted-key", event(extra={"a": {"b": [{"c.d": 1}]}}), S(FK, "c.d")),
    HostileInput("nested-operator-in-list", event(tags=[1, {"x": {"$where": "1"}}]), S(FK, "$where")),
    HostileInput("desk-action-payload-set", desk_action(SENTINEL_CASE, **{"$set": {"status": "closed"}}),
                 S(FK, "$set", service="followup"), topic=topics.DESK_ACTIONS),
    HostileInput("desk-action-dotted-top-level", {**desk_action(SENTINEL_CASE), "payload.unit": "police"},
                 S(FK, "payload.unit", service="followup"), topic=topics.DESK_ACTIONS),
    HostileInput("desk-action-case-id-operator", desk_action({"$ne": ""}), S(FK, "$ne", service="followup"),
                 topic=topics.DESK_ACTIONS),
    HostileInput("desk-action-unsafe-case-id", desk_action("../" + SENTINEL_CASE),
                 S(SV, "case_id", service="followup"), topic=topics.DESK_ACTIONS),
    HostileInput("desk-action-unknown-action", desk_action(SENTINEL_CASE, action="delete"),
                 S(SV, "action", service="followup"), topic=topics.DESK_ACTIONS),
    HostileInput("desk-action-malformed", _tagged(b'{"event_id": "DA-@", "payload": '),
                 S("malformed_json", service="followup"), topic=topics.DESK_ACTIONS),
    # --- operator-looking values are legitimate text ------------------------------------------------
    HostileInput("value-where", event("$where"), Routed({"text": "$where"})),
    HostileInput("value-gt-braces", event("{$gt: 1}"), Routed({"text": "{$gt: 1}"})),
    # FastStream decodes every header as UTF-8 before the handler: this one once failed its batch forever.
    HostileInput("header-not-utf8", event("邻居家空调外机正对我家窗户，噪音很大"),
                 Routed({"text": "邻居家空调外机正对我家窗户，噪音很大"}), headers=(("x-upstream", b"\xff\xfe\x80"),)),
    HostileInput("value-json-operator", event('{"$gt": ""}', complainant={"name": "$ne"}, location="{$where: 1}",
                                              external_ref="$regex.a.b"),
                 Routed({"text": '{"$gt": ""}', "complainant": {"name": "$ne"}, "location": "{$where: 1}",
                         "external_ref": "$regex.a.b"})),
    HostileInput("value-operators-in-prose", event("快递单号 $where.a.b 查询不到物流，客服说是 {$gt: 1} 系统错误，已经等了一周"),
                 Routed({"text": "快递单号 $where.a.b 查询不到物流，客服说是 {$gt: 1} 系统错误，已经等了一周"})),
    # --- markup: routed, and escaped wherever a desk reads it (see test_script_tags_reach_desks_escaped)
    HostileInput("script-tags", event(SCRIPT_TEXT, complainant={"name": SCRIPT_NAME}, location=SCRIPT_LOCATION,
                                      external_ref=SCRIPT_REF),
                 Routed({"text": SCRIPT_TEXT, "complainant": {"name": SCRIPT_NAME}, "location": SCRIPT_LOCATION,
                         "external_ref": SCRIPT_REF})),
    # --- forged identities --------------------------------------------------------------------------
    HostileInput("forged-case-id", event(case_id=SENTINEL_CASE), S(SV, "case_id")),
    HostileInput("forged-mongo-id", event(_id=SENTINEL_CASE), S(SV, "_id")),
    HostileInput("forged-status", event(status="closed", unit="police"), S(SV, "status")),
    # --- personal data where a key should be --------------------------------------------------------
    HostileInput("personal-data-as-key", event(complainant={PHONE_AS_KEY: "欧阳明珠"}),
                 S(SV, "complainant", secrets=(PHONE_AS_KEY,))),
    # --- CloudEvents: binary mode (attributes in ce_* headers), structured mode (the whole event as JSON) -
    HostileInput("cloudevent-binary-missing-id", event(complainant=COMPLAINANT), S("cloudevent_missing_attribute", "ce_id"),
                 headers=ce_binary(ce_id=None)),
    HostileInput("cloudevent-binary-wrong-specversion", event(), S("cloudevent_unsupported_specversion", "1.0"),
                 headers=ce_binary(ce_specversion=b"0.3")),
    HostileInput("cloudevent-binary-unknown-type", event(), S("cloudevent_unsupported_type", CE_TYPE),
                 headers=ce_binary(ce_type=b"com.example.order.created")),
    HostileInput("cloudevent-binary-id-not-utf8", event(), S("cloudevent_invalid_attribute", "ce_id is not UTF-8"),
                 headers=ce_binary(ce_id=b"\xff\xfe\x80")),
    HostileInput("cloudevent-binary-time-not-a-time", event(), S("cloudevent_invalid_attribute", "time"),
                 headers=ce_binary(ce_time=b"yesterday")),
    HostileInput("cloudevent-binary-huge-source", event(), S("cloudevent_attribute_too_large", "ce_source"),
                 headers=ce_binary(ce_source=b"/channels/online/" + b"x" * 100_000)),
    HostileInput("cloudevent-binary-data-not-json", _tagged(b"h-@ not json"), S("malformed_json"),
                 headers=ce_binary()),
    HostileInput("cloudevent-binary-data-operator", event({"$gt": ""}), S(FK, "$gt"), headers=ce_binary()),
    HostileInput("cloudevent-structured-not-json", _tagged(b'{"specversion": "1.0", "id": "h-@", "data": '),
                 S("malformed_json"), headers=CE_STRUCTURED),
    HostileInput("cloudevent-structured-data-missing", ce_structured(data=None),
                 S("cloudevent_data_missing", "no data"), headers=CE_STRUCTURED),
    HostileInput("cloudevent-structured-missing-id", ce_structured(id=None), S("cloudevent_missing_attribute", "id"),
                 headers=CE_STRUCTURED),
    HostileInput("cloudevent-structured-huge-subject", ce_structured(subject="s" * 5000),
                 S("cloudevent_attribute_too_large", "subject"), headers=CE_STRUCTURED),
    HostileInput("cloudevent-structured-unknown-type", ce_structured(type="cn.gov.district.grievance.complaint.v2"),
                 S("cloudevent_unsupported_type", CE_TYPE), headers=CE_STRUCTURED),
    HostileInput("cloudevent-structured-batch", ce_structured(), S("cloudevent_unsupported_content_type", "batches"),
                 headers=(("content-type", b"application/cloudevents-batch+json"),)),
)

BY_NAME = {case.name: case for case in CORPUS}

# Poison messages: bodies that FastStream's own decoding would choke on before the handler runs (it once
# replayed them forever and stalled intake). They are published one at a time, last, on a known partition.
POISON: tuple[HostileInput, ...] = (
    HostileInput("poison-deeply-nested-json", _tagged(b'{"poison": "@", "x": ') + b"[" * 20_000,
                 S("malformed_json")),
    HostileInput("poison-broken-json-declared-as-json", _tagged(b'{"poison": "@", "channel": '),
                 S("malformed_json"), headers=(("content-type", b"application/json"),)),
)
