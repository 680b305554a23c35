"""A supervisor's morning in a real Chromium, on the real broker, store and services: three mediation cases are
worked through the desk API (one settled by agreement, one visited dissatisfied), then the supervisor signs in,
sees the month's figures per unit and the trend chart, downloads a table as CSV and opens the monthly report.
The screenshots are the README's (docs/screenshots/supervisor.png, supervisor-report.png)."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.conftest import screenshot
from tests.browser.test_workbench import Db, _routed, _wait_for
from tests.conftest import SUPERVISOR_TOKEN, eventually, token
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
# Not the workbench test's texts: the very same words again would be merged into its cases as repeats.
MEDIATION = [
    "我家和对门因为楼道里堆放的旧家具吵了好几次，社区说过也没用，想请调解中心帮忙调解。",
    "邻居装修把我家墙面震出裂缝，协商赔偿谈不拢，希望调解中心组织双方调解。",
    "两家共用的院子排水沟被隔壁填平了，一下雨我家就进水，请调解员上门调解。",
]


async def _act(desk: httpx.AsyncClient, db: Db, case_id: str, action: str, **fields: Any) -> None:
    reply = await desk.post(f"/desks/mediation/cases/{case_id}/actions",
                            json={"action": action, "actor": "王调解员", **fields},
                            headers={"Authorization": f"Bearer {token('mediation')}"})
    assert reply.status_code == 202, reply.text
    action_id = reply.json()["action_id"]

    async def applied() -> dict[str, Any] | None:
        return await db.desk_actions.find_one({"_id": action_id, "outcome": "applied"})

    await eventually(applied, 60, f"{action} on {case_id} applied")


def _mediation_row(rows: list[list[str]]) -> list[str]:
    return next(row for row in rows if row[0] == "矛盾纠纷调处中心")


async def test_a_supervisor_sees_the_figures_a_chart_and_exports_them(
        fleet: Fleet, producer: AIOKafkaProducer, db: Db, desk_url: str, browser: WebDriver) -> None:
    cases = [await _routed(producer, db, text, "walk_in") for text in MEDIATION]
    ours = [c["_id"] for c in cases if c["unit"] == "mediation"]
    assert len(ours) >= 2
    async with httpx.AsyncClient(base_url=desk_url, timeout=10) as desk:
        for n, case_id in enumerate(ours):
            await _act(desk, db, case_id, "accept")
            if n == 0:
                await _act(desk, db, case_id, "record_agreement", note="双方达成协议", amount="3000")
            await _act(desk, db, case_id, "resolve", note="已调解并答复")
            await _act(desk, db, case_id, "return_visit", satisfaction="satisfied" if n == 0 else "dissatisfied",
                       solved=n == 0)

    browser.get(f"{desk_url}/supervisor/")
    assert browser.current_url.endswith("/supervisor/signin")
    browser.find_element(By.ID, "token").send_keys(SUPERVISOR_TOKEN)
    browser.find_element(By.ID, "officer").send_keys("赵主任")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    table = _wait_for(browser, "the units' figures", lambda d: d.find_elements(By.CSS_SELECTOR, "#table-units tbody tr"))
    assert len(table) == 6  # five units and the total
    assert "赵主任" in browser.find_element(By.CSS_SELECTOR, ".who").text
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar-b")
    assert bars and any(float(b.get_attribute("height") or 0) > 0 for b in bars), "the chart shows the resolved"
    shown = [[td.text.replace("低于下限", "").strip() for td in tr.find_elements(By.TAG_NAME, "td")] for tr in table]

    # The CSV the page offers, fetched with the page's own session, says what the page says.
    exported = browser.execute_script(
        "return await fetch('/supervisor/export/units.csv').then(r => r.text())")
    rows = list(csv.reader(io.StringIO(exported.lstrip("\ufeff"))))
    assert rows[0][0] == "单位" and "满意率" in rows[0]
    assert _mediation_row(rows) == _mediation_row(shown)
    mediation = dict(zip(rows[0], _mediation_row(rows), strict=True))
    assert int(mediation["派单"]) >= len(ours) and int(mediation["办结"]) >= len(ours)
    print(f"\nsupervisor screenshot: {screenshot(browser, 'supervisor')}")

    browser.get(f"{desk_url}/supervisor/report")
    report = browser.find_element(By.CSS_SELECTOR, "article.report").text
    assert "矛盾纠纷化解工作月度报告" in report and "调解成功率" in report
    print(f"report screenshot: {screenshot(browser, 'supervisor-report')}")
    for personal in ("王秀英", "13912345678"):
        assert personal not in browser.page_source
