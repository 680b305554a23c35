"""What the Open311 gateway does with each request, apart from the HTTP wiring (main.py): check the key and the
limits, read the form, publish the complaint, and answer from the store in the spec's shapes."""

from __future__ import annotations

import hashlib
import logging
import math
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from prometheus_client import Counter
from pydantic import ValidationError

from services.open311 import catalog
from services.open311.publish import Publish, PublishFailed
from services.open311.store import Open311Store
from services.open311.views import request_of, status_of
from shared.config import Settings
from shared.events import Channel, ChannelEvent, Complainant, case_id_for
from shared.limits import RateLimit
from shared.metrics import REGISTRY

log = logging.getLogger(__name__)
BASE = "/open311/v2"
REQUESTS = Counter("triage_open311_requests", "Open311 gateway requests by upstream, endpoint and status",
                   ["upstream", "endpoint", "status"], registry=REGISTRY)
PUBLISH_TIMEOUT_SECONDS = 5.0
MAX_FIELDS = 64
_IDEMPOTENCY = re.compile(r"[\x21-\x7e]{1,128}")
_URL = re.compile(r"https?://[^\s]{1,2040}")
NOTICE = "已收到，正在分拣派单；凭 token 查询案件编号（tokens/{token}）。"


class Refused(Exception):
    """An answer in the spec's error list: the status and what was wrong, never the value sent."""

    def __init__(self, status: int, *descriptions: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.descriptions, self.headers = status, descriptions or ("refused",), dict(headers or {})


def split_format(name: str) -> tuple[str, str]:
    """`services.xml` → (`services`, `xml`); no extension is JSON; any other is not found."""
    base, dot, ext = name.rpartition(".")
    if not dot:
        return name, "json"
    if ext not in ("json", "xml"):
        raise Refused(404, "not found: the format must be .json or .xml")
    return base, ext


def fmt_of(path: str) -> str:
    return "xml" if path.endswith(".xml") else "json"


class Gateway:
    def __init__(self, settings: Settings, store: Open311Store, publish: Publish,
                 clock: Callable[[], datetime], limit: RateLimit) -> None:
        self.settings, self.store, self.publish, self.clock, self.limit = settings, store, publish, clock, limit
        self.channels = {name: Channel(settings.open311_channels.get(name, Channel.ONLINE.value))
                         for name in set(settings.open311_keys.values()) | set(settings.open311_channels)}

    # who asks
    def upstream_of(self, key: str | None) -> str | None:
        """The upstream a key belongs to; None when no key was sent; a wrong key is refused."""
        if key is None or key == "":
            return None
        upstream = self.settings.open311_keys.get(key)
        if upstream is None:
            raise Refused(403, "api_key is not valid")
        return upstream

    def charge(self, request: Request, key: str | None) -> None:
        upstream = self.settings.open311_keys.get(key or "")
        who = f"upstream:{upstream}" if upstream else f"addr:{request.client.host if request.client else '-'}"
        if not self.limit.allow(who):
            raise Refused(429, f"too many requests: at most {self.limit.per_minute} a minute",
                          headers={"Retry-After": str(self.limit.retry_after())})

    # posting
    async def read_form(self, request: Request) -> dict[str, str]:
        cap = self.settings.open311_max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise Refused(413, f"the request body is over {cap} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                raise Refused(413, f"the request body is over {cap} bytes")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise Refused(400, "the body must be application/x-www-form-urlencoded")
        try:
            pairs = parse_qs(bytes(body).decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS,
                             errors="strict")
        except UnicodeDecodeError:
            raise Refused(400, "the body must be UTF-8") from None
        except ValueError:
            raise Refused(400, f"at most {MAX_FIELDS} fields") from None
        repeated = sorted(k for k, v in pairs.items() if len(v) > 1 and not k.startswith("attribute["))
        if repeated:
            raise Refused(400, *(f"{k}: given more than once" for k in repeated[:5]))
        return {k: v[0] for k, v in pairs.items()}

    def event_of(self, form: Mapping[str, str], upstream: str, token: str) -> tuple[ChannelEvent, dict[str, Any]]:
        problems: list[str] = []

        def text(name: str, limit: int) -> str | None:
            value = form.get(name, "").strip()
            if len(value) > limit:
                problems.append(f"{name}: at most {limit} characters")
                return None
            return value or None

        code = text("service_code", 64)
        if code is None:
            problems.append("service_code: required")
        elif catalog.service(code) is None:
            problems.append("service_code: not a known service (see services.json)")
        description = text("description", self.settings.open311_max_description_chars)
        if description is None and "description" not in " ".join(problems):
            problems.append("description: required")
        address = text("address_string", 200)
        address_id = text("address_id", 64)
        lat, lon = text("lat", 32), text("long", 32)
        point: tuple[float, float] | None = None
        if (lat is None) != (lon is None):
            problems.append("lat and long: give both or neither")
        elif lat is not None and lon is not None:
            try:
                point = (float(lat), float(lon))
            except ValueError:
                problems.append("lat and long: must be decimal degrees")
            else:
                if not (all(map(math.isfinite, point)) and -90 <= point[0] <= 90 and -180 <= point[1] <= 180):
                    problems.append("lat and long: out of range")
                    point = None
        if address is None and address_id is None and point is None and not any("lat" in p for p in problems):
            problems.append("a location is required: lat and long, address_string or address_id")
        first, last = text("first_name", 32), text("last_name", 32)
        phone = text("phone", 24)
        for field, limit in (("email", 254), ("device_id", 128), ("account_id", 128), ("media_url", 2048)):
            text(field, limit)  # accepted, not kept: the gateway needs none of them
        media = form.get("media_url", "").strip()
        if media and not _URL.fullmatch(media):
            problems.append("media_url: must be an http(s) URL")
        if problems:
            raise Refused(400, *problems)
        assert code is not None and description is not None
        name: str | None = None
        if first or last:
            parts = [p for p in (first, last) if p]
            name = " ".join(parts) if all(p.isascii() for p in parts) else "".join(reversed(parts))
        location = address or (f"{point[0]:.6f},{point[1]:.6f}" if point else f"地址编号 {address_id}")
        try:
            complainant = Complainant(name=name, phone=phone) if name or phone else None
        except ValidationError as exc:
            raise Refused(400, *(f"{'first_name/last_name' if e['loc'][0] == 'name' else e['loc'][0]}: not valid"
                                 for e in exc.errors())) from None
        try:
            event = ChannelEvent(event_id=token, channel=self.channels.get(upstream, Channel.ONLINE),
                                 occurred_at=self.clock(), text=description, complainant=complainant,
                                 location=location, external_ref=f"open311:{upstream}")
        except ValidationError as exc:
            raise Refused(400, *(f"{'description' if e['loc'][0] == 'text' else e['loc'][0]}: not valid"
                                 for e in exc.errors())) from None
        record = {"_id": case_id_for(event.channel, token), "token": token, "upstream": upstream,
                  "channel": event.channel.value, "service_code": code, "requested_at": event.occurred_at,
                  "address": address, "lat": point[0] if point else None, "long": point[1] if point else None}
        return event, record

    @staticmethod
    def token_for(upstream: str, idempotency_key: str | None) -> str:
        if idempotency_key is None:
            return f"o311-{uuid.uuid4().hex}"
        if not _IDEMPOTENCY.fullmatch(idempotency_key):
            raise Refused(400, "Idempotency-Key: 1 to 128 printable ASCII characters")
        return "o311-" + hashlib.sha256(f"{upstream}\n{idempotency_key}".encode()).hexdigest()[:32]

    async def post(self, request: Request) -> list[dict[str, Any]]:
        form = await self.read_form(request)
        key = form.get("api_key")
        self.charge(request, key)
        upstream = self.upstream_of(key)
        if upstream is None:
            raise Refused(403, "api_key is required to post a request")
        token = self.token_for(upstream, request.headers.get("idempotency-key"))
        event, record = self.event_of(form, upstream, token)
        try:
            await self.store.file(record)
            await self.publish(event)
        except PublishFailed:
            raise Refused(503, "the request could not be passed on now; send it again "
                               "(with the same Idempotency-Key)") from None
        return [{"token": token, "service_notice": NOTICE}]

    # reading
    async def case_for_token(self, token: str) -> tuple[str, dict[str, Any]] | None:
        filed = await self.store.token(token)
        if filed is None:
            return None
        record = await self.store.record(str(filed["case_id"]))
        if record is None:
            return None
        # A repeat report joins the open case it repeats: intake's receipt names the case it went to.
        actual = await self.store.case_of_receipt(f"{record['channel']}:{token}") or record["_id"]
        case = await self.store.case(actual)
        if case is None:
            return None
        if actual != record["_id"]:
            await self.store.file({**record, "_id": actual, "token": f"{token}.merged", "merged_into": True})
        return actual, case

    async def one(self, case_id: str, upstream: str | None) -> dict[str, Any]:
        record = await self.store.record(case_id)
        case = await self.store.case(case_id) if record is not None else None
        if record is None or case is None:
            raise Refused(404, "no such service request (or it is still being processed)")
        return request_of(case, record, owner=upstream is not None and record.get("upstream") == upstream)

    async def listed(self, params: Mapping[str, str], upstream: str) -> list[dict[str, Any]]:
        cap = self.settings.open311_max_results
        wanted_ids = [i.strip() for i in params.get("service_request_id", "").split(",") if i.strip()]
        codes = {c.strip() for c in params.get("service_code", "").split(",") if c.strip()}
        statuses = {s.strip() for s in params.get("status", "").split(",") if s.strip()}
        if statuses - {"open", "closed"}:
            raise Refused(400, "status: open, closed or both")
        start, end = _date_param(params, "start_date"), _date_param(params, "end_date")
        if wanted_ids:  # the spec: this overrides every other argument
            if len(wanted_ids) > cap:
                raise Refused(400, f"service_request_id: at most {cap} ids")
            records = [r for r in [await self.store.record(i) for i in dict.fromkeys(wanted_ids)]
                       if r is not None and r.get("upstream") == upstream]
        else:
            if start is None and end is None:
                start = self.clock() - timedelta(days=90)
            records = [r for r in await self.store.records(upstream, 10 * cap)
                       if (not codes or r.get("service_code") in codes)
                       and (start is None or _aware(r["requested_at"]) >= start)
                       and (end is None or _aware(r["requested_at"]) <= end)]
        found = []
        for record in records:
            case = await self.store.case(str(record["_id"]))
            if case is None or (statuses and not wanted_ids and status_of(case) not in statuses):
                continue
            found.append(request_of(case, record, owner=True))
            if len(found) >= cap:
                break
        return found


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _date_param(params: Mapping[str, str], name: str) -> datetime | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(400, f"{name}: must be a W3C datetime, e.g. 2026-01-01T00:00:00Z") from None
    return _aware(parsed)


def discovery(base_url: str) -> dict[str, Any]:
    return {
        "changeset": "2026-11-01T00:00:00+08:00",
        "contact": "一站式多元解纷平台 (grievance triage)",
        "key_service": "api_key 由平台运维按上游系统发放 (OPEN311_KEYS)",
        "endpoints": [{
            "specification": "http://wiki.open311.org/GeoReport_v2",
            "url": f"{base_url}{BASE}",
            "changeset": "2026-11-01T00:00:00+08:00",
            "type": "production",
            "formats": ["application/json", "text/xml"],
        }],
    }


