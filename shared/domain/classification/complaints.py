"""The entry points everyone uses: a text, a batch, or whole complaints split into their matters, each
classified and routed with exactly the services' code (the CLI, the services and the evaluation)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shared.domain.classification.classifier import Classifier
from shared.domain.classification.policy import Policy
from shared.domain.matters import split_matters
from shared.domain.routing import route
from shared.domain.triage import Assessment, Category, DangerKind, RoutingDecision, Unit

Topic = tuple[Category, DangerKind | None]


def topics_of(classifier: Classifier, policy: Policy) -> Callable[[Sequence[str]], list[Topic]]:
    """What each part of a complaint is about, for `split_matters`: its category and its danger now."""

    def topics(parts: Sequence[str]) -> list[Topic]:
        return [(a.category, a.danger) for a in classifier.assess_many(parts, policy=policy)]

    return topics


def triage_text(
    classifier: Classifier,
    policy: Policy,
    text: str,
    channel: str | None,
    excluded_units: frozenset[Unit] = frozenset(),
    repeat_count: int = 0,
) -> tuple[Assessment, RoutingDecision]:
    """Classify one text and route it: what the CLI, the services and the evaluation all call."""
    assessment = classifier.assess(text, channel, repeat_count, policy=policy)
    return assessment, route(assessment, policy, excluded_units)


def triage_many(
    classifier: Classifier,
    policy: Policy,
    texts: Sequence[str],
    channels: Sequence[str | None] | None = None,
) -> list[tuple[Assessment, RoutingDecision]]:
    """Batched `triage_text` for throughput (one model call for the batch)."""
    assessments = classifier.assess_many(texts, channels, policy=policy)
    return [(a, route(a, policy)) for a in assessments]


Matter = tuple[str, Assessment, RoutingDecision]  # a matter's text, how it was classified, where it went


def triage_complaints(
    classifier: Classifier,
    policy: Policy,
    texts: Sequence[str],
    channels: Sequence[str | None] | None = None,
) -> list[list[Matter]]:
    """Each complaint split into its matters as intake splits it, each matter classified and routed (one
    model call for the whole batch of matters)."""
    topics = topics_of(classifier, policy)
    parts = [split_matters(text, topics) for text in texts]
    flat_channels = [channels[i] if channels is not None else None for i, ps in enumerate(parts) for _ in ps]
    flat = triage_many(classifier, policy, [p for ps in parts for p in ps], flat_channels)
    complaints: list[list[Matter]] = []
    cursor = 0
    for ps in parts:
        complaints.append([(text, *flat[cursor + k]) for k, text in enumerate(ps)])
        cursor += len(ps)
    return complaints


def most_urgent(matters: Sequence[Matter]) -> Matter:
    """The matter that decides first: the most urgent, the first of equals."""
    return max(matters, key=lambda m: m[2].urgency.rank)


