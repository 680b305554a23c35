"""The routing policy as data: schema of policy.yaml and its loader.

The policy is read at start-up and validated strictly (unknown keys, unknown units, categories or
flags are errors), so an operator's typo stops the service with a clear message instead of routing
cases by a half-read file.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.domain.triage import Category, DangerKind, RiskFlag, Unit, Urgency

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "policy.yaml"


class PolicyError(ValueError):
    """The policy file is missing, unreadable or does not match the schema."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys silently; in an operator's file that is a typo."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(text: str) -> Any:
    """Safe YAML with duplicate keys rejected (raises yaml.YAMLError)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


Checked = TypeVar("Checked", bound=BaseModel)


def load_checked(path: Path, schema: type[Checked], error: type[ValueError], what: str) -> Checked:
    """An operator's YAML file (rules, danger cues) read and checked against its schema; `error` names the
    file and every field that is wrong, so a typo stops the service with a clear message."""
    try:
        data: Any = read_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from exc
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise error(f"{path}: invalid {what}: {problems}") from exc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitPolicy(_Strict):
    label: str = Field(min_length=1)
    takes: str = ""


class CategoryPolicy(_Strict):
    label: str = Field(min_length=1)
    unit: Unit
    urgency: Urgency


class DangerRoute(_Strict):
    unit: Unit
    label: str = Field(min_length=1)
    category: Category | None = None  # what such a case is about whatever else it mentions, if anything


class DangerPolicy(_Strict):
    """Where a danger now goes, whatever the dispute is about: a unit that can act at once. A route the
    operator points elsewhere still holds: such a case is flagged for review and the command centre
    is alerted at once."""

    immediate_units: list[Unit] = Field(min_length=1)
    routes: dict[DangerKind, DangerRoute]
    # the danger model's probability that someone is in danger now, above which a case the cues found
    # nothing in is still treated as critical (with review)
    model_threshold: float = Field(default=0.6, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _every_kind(self) -> DangerPolicy:
        missing = [k.value for k in DangerKind if k not in self.routes]
        if missing:
            raise ValueError(f"danger routes missing: {', '.join(missing)}")
        return self

    def can_act_at_once(self, unit: Unit) -> bool:
        return unit in self.immediate_units


class UrgencyRule(_Strict):
    id: str = Field(min_length=1)
    flags_any: list[RiskFlag] = Field(default_factory=list)
    signals_any: list[str] = Field(default_factory=list)
    categories: list[Category] | None = None  # None: every category
    at_least: Urgency | None = None
    at_most: Urgency | None = None

    @model_validator(mode="after")
    def _one_direction(self) -> UrgencyRule:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError(f"urgency rule {self.id!r}: give exactly one of at_least / at_most")
        if not self.flags_any and not self.signals_any:
            raise ValueError(f"urgency rule {self.id!r}: needs flags_any or signals_any")
        return self

    @cached_property
    def _flag_values(self) -> frozenset[str]:
        return frozenset(f.value for f in self.flags_any)

    def matches(self, category: Category, flags: AbstractSet[str], signals: AbstractSet[str]) -> bool:
        if self.categories is not None and category not in self.categories:
            return False
        return not self._flag_values.isdisjoint(flags) or not signals.isdisjoint(self.signals_any)


class Thresholds(_Strict):
    large_sum_yuan: float = Field(default=50_000, gt=0)
    many_affected_people: int = Field(default=10, ge=2)
    repeat_count: int = Field(default=2, ge=1)


class Policy(_Strict):
    version: str = Field(min_length=1)
    review_threshold: float = Field(ge=0.0, le=1.0)
    thresholds: Thresholds = Thresholds()
    units: dict[Unit, UnitPolicy]
    categories: dict[Category, CategoryPolicy]
    danger: DangerPolicy
    urgency_rules: list[UrgencyRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> Policy:
        missing_units = [u.value for u in Unit if u not in self.units]
        if missing_units:
            raise ValueError(f"units missing: {', '.join(missing_units)}")
        missing = [c.value for c in Category if c not in self.categories]
        if missing:
            raise ValueError(f"categories missing: {', '.join(missing)}")
        ids = [r.id for r in self.urgency_rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate rule ids: {', '.join(dupes)}")
        return self

    def unit_for(self, category: Category) -> Unit:
        return self.categories[category].unit

    def default_urgency(self, category: Category) -> Urgency:
        return self.categories[category].urgency


def parse_policy(data: Any, source: str = "<policy>") -> Policy:
    """Validate already-parsed YAML/JSON data; raises PolicyError naming the source and the fields."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: the policy must be a mapping, got {type(data).__name__}")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"{source}: invalid policy: {problems}") from exc


def load_policy(path: Path | None = None) -> Policy:
    """Load and validate the policy file (default: the packaged shared/domain/policy.yaml)."""
    path = path or DEFAULT_POLICY_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc}") from exc
    try:
        data = read_yaml(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    return parse_policy(data, str(path))
