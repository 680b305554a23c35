"""Chinese triage: the brief's examples, overrides, negation, amounts, reasons, review, the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.domain.classification import Classifier, Policy, load_policy
from shared.domain.classification.artefact import FILES, read_manifest
from shared.domain.classification.complaints import triage_text
from shared.domain.classification.numbers import money_amounts, parse_chinese_number, people_counts
from shared.domain.classification.rules import RulesError, load_rules_file
from shared.domain.classification.text import normalize
from shared.domain.triage import Category, DangerKind, RiskFlag, Unit, Urgency
from tools.model.corpus import DEFAULT_CORPUS_DIR, load_blind, load_heldout, load_train
from tools.model.evaluation import score

pytestmark = pytest.mark.skipif(
    not list(DEFAULT_CORPUS_DIR.glob("train_*.jsonl")), reason="the labelled corpus is not there"
)


@pytest.fixture(scope="module")
def classifier(model_dir: Path) -> Classifier:
    return Classifier.load(model_dir)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def triage(classifier: Classifier, policy: Policy, text: str, channel: str | None = None) -> tuple[str, str, str]:
    assessment, decision = triage_text(classifier, policy, text, channel)
    return decision.unit.value, assessment.category.value, decision.urgency.value


# -- the brief's five examples ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("小区电梯困人已经半小时了，物业电话打不通", ("command", "safety_hazard", "critical")),
        ("前夫把孩子带走一个月不让我见，离婚协议写的是每周探视两次", ("mediation", "family", "normal")),
        ("请问企业拖欠货款两年了还能起诉吗，诉讼时效怎么算", ("legal", "legal_aid", "low")),
        ("社区干部在低保评审时收了我邻居的好处费", ("visitor", "admin_complaint", "normal")),
        ("有人冒充快递客服让我开通备用金，被扣了三千", ("police", "fraud", "high")),
    ],
)
def test_brief_examples(classifier: Classifier, policy: Policy, text: str, expected: tuple[str, str, str]) -> None:
    assert triage(classifier, policy, text) == expected


# -- overrides and negation -----------------------------------------------------------------------


def test_knife_threat_in_a_neighbour_quarrel_goes_to_police(classifier: Classifier, policy: Policy) -> None:
    assessment, decision = triage_text(
        classifier, policy, "隔壁邻居因为占道的事跟我吵，现在拿着菜刀站在我家门口说要砍死我", None
    )
    assert RiskFlag.VIOLENCE in assessment.risk_flags
    assert assessment.danger is DangerKind.WEAPON
    assert (decision.unit, decision.urgency, decision.override) == (Unit.POLICE, Urgency.CRITICAL, "danger.weapon")


def test_threat_after_a_negated_clause_still_fires(classifier: Classifier, policy: Policy) -> None:
    assessment, decision = triage_text(classifier, policy, "他说没人管就要砍死我", None)
    assert RiskFlag.VIOLENCE in assessment.risk_flags
    assert decision.unit == Unit.POLICE


def test_self_harm_goes_to_police(classifier: Classifier, policy: Policy) -> None:
    _, decision = triage_text(classifier, policy, "工资拖了半年不给，我现在站在厂房楼顶上，今天不给钱我就跳下去", None)
    assert (decision.unit, decision.urgency) == (Unit.POLICE, Urgency.CRITICAL)


def test_domestic_violence_goes_to_police(classifier: Classifier, policy: Policy) -> None:
    assessment, decision = triage_text(classifier, policy, "我老公喝了酒又打我，我带着孩子躲在邻居家不敢回去", None)
    assert RiskFlag.DOMESTIC_VIOLENCE in assessment.risk_flags
    assert assessment.category == Category.FAMILY
    assert (decision.unit, decision.urgency) == (Unit.POLICE, Urgency.CRITICAL)


def test_collective_action_goes_to_command(classifier: Classifier, policy: Policy) -> None:
    assessment, decision = triage_text(
        classifier, policy, "包工头欠我们三十多个工人的工资，大家约好了明天一起去镇政府门口拉横幅讨薪", None
    )
    assert RiskFlag.COLLECTIVE_ACTION in assessment.risk_flags
    assert (decision.unit, decision.urgency, decision.override) == (
        Unit.COMMAND,
        Urgency.CRITICAL,
        "danger.mass_incident",
    )


@pytest.mark.parametrize(
    "text",
    [
        "没有人打我，就是他天天在楼道里堆东西，说了也不听",
        "他没动手，就是吵，骂得很难听，想请社区调解一下",
        "我们不会去堵路，只是希望政府尽快把拆迁补偿款发下来",
        "电动车和小轿车刮了一下，人并未受伤，就是车灯碎了，对方不肯赔",
    ],
)
def test_negated_danger_does_not_override(classifier: Classifier, policy: Policy, text: str) -> None:
    assessment, decision = triage_text(classifier, policy, text, None)
    assert RiskFlag.VIOLENCE not in assessment.risk_flags
    assert RiskFlag.COLLECTIVE_ACTION not in assessment.risk_flags
    assert decision.override is None
    assert decision.urgency != Urgency.CRITICAL


def test_negation_is_explained(classifier: Classifier) -> None:
    assessment = classifier.assess("没有人打我，他没动手")
    negations = [r for r in assessment.reasons if r.kind == "negation"]
    assert negations and any("没有" in r.detail for r in negations)


def test_hypothetical_danger_is_not_danger_now(classifier: Classifier, policy: Policy) -> None:
    assessment, _ = triage_text(classifier, policy, "楼道里的灭火器都过期了，这要是着火了怎么办", None)
    assert RiskFlag.DANGER_NOW not in assessment.risk_flags


def test_short_term_must_be_a_whole_word(classifier: Classifier, policy: Policy) -> None:
    # "打" inside "打电话" / "打不通" is not violence
    assessment, _ = triage_text(classifier, policy, "物业电话打了十几次都打不通，楼道灯坏了一个月", None)
    assert RiskFlag.VIOLENCE not in assessment.risk_flags


# -- risk flags and urgency --------------------------------------------------------------------


def test_wage_arrears_before_spring_festival_is_high(classifier: Classifier, policy: Policy) -> None:
    assessment, decision = triage_text(
        classifier, policy, "马上过年了，老板还拖欠我们工资两万八，说年后再说", None
    )
    assert assessment.category == Category.LABOR
    assert RiskFlag.WAGE_ARREARS_FESTIVAL in assessment.risk_flags
    assert decision.urgency == Urgency.HIGH


def test_large_sum_and_many_affected(classifier: Classifier, policy: Policy) -> None:
    assessment, _ = triage_text(
        classifier, policy, "开发商拖欠我们小区几十户业主的违约金，一共五十万元，一直不给", None
    )
    assert RiskFlag.LARGE_SUM in assessment.risk_flags
    assert RiskFlag.MANY_AFFECTED in assessment.risk_flags


def test_repeated_from_text_and_from_repeat_count(classifier: Classifier, policy: Policy) -> None:
    text = "路灯坏了，麻烦派人修一下"
    plain = classifier.assess(text)
    assert RiskFlag.REPEATED not in plain.risk_flags
    again = classifier.assess(text, repeat_count=policy.thresholds.repeat_count)
    assert RiskFlag.REPEATED in again.risk_flags
    assert again.urgency.rank > plain.urgency.rank
    said = classifier.assess("路灯坏了，这已经是第三次打电话反映了，一直没人管")
    assert RiskFlag.REPEATED in said.risk_flags


def test_escalation_threat_and_vulnerable_person(classifier: Classifier, policy: Policy) -> None:
    a = classifier.assess("村里的低保名额给了书记亲戚，再不解决我就去北京上访")
    assert RiskFlag.ESCALATION_THREAT in a.risk_flags
    b = classifier.assess("隔壁独居老人家里停电三天了，八十多岁没人照顾")
    assert RiskFlag.VULNERABLE_PERSON in b.risk_flags


def test_danger_now_is_critical(classifier: Classifier, policy: Policy) -> None:
    assessment, decision = triage_text(classifier, policy, "楼道里燃气泄漏，味道很大，快来人", None)
    assert RiskFlag.DANGER_NOW in assessment.risk_flags
    assert decision.urgency == Urgency.CRITICAL
    assert decision.unit == Unit.COMMAND


# -- reasons and review ------------------------------------------------------------------------


def test_reasons_name_rules_model_and_override(classifier: Classifier, policy: Policy) -> None:
    assessment, decision = triage_text(classifier, policy, "他拿着刀在我家门口，说今天要弄死我", "110")
    kinds = {r.kind for r in assessment.reasons}
    assert {"rule", "model", "policy", "danger"} <= kinds
    assert len([r for r in assessment.reasons if r.kind == "model"]) == 3
    assert all(r.weight is not None for r in assessment.reasons if r.kind == "model")
    assert any(r.code == "flag.violence" and r.detail for r in assessment.reasons)
    assert any(r.kind == "danger" and r.code == "danger.weapon" and "刀" in r.detail for r in assessment.reasons)
    assert any(r.kind == "override" and r.code == "danger.weapon" for r in decision.reasons)
    assert len(assessment.top_categories) == 3
    probs = [p for _, p in assessment.top_categories]
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)


def test_low_confidence_needs_review(classifier: Classifier, policy: Policy) -> None:
    assessment = classifier.assess("喂喂，你好，那个，嗯")
    assert assessment.needs_review
    assert any(r.kind == "review" for r in assessment.reasons)


def test_review_threshold_comes_from_policy(classifier: Classifier, policy: Policy) -> None:
    strict = policy.model_copy(update={"review_threshold": 1.0})
    assessment = classifier.assess("社区干部在低保评审时收了我邻居的好处费", policy=strict)
    assert assessment.needs_review
    relaxed = policy.model_copy(update={"review_threshold": 0.0})
    assert not classifier.assess("社区干部在低保评审时收了我邻居的好处费", policy=relaxed).needs_review


def test_assess_many_matches_assess(classifier: Classifier) -> None:
    texts = ["楼上漏水到我家，楼上不管", "请问劳动仲裁要什么材料", "网上刷单被骗了五千"]
    batch = classifier.assess_many(texts)
    for text, a in zip(texts, batch, strict=True):
        single = classifier.assess(text)
        assert (a.category, a.urgency, a.risk_flags) == (single.category, single.urgency, single.risk_flags)


def test_empty_text_does_not_crash(classifier: Classifier) -> None:
    assessment = classifier.assess("")
    assert assessment.needs_review


# -- the built model ------------------------------------------------------------------------------


def test_numpy_model_matches_sklearn(classifier: Classifier) -> None:
    from tools.model.training import fit_sklearn

    examples = load_train(DEFAULT_CORPUS_DIR)
    vec, clf = fit_sklearn([normalize(e.text) for e in examples], [e.category for e in examples])
    probe = [normalize(t) for t in ("楼上漏水到我家", "老板拖欠工资", "电梯困人", "")]
    expected = clf.predict_proba(vec.transform(probe))
    got = classifier.model.predict_proba(probe)
    order = [list(clf.classes_).index(c) for c in classifier.model.classes]
    assert abs(expected[:, order] - got).max() < 1e-6


def test_the_built_model_is_plain_files_named_by_its_manifest(model_dir: Path, classifier: Classifier) -> None:
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(FILES)  # npz, JSON and text: no pickle
    assert classifier.model_key == read_manifest(model_dir).key
    assert Classifier.load(model_dir).model_key == classifier.model_key


def test_the_danger_model_is_a_second_view_where_the_cues_find_nothing(
    classifier: Classifier, policy: Policy
) -> None:
    calm = "小区物业费今年涨了两成，业主们想问问涨价有没有依据"
    eager = policy.model_copy(update={"danger": policy.danger.model_copy(update={"model_threshold": 0.01})})
    never = policy.model_copy(update={"danger": policy.danger.model_copy(update={"model_threshold": 1.0})})
    suspected = classifier.assess(calm, policy=eager)
    assert suspected.danger is None and suspected.danger_suspected in {Unit.POLICE, Unit.COMMAND}
    assert suspected.urgency == Urgency.CRITICAL and suspected.needs_review
    assert any(r.code == "danger.suspected" for r in suspected.reasons)
    assert classifier.assess(calm, policy=never).danger_suspected is None
    # a danger the cues found is never second-guessed
    found = classifier.assess("他拿着菜刀在我家门口，说要砍死我", policy=eager)
    assert found.danger is DangerKind.WEAPON and found.danger_suspected is None


def test_heldout_floor(classifier: Classifier, policy: Policy) -> None:
    """Trained on train_* only (the fixture); scored on heldout_*, which training never reads. The held-out
    part shares its author with the first training parts; the floor guards against regressions, the blind
    set below measures generalisation."""
    report = score(classifier, policy, load_heldout(DEFAULT_CORPUS_DIR))
    assert report.unit_accuracy >= 0.92, report.format_text(show_misses=True)
    assert report.category_accuracy >= 0.85, report.format_text(show_misses=True)
    assert report.critical_recall == 1.0, report.format_text(show_misses=True)


def test_blind_set_figures(classifier: Classifier, policy: Policy) -> None:
    """The blind set (authors who never saw the corpus, rules or model): its figures, never its misses."""
    report = score(classifier, policy, load_blind(), name="blind", unit_target=0.93)
    print(report.format_text())  # reported, not asserted: a gate on it would invite tuning to it
    assert report.n >= 400 and report.critical_total / report.n >= 0.15
    assert report.multi_total >= 20 and len(report.by_style) >= 6


# -- amounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("3000", 3000), ("两万八", 28000), ("三千五", 3500), ("一百零五", 105), ("五十万", 500_000), ("十五", 15)],
)
def test_parse_chinese_number(text: str, value: float) -> None:
    assert parse_chinese_number(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("被扣了3000块", 3000),
        ("借了他两万八", 28000),
        ("一共1.2万元", 12000),
        ("拖欠货款50万", 500_000),
        ("有人冒充客服，被扣了三千", 3000),
        ("损失四万二千八", 42800),
    ],
)
def test_money_amounts(text: str, value: float) -> None:
    assert value in [q.value for q in money_amounts(text)]


@pytest.mark.parametrize("text", ["一百多名工人", "几十户", "电话13812345678", "千万别这样", "2023年3月", "三楼"])
def test_not_money(text: str) -> None:
    assert money_amounts(text) == []


def test_people_counts() -> None:
    assert max(q.value for q in people_counts("一百多名工人")) == 100
    assert max(q.value for q in people_counts("村里几十户人家")) >= 20
    assert max(q.value for q in people_counts("上百人聚在门口")) == 100


# -- the rules file ------------------------------------------------------------------------------


def test_packaged_rules_load() -> None:
    rules = load_rules_file()
    assert set(rules.categories) == set(Category)
    assert RiskFlag.VIOLENCE in rules.flags


def test_bad_rules_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: x\ncategories:\n  family:\n    patterns: [{re: '(unclosed', w: 1}]\n", encoding="utf-8")
    with pytest.raises(RulesError, match="bad regular expression"):
        load_rules_file(path)
