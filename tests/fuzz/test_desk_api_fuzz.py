"""Every operation of the desk API's OpenAPI document, fuzzed by schemathesis with a fixed budget (derandomized,
so a run is repeatable): no 5xx, whatever arrives, and no personal data in an error."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from services.desk_api.main import create_app
from shared.domain.triage import Unit
from tests.unit.desk_api.fakes import ID_NUMBER, NAME, PHONE, FakePublisher, FakeStore, auth, desk_settings

STORE = FakeStore()
for n, unit in enumerate(Unit):
    STORE.add_case(f"GT-{n}", unit)
APP = create_app(desk_settings(), store=STORE, publish=FakePublisher())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_no_personal_data(case: Any) -> None:
    response = case.call(headers=auth(Unit.POLICE))
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        for personal in (PHONE, ID_NUMBER, NAME):
            assert personal not in response.text
