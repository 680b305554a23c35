"""The classifier: rules, the danger cues and two built models -> Assessment (entry points: `complaints.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

import shared.domain.classification.model as text_model
from shared.domain.classification.artefact import load_built
from shared.domain.classification.danger import DangerDetector, DangerReading
from shared.domain.classification.policy import Policy, load_policy
from shared.domain.classification.rules import DEFAULT_RULES_PATH, Evidence, RuleEngine, load_rules_file
from shared.domain.classification.text import Segmenter, normalize
from shared.domain.triage import (
    Assessment,
    Category,
    DangerKind,
    Reason,
    RiskFlag,
    Unit,
    Urgency,
)

NO_DANGER = "none"  # the danger model's label for "nobody in danger now"
_TOP_K = 3


def _reason(kind: str, code: str, detail: str = "", weight: float | None = None) -> Reason:
    return Reason(kind=kind, code=code, detail=detail, weight=weight)


def _flag_order(flags: dict[RiskFlag, list[str]]) -> list[RiskFlag]:
    return [f for f in RiskFlag if f in flags]


# the risk flags a danger now implies, beside danger_now itself
_DANGER_FLAGS = {
    DangerKind.VIOLENCE: RiskFlag.VIOLENCE,
    DangerKind.WEAPON: RiskFlag.VIOLENCE,
    DangerKind.SELF_HARM: RiskFlag.SELF_HARM,
    DangerKind.MASS_INCIDENT: RiskFlag.COLLECTIVE_ACTION,
}
_DISMISSED = {
    "negated": "被否定", "past": "已过去", "over": "已结束", "figurative": "是气话或夸张",
    "hypothetical": "是假设或担心", "question": "是法律咨询", "reported": "是转述新闻或表演",
    "cooking": "是日常用具", "aftermath": "是事后索赔", "denied": "来电人说未动手", "in_care": "已在救治",
    "habitual": "是长期隐患", "unless": "另有所指", "animal": "说的是动物",
    "no_now": "未说正在发生", "no_plan": "未说何时行动", "no_history": "未见此前的暴力",
}  # fmt: skip


def _with_danger(evidence: Evidence, reading: DangerReading) -> None:
    """A danger now sets danger_now and the flag of its kind, with the words that showed it."""
    for finding in reading.found:
        evidence.flags.setdefault(RiskFlag.DANGER_NOW, []).append(finding.cue)
        flag = _DANGER_FLAGS.get(finding.kind)
        if flag is not None:
            evidence.flags.setdefault(flag, []).append(finding.cue)


class Classifier:
    """Explainable rules and a character n-gram model, blended; urgency from the policy's rules."""

    def __init__(
        self,
        model: text_model.LinearTextModel,
        engine: RuleEngine,
        segmenter: Segmenter,
        policy: Policy,
        danger: DangerDetector,
        model_key: str = "",
        danger_model: text_model.LinearTextModel | None = None,
    ) -> None:
        self.model = model
        self.categories = [Category(c) for c in model.classes]
        self.danger = danger
        self.danger_model = danger_model
        self.engine = engine
        self.segmenter = segmenter
        self.policy = policy
        self.model_key = model_key
        self._class_index = {c: i for i, c in enumerate(self.categories)}

    @classmethod
    def load(cls, model_dir: Path, *, policy: Policy | None = None) -> Classifier:
        """The model built into `model_dir` (`make model`), with this code's rules, danger cues and policy.
        Raises ModelError when there is none or it was built for another analyzer or other rule terms."""
        engine = RuleEngine(load_rules_file(DEFAULT_RULES_PATH))
        built = load_built(model_dir, engine.vocabulary())
        return cls(built.categories, engine, Segmenter(built.dictionary), policy or load_policy(),
                   DangerDetector.load(), built.manifest.key, built.danger)

    # -- assessing ----------------------------------------------------------------------------

    def assess(
        self,
        text: str,
        channel: str | None = None,
        repeat_count: int = 0,
        *,
        policy: Policy | None = None,
    ) -> Assessment:
        return self.assess_many([text], [channel], [repeat_count], policy=policy)[0]

    def assess_many(
        self,
        texts: Sequence[str],
        channels: Sequence[str | None] | None = None,
        repeat_counts: Sequence[int] | None = None,
        *,
        policy: Policy | None = None,
    ) -> list[Assessment]:
        """Assess a batch: the model and the blend run once for the whole batch (numpy), the rules
        text by text."""
        policy = policy or self.policy
        normalized = [normalize(t) for t in texts]
        probs = self.model.predict_proba(normalized)
        evidences = [
            self.engine.evaluate(norm, self.segmenter, policy, repeat_counts[i] if repeat_counts is not None else 0)
            for i, norm in enumerate(normalized)
        ]
        readings = [self.danger.detect(norm) for norm in normalized]
        points = np.zeros_like(probs)
        for i, evidence in enumerate(evidences):
            _with_danger(evidence, readings[i])
            self._rule_points(points[i], evidence, channels[i] if channels is not None else None)
        blend = self.engine.rules.blend
        z = np.log(probs + 1e-9) + blend.rule_weight * np.minimum(points, blend.rule_cap)
        z -= z.max(axis=1, keepdims=True)
        combined = np.exp(z)
        combined /= combined.sum(axis=1, keepdims=True)
        top = np.argsort(-combined, axis=1)[:, :_TOP_K]
        model_top = np.argsort(-probs, axis=1)[:, :_TOP_K]
        units = [policy.categories[c].unit for c in self.categories]
        suspicions = self._suspicions(normalized, readings, policy)
        return [
            self._assessment(probs[i], combined[i], top[i], model_top[i], evidences[i], readings[i], units, policy,
                             suspicions[i])
            for i in range(len(normalized))
        ]

    def _rule_points(self, points: np.ndarray, evidence: Evidence, channel: str | None) -> None:
        """Rule evidence per category (in place), plus the policy-free boosts from flags and channel."""
        rules = self.engine.rules
        index = self._class_index
        # a category the model was never trained on cannot be chosen (it has no probability)
        for cat, score in evidence.category_scores.items():
            if cat in index:
                points[index[cat]] += score
        for flag in evidence.flags:
            for cat, boost in rules.flag_boosts.get(flag, {}).items():
                if cat in index:
                    points[index[cat]] += boost
        for name, signal_boost in rules.signal_boosts.items():
            if name in evidence.signals and not any(u in evidence.signals for u in signal_boost.unless):
                for cat, extra in signal_boost.boost.items():
                    if cat in index:
                        points[index[cat]] += extra
        if channel is not None:
            for cat, boost in rules.channel_boosts.get(channel, {}).items():
                if cat in index:
                    points[index[cat]] += boost

    def _assessment(
        self,
        p_model: np.ndarray,
        combined: np.ndarray,
        top: np.ndarray,
        model_top: np.ndarray,
        evidence: Evidence,
        reading: DangerReading,
        units: list[Unit],
        policy: Policy,
        suspicion: tuple[Unit, float] | None,
    ) -> Assessment:
        classes = self.categories
        best = int(top[0])
        category = classes[best]
        danger_category = policy.danger.routes[reading.kind].category if reading.kind else None
        if danger_category is not None and danger_category in self._class_index:
            # people trapped, a fire, a gas leak: the hazard is what the case is about (the policy says so)
            best = self._class_index[danger_category]
            category = danger_category
        confidence = float(combined[best])
        top_categories = [(classes[int(j)], round(float(combined[j]), 4)) for j in top]
        flags = {f.value for f in evidence.flags}  # plain strings: cheap to hash on the hot path
        signals = set(evidence.signals)
        reasons: list[Reason] = []

        # rules: the categories the rules backed, strongest first, with their terms
        for cat, score in sorted(evidence.category_scores.items(), key=lambda kv: -kv[1])[:_TOP_K]:
            terms = "、".join(evidence.category_terms[cat][:8])
            reasons.append(_reason(kind="rule", code=f"category.{cat.value}", detail=terms, weight=score))
        for flag in _flag_order(evidence.flags):
            reasons.append(
                _reason(kind="rule", code=f"flag.{flag.value}", detail="、".join(evidence.flags[flag][:6]))
            )
        for name in sorted(evidence.signals):
            reasons.append(
                _reason(kind="rule", code=f"signal.{name}", detail="、".join(evidence.signals[name][:6]))
            )
        for hit in evidence.negated:
            reasons.append(
                _reason(
                    kind="negation",
                    code=f"{hit.kind}.{hit.key}",
                    detail=f"「{hit.term.strip('/')}」被「{hit.negated_by}」否定，不计",
                )
            )
        for finding in reading.found:
            reasons.append(_reason(kind="danger", code=f"danger.{finding.kind.value}", detail=finding.cue))
        for finding in reading.dismissed[:3]:
            why = _DISMISSED.get(finding.dismissed or "", "不计")
            reasons.append(_reason(kind="danger_dismissed", code=f"danger.{finding.kind.value}",
                                   detail=f"「{finding.cue}」{why}，不计"))
        # model: its own top categories, before the rules were added
        for j in model_top:
            reasons.append(_reason(kind="model", code=classes[int(j)].value, weight=round(float(p_model[j]), 4)))

        urgency, urgency_reasons = self._urgency(category, flags, signals, policy)
        reasons.extend(urgency_reasons)
        if suspicion is not None:
            urgency = Urgency.CRITICAL
            reasons.append(_reason(kind="danger", code="danger.suspected", weight=round(suspicion[1], 4),
                                   detail=f"规则未找到现实危险的依据，但模型判断有人正处危险（{suspicion[1]:.2f}），"
                                   f"派往 {suspicion[0].value}，需人工复核"))

        # Review when the *unit* is uncertain: the categories that lead to the chosen category's unit
        # must together hold `review_threshold` of the probability. Doubt between two mediation
        # categories does not change where the case goes; an override decides the unit by itself.
        needs_review = False
        unit = units[best]
        unit_support = float(sum(float(combined[j]) for j, u in enumerate(units) if u is unit))
        if suspicion is not None:
            needs_review = True
        elif reading.kind is None and unit_support < policy.review_threshold:
            needs_review = True
            reasons.append(
                _reason(
                    kind="review",
                    code="low_confidence",
                    detail=f"派往 {unit.value} 的把握 {unit_support:.2f} 低于阈值 {policy.review_threshold:.2f}",
                    weight=round(unit_support, 4),
                )
            )
        model_unit = units[int(model_top[0])]
        if reading.kind is None and model_unit is not unit:
            # the rules carried the case across to another unit than the model's: two views disagree on
            # where it goes, the commonest sign of a wrong unit in cross-validation
            needs_review = True
            reasons.append(_reason(kind="review", code="unit_views_differ",
                                   detail=f"模型倾向派往 {model_unit.value}，规则改派 {unit.value}"))

        return Assessment(
            category=category,
            urgency=urgency,
            risk_flags=_flag_order(evidence.flags),
            confidence=min(1.0, max(0.0, confidence)),
            top_categories=top_categories,
            reasons=reasons,
            needs_review=needs_review,
            danger=reading.kind,
            danger_suspected=suspicion[0] if suspicion else None,
            signals=sorted(signals),
        )

    def _urgency(
        self, category: Category, flags: set[str], signals: set[str], policy: Policy
    ) -> tuple[Urgency, list[Reason]]:
        base = policy.default_urgency(category)
        reasons = [_reason(kind="policy", code=f"urgency.default.{category.value}", detail=base.value)]
        raised = base
        touched = False
        for rule in policy.urgency_rules:
            if rule.at_least is not None and rule.matches(category, flags, signals):
                touched = True
                if rule.at_least.rank > raised.rank:
                    raised = rule.at_least
                why = ", ".join(
                    sorted((flags & {f.value for f in rule.flags_any}) | (signals & set(rule.signals_any)))
                )
                detail = f"≥{rule.at_least.value}: {why}"
                reasons.append(_reason(kind="policy", code=f"urgency.{rule.id}", detail=detail))
        if touched:
            return raised, reasons
        for rule in policy.urgency_rules:
            cap = rule.at_most
            if cap is not None and cap.rank < base.rank and rule.matches(category, flags, signals):
                why = ", ".join(sorted(signals & set(rule.signals_any)))
                reasons.append(_reason(kind="policy", code=f"urgency.{rule.id}", detail=f"≤{cap.value}: {why}"))
                return cap, reasons
        return base, reasons


    def _suspicions(
        self, normalized: Sequence[str], readings: Sequence[DangerReading], policy: Policy
    ) -> list[tuple[Unit, float] | None]:
        """The danger model's second view, for the texts the cues found no danger in: the unit that can act
        and the probability that someone is in danger now, where it reaches the policy's threshold."""
        out: list[tuple[Unit, float] | None] = [None] * len(normalized)
        quiet = [i for i, r in enumerate(readings) if r.kind is None]
        if self.danger_model is None or not quiet:
            return out
        probs = self.danger_model.predict_proba([normalized[i] for i in quiet])
        labels = self.danger_model.classes
        calm = labels.index(NO_DANGER)
        for row, i in enumerate(quiet):
            p = probs[row]
            if 1.0 - float(p[calm]) >= policy.danger.model_threshold:
                best = max((j for j in range(len(labels)) if j != calm), key=lambda j: float(p[j]))
                out[i] = (Unit(labels[best]), 1.0 - float(p[calm]))
        return out
