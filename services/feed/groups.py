"""The relay's partition groups: every trigger of one case in one group, each group relayed by one instance.

Every trigger topic is keyed by the case id (Service.publish, the desk API) and partitioned by Kafka's default
partitioner, so a case's records sit in partition `h % n` of a topic with n partitions (h: the key's murmur2
hash). With G the greatest common divisor of the trigger topics' partition counts, `(h % n) % G == h % G` for
every topic, so partition p of any trigger topic belongs to group `p % G`, and all of one case's triggers are in
one group. The assignor gives each group whole to one member of the consumer group; the relay writes a group's
milestones with a transactional producer of its own, `<group id>.relay.<k>`, so that whoever takes the group
over fences whoever held it before (services/feed/relay.py).

With six partitions everywhere G = 6: six groups, spread over the instances. A topic with one partition makes
G = 1: one instance relays everything, the others stand by. Changing a trigger topic's partition count moves
cases between groups (as it breaks any keyed order): stop every feed instance first.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata


def common_groups(partition_counts: Iterable[int]) -> int:
    """How many groups the topics' partitions fall into (at least one)."""
    return max(math.gcd(*partition_counts), 1)


def group_of(tp: TopicPartition, groups: int) -> int:
    return int(tp.partition) % groups


def relay_transactional_id(group_id: str, group: int) -> str:
    return f"{group_id}.relay.{group}"


class GroupAssignor:
    """A partition assignor (aiokafka calls it by its name; one instance per consumer) that gives every member
    whole groups, round robin over the members in their order. The leader writes G into each member's
    assignment, so every member maps partitions to groups (and producers) as the leader did."""

    name = "triage-feed-groups"
    version = 0

    def __init__(self) -> None:
        self.groups = 1  # as of the last assignment received

    def assign(self, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata],
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        subscribed = sorted({topic for metadata in members.values() for topic in metadata.subscription})
        partitions = {topic: sorted(cluster.partitions_for_topic(topic) or ()) for topic in subscribed}
        partitions = {topic: found for topic, found in partitions.items() if found}  # not created yet
        groups = common_groups(len(found) for found in partitions.values())
        owners = sorted(members)
        assigned: dict[str, dict[str, list[int]]] = {m: collections.defaultdict(list) for m in owners}
        for topic, found in partitions.items():
            for partition in found:
                owner = owners[(partition % groups) % len(owners)]
                if topic in members[owner].subscription:
                    assigned[owner][topic].append(partition)
        return {member: ConsumerProtocolMemberAssignment(self.version, sorted(assigned[member].items()),
                                                         str(groups).encode())
                for member in owners}

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(self.version, list(topics), b"")

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        try:
            self.groups = max(int(assignment.user_data or b"1"), 1)
        except ValueError:
            self.groups = 1
