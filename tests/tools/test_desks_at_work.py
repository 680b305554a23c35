"""The demo desks of `triage run` take each case one step along the lifecycle, and leave what is not theirs."""

from __future__ import annotations

import random

from tools.desks_at_work import next_step


def test_each_status_gets_the_step_a_desk_would_take() -> None:
    rng = random.Random(1)
    assert next_step("police", "routed", rng) == ("accept", {})
    assert next_step("command", "escalated", rng) == ("accept", {})
    assert next_step("police", "accepted", rng)[0] == "resolve"  # type: ignore[index]
    visit = next_step("visitor", "resolved", rng)
    assert visit is not None and visit[0] == "return_visit" and {"satisfaction", "solved"} <= visit[1].keys()
    steps = {next_step("mediation", "accepted", rng)[0] for _ in range(50)}  # type: ignore[index]
    assert steps == {"record_agreement", "resolve"}
    for waiting_on_others in ("returned", "return_visit", "received", "classified"):
        assert next_step("police", waiting_on_others, rng) is None
