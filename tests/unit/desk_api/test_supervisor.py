"""The supervisors' pages over November's five cases (tests/unit/test_figures.py): a supervisor's own sign-in,
every unit's figures with the ones under their floor marked, the chart, the CSV of every table, the monthly
report in three formats, and a case opened without any personal data."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from services.desk_api.main import create_app
from services.desk_api.sessions import COOKIE, SUPERVISOR_COOKIE
from shared.adapters.memory import MemoryFigures
from shared.domain.triage import Unit
from tests.unit.desk_api.fakes import ID_NUMBER, NAME, PHONE, FakePublisher, FakeStore, _client, desk_settings
from tests.unit.desk_api.test_pages import _hidden
from tests.unit.test_figures import november

SUPERVISOR_TOKEN = "supervisor-token-0123456789"
NOW = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)  # 2 December in China: November is closed, December under way


@pytest.fixture
async def client(store: FakeStore) -> AsyncIterator[httpx.AsyncClient]:
    figures = MemoryFigures()
    for story in november():
        await figures.add(story.saved)
    app = create_app(desk_settings(supervisor_tokens=[SUPERVISOR_TOKEN]), store=store, publish=FakePublisher(),
                     figures=figures, clock=lambda: NOW)
    async with _client(app) as c:
        yield c


async def sign_in(client: httpx.AsyncClient, token: str = SUPERVISOR_TOKEN) -> httpx.Response:
    form = await client.get("/supervisor/signin")
    return await client.post("/supervisor/signin", data={"csrf": _hidden(form.text, "csrf"), "token": token,
                                                         "officer": "赵主任"})


async def test_a_supervisor_signs_in_with_a_supervisor_token_only(client: httpx.AsyncClient) -> None:
    assert (await client.get("/supervisor/")).headers["location"] == "/supervisor/signin"
    refused = await sign_in(client, token="token-police-0123456789")  # a desk's token opens no supervisor page
    assert refused.status_code == 422 and "口令不正确" in refused.text
    signed = await sign_in(client)
    assert signed.status_code == 303 and "HttpOnly" in signed.headers["set-cookie"]
    client.cookies.set(COOKIE, client.cookies[SUPERVISOR_COOKIE])  # nor does a supervisor's session open a desk
    assert (await client.get("/desk/")).headers["location"] == "/desk/signin"


async def test_novembers_figures_per_unit_with_the_floors_marked(client: httpx.AsyncClient) -> None:
    await sign_in(client)
    page = await client.get("/supervisor/?month=2026-11")
    assert page.status_code == 200, page.text
    text = page.text
    assert "全区矛盾纠纷化解考核指标" in text and "矛盾纠纷调处中心" in text and "合计" in text
    assert "66.7%" in text and "低于下限" in text  # mediation's 满意率 2 of 3, under 85 %
    assert '<svg class="chart"' in text and "派单、办结与满意率趋势" in text
    assert "GT-D" in text and "/supervisor/cases/GT-D" in text  # escalated in November
    for personal in (PHONE, ID_NUMBER, NAME):
        assert personal not in text
    december = await client.get("/supervisor/")
    assert "GT-E" in december.text and 'hx-trigger="every 15s"' in december.text  # late since 2 December, live


async def test_every_table_exports_as_csv(client: httpx.AsyncClient) -> None:
    await sign_in(client)
    for name in ("units", "trend", "category", "channel", "late", "escalated"):
        response = await client.get(f"/supervisor/export/{name}.csv?month=2026-11&grain=week")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        assert response.text.startswith("\ufeff")
        rows = list(csv.reader(io.StringIO(response.text.lstrip("\ufeff"))))
        assert len(rows[0]) >= 3, name
    units = list(csv.reader(io.StringIO((await client.get("/supervisor/export/units.csv?month=2026-11")).text)))
    mediation = next(r for r in units if r[0] == "矛盾纠纷调处中心")
    assert mediation[1] == "3" and "66.7%" in mediation  # routed 3; 满意率
    assert (await client.get("/supervisor/export/cases.csv")).status_code == 404


async def test_the_monthly_report_in_three_formats(client: httpx.AsyncClient) -> None:
    await sign_in(client)
    html = await client.get("/supervisor/report?month=2026-11")
    assert "2026年11月全区矛盾纠纷化解工作月度报告" in html.text
    assert "2026年11月，全区共受理矛盾纠纷5件，办结4件" in html.text  # A, B twice, C
    assert "调解成功率33.3%" in html.text and "矛盾纠纷调处中心满意率66.7%（下限85.0%）" in html.text
    assert "回访3件，其中满意1件、基本满意1件、不满意1件；群众表示问题已解决2件。" in html.text
    md = await client.get("/supervisor/report?month=2026-11&format=md")
    assert md.text.startswith("# 2026年11月") and "## 按纠纷类型" in md.text and "| 邻里纠纷 |" in md.text
    mediation_only = await client.get("/supervisor/report?month=2026-11&unit=mediation&format=csv")
    assert "矛盾纠纷调处中心矛盾纠纷化解工作月度报告" in mediation_only.text


async def test_a_case_opens_without_personal_data_or_written_words(client: httpx.AsyncClient, store: FakeStore
                                                                   ) -> None:
    store.add_case("GT-9", Unit.MEDIATION, text=f"{NAME}说邻居噪音扰民")
    store.timeline.append({"case_id": "GT-9", "at": NOW, "kind": "accept",
                           "detail": {"unit": "mediation", "actor": "李调解员", "note": f"已联系{NAME} {PHONE}"}})
    await sign_in(client)
    page = await client.get("/supervisor/cases/GT-9")
    assert page.status_code == 200 and "督导只读视图" in page.text and "李调解员" in page.text
    for personal in (PHONE, ID_NUMBER, NAME, "噪音"):
        assert personal not in page.text
    assert (await client.get("/supervisor/cases/GT-nope")).status_code == 404
    assert (await client.get("/supervisor/cases/..%2F..")).status_code == 404


async def test_a_scrape_carries_the_current_months_figures(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert 'triage_supervisor_cases{figure="overdue_open",unit="mediation"} 1.0' in text  # GT-E, late since 2 Dec
    assert 'triage_supervisor_cases{figure="routed",unit="mediation"} 0.0' in text  # nothing routed in December yet
    assert 'triage_supervisor_rate{figure="satisfaction",unit="mediation"}' not in text  # no visit: no rate


def test_the_report_compares_with_the_month_before_and_the_year_before() -> None:
    from collections import Counter
    from decimal import Decimal

    from services.desk_api.report import MonthlyReport, summary, tables
    from services.desk_api.supervision import UnitFigures
    from shared.domain.figures import DEFAULT_FLOORS, Measure, figures_of

    now = Counter({Measure.RECEIVED: 250, Measure.RESOLVED: 180, Measure.MEDIATION_AGREED: 40})
    total = UnitFigures(None, now, figures_of(now), [], 3, Decimal(0))
    report = MonthlyReport("2026-11", None, total, previous=Counter({Measure.RECEIVED: 200, Measure.RESOLVED: 200}),
                           year_ago=Counter(), by_category=[], by_channel=[], units=[], floors=dict(DEFAULT_FLOORS))
    assert "受理量环比增长25.0%，办结量环比下降10.0%。" in summary(report)  # no history a year back: no 同比
    [*_, (title, _header, rows)] = tables(report)
    assert title == "同比环比" and rows[0] == ["受理", "250", "200", "增长25.0%", "0", "—"]
