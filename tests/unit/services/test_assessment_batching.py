"""The classification service scores the texts waiting at one moment together, and each comes out as it
would alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from services.classification.batching import AssessmentBatcher
from shared.config import get_settings
from shared.domain.classification import Classifier
from shared.domain.triage import Assessment

TEXTS = ["楼上邻居天天半夜跺脚，说了好多次也不听", "老板拖欠工资三个月不给，我想申请劳动仲裁",
         "小区门口的路灯坏了一个月，晚上很黑", "有人拿着刀在楼道里追人，快来人"]


class CountingClassifier:
    def __init__(self, real: Classifier) -> None:
        self.real = real
        self.calls: list[int] = []

    def assess_many(self, texts: Sequence[str], channels: Sequence[str | None] | None = None,
                    repeat_counts: Sequence[int] | None = None, **_: Any) -> list[Assessment]:
        self.calls.append(len(texts))
        return self.real.assess_many(texts, channels, repeat_counts)


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.load(get_settings().model_dir)


async def test_texts_waiting_together_are_scored_in_one_call_as_each_would_be_alone(classifier: Classifier) -> None:
    counting = CountingClassifier(classifier)
    batcher = AssessmentBatcher(counting)  # type: ignore[arg-type]
    together = await asyncio.gather(*(batcher.assess(text, "12345", 0) for text in TEXTS))
    assert counting.calls == [len(TEXTS)]
    assert together == [classifier.assess(text, "12345", 0) for text in TEXTS]
    assert (await batcher.assess(TEXTS[0], "110", 2)) == classifier.assess(TEXTS[0], "110", 2)
    assert counting.calls == [len(TEXTS), 1]


async def test_a_failure_fails_every_text_of_its_call_and_not_the_next() -> None:
    class Broken:
        fail = True

        def assess_many(self, texts: Sequence[str], *_: Any) -> list[Assessment]:
            if self.fail:
                self.fail = False
                raise RuntimeError("model gone")
            return [Assessment(category="other", urgency="normal", confidence=0.5) for _ in texts]  # type: ignore[arg-type]

    batcher = AssessmentBatcher(Broken())  # type: ignore[arg-type]
    failed = await asyncio.gather(*(batcher.assess(t, None, 0) for t in TEXTS[:2]), return_exceptions=True)
    assert all(isinstance(f, RuntimeError) for f in failed)
    assert (await batcher.assess(TEXTS[2], None, 0)).category.value == "other"
