"""A service exports its consumer lag per partition from what its consumer already knows: the highwater
of the last fetch minus the position after the batch; a partition handed to another consumer is forgotten."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka import ConsumerRecord, TopicPartition

from shared.config import Settings
from shared.metrics import REGISTRY
from shared.runtime import ConsumerLag, Service

TOPIC = "unit.lag"


class FakeConsumer:
    """What aiokafka's consumer answers: its assignment and the highwater of each partition it fetched."""

    def __init__(self, highwater: dict[int, int | None]) -> None:
        self.highwaters = highwater

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, partition) for partition in self.highwaters}

    def highwater(self, tp: TopicPartition) -> int | None:
        assert tp.topic == TOPIC and tp.partition in self.highwaters, "Partition is not assigned"
        return self.highwaters[tp.partition]


def record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, None, b"{}", None, 0, 2, [])


def lag(service: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("triage_consumer_lag",
                                     {"service": service, "topic": TOPIC, "partition": str(partition)})


def test_lag_is_the_highwater_minus_the_position_after_the_batch() -> None:
    lags = ConsumerLag("unit-lag-a")
    consumer = FakeConsumer({0: 120, 1: 7, 2: None})

    lags.observe(consumer, [record(0, 97), record(0, 99), record(1, 6), record(2, 0)])

    assert lag("unit-lag-a", 0) == 20  # 120 - (99 + 1)
    assert lag("unit-lag-a", 1) == 0
    assert lag("unit-lag-a", 2) is None  # no fetch response for it yet: nothing to say


def test_a_partition_given_away_is_forgotten_and_one_being_revoked_is_not_asked_about() -> None:
    lags = ConsumerLag("unit-lag-b")
    lags.observe(FakeConsumer({0: 50, 1: 50}), [record(0, 9), record(1, 19)])
    assert (lag("unit-lag-b", 0), lag("unit-lag-b", 1)) == (40, 30)

    # After a rebalance this consumer holds partition 0 only; a record of partition 1 still in hand is not
    # asked about (aiokafka asserts on an unassigned partition).
    lags.observe(FakeConsumer({0: 60}), [record(0, 59), record(1, 20)])

    assert lag("unit-lag-b", 0) == 0
    assert lag("unit-lag-b", 1) is None


def test_the_in_memory_broker_exports_no_lag() -> None:
    lags = ConsumerLag("unit-lag-c")
    lags.observe(None, [record(0, 1)])
    lags.observe(SimpleNamespace(), [record(0, 1)])
    assert lag("unit-lag-c", 0) is None


async def test_a_service_measures_the_lag_of_every_batch() -> None:
    service = Service("unit-lag-d", Settings(dev_mode=True))
    done: list[bytes] = []

    async def work(body: bytes) -> None:
        done.append(body)

    message = SimpleNamespace(raw_message=(record(3, 10), record(3, 11)), consumer=FakeConsumer({3: 15}))
    await service.process(message, work)  # type: ignore[arg-type]

    assert done == [b"{}", b"{}"]
    assert lag("unit-lag-d", 3) == 3
