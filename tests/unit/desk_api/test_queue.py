"""Desks see their own queue and cases, sorted by deadline, with personal data disclosed per unit."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from services.desk_api.disclosure import DISCLOSURE, in_full
from shared.domain.triage import Unit
from tests.unit.desk_api.fakes import (
    ID_NUMBER,
    NAME,
    PHONE,
    T0,
    Document,
    FakePublisher,
    FakeStore,
    assert_error,
    auth,
)


async def test_missing_token_is_401(client: httpx.AsyncClient, store: FakeStore) -> None:
    store.add_case("GT-1", Unit.POLICE)
    for path in ("/desks/police/cases", "/desks/police/cases/GT-1", "/desks/police/actions/DA-1"):
        response = await client.get(path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert_error(await client.post("/desks/police/cases/GT-1/actions", json={}), 401, "unauthorized")


@pytest.mark.parametrize("header", [
    "Bearer wrong-token-0123456789",
    "Bearer token-police-012345678",  # a prefix of a real token
    "Basic token-police-0123456789",  # a real token under another scheme
    "Bearer ",
    "token-police-0123456789",
])
async def test_wrong_token_is_401(client: httpx.AsyncClient, header: str) -> None:
    assert_error(await client.get("/desks/police/cases", headers={"Authorization": header}), 401, "unauthorized")


async def test_another_units_queue_is_404(client: httpx.AsyncClient, store: FakeStore) -> None:
    store.add_case("GT-1", Unit.MEDIATION)
    assert_error(await client.get("/desks/mediation/cases", headers=auth(Unit.POLICE)), 404, "not_found")
    # A desk that does not exist answers exactly like one that is not yours.
    other = await client.get("/desks/mediation/cases", headers=auth(Unit.POLICE))
    unknown = await client.get("/desks/nosuchunit/cases", headers=auth(Unit.POLICE))
    assert other.json() == unknown.json() and unknown.status_code == 404


async def test_another_units_case_is_404(client: httpx.AsyncClient, store: FakeStore,
                                         publisher: FakePublisher) -> None:
    store.add_case("GT-MED", Unit.MEDIATION)
    missing = await client.get("/desks/police/cases/GT-NONE", headers=auth(Unit.POLICE))
    assert_error(missing, 404, "not_found")
    # Through the police desk's own path: the case exists but is not with the police.
    mine = await client.get("/desks/police/cases/GT-MED", headers=auth(Unit.POLICE))
    assert mine.status_code == 404 and mine.json() == missing.json()
    # Through the mediation desk's path with a police token.
    assert_error(await client.get("/desks/mediation/cases/GT-MED", headers=auth(Unit.POLICE)), 404, "not_found")
    action = await client.post("/desks/police/cases/GT-MED/actions", headers=auth(Unit.POLICE),
                               json={"action": "accept", "actor": "officer.li"})
    assert_error(action, 404, "not_found")
    assert publisher.events == []


# --- the queue ----------------------------------------------------------------------------------------


def _deadline(rule: str, due: str) -> Document:
    return {"rule": rule, "start": "2026-09-01", "due": due, "source": "test", "opened_at": T0}


async def test_own_queue_is_filtered_and_sorted_by_deadline(client: httpx.AsyncClient, store: FakeStore) -> None:
    hour = timedelta(hours=1)
    store.add_case("GT-LATE", Unit.VISITOR, received_at=T0,
                   deadlines={"visitor_accept": _deadline("visitor.accept", "2026-09-20")})
    store.add_case("GT-SOON", Unit.VISITOR, received_at=T0 + hour, overdue=True, external_ref="HL-2026-0917",
                   deadlines={"visitor_accept": _deadline("visitor.accept", "2026-09-30"),
                              "hotline_complaint": _deadline("hotline.complaint", "2026-09-10")})
    store.add_case("GT-NONE-CRIT", Unit.VISITOR, received_at=T0 + 2 * hour, urgency="critical")
    store.add_case("GT-NONE-LOW", Unit.VISITOR, received_at=T0 + 3 * hour, urgency="low")
    store.add_case("GT-SAME-DAY-HIGH", Unit.VISITOR, received_at=T0 + 4 * hour, urgency="high", status="accepted",
                   deadlines={"visitor_accept": _deadline("visitor.accept", "2026-09-20")})
    store.add_case("GT-CLOSED", Unit.VISITOR, status="closed",
                   deadlines={"visitor_accept": _deadline("visitor.accept", "2026-09-02")})
    store.add_case("GT-OTHER-UNIT", Unit.LEGAL, deadlines={"x": _deadline("legal_aid.decision", "2026-09-02")})

    response = await client.get("/desks/visitor/cases", headers=auth(Unit.VISITOR))
    assert response.status_code == 200
    body = response.json()
    ids = [c["case_id"] for c in body["cases"]]
    # Nearest due first; the same day goes to the more urgent; no deadline last, critical before low; closed
    # cases have left the queue.
    assert ids == ["GT-SOON", "GT-SAME-DAY-HIGH", "GT-LATE", "GT-NONE-CRIT", "GT-NONE-LOW"]
    assert (body["unit"], body["total"], body["page"], body["pages"]) == ("visitor", 5, 1, 1)
    assert body["counts"]["routed"] == 4 and body["counts"]["accepted"] == 1
    first = body["cases"][0]
    assert (first["due"], first["rule"], first["overdue"]) == ("2026-09-10", "hotline.complaint", True)
    assert first["countdown"] == "red" and first["working_days_left"] < 0  # the test clock is today
    assert "complainant" not in first and "complainant_key" not in first  # a queue shows nobody's data

    async def ids_for(query: str) -> list[str]:
        r = await client.get(f"/desks/visitor/cases?{query}", headers=auth(Unit.VISITOR))
        assert r.status_code == 200, r.text
        return [c["case_id"] for c in r.json()["cases"]]

    assert await ids_for("status=accepted") == ["GT-SAME-DAY-HIGH"]
    assert await ids_for("status=routed&status=accepted") == ids
    assert await ids_for("overdue=true") == ["GT-SOON"]
    assert "GT-SOON" not in await ids_for("overdue=false")
    assert await ids_for("urgency=critical") == ["GT-NONE-CRIT"]
    assert await ids_for("q=hl-2026") == ["GT-SOON"]  # the channel's ticket number, its beginning, any case
    assert await ids_for("q=GT-LATE") == ["GT-LATE"]
    assert await ids_for("limit=2") == ["GT-SOON", "GT-SAME-DAY-HIGH"]
    assert await ids_for("limit=2&page=3") == ["GT-NONE-LOW"]


async def test_met_deadlines_do_not_order_the_queue_but_show_in_detail(client: httpx.AsyncClient,
                                                                        store: FakeStore) -> None:
    met = {**_deadline("visitor.accept", "2026-09-03"), "met_at": T0}
    store.add_case("GT-MET", Unit.VISITOR, status="accepted",
                   deadlines={"visitor_accept": met, "visitor_resolve": _deadline("visitor.resolve", "2026-11-02")})
    store.add_case("GT-OPEN", Unit.VISITOR, deadlines={"visitor_accept": _deadline("visitor.accept", "2026-09-16")})
    body = (await client.get("/desks/visitor/cases", headers=auth(Unit.VISITOR))).json()
    assert [c["case_id"] for c in body["cases"]] == ["GT-OPEN", "GT-MET"]
    assert body["cases"][1]["rule"] == "visitor.resolve"
    detail = (await client.get("/desks/visitor/cases/GT-MET", headers=auth(Unit.VISITOR))).json()["case"]
    assert [(d["rule"], d["met"]) for d in detail["deadlines"]] == [("visitor.resolve", False),
                                                                    ("visitor.accept", True)]


@pytest.mark.parametrize(("query", "field"), [
    ("status=lost", "status.0"), ("overdue=maybe", "overdue"), ("limit=0", "limit"), ("limit=201", "limit"),
    ("limit=ten", "limit"), ("page=0", "page"), ("urgency=soon", "urgency"),
])
async def test_queue_rejects_bad_filters(client: httpx.AsyncClient, query: str, field: str) -> None:
    body = assert_error(await client.get(f"/desks/police/cases?{query}", headers=auth(Unit.POLICE)),
                        422, "invalid_query")
    assert [p["field"] for p in body["detail"]] == [field]


async def test_the_queue_pages_past_any_limit_and_drops_rows_no_longer_true(client: httpx.AsyncClient,
                                                                           store: FakeStore) -> None:
    for i in range(450):
        store.add_case(f"GT-{i:03d}", Unit.LEGAL, received_at=T0 + timedelta(minutes=i))
    seen: list[str] = []
    for page in (1, 2, 3):
        body = (await client.get(f"/desks/legal/cases?limit=200&page={page}", headers=auth(Unit.LEGAL))).json()
        assert (body["total"], body["pages"], body["page"]) == (450, 3, page)
        seen += [c["case_id"] for c in body["cases"]]
    assert seen == [f"GT-{i:03d}" for i in range(450)]  # oldest first when nothing is due
    # A row filed for this unit whose case has moved on (a re-routing not yet taken out) is not shown.
    moved = await store.queue(Unit.LEGAL)
    store.cases["GT-000"]["unit"] = "police"
    store.stale.append(moved[0])
    body = (await client.get("/desks/legal/cases?limit=5", headers=auth(Unit.LEGAL))).json()
    assert [c["case_id"] for c in body["cases"]] == ["GT-001", "GT-002", "GT-003", "GT-004"]


# --- detail and masking -------------------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "phone", "id_number"), [
    (Unit.POLICE, PHONE, ID_NUMBER),
    (Unit.VISITOR, PHONE, ID_NUMBER),
    (Unit.MEDIATION, PHONE, "110***********002X"),
    (Unit.LEGAL, PHONE, "110***********002X"),
    (Unit.COMMAND, "138****5678", "110***********002X"),
])
async def test_detail_masks_and_a_reveal_shows_what_the_unit_may_see_and_is_audited(
        client: httpx.AsyncClient, store: FakeStore, unit: Unit, phone: str, id_number: str) -> None:
    store.add_case("GT-1", unit, deadlines={"mediation_resolve": _deadline("mediation.resolve", "2026-10-01")},
                   signature=[1, 2, 3])
    store.timeline += [
        {"_id": "GT-1:b", "case_id": "GT-1", "at": T0 + timedelta(minutes=5), "kind": "routed",
         "detail": {"unit": unit.value, "complainant": {"phone": PHONE}}},
        {"_id": "GT-1:a", "case_id": "GT-1", "at": T0, "kind": "received", "detail": {"channel": "12345"}},
        {"_id": "GT-2:a", "case_id": "GT-2", "at": T0, "kind": "received", "detail": {}},
    ]
    response = await client.get(f"/desks/{unit.value}/cases/GT-1", headers=auth(unit))
    assert response.status_code == 200, response.text
    body = response.json()
    case = body["case"]
    assert case["complainant"] == {"name": "张*", "phone": "138****5678", "id_number": "110***********002X"}
    assert case["case_id"] == "GT-1" and case["unit"] == unit.value and case["text"] == "楼上漏水"
    assert case["deadlines"][0]["due"] == "2026-10-01"
    assert "complainant_key" not in case and "signature" not in case
    assert [e["kind"] for e in body["timeline"]] == ["received", "routed"]
    assert body["timeline"][1]["detail"] == {"unit": unit.value}  # personal keys never shown
    assert PHONE not in response.text and ID_NUMBER not in response.text and store.disclosures == []
    assert store.decrypted == []  # the masked view needs no decryption

    revealed = await client.post(f"/desks/{unit.value}/cases/GT-1/reveal?officer=王警官", headers=auth(unit))
    assert revealed.json()["complainant"] == {"name": NAME, "phone": phone, "id_number": id_number}
    [audit] = store.disclosures
    assert (audit["case_id"], audit["unit"], audit["officer"]) == ("GT-1", unit.value, "王警官")
    # Only what the unit sees in full is decrypted; a masked field comes from the stored masked view.
    assert store.decrypted == in_full(unit)
    assert ("phone" in store.decrypted) is (phone == PHONE) and ("id_number" in store.decrypted) is (id_number == ID_NUMBER)
    other = next(u for u in Unit if u is not unit)
    assert (await client.post(f"/desks/{other.value}/cases/GT-1/reveal?officer=x", headers=auth(other))
            ).status_code == 404
    assert len(store.disclosures) == 1 and store.decrypted == in_full(unit)  # another unit decrypts nothing


def test_every_unit_has_a_disclosure_policy() -> None:
    assert set(DISCLOSURE) == set(Unit)


# --- actions ------------------------------------------------------------------------------------------


