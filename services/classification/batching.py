"""Assessments made together: the texts of a batch that wait at one moment are scored in one call, so the
model's matrix product runs once for all of them (about a third less CPU per text than one at a time).
Each text's assessment is the same as it would be alone."""

from __future__ import annotations

import asyncio

from shared.domain.classification import Classifier
from shared.domain.triage import Assessment

_Waiting = tuple[str, str | None, int, "asyncio.Future[Assessment]"]


class AssessmentBatcher:
    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self._waiting: list[_Waiting] = []

    async def assess(self, text: str, channel: str | None, repeat_count: int) -> Assessment:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Assessment] = loop.create_future()
        if not self._waiting:  # the first to wait: score everyone waiting once the others of the batch are here
            loop.call_soon(self._assess_waiting)
        self._waiting.append((text, channel, repeat_count, future))
        return await future

    def _assess_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        try:
            found = self.classifier.assess_many([w[0] for w in waiting], [w[1] for w in waiting],
                                                [w[2] for w in waiting])
        except Exception as exc:  # every text of the call fails alike; each event is retried or dead-lettered
            for *_, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for (*_, future), assessment in zip(waiting, found, strict=True):
            if not future.done():  # a waiter cancelled meanwhile
                future.set_result(assessment)
