"""The feed relay's partition groups: all of one case's triggers in one group, each group whole to one member,
and every member told how many groups there are."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.partitioner import DefaultPartitioner

from services.feed.groups import GroupAssignor, common_groups, group_of, relay_transactional_id
from services.feed.relay import TRIGGERS


class Cluster:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.counts[topic])) if topic in self.counts else None


def assign(counts: dict[str, int], members: int) -> tuple[dict[str, ConsumerProtocolMemberAssignment], int]:
    assignor = GroupAssignor()
    metadata = {f"m{i}": assignor.metadata(TRIGGERS) for i in range(members)}
    assignments = assignor.assign(Cluster(counts), metadata)
    assignor.on_assignment(next(iter(assignments.values())))
    return assignments, assignor.groups


def test_a_case_keeps_to_one_group_and_each_group_to_one_member() -> None:
    counts = dict.fromkeys(TRIGGERS, 6)
    assignments, groups = assign(counts, 2)
    assert groups == 6
    held = {m: {TopicPartition(t, p) for t, ps in a.assignment for p in ps} for m, a in assignments.items()}
    assert sum(len(tps) for tps in held.values()) == 24 and not held["m0"] & held["m1"]
    owner = {group_of(tp, groups): m for m, tps in held.items() for tp in tps}
    assert len(owner) == 6 and set(owner.values()) == {"m0", "m1"}  # each group whole to one member
    all_partitions = list(range(6))
    for n in range(200):  # keyed by case id, Kafka's default partitioner
        key = f"case-{n}".encode()
        partition = DefaultPartitioner()(key, all_partitions, all_partitions)
        owners = {owner[group_of(TopicPartition(t, partition), groups)] for t in TRIGGERS}
        assert len(owners) == 1


def test_unequal_partition_counts_give_fewer_groups() -> None:
    assert common_groups([6, 6, 3, 6]) == 3 and common_groups([6, 1]) == 1 and common_groups([]) == 1
    counts = {TRIGGERS[0]: 6, TRIGGERS[1]: 1}  # the other two not created yet
    assignments, groups = assign(counts, 3)
    assert groups == 1
    busy = [m for m, a in assignments.items() if a.assignment]
    assert len(busy) == 1  # one member relays everything, the others stand by
    assert relay_transactional_id("triage.feed", 0) == "triage.feed.relay.0"
