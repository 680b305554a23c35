"""`triage classify --jsonl FILE`: the services' own triage, offline, one JSON line out per line in."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from shared.domain.classification import Classifier
from shared.domain.routing import Policy, load_policy, route

BATCH = 256


def _batches(lines: Iterable[str]) -> Iterator[list[tuple[int, str]]]:
    batch: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            batch.append((number, line))
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _triage_batch(
    batch: list[tuple[int, str]], classifier: Classifier, policy: Policy
) -> Iterator[dict[str, Any]]:
    """One result per input line, in input order; a line that is not a complaint gets an error result."""
    results: list[dict[str, Any] | None] = []
    items: list[tuple[int, Any, str, str | None]] = []  # (position in results, id, text, channel)
    for number, line in batch:
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
                raise ValueError("expected an object with a non-empty string 'text'")
            channel = row.get("channel")
            items.append((len(results), row.get("id", number), row["text"], str(channel) if channel else None))
            results.append(None)
        except (json.JSONDecodeError, ValueError) as exc:
            results.append({"id": None, "line": number, "error": str(exc)})
    assessments = classifier.assess_many([text for _, _, text, _ in items], [ch for _, _, _, ch in items])
    for (position, item_id, _, _), assessment in zip(items, assessments, strict=True):
        decision = route(assessment, policy)
        results[position] = {
            "id": item_id,
            "unit": decision.unit.value,
            "category": assessment.category.value,
            "urgency": decision.urgency.value,
            "risk_flags": [f.value for f in assessment.risk_flags],
            "needs_review": decision.needs_review or assessment.needs_review,
            "reasons": [r.model_dump(exclude_none=True) for r in (*decision.reasons, *assessment.reasons)],
        }
    yield from (r for r in results if r is not None)


def classify_jsonl(source: TextIO, sink: TextIO) -> int:
    classifier, policy = Classifier.load(), load_policy()
    failed = 0
    for batch in _batches(source):
        for result in _triage_batch(batch, classifier, policy):
            failed += "error" in result
            sink.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 1 if failed else 0
