"""`triage classify --jsonl FILE`: the services' own triage, offline, one JSON line out per line in.

As intake does, a complaint holding several matters is split; its line gives the most urgent matter's
unit and, under `matters`, each matter's own text, unit, category and urgency."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from shared.config import get_settings
from shared.domain.classification import Classifier
from shared.domain.classification.complaints import most_urgent, triage_complaints
from shared.domain.routing import Policy, load_policy
from shared.domain.triage import Assessment, RoutingDecision

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
    complaints = triage_complaints(classifier, policy, [text for _, _, text, _ in items], [ch for *_, ch in items])
    for (position, item_id, _, _), matters in zip(items, complaints, strict=True):
        _, assessment, decision = most_urgent(matters)
        result = {"id": item_id, **_result(assessment, decision)}
        if len(matters) > 1:
            result["matters"] = [{"text": t, **_result(a, d, brief=True)} for t, a, d in matters]
        results[position] = result
    yield from (r for r in results if r is not None)


def _result(assessment: Assessment, decision: RoutingDecision, brief: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {
        "unit": decision.unit.value,
        "category": assessment.category.value,
        "urgency": decision.urgency.value,
        "danger": decision.override,
        "needs_review": decision.needs_review or assessment.needs_review,
    }
    if not brief:
        result["risk_flags"] = [f.value for f in assessment.risk_flags]
        result["reasons"] = [r.model_dump(exclude_none=True) for r in (*decision.reasons, *assessment.reasons)]
    return result


def classify_jsonl(source: TextIO, sink: TextIO) -> int:
    classifier, policy = Classifier.load(get_settings().model_dir), load_policy()
    failed = 0
    for batch in _batches(source):
        for result in _triage_batch(batch, classifier, policy):
            failed += "error" in result
            sink.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 1 if failed else 0
