"""The service list: one GeoReport service per category of the taxonomy (shared/domain/policy.yaml), named
in Chinese, grouped by the unit that usually takes it."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.domain.classification.policy import load_policy
from shared.domain.triage import Category
from shared.labels import CATEGORIES, UNITS


@cache
def services() -> tuple[dict[str, Any], ...]:
    policy = load_policy()
    listed = []
    for category in Category:
        entry = policy.categories[category]
        unit = UNITS[entry.unit]
        listed.append({
            "service_code": category.value,
            "service_name": entry.label,
            "description": f"{entry.label}：一般由{unit}办理（{policy.units[entry.unit].takes}）。"
                           "最终由分拣规则按诉求内容派单。",
            "metadata": False,
            "type": "realtime",
            "keywords": ",".join(dict.fromkeys((CATEGORIES[category], entry.label, category.value))),
            "group": unit,
        })
    return tuple(listed)


def service(code: str) -> dict[str, Any] | None:
    return next((s for s in services() if s["service_code"] == code), None)


def name_of(code: str) -> str:
    found = service(code)
    return str(found["service_name"]) if found else code
