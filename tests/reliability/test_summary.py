"""The summary `make reliability` prints: every scenario of this directory ran before this file (pytest takes
the files in order of name), each adding its counts."""

from __future__ import annotations

import json

import pytest

from tests.reliability.scenarios import RESULTS, SUMMARY

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]


def test_summary_is_written() -> None:
    if not RESULTS:
        pytest.skip("no scenario ran")
    summary = json.loads(SUMMARY.read_text())
    assert summary["lost"] == 0 and summary["duplicated"] == 0
