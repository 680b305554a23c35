"""Several matters in one complaint (一单多诉) are split into one case each (拆单); one matter stays whole.

Besides the examples here, data/danger/matters.jsonl holds complaints written by someone who never saw
the splitter: multi-matter ones with the many ways people move on to a second matter, and single-matter
ones whose connective words (另外两户, 还有一个孩子, 一是…二是…) must not split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.domain.classification import Classifier
from shared.domain.classification.complaints import topics_of
from shared.domain.matters import MIN_MATTER_CHARS, split_matters
from tools.model.corpus import DEFAULT_CORPUS_DIR

SUITE_PATH = DEFAULT_CORPUS_DIR.parent / "danger" / "matters.jsonl"
SUITE: list[dict[str, Any]] = (
    [json.loads(line) for line in SUITE_PATH.read_text(encoding="utf-8").splitlines() if line]
    if SUITE_PATH.exists()
    else []
)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("邻居欠我两万块钱一直不还，想请调解。另外还有个事，小区门口的路灯坏了一个月了，晚上黑漆漆的。", 2),
        ("反映三件事：楼上漏水物业不管，已经半年了。第二件事，小区里有人私搭彩钢棚。"
         "第三件事，请问离婚时公积金怎么分？", 3),
        ("厂里欠了我三个月工资没发，老板一直躲着不见人。对了，我还想问一下工伤认定要准备什么材料？", 2),
    ],
)
def test_several_matters_are_split_in_order(text: str, count: int) -> None:
    parts = split_matters(text)
    assert len(parts) == count
    assert "".join(parts).replace(" ", "") == text.replace(" ", "")  # nothing lost, nothing added


@pytest.mark.parametrize(
    "text",
    [
        "河水漫进村里，我家被淹了，另外两户人家也被淹了，老人还困在屋里。",
        "电梯困住了三个人，还有一个孩子在里面哭，物业电话打不通。",
        "我有几点建议：一是江边步道晚上太暗，二是公交站台没有座椅，三是图书馆希望延长开放时间。",
        "他把我家的鸡毒死了，此外他还天天骂人，要求他赔偿并道歉。",
        "另外",
    ],
)
def test_one_matter_stays_whole(text: str) -> None:
    assert split_matters(text) == [text]


def test_a_short_aside_is_not_a_matter() -> None:
    text = "物业乱收停车费，每月多收我们两百块。另外，谢谢。"
    assert len("另外，谢谢。") < MIN_MATTER_CHARS
    assert split_matters(text) == [text]


@pytest.mark.parametrize(
    "text",
    [
        "楼下烧烤店每天营业到凌晨，三、四个人在门口喝酒划拳，吵得孩子睡不着觉。",  # a count, not a list
        "我家的狗被邻居的车轧伤了，花了两百块钱呢。对了还有个事",  # a marker with nothing said after it
    ],
)
def test_counts_and_bare_markers_do_not_split(text: str) -> None:
    assert split_matters(text) == [text]


def test_a_numbered_list_splits_at_each_item() -> None:
    text = "1. 小区门口早市占道经营严重，堵得车过不去。2. 菜市场二楼的消防通道被锁死了，没人管。"
    assert len(split_matters(text)) == 2


def _covered(case: dict[str, Any]) -> bool:
    return len(case["matters"]) > 1


def test_parts_about_the_same_thing_are_joined_again() -> None:
    text = "楼下超市门口天天堆货堆到人行道上，轮椅都过不去。还有啊，超市卸货的车就停在盲道上，我反映过两次了。"
    assert len(split_matters(text)) == 2
    assert split_matters(text, lambda parts: ["urban_management"] * len(parts)) == [text]
    assert len(split_matters(text, lambda parts: [str(i) for i in range(len(parts))])) == 2


@pytest.mark.skipif(not SUITE, reason="the splitter suite is not in this checkout")
def test_the_suite_splits_most_multi_matter_complaints_and_keeps_single_ones_whole(model_dir: Path) -> None:
    classifier = Classifier.load(model_dir)
    topics = topics_of(classifier, classifier.policy)
    multi = [c for c in SUITE if _covered(c)]
    single = [c for c in SUITE if not _covered(c)]
    split_right = sum(len(split_matters(c["text"], topics)) == len(c["matters"]) for c in multi)
    split_wrongly = [c["id"] for c in single if len(split_matters(c["text"], topics)) > 1]
    assert split_right / len(multi) >= 0.8, f"{split_right}/{len(multi)}"
    assert len(split_wrongly) / len(single) <= 0.15, split_wrongly
