"""Nothing is lost: faults injected while complaints flow, on the real broker and server.

Each scenario keeps a stream of complaints flowing while it kills a service, restarts the broker or the
store, or runs two instances of every service and stops one. Afterwards every complaint published in
the scenario must be routed exactly once in the store. `make reliability` runs these alone and prints
the JSON summary as its last line; they also run in the normal suite.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.conftest import TEST_STATE
from tests.reliability.scenarios import Db, port_of, run_scenario
from tools import infra
from tools.processes import Fleet

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]


@pytest.fixture
async def healthy_after(fleet: Fleet) -> AsyncIterator[Fleet]:
    yield fleet
    for service in fleet.services.values():  # whatever a scenario did, it leaves every service running
        if not service.running:
            service.start()
    await asyncio.to_thread(fleet.wait_healthy, 120)


async def test_kill_9_each_service_in_turn(healthy_after: Fleet, endpoints: infra.Endpoints, db: Db) -> None:
    async def fault() -> None:
        for name in ("intake", "classification", "routing", "followup"):
            healthy_after[name].stop(kill=True)
            await asyncio.sleep(1.5)
            healthy_after[name].start()
            await asyncio.to_thread(healthy_after.wait_healthy, 120, [name])

    await run_scenario("kill9", endpoints, db, fault)


@pytest.mark.parametrize("component", ["broker", "store"])
async def test_server_stop_and_restart(
    component: str, healthy_after: Fleet, endpoints: infra.Endpoints, db: Db
) -> None:
    quiet = lambda _m: None  # noqa: E731
    server: infra.LocalComponent = (
        infra.LocalKafka(TEST_STATE, port_of(endpoints.kafka_bootstrap), progress=quiet) if component == "broker"
        else infra.LocalFerretDB(TEST_STATE, port_of(endpoints.mongodb_uri), progress=quiet)
    )

    async def fault() -> None:
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(3)
        await asyncio.to_thread(server.start)

    await run_scenario(f"{component}_restart", endpoints, db, fault)


async def test_two_instances_of_each_service_and_one_stops(
    healthy_after: Fleet, endpoints: infra.Endpoints, db: Db
) -> None:
    env = healthy_after["intake"].env
    ports: list[int] = []
    for _ in range(4):
        ports.append(infra.free_port(exclude=ports))
    twins = Fleet(env, TEST_STATE / "logs" / "twins",
                  dict(zip(("intake", "classification", "routing", "followup"), ports, strict=True)))
    await asyncio.to_thread(twins.start, 120)
    try:
        async def fault() -> None:
            await asyncio.sleep(4)  # both instances share the partitions
            for name in ("intake", "classification", "routing", "followup"):
                twins[name].stop()
            await asyncio.sleep(2)

        await run_scenario("scale_out", endpoints, db, fault)
    finally:
        twins.stop()
