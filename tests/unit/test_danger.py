"""Danger now: its contract, its frames, and the adversarial suites written by people who never saw it.

The suites (data/danger/adversarial_*.jsonl) hold paraphrases of each kind of danger across registers
(an operator's transcript, a caller's own words with dialect and typos, a letter, a grid worker's note,
a chat message) and near-misses that must not fire: the same words in the past, negated, as a figure of
speech, as a worry, as a question about the law, from the news. Every positive must fire with a kind
that goes to the same unit as its label; no near-miss may fire.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.domain.classification.danger import DangerDetector, DangerError, load_danger_file
from shared.domain.classification.policy import load_policy
from shared.domain.classification.text import normalize
from shared.domain.triage import DangerKind, Urgency
from tools.model.corpus import DEFAULT_CORPUS_DIR, read_examples

SUITES = sorted((DEFAULT_CORPUS_DIR.parent / "danger").glob("adversarial_*.jsonl"))
POLICY = load_policy()


def _unit(kind: DangerKind | str) -> str:
    return POLICY.danger.routes[DangerKind(kind)].unit.value


def _suite() -> list[dict[str, Any]]:
    return [json.loads(line) for path in SUITES for line in path.read_text(encoding="utf-8").splitlines() if line]


SUITE = _suite()


@pytest.fixture(scope="module")
def detector() -> DangerDetector:
    return DangerDetector.load()


def kind_of(detector: DangerDetector, text: str) -> DangerKind | None:
    return detector.detect(normalize(text)).kind


def test_the_suites_are_large_enough() -> None:
    positives = [c for c in SUITE if c["danger"] != "none"]
    for kind in DangerKind:
        assert sum(c["danger"] == kind.value for c in positives) >= 20, kind
    assert sum(c["danger"] == "none" for c in SUITE) >= 100


@pytest.mark.parametrize("case", [c for c in SUITE if c["danger"] != "none"], ids=lambda c: c["id"])
def test_every_danger_in_the_suites_fires_for_the_right_unit(detector: DangerDetector, case: dict[str, Any]) -> None:
    found = kind_of(detector, case["text"])
    assert found is not None, case["text"]
    assert _unit(found) == _unit(case["danger"]), (found, case["text"])


@pytest.mark.parametrize("case", [c for c in SUITE if c["danger"] == "none"], ids=lambda c: c["id"])
def test_no_near_miss_in_the_suites_fires(detector: DangerDetector, case: dict[str, Any]) -> None:
    reading = detector.detect(normalize(case["text"]))
    assert reading.kind is None, (reading.found, case["text"])


def test_false_alarms_on_the_corpus_stay_under_five_percent(detector: DangerDetector) -> None:
    examples = read_examples(sorted(DEFAULT_CORPUS_DIR.glob("*.jsonl")))
    calm = [e for e in examples if e.urgency is not Urgency.CRITICAL]
    alarms = [e.id for e in calm if kind_of(detector, e.text) is not None]
    assert len(alarms) / len(calm) <= 0.05, alarms


# -- the frames, one by one -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("他说没人管就要砍死我", DangerKind.VIOLENCE),  # a negation before a threat does not cancel it
        ("邻居拎着菜刀在我家门口骂，说要我好看", DangerKind.WEAPON),
        ("老公喝了酒正在打我，孩子在哭，快来", DangerKind.VIOLENCE),
        ("他昨晚把我打进医院，刚发消息说今晚回来弄死我", DangerKind.VIOLENCE),  # past beating, threat tonight
        ("我现在站在江海大桥栏杆外面，不想活了", DangerKind.SELF_HARM),
        ("说再不给工钱就从塔吊上跳下去", DangerKind.SELF_HARM),
        ("电梯卡在五楼和六楼之间，里面困着一个老人", DangerKind.TRAPPED_DISASTER),
        ("楼道里一股很冲的煤气味，越来越大", DangerKind.TRAPPED_DISASTER),
        ("刚才路口一辆车把骑电动车的撞了，人躺在地上一动不动，司机想开车走", DangerKind.LIFE_AT_RISK),
        ("三十多个工人约好明天早上一起去区政府门口拉横幅", DangerKind.MASS_INCIDENT),
    ],
)
def test_situations_in_a_real_present_frame_fire(detector: DangerDetector, text: str, kind: DangerKind) -> None:
    assert kind_of(detector, text) is kind


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("楼上天天蹦迪，气得我想杀人", {"figurative"}),
        ("两家在门口吵起来了，他没动手，就是骂得很难听，快来人劝劝", {"denied"}),
        ("上个月邻居拿刀砍伤了我，现在要求他赔医药费", {"past", "aftermath"}),
        ("楼道里堆满杂物，万一着火根本跑不出去", {"hypothetical"}),
        ("打架把人打成轻伤会判刑吗？", {"question"}),
        ("新闻里说有人拿刀砍人，太吓人了", {"reported"}),
        ("饭店起火已经被扑灭了，没有人受伤", {"over"}),
        ("起火烧了我家的店，损失八万，想问找谁赔", {"aftermath"}),
        ("我们不会去堵路，只是希望补偿款早点发", {"negated"}),
    ],
)
def test_frames_that_are_not_real_or_present_do_not_fire(detector: DangerDetector, text: str, why: set[str]) -> None:
    reading = detector.detect(normalize(text))
    assert reading.kind is None, reading.found
    assert reading.dismissed and {f.dismissed for f in reading.dismissed} <= why, reading.dismissed


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("我老公拿刀砍我，怎么办？", DangerKind.WEAPON),  # a plea for help is no question about the law
        ("二楼着火了，有人被困，怎么办啊？", DangerKind.TRAPPED_DISASTER),
        ("老板拖欠薪水半年，我哥现在站在工地塔吊上", DangerKind.SELF_HARM),  # 薪水 is no flood
        ("几个人拿着钢管在我店里，要我赔钱", DangerKind.WEAPON),  # money asked for is no claim told after
        ("上次漏水的事物业修好了。现在楼下两个人打起来了，拉不开，快来", DangerKind.VIOLENCE),
    ],
)
def test_what_is_said_elsewhere_in_the_text_does_not_cancel_a_danger(
    detector: DangerDetector, text: str, kind: DangerKind
) -> None:
    assert kind_of(detector, text) is kind


@pytest.mark.parametrize("text", ["装修师傅拿着刀片刮墙", "快递员拿着绳子捆货，催我快点签收"])
def test_words_inside_other_words_are_not_cues(detector: DangerDetector, text: str) -> None:
    assert kind_of(detector, text) is None


def test_a_long_text_without_punctuation_is_read_in_bounded_time(detector: DangerDetector) -> None:
    # each frame reads a bounded window around its cue, and a situation explains at most three dismissals
    reading = detector.detect("他拿刀砍人" * 1500)
    assert reading.kind is DangerKind.WEAPON
    assert len(reading.dismissed) <= 3 * len(detector.cues.situations)


def test_skipping_situations_by_their_first_characters_changes_no_reading() -> None:
    texts = [c["text"] for c in SUITE]
    fast = DangerDetector.load()
    slow = DangerDetector.load()
    slow._first = [None] * len(slow._first)  # every situation runs
    for text in texts:
        norm = normalize(text)
        assert fast.detect(norm) == slow.detect(norm), text


def test_one_text_with_several_dangers_decides_by_priority(detector: DangerDetector) -> None:
    reading = detector.detect(normalize("一百多个村民聚集在厂门口，有人拿着钢管要砸门"))
    assert reading.kind is DangerKind.WEAPON
    assert set(reading.kinds) >= {DangerKind.WEAPON, DangerKind.MASS_INCIDENT}


# -- the file -------------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "danger.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_unknown_slot_is_an_error() -> None:
    cues = load_danger_file()
    data = cues.model_dump(mode="json")
    data["situations"][0]["pattern"] = "{knives}"
    with pytest.raises(DangerError, match="knives"):
        DangerDetector(type(cues).model_validate(data))


def test_a_priority_missing_a_kind_is_an_error(tmp_path: Path) -> None:
    original = (Path(__file__).resolve().parents[2] / "shared/domain/danger.yaml").read_text(encoding="utf-8")
    broken = original.replace("priority: [weapon, ", "priority: [")
    with pytest.raises(DangerError, match="priority"):
        load_danger_file(_write(tmp_path, broken))


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DangerError, match="cannot read"):
        load_danger_file(tmp_path / "nope.yaml")
