"""The supervisors' figures on the real FerretDB: November's five cases (tests/unit/test_figures.py) saved step
by step, with redeliveries and writers racing as separate processes would, give the same tallies as
`triage stats rebuild` files from the cases' timelines afterwards, and the known answers."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest

from shared.adapters.mongo import MongoStorage
from shared.adapters.mongo.documents import case_document
from shared.adapters.mongo.figures import MongoFigures
from shared.adapters.projection import Projection
from shared.config import Settings
from shared.domain.change import Change, TimelineEntry
from shared.domain.figures import Figure, Measure, Period, Ratio, Tally, figures_of
from shared.domain.triage import Unit
from tests.unit.test_figures import Story, november
from tools import infra
from tools.stats import rebuild_figures

pytestmark = [pytest.mark.e2e]
MONTHS = ("2026-11", "2026-12")
UNITS: list[Unit | None] = [*Unit, None]


@pytest.fixture
async def storage(endpoints: infra.Endpoints) -> AsyncIterator[MongoStorage]:
    settings = Settings(dev_mode=True, mongodb_uri=endpoints.mongodb_uri,
                        mongodb_database=f"triage_figures_{uuid.uuid4().hex[:8]}")
    store = MongoStorage.from_settings(settings, "figures-test")
    await store.prepare()
    yield store
    await store.client.drop_database(settings.mongodb_database)
    await store.close()


async def tallies(figures: MongoFigures) -> dict[tuple[Unit | None, str], Tally]:
    found = await asyncio.gather(*(figures.tally(u, m) for u in UNITS for m in MONTHS))
    return dict(zip([(u, m) for u in UNITS for m in MONTHS], found, strict=True))


async def work(storage: MongoStorage, stories: list[Story], writers: int = 3) -> None:
    """Every save's projection, as writers in separate processes make them; each step delivered twice, the
    second time as a replay (a change that changed nothing, which reads the facts from the whole timeline)."""
    projections = [Projection(storage.desk_queue, MongoFigures(storage.figures.book.shards, storage.figures.book.log))
                   for _ in range(writers)]

    async def deliver(story: Story) -> None:
        for number, (case, change) in enumerate(story.steps):
            seen = story.timeline[:sum(len(c.entries) for _, c in story.steps[:number + 1]) + 1]

            async def timeline(entries: list[TimelineEntry] = seen) -> list[TimelineEntry]:
                return entries

            await random.choice(projections).saved(case, change, timeline)
            await random.choice(projections).saved(case, Change(), timeline)

    await asyncio.gather(*(deliver(story) for story in stories))


async def test_kept_figures_equal_the_rebuilt_ones_and_the_known_answers(storage: MongoStorage,
                                                                         endpoints: infra.Endpoints) -> None:
    stories = november()
    await storage.db["cases"].insert_many([case_document(s.case, s.timeline) for s in stories])
    await work(storage, stories)
    kept = await tallies(MongoFigures(storage.figures.book.shards, storage.figures.book.log))

    cases, facts = await rebuild_figures(endpoints.mongodb_uri, storage.db.name, into="figures_rebuilt",
                                         progress=lambda _: None)
    assert cases == 5 and facts > 20
    rebuilt = await tallies(MongoFigures(storage.db["figures_rebuilt"], storage.db["figures_rebuilt_log"]))
    for key in kept:
        assert kept[key].by_day == rebuilt[key].by_day, key
        assert kept[key].late_since == rebuilt[key].late_since, key
        assert kept[key].amount_by_day == rebuilt[key].amount_by_day, key

    mediation = figures_of(kept[Unit.MEDIATION, "2026-11"].counts(Period.month("2026-11")))
    assert mediation[Figure.RESPONSE] == Ratio(2, 3) and mediation[Figure.MEDIATION_SUCCESS] == Ratio(1, 3)
    assert kept[Unit.MEDIATION, "2026-12"].counts(Period.month("2026-12"))[Measure.OVERDUE] == 1
    assert kept[None, "2026-11"].counts(Period.month("2026-11"))[Measure.REPEATS] == 1


async def test_a_cold_reader_and_a_warm_one_agree_after_many_revisions(storage: MongoStorage) -> None:
    """Past several snapshots: a reader that kept up and one that starts from the latest snapshot."""
    warm = MongoFigures(storage.figures.book.shards, storage.figures.book.log)
    stories = [november() for _ in range(8)]
    for round_, batch in enumerate(stories):
        for story in batch:  # distinct case ids per round
            story.steps = [(case.model_copy(update={"id": f"{case.id}-{round_}"}), change)
                           for case, change in story.steps]
    for batch in stories:
        await work(storage, batch, writers=2)
        await warm.tally(Unit.MEDIATION, "2026-11")
    cold = MongoFigures(storage.figures.book.shards, storage.figures.book.log)
    warm_counts = (await warm.tally(Unit.MEDIATION, "2026-11")).counts(Period.month("2026-11"))
    cold_counts = (await cold.tally(Unit.MEDIATION, "2026-11")).counts(Period.month("2026-11"))
    assert warm_counts == cold_counts
    assert cold_counts[Measure.ROUTED] == 3 * 8
    assert await storage.figures.book.shards.count_documents({}) > 0  # snapshots were written
