"""GeoReport v2 answers in JSON or XML, the format the path's extension names (none: JSON).

XML follows the spec's shapes (<services><service>, <service_requests><request>, <errors><error>), written
with xml.etree, which escapes text; characters XML 1.0 cannot carry at all are dropped.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.responses import Response

# What XML 1.0 forbids even escaped: C0 controls but tab, line feed and carriage return; surrogates; FFFE/FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# Each list's root element and the element of one item, by what the list holds.
ROOTS = {"services": ("services", "service"), "requests": ("service_requests", "request"),
         "errors": ("errors", "error"), "discovery": ("discovery", "endpoint")}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))


def _fill(element: ET.Element, item: Mapping[str, Any]) -> None:
    for key, value in item.items():
        if value is None:
            ET.SubElement(element, key)
        elif isinstance(value, Mapping):
            _fill(ET.SubElement(element, key), value)
        elif isinstance(value, list):
            holder = ET.SubElement(element, key)
            for member in value:
                child = ET.SubElement(holder, key.rstrip("s") or "item")
                if isinstance(member, Mapping):
                    _fill(child, member)
                else:
                    child.text = _text(member)
        else:
            ET.SubElement(element, key).text = _text(value)


def xml_bytes(root: str, item_name: str | None, content: Any) -> bytes:
    element = ET.Element(root)
    if item_name is None:
        _fill(element, content)
    else:
        for item in content:
            _fill(ET.SubElement(element, item_name), item)
    return bytes(ET.tostring(element, encoding="utf-8", xml_declaration=True))


def render(fmt: str, kind: str, content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A list (services, requests, errors) or one object (a service definition, discovery) as `fmt`."""
    merged = {**_HEADERS, **(headers or {})}
    if fmt == "xml":
        root, item = ROOTS.get(kind, (kind, None))
        if not isinstance(content, list):
            item = None
        return Response(xml_bytes(root, item, content), status, merged, media_type="text/xml; charset=utf-8")
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), status, merged, media_type="application/json; charset=utf-8")


def errors(fmt: str, status: int, descriptions: Iterable[str], headers: Mapping[str, str] | None = None) -> Response:
    return render(fmt, "errors", [{"code": status, "description": d} for d in descriptions], status, headers)
