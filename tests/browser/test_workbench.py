"""A desk officer's morning in a real Chromium, on the real broker, store and services: sign in as the mediation
centre, see the queue in due order, open a case, accept it, resolve it with an answer, and watch the status
change; another unit's case is unreachable by its address, and a form without its CSRF token is refused.
The screenshots are the README's (docs/screenshots/desk-queue.png, desk-case.png)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pymongo.asynchronous.database import AsyncDatabase
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from shared.events import case_id_for
from tests.browser.conftest import screenshot
from tests.conftest import channel_event, eventually, publish, token
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
Db = AsyncDatabase[dict[str, Any]]

MEDIATION = [
    "我和隔壁邻居因为院墙边界吵了三年，村里调解过两次没有结果，想请调解中心再调一次。",
    "楼上邻居家卫生间漏水半年了，天花板发霉，找他们修一直推脱，物业也不管，请帮忙调解。",
    "我家和邻居因为宅基地上的一棵树归谁争执不下，两家老人天天吵架，希望有人出面调解。",
]
CHANNELS = ("walk_in", "12345", "letter")  # the hotline's own limits run from routing: a countdown shows
POLICE = "小区门口有人拿着刀威胁保安，说要砍人，现在人还在门口，大家都很害怕。"


async def _routed(producer: AIOKafkaProducer, db: Db, text: str, channel: str = "walk_in") -> dict[str, Any]:
    event = channel_event(text, channel=channel, complainant={"name": "王秀英", "phone": "13912345678"})
    await publish(producer, event)
    case_id = case_id_for(channel, event["event_id"])

    async def routed() -> dict[str, Any] | None:
        return await db.cases.find_one({"_id": case_id, "unit": {"$exists": True}, "status": "routed"})

    return await eventually(routed, 60, f"{case_id} routed")


def _nearest_due(case: dict[str, Any]) -> date:
    open_dues = [date.fromisoformat(d["due"]) for d in (case.get("deadlines") or {}).values() if not d.get("met_at")]
    return min(open_dues, default=date.max)


def _wait_for(browser: WebDriver, what: str, condition: Any, timeout: float = 60) -> Any:
    """Wait for `condition`; the page may be swapped (htmx) or reloaded under it meanwhile."""
    return WebDriverWait(browser, timeout, poll_frequency=0.25, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(condition, f"waiting for {what}")


def _click(browser: WebDriver, selector: str) -> None:
    """Click, finding the element again if the queue's refresh replaced it in between."""
    def clicked(d: WebDriver) -> bool:
        d.find_element(By.CSS_SELECTOR, selector).click()
        return True
    _wait_for(browser, f"{selector} to be clicked", clicked, 10)


async def test_a_mediation_officer_works_a_case_in_the_browser(
        assets_dir: Path, fleet: Fleet, producer: AIOKafkaProducer, db: Db, desk_url: str, browser: WebDriver,
) -> None:
    cases = [await _routed(producer, db, text, channel) for text, channel in zip(MEDIATION, CHANNELS, strict=True)]
    ours = [c for c in cases if c["unit"] == "mediation"]
    assert len(ours) >= 2, [c["unit"] for c in cases]
    elsewhere = await _routed(producer, db, POLICE, channel="110")
    assert elsewhere["unit"] != "mediation"

    browser.get(f"{desk_url}/desk/")
    assert browser.current_url.endswith("/desk/signin")
    browser.find_element(By.ID, "token").send_keys(token("mediation"))
    browser.find_element(By.ID, "officer").send_keys("李调解员")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    _wait_for(browser, "the queue", lambda d: d.find_elements(By.CSS_SELECTOR, "tr.row[data-case]"))
    assert "李调解员" in browser.find_element(By.CSS_SELECTOR, ".who").text
    assert browser.execute_script("return typeof window.htmx") == "object"  # served here, not from a CDN

    # The queue is in due order: the nearest open deadline first, a case without one last.
    listed = _wait_for(browser, "the rows", lambda d: [
        row.get_attribute("data-case") for row in d.find_elements(By.CSS_SELECTOR, "tr.row[data-case]")])
    assert {c["_id"] for c in ours} <= set(listed)
    stored = {doc["_id"]: doc async for doc in db.cases.find({"_id": {"$in": listed}})}
    dues = [_nearest_due(stored[case_id]) for case_id in listed]
    assert dues == sorted(dues)
    assert all(stored[case_id]["unit"] == "mediation" for case_id in listed)
    print(f"\nqueue screenshot: {screenshot(browser, 'desk-queue')}")

    # A case routed while the officer looks at the queue appears in it without a reload.
    browser.execute_script("document.body.dataset.loaded = 'once'")
    arrived = await _routed(producer, db, "邻居在我家门口堆放杂物挡住出路，说了几次都不听，想请调解中心出面调解一下。")
    assert arrived["unit"] == "mediation"
    _wait_for(browser, "the new case in the queue",
              lambda d: d.find_elements(By.CSS_SELECTOR, f"tr.row[data-case='{arrived['_id']}']"), 30)
    assert browser.execute_script("return document.body.dataset.loaded") == "once"  # the same page

    # Another unit's case is not found by its address.
    browser.get(f"{desk_url}/desk/cases/{elsewhere['_id']}")
    assert "没有这个案件" in browser.find_element(By.TAG_NAME, "main").text

    case_id = ours[0]["_id"]
    browser.get(f"{desk_url}/desk/")
    _click(browser, f"tr.row[data-case='{case_id}'] a")
    _wait_for(browser, "the case page", lambda d: d.find_elements(By.ID, "case-status"))
    assert browser.find_element(By.ID, "case-status").text == "待签收"
    assert browser.find_elements(By.CSS_SELECTOR, ".complaint mark"), "the rules' matched words are marked"
    assert "139****5678" in browser.find_element(By.ID, "complainant").text  # masked until revealed

    browser.find_element(By.CSS_SELECTOR, "form[data-action=accept] button[type=submit]").click()
    _wait_for(browser, "the acceptance to apply", lambda d: d.find_element(By.ID, "case-status").text == "已签收")
    assert "签收已生效" in browser.find_element(By.ID, "action-status").text

    # A form whose CSRF token was taken out is refused, and nothing happens to the case.
    browser.execute_script("document.querySelector('form[data-action=resolve] input[name=csrf]').remove()")
    resolve_form = "form[data-action=resolve]"
    browser.execute_script(f"document.querySelector('{resolve_form}').closest('details').open = true")
    browser.find_element(By.CSS_SELECTOR, f"{resolve_form} textarea[name=note]").send_keys("已调解")
    browser.find_element(By.CSS_SELECTOR, f"{resolve_form} button[type=submit]").click()
    _wait_for(browser, "the refusal", lambda d: "校验码" in d.find_element(By.TAG_NAME, "main").text)
    assert (await db.cases.find_one({"_id": case_id}) or {})["status"] == "accepted"

    # Resolving needs the answer; with it, the case is resolved.
    browser.get(f"{desk_url}/desk/cases/{case_id}")
    browser.execute_script(f"document.querySelector('{resolve_form}').closest('details').open = true")
    browser.find_element(By.CSS_SELECTOR, f"{resolve_form} button[type=submit]").click()
    error = _wait_for(browser, "the field's message",
                      lambda d: d.find_elements(By.CSS_SELECTOR, f"{resolve_form} .field-error"))[0].text
    assert error == "请填写答复内容"
    browser.find_element(By.CSS_SELECTOR, f"{resolve_form} textarea[name=note]").send_keys(
        "经调解，双方同意重新确定院墙边界，费用各半，已电话答复来访人。")
    browser.find_element(By.CSS_SELECTOR, f"{resolve_form} button[type=submit]").click()
    _wait_for(browser, "the resolution to apply",
              lambda d: d.find_element(By.ID, "case-status").text == "已办结待回访")
    print(f"case screenshot: {screenshot(browser, 'desk-case')}")
    resolved = await db.cases.find_one({"_id": case_id})
    assert resolved is not None and resolved["status"] == "resolved"
    actors = {e["detail"].get("actor") for e in resolved["timeline"] if e["kind"] in ("accept", "resolve")}
    assert actors == {"李调解员"}
