"""The workbench pages: signing in for a session, CSRF on every form, the queue, the case page and its forms."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx

from services.desk_api.sessions import COOKIE
from shared.domain.triage import Unit
from tests.unit.desk_api.fakes import ID_NUMBER, PHONE, T0, FakePublisher, FakeStore

TOKEN = "token-mediation-0123456789"


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found, f"no {name} in the page"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, token: str = TOKEN, officer: str = "李调解员") -> httpx.Response:
    form = await client.get("/desk/signin")
    return await client.post("/desk/signin", data={"csrf": _hidden(form.text, "csrf"), "token": token,
                                                   "officer": officer})


async def test_signing_in_gives_a_strict_httponly_session_and_signing_out_ends_it(
        client: httpx.AsyncClient, store: FakeStore) -> None:
    assert (await client.get("/desk/")).headers["location"] == "/desk/signin"
    refused = await sign_in(client, token="wrong-token-0000000000", officer="")
    assert refused.status_code == 422 and "口令不正确" in refused.text and "请填写经办人姓名" in refused.text
    signed = await sign_in(client)
    assert signed.status_code == 303 and signed.headers["location"] == "/desk/"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
    [record] = store.sessions.stored.values()
    assert (record["unit"], record["officer"]) == ("mediation", "李调解员")
    assert client.cookies[COOKIE] not in store.sessions.stored  # the store keeps only a digest

    queue = await client.get("/desk/")
    assert queue.status_code == 200 and "矛盾纠纷调处中心" in queue.text and "李调解员" in queue.text
    assert queue.headers["content-security-policy"].startswith("default-src 'self'")
    assert (await client.post("/desk/signout", data={})).status_code == 403  # no CSRF token: refused
    out = await client.post("/desk/signout", data={"csrf": _hidden(queue.text, "csrf")})
    assert out.headers["location"] == "/desk/signin" and store.sessions.stored == {}


async def test_a_sign_in_form_without_its_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/desk/signin", data={"token": TOKEN, "officer": "李"})
    assert response.status_code == 403 and "校验码" in response.text


async def test_the_queue_page_lists_the_units_cases_due_first_with_countdowns(
        client: httpx.AsyncClient, store: FakeStore) -> None:
    due = {"rule": "mediation.resolve", "start": "2026-09-01", "source": "test", "opened_at": T0}
    store.add_case("GT-LATER", Unit.MEDIATION, deadlines={"m": {**due, "due": "2099-01-30"}})
    store.add_case("GT-PAST", Unit.MEDIATION, received_at=T0 + timedelta(hours=1),
                   deadlines={"m": {**due, "due": "2026-09-02"}}, needs_review=True)
    store.add_case("GT-POLICE", Unit.POLICE)
    await sign_in(client)
    page = (await client.get("/desk/")).text
    assert page.index("GT-PAST") < page.index("GT-LATER") and "GT-POLICE" not in page
    assert 'class="row red"' in page and 'class="row green"' in page and "需复核" in page
    assert "共 2 件" in page and 'hx-trigger="every 5s"' in page
    rows = await client.get("/desk/queue/rows?review=1")
    assert "GT-PAST" in rows.text and "GT-LATER" not in rows.text and "<html" not in rows.text


async def test_the_case_page_marks_the_matched_words_masks_the_complainant_and_audits_a_reveal(
        client: httpx.AsyncClient, store: FakeStore) -> None:
    store.add_case("GT-1", Unit.MEDIATION, text="邻居装修噪音扰民，<b>半夜</b>施工", assessment={
        "category": "neighbor", "urgency": "normal", "confidence": 0.9,
        "top_categories": [["neighbor", 0.7], ["environment", 0.2], ["other", 0.1]],
        "reasons": [{"kind": "rule", "code": "category.neighbor", "detail": "装修噪音、邻居"}]})
    store.add_case("GT-POLICE", Unit.POLICE)
    await sign_in(client)
    page = (await client.get("/desk/cases/GT-1")).text
    assert "<mark>邻居</mark>" in page and "<mark>装修噪音</mark>" in page
    assert "&lt;b&gt;半夜&lt;/b&gt;" in page  # the complaint's markup is text
    assert "邻里纠纷 70%" in page and PHONE not in page and "138****5678" in page
    assert (await client.get("/desk/cases/GT-POLICE")).status_code == 404  # another unit's case
    assert (await client.post("/desk/cases/GT-1/reveal", data={})).status_code == 403
    revealed = await client.post("/desk/cases/GT-1/reveal", data={"csrf": _hidden(page, "csrf")})
    assert PHONE in revealed.text and ID_NUMBER not in revealed.text  # mediation sees the ID masked
    [audit] = store.disclosures
    assert (audit["officer"], audit["case_id"]) == ("李调解员", "GT-1")


async def test_an_action_form_is_checked_field_by_field_then_submitted_once(
        client: httpx.AsyncClient, store: FakeStore, publisher: FakePublisher) -> None:
    store.add_case("GT-1", Unit.MEDIATION, status="accepted")
    await sign_in(client)
    page = (await client.get("/desk/cases/GT-1")).text
    assert "办结答复" in page and "调解协议" in page and "签收" not in page.split("处置")[1].split("办理过程")[0]
    csrf, key = _hidden(page, "csrf"), _hidden(page, "form_key")
    assert (await client.post("/desk/cases/GT-1/actions/resolve", data={"form_key": key})).status_code == 403
    empty = await client.post("/desk/cases/GT-1/actions/resolve", data={"csrf": csrf, "form_key": key})
    assert empty.status_code == 422 and "请填写答复内容" in empty.text
    wrong = await client.post("/desk/cases/GT-1/actions/record_agreement",
                              data={"csrf": csrf, "note": "分期还款", "amount": "12.345"})
    assert "金额须为不小于 0 的数字" in wrong.text and publisher.events == []

    form = {"csrf": csrf, "form_key": key, "note": "已调解，双方同意分期还款"}
    first = await client.post("/desk/cases/GT-1/actions/resolve", data=form)
    again = await client.post("/desk/cases/GT-1/actions/resolve", data=form)  # a double click
    assert first.status_code == 303 and first.headers["location"] == again.headers["location"]
    [event] = {e.event_id: e for e in publisher.events}.values()
    assert (event.payload.actor, event.payload.note) == ("李调解员", "已调解，双方同意分期还款")

    pending = await client.get(first.headers["location"])
    assert "等待处理" in pending.text and 'hx-trigger="load delay:1s"' in pending.text
    store.actions[event.event_id] = {"unit": "mediation", "action": "resolve", "outcome": "rejected",
                                     "reason": "cannot resolve"}
    decided = await client.get(f"/desk/actions/{event.event_id}", headers={"HX-Request": "true"})
    assert "办结答复被拒绝：cannot resolve" in decided.text and decided.headers["hx-refresh"] == "true"
