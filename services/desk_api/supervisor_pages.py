"""The supervisors' pages (督导): every unit's figures for a month, read-only, with no personal data anywhere:
the figures come from facts that carry none, and a case opens without its text, its complainant or any words a
desk wrote. A supervisor signs in with a supervisor token and their name, as a desk does; the page refreshes its
figures by itself, and every table downloads as CSV.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.desk_api import report as monthly
from services.desk_api import views
from services.desk_api.charts import Point, trend_chart
from services.desk_api.context import Context, context
from services.desk_api.errors import ApiError
from services.desk_api.pages import SignInRequired
from services.desk_api.sessions import SUPERVISOR_COOKIE, valid_officer
from services.desk_api.sessions import Session as SignedIn
from services.desk_api.supervision import GRAINS, Overview
from services.desk_api.web import (
    check_sign_in_csrf,
    close_session,
    open_session,
    read_form,
    render,
    sign_in_errors,
    sign_in_form,
)
from shared import labels as L
from shared.domain.figures import Figure, Measure, Period, Ratio, figures_of
from shared.domain.triage import Unit
from shared.events import SAFE_ID

router = APIRouter(include_in_schema=False)
HOME = "/supervisor/"
M = Measure


async def supervisor(request: Request) -> SignedIn:
    session = await context(request).sessions.supervisor(request.cookies.get(SUPERVISOR_COOKIE))
    if session is None:
        raise SignInRequired("/supervisor/signin")
    request.scope["desk.unit"] = "supervisor"  # the request counter's label
    return session


Supervisor = Annotated[SignedIn, Depends(supervisor)]
Ctx = Annotated[Context, Depends(context)]


@router.get("/supervisor/signin")
async def sign_in_page(request: Request) -> Response:
    return sign_in_form(request, {}, supervisor=True)


@router.post("/supervisor/signin")
async def sign_in(request: Request, ctx: Ctx) -> Response:
    form = await read_form(request, ctx)
    check_sign_in_csrf(request, form)
    ctx.check_not_locked_out(request)
    allowed = ctx.supervisors.unit_for(f"Bearer {form.get('token', '')}") is not None
    officer = valid_officer(form.get("officer", ""))
    if not allowed:
        ctx.failed_attempt(request)
    if not allowed or officer is None:
        return sign_in_form(request, sign_in_errors(allowed, officer, "姓名"), form.get("officer", "")[:32], 422,
                            supervisor=True)
    return await open_session(ctx, None, officer, cookie=SUPERVISOR_COOKIE, home=HOME, path="/supervisor/")


@router.post("/supervisor/signout")
async def sign_out(request: Request, ctx: Ctx, session: Supervisor) -> Response:
    return await close_session(request, ctx, session, cookie=SUPERVISOR_COOKIE, to="/supervisor/signin",
                               path="/supervisor/")


# --- what is asked ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    month: str
    grain: str
    unit: Unit | None

    def link(self, **changed: str | None) -> str:
        values = {"month": self.month, "grain": self.grain, "unit": self.unit.value if self.unit else None, **changed}
        return "?" + urlencode({k: v for k, v in values.items() if v})


def _query(request: Request, ctx: Context) -> Query:
    """A month of the past or now (a hand-edited address falls back to this month), a trend grain, a unit."""
    params, current = request.query_params, ctx.supervision.current_month()
    month = params.get("month", "")
    try:
        month = Period.month(month).label if month <= current else current
    except ValueError:
        month = current
    grain = params.get("grain") if params.get("grain") in GRAINS else "day"
    unit = params.get("unit")
    return Query(month, str(grain), Unit(unit) if unit in {u.value for u in Unit} else None)


# --- the dashboard ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    text: str
    css: str = ""
    href: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class Table:
    name: str  # its CSV's name
    title: str
    header: list[str]
    rows: list[list[Cell]]


RATES = list(Figure)
COUNTS = (M.ROUTED, M.ACCEPTED, M.RESOLVED, M.VISITED, M.ESCALATED, M.OVERDUE)


def _rate_cells(figures: dict[Figure, Ratio], floors: dict[Figure, float], below: list[Figure]) -> list[Cell]:
    return [Cell(monthly.percent(figures[f]), "below" if f in below else "num",
                 hint=f"低于下限 {monthly.percent(floors[f])}" if f in below else None) for f in RATES]


def dashboard_tables(view: Overview, floors: dict[Figure, float]) -> Iterator[Table]:
    counts_header = [L.MEASURES[m] for m in COUNTS]
    yield Table("units", "各单位指标", ["单位", *counts_header, "超期未办结", *(L.FIGURES[f] for f in RATES)], [
        [Cell(L.label(L.UNITS, row.unit) if row.unit else "合计"), *(Cell(str(row.counts[m]), "num") for m in COUNTS),
         Cell(str(row.late_at_end), "num"), *_rate_cells(row.figures, floors, row.below)]
        for row in [*view.units, view.total]])
    trend_header = ["时段", L.MEASURES[M.RECEIVED], L.MEASURES[M.ROUTED], L.MEASURES[M.RESOLVED],
                    L.FIGURES[Figure.SATISFACTION], L.FIGURES[Figure.ON_TIME]]
    yield Table("trend", "趋势", trend_header, [
        [Cell(_period_label(p, view.grain)), Cell(str(c[M.RECEIVED]), "num"), Cell(str(c[M.ROUTED]), "num"),
         Cell(str(c[M.RESOLVED]), "num"), *(Cell(monthly.percent(_rate(c, f)), "num")
                                            for f in (Figure.SATISFACTION, Figure.ON_TIME))]
        for p, c in view.trend])
    splits_by = (("category", "按纠纷类型", view.by_category), ("channel", "按来源渠道", view.by_channel))
    for name, title, splits in splits_by:
        yield Table(name, title, [title[1:], L.MEASURES[M.RECEIVED], *counts_header,
                                  *(L.FIGURES[f] for f in RATES)], [
            [Cell(L.label(L.SPLIT_KEYS, s.key)), Cell(str(s.counts[M.RECEIVED]), "num"),
             *(Cell(str(s.counts[m]), "num") for m in COUNTS), *_rate_cells(s.figures, floors, [])]
            for s in splits])
    late_header = ["案件编号", "单位", "超期起始", "已超期（天）"]
    yield Table("late", f"超期未办结（截至 {view.end.isoformat()}）", late_header, [
        [Cell(case_id, href=f"/supervisor/cases/{case_id}"), Cell(L.label(L.UNITS, unit)), Cell(since.isoformat()),
         Cell(str((view.end - since).days + 1), "num")] for case_id, unit, since in view.late])
    yield Table("escalated", "本月督办", ["案件编号", "督办前单位", "督办日期"], [
        [Cell(case_id, href=f"/supervisor/cases/{case_id}"), Cell(L.label(L.UNITS, unit)), Cell(day.isoformat())]
        for case_id, unit, day in view.escalated])


def _rate(counts: Counter[Measure], figure: Figure) -> Ratio:
    return figures_of(counts)[figure]


def _period_label(period: Period, grain: str) -> str:
    if grain == "month":
        return period.label
    if grain == "week":
        return f"{period.start.month}/{period.start.day}起"
    return f"{period.start.month}/{period.start.day}"


def _chart(view: Overview) -> Any:
    points = [Point(_period_label(p, view.grain), (c[M.ROUTED], c[M.RESOLVED]), _rate(c, Figure.SATISFACTION).value)
              for p, c in view.trend]
    return trend_chart(points, (L.MEASURES[M.ROUTED], L.MEASURES[M.RESOLVED]), L.FIGURES[Figure.SATISFACTION],
                       "派单、办结与满意率趋势")


@router.get("/supervisor/")
async def dashboard(request: Request, ctx: Ctx, session: Supervisor) -> Response:
    query = _query(request, ctx)
    view = await ctx.supervision.overview(query.month, query.grain, query.unit)
    period = Period.month(query.month)
    current = ctx.supervision.current_month()
    return render(request, "supervisor.html", session=session, signout="/supervisor/signout", view=view,
                  query=query, tables=list(dashboard_tables(view, ctx.supervision.floors)), chart=_chart(view),
                  floors=ctx.supervision.floors, previous=query.link(month=period.shifted(1).label),
                  next=query.link(month=period.shifted(-1).label) if query.month < current else None,
                  units=list(Unit), grains={"day": "按日", "week": "按周", "month": "按月"},
                  live=query.month == current, updated=views.local_time(ctx.clock()))


@router.get("/supervisor/export/{name}.csv")
async def export(request: Request, ctx: Ctx, session: Supervisor, name: str) -> Response:
    query = _query(request, ctx)
    view = await ctx.supervision.overview(query.month, query.grain, query.unit)
    found = [t for t in dashboard_tables(view, ctx.supervision.floors) if t.name == name]
    if not found:
        raise ApiError(404, "not_found")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(found[0].header)
    writer.writerows([cell.text for cell in row] for row in found[0].rows)
    return _download(buffer.getvalue(), f"{name}-{query.month}.csv", "text/csv")


def _download(text: str, filename: str, media_type: str) -> Response:
    # A BOM, so that the spreadsheet programs the offices use open the Chinese as UTF-8.
    return Response(("\ufeff" if media_type == "text/csv" else "") + text, media_type=f"{media_type}; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


@router.get("/supervisor/report")
async def report(request: Request, ctx: Ctx, session: Supervisor) -> Response:
    query = _query(request, ctx)
    found = await monthly.monthly_report(ctx.supervision, query.month, query.unit)
    kind = request.query_params.get("format", "html")
    if kind == "md":
        return _download(monthly.as_markdown(found), f"report-{query.month}.md", "text/markdown")
    if kind == "csv":
        return _download(monthly.as_csv(found), f"report-{query.month}.csv", "text/csv")
    return render(request, "supervisor_report.html", session=session, signout="/supervisor/signout", report=found,
                  summary=monthly.summary(found), tables=list(monthly.tables(found)), query=query)


@router.get("/supervisor/cases/{case_id}")
async def case_page(request: Request, ctx: Ctx, session: Supervisor, case_id: str) -> Response:
    case = await ctx.desk.store.get_case(case_id) if SAFE_ID.fullmatch(case_id) else None
    if case is None:
        raise ApiError(404, "not_found")
    entries = await ctx.desk.store.timeline_of(case_id)
    return render(request, "supervisor_case.html", session=session, signout="/supervisor/signout", case=case,
                  case_id=case_id, deadlines=views.deadline_views(case, ctx.today(), ctx.calendar),
                  timeline=views.timeline_views(entries, views.SUPERVISOR_DETAIL),
                  received=views.local_time(case.get("received_at")))
