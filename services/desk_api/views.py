"""What the pages show of a case, built from its stored document: labels in Chinese, the reasons with the
matched words marked in the text, every deadline with the working days left. No I/O.

Views are allow-lists: a field the store gains later is not shown until it is added here, so personal data
(the complainant, their keyed hash) cannot leak by accident.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from services.desk_api.disclosure import PERSONAL_KEYS
from shared import labels as L
from shared.domain.queue import Countdown, QueueEntry, countdown
from shared.domain.workdays import CHINA_TZ, Calendar

_TERM_SEPARATOR = "、"


def local_time(value: Any) -> str:
    """An instant as the desks read it: China time, to the minute."""
    if not isinstance(value, datetime):
        return "—"
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)  # pymongo's naive datetimes are UTC
    return aware.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")


def highlight(text: str, terms: Iterable[str]) -> list[tuple[str, bool]]:
    """The text cut into (piece, matched) runs; the longest term wins where terms overlap."""
    marked = [False] * len(text)
    for term in sorted({t for t in terms if t}, key=len, reverse=True):
        start = text.find(term)
        while start >= 0:
            marked[start:start + len(term)] = [True] * len(term)
            start = text.find(term, start + len(term))
    runs: list[tuple[str, bool]] = []
    for char, flag in zip(text, marked, strict=True):
        if runs and runs[-1][1] == flag:
            runs[-1] = (runs[-1][0] + char, flag)
        else:
            runs.append((char, flag))
    return runs


@dataclass(frozen=True, slots=True)
class DeadlineView:
    rule: str
    source: str
    due: str
    met: bool
    extended: bool
    countdown: Countdown


def deadline_views(case: Mapping[str, Any], today: date, calendar: Calendar) -> list[DeadlineView]:
    """Every deadline of the case, open ones first and nearest first; an unreadable one is left out."""
    views = []
    for entry in (case.get("deadlines") or {}).values():
        try:
            due = date.fromisoformat(str(entry["due"]))
        except (KeyError, TypeError, ValueError):
            continue
        met = bool(entry.get("met_at"))
        views.append(DeadlineView(str(entry.get("rule", "")), str(entry.get("source", "")), due.isoformat(), met,
                                  bool(entry.get("extended_by")),
                                  countdown(None if met else due, today, calendar)))
    return sorted(views, key=lambda v: (v.met, v.due, v.rule))


@dataclass(frozen=True, slots=True)
class Reasons:
    rules: list[tuple[str, list[str]]]  # (what fired, the words it matched)
    model: list[tuple[str, float]]  # the model's top three categories with their probability
    override: str | None  # the danger that decided the unit
    policy: list[str]
    terms: list[str]  # every matched word, for marking the text


def _rule_label(code: str) -> str:
    family, _, name = code.partition(".")
    if family == "category":
        return f"分类：{L.label(L.CATEGORIES, name)}"
    if family == "flag":
        return f"风险：{L.label(L.RISK_FLAGS, name)}"
    if family == "danger":
        return f"危险线索：{name}"
    return f"线索：{name}" if family == "signal" else code


def reasons_of(case: Mapping[str, Any]) -> Reasons:
    assessment = case.get("assessment") or {}
    routing = case.get("routing") or {}
    all_reasons = [*assessment.get("reasons", []), *routing.get("reasons", [])]
    rules: list[tuple[str, list[str]]] = []
    for reason in all_reasons:
        if reason.get("kind") in ("rule", "danger"):
            words = [w for w in str(reason.get("detail", "")).split(_TERM_SEPARATOR) if w]
            rules.append((_rule_label(str(reason.get("code", ""))), list(dict.fromkeys(words))))
    model = [(L.label(L.CATEGORIES, c), float(p)) for c, p in assessment.get("top_categories", [])[:3]]
    if not model:
        model = [(L.label(L.CATEGORIES, r.get("code")), float(r.get("weight") or 0))
                 for r in all_reasons if r.get("kind") == "model"][:3]
    override = next((str(r.get("detail") or r.get("code")) for r in all_reasons if r.get("kind") == "override"),
                    routing.get("override"))
    policy = [str(r.get("detail") or r.get("code")) for r in routing.get("reasons", []) if r.get("kind") == "policy"]
    terms = [w for _, words in rules for w in words]
    return Reasons(rules, model, override, policy, terms)


@dataclass(frozen=True, slots=True)
class TimelineView:
    at: str
    kind: str
    detail: list[tuple[str, str]]


def _detail_value(key: str, value: Any) -> str:
    tables: Mapping[str, Mapping[str, str]] = {"unit": L.UNITS, "category": L.CATEGORIES, "urgency": L.URGENCIES,
                                               "channel": L.CHANNELS, "satisfaction": L.SATISFACTION,
                                               "before": L.STATUSES, "after": L.STATUSES, "action": L.ACTIONS}
    if key in tables:
        return L.label(tables[key], value)
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    return "—" if value is None else str(value)


# What a supervisor sees of a timeline entry: who acted where and how it moved, never the words written (a note
# or a reason can name the complainant).
SUPERVISOR_DETAIL = frozenset({"unit", "actor", "before", "after", "satisfaction", "rule", "due", "category",
                               "urgency", "attempt", "solved"})


def timeline_views(entries: Iterable[Mapping[str, Any]], only: frozenset[str] | None = None) -> list[TimelineView]:
    return [TimelineView(local_time(e.get("at")), L.label(L.TIMELINE, e.get("kind")),
                         [(k, _detail_value(k, v)) for k, v in (e.get("detail") or {}).items()
                          if k not in PERSONAL_KEYS and v not in (None, "", []) and (only is None or k in only)])
            for e in entries]


def merged_reports(entries: Sequence[Mapping[str, Any]]) -> list[TimelineView]:
    return [view for view, e in zip(timeline_views(entries), entries, strict=True) if e.get("kind") == "merged"]


@dataclass(frozen=True, slots=True)
class Row:
    entry: QueueEntry
    countdown: Countdown


def rows(entries: Sequence[QueueEntry], today: date, calendar: Calendar) -> list[Row]:
    return [Row(e, countdown(e.due, today, calendar)) for e in entries]
