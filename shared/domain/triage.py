"""The vocabulary of triage: the brief's classification contract as types.

Everything that decides where a case goes speaks in these names; the values are the wire values.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Unit(StrEnum):
    """The five units a case can be routed to."""

    POLICE = "police"  # 公安派出所
    MEDIATION = "mediation"  # 矛盾纠纷调处中心
    VISITOR = "visitor"  # 人民来访中心
    LEGAL = "legal"  # 公共法律服务中心
    COMMAND = "command"  # 镇域指挥中心


class Category(StrEnum):
    FAMILY = "family"
    NEIGHBOR = "neighbor"
    PROPERTY_LAND = "property_land"
    CONTRACT_DEBT = "contract_debt"
    LABOR = "labor"
    CONSUMER = "consumer"
    PROPERTY_MGMT = "property_mgmt"
    TRAFFIC_ACCIDENT = "traffic_accident"
    MEDICAL = "medical"
    DAMAGES = "damages"
    LAND_REQUISITION = "land_requisition"
    ENVIRONMENT = "environment"
    PUBLIC_SECURITY = "public_security"
    FRAUD = "fraud"
    ADMIN_COMPLAINT = "admin_complaint"
    LEGAL_AID = "legal_aid"
    URBAN_MANAGEMENT = "urban_management"
    SAFETY_HAZARD = "safety_hazard"
    OTHER = "other"


class Urgency(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _URGENCY_ORDER.index(self)

    def raised(self, steps: int = 1) -> Urgency:
        return _URGENCY_ORDER[min(self.rank + steps, len(_URGENCY_ORDER) - 1)]


_URGENCY_ORDER = [Urgency.LOW, Urgency.NORMAL, Urgency.HIGH, Urgency.CRITICAL]


class RiskFlag(StrEnum):
    VIOLENCE = "violence"  # violence, threats or weapons
    SELF_HARM = "self_harm"
    DOMESTIC_VIOLENCE = "domestic_violence"
    COLLECTIVE_ACTION = "collective_action"  # gathering, blocking a road, joint petition trip
    ESCALATION_THREAT = "escalation_threat"  # threatens to petition higher up (越级上访)
    VULNERABLE_PERSON = "vulnerable_person"  # elderly, minors, disabled, pregnant
    MANY_AFFECTED = "many_affected"
    LARGE_SUM = "large_sum"
    WAGE_ARREARS_FESTIVAL = "wage_arrears_festival"  # unpaid wages before the Spring Festival
    DANGER_NOW = "danger_now"  # someone is in danger at this moment (trapped, gas leak, ...)
    REPEATED = "repeated"  # the same matter reported again


class DangerKind(StrEnum):
    """Someone's life or safety at risk now; each kind goes to a unit that can act at once."""

    VIOLENCE = "violence"  # violence under way or imminent, domestic violence, a threat to come and hurt
    WEAPON = "weapon"  # a weapon present or brandished
    SELF_HARM = "self_harm"  # someone about to harm or kill themselves
    TRAPPED_DISASTER = "trapped_disaster"  # people trapped, fire, gas, collapse, live wires, flood
    MASS_INCIDENT = "mass_incident"  # a collective action planned or under way
    LIFE_AT_RISK = "life_at_risk"  # someone badly hurt or unconscious at a scene now


class Reason(BaseModel):
    """One piece of evidence behind a decision, readable by a desk and auditable by a supervisor."""

    model_config = ConfigDict(frozen=True)

    kind: str  # "rule", "model", "override", "policy", "negation", "review"
    code: str  # the rule id, category or override name
    detail: str = ""  # the matched terms, probability, or a sentence
    weight: float | None = None


class Assessment(BaseModel):
    """What the classifier concluded about a text, before routing policy is applied."""

    category: Category
    urgency: Urgency
    risk_flags: list[RiskFlag] = Field(default_factory=list)
    confidence: float = Field(ge=0.0, le=1.0)
    top_categories: list[tuple[Category, float]] = Field(default_factory=list)
    reasons: list[Reason] = Field(default_factory=list)
    needs_review: bool = False
    danger: DangerKind | None = None  # the danger now that decides the unit, if anyone is in danger
    # no cue was found, but the danger model thinks someone may be in danger now: the unit that can act
    danger_suspected: Unit | None = None
    # named rule signals that fired (e.g. "consultation", "law_question"): urgency rules read them
    signals: list[str] = Field(default_factory=list)


class RoutingDecision(BaseModel):
    """The unit chosen for a case and why."""

    unit: Unit
    urgency: Urgency
    override: str | None = None  # the danger that decided the unit ("danger.weapon"), if any
    reasons: list[Reason] = Field(default_factory=list)
    needs_review: bool = False
    # a critical case left with a unit that cannot act at once: the command centre is told at once
    alert_command: bool = False
    policy_version: str = ""
