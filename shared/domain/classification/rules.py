"""Explainable rules: load rules.yaml, match its terms and patterns, and weigh the evidence.

Matching runs over the normalised characters (a bigram-indexed scan, so thousands of terms cost a
few microseconds per text); short ambiguous terms marked `words` must also be whole jieba words, and
the evidence for risk flags and signals is dropped when a negation cue governs it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.domain.classification.numbers import money_amounts, people_counts
from shared.domain.classification.policy import Policy, load_checked
from shared.domain.classification.text import ClauseView, Segmenter, clause_spans
from shared.domain.triage import Category, RiskFlag

DEFAULT_RULES_PATH = Path(__file__).resolve().parent.parent / "rules.yaml"

GroupKind = Literal["category", "flag", "signal"]
_NO_CUES: frozenset[str] = frozenset()


class RulesError(ValueError):
    """rules.yaml is missing or does not match the schema."""


class PatternRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    regex: str = Field(alias="re", min_length=1)
    w: float = Field(gt=0)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regular expression {value!r}: {exc}") from exc
        return value


class RuleGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    terms: dict[float, list[str]] = Field(default_factory=dict)
    words: dict[float, list[str]] = Field(default_factory=dict)
    patterns: list[PatternRule] = Field(default_factory=list)
    threshold: float = Field(default=1.0, gt=0)
    negatable: bool = True  # flags and signals only; categories are never negated
    # more cues that cancel this group's evidence: hypotheticals ("万一着火") for danger now
    extra_cues: list[str] = Field(default_factory=list)


class BlendSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule_weight: float = Field(default=0.35, ge=0)  # per point of rule score, in log-probability units
    rule_cap: float = Field(default=9.0, gt=0)  # a category's rule score counts up to this


class SignalBoost(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    boost: dict[Category, float]
    unless: list[str] = Field(default_factory=list)  # other signals that cancel it


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    blend: BlendSettings = BlendSettings()
    flag_boosts: dict[RiskFlag, dict[Category, float]] = Field(default_factory=dict)
    channel_boosts: dict[str, dict[Category, float]] = Field(default_factory=dict)
    signal_boosts: dict[str, SignalBoost] = Field(default_factory=dict)
    segmenter_words: list[str] = Field(default_factory=list)
    categories: dict[Category, RuleGroup]
    flags: dict[RiskFlag, RuleGroup] = Field(default_factory=dict)
    signals: dict[str, RuleGroup] = Field(default_factory=dict)


def load_rules_file(path: Path | None = None) -> RulesFile:
    return load_checked(path or DEFAULT_RULES_PATH, RulesFile, RulesError, "rules")


_CATEGORY_KEYS: list[tuple[Category, tuple[GroupKind, str]]] = [(c, ("category", c.value)) for c in Category]
_FLAG_KEYS: list[tuple[RiskFlag, tuple[GroupKind, str]]] = [(f, ("flag", f.value)) for f in RiskFlag]
_SPECIAL = set("()[]\\.*+?{}^$|")


def _gates(regex: str) -> list[frozenset[str]]:
    """Character sets a text must touch for `regex` to match: one per mandatory top-level group of
    plain alternatives ("(老公|丈夫)" needs 老 or 丈 somewhere) and per plain top-level character.
    A cheap, conservative pre-filter: an empty list means "always run"."""
    gates: list[frozenset[str]] = []
    i, n = 0, len(regex)
    while i < n:
        ch = regex[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "|":
            return []  # a top-level alternative: nothing is mandatory
        if ch == "{":  # a quantifier's bounds, not text
            close = regex.find("}", i + 1)
            i = close + 1 if close > 0 else n
            continue
        if ch == "[":
            close = regex.find("]", i + 1)
            if close < 0:
                return []
            i = close + 1
            continue
        optional_next = regex[i + 1 : i + 2] in ("?", "*") or regex.startswith("{0", i + 1)
        if ch == "(":
            depth, j = 0, i
            while j < n:
                if regex[j] == "\\":
                    j += 2
                    continue
                depth += regex[j] == "("
                depth -= regex[j] == ")"
                if depth == 0:
                    break
                j += 1
            body = regex[i + 1 : j]
            if body.startswith("?:"):
                body = body[2:]
            after = regex[j + 1 : j + 2]
            mandatory = after not in ("?", "*") and not regex.startswith("{0", j + 1)
            alternatives = body.split("|")
            if mandatory and all(a and not (set(a) & _SPECIAL) for a in alternatives):
                gates.append(frozenset(a[0] for a in alternatives))
            i = j + 1
            continue
        if ch not in _SPECIAL and not optional_next:
            gates.append(frozenset(ch))
        i += 1
    return gates


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: GroupKind
    key: str
    weight: float
    word_only: bool


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x on this hot path
class Hit:
    kind: GroupKind
    key: str
    term: str
    start: int
    end: int
    weight: float
    negated_by: str | None = None


@dataclass
class Evidence:
    """What the rules found in one text."""

    category_scores: dict[Category, float] = field(default_factory=dict)
    category_terms: dict[Category, list[str]] = field(default_factory=dict)
    flags: dict[RiskFlag, list[str]] = field(default_factory=dict)  # flag -> what fired it
    signals: dict[str, list[str]] = field(default_factory=dict)
    negated: list[Hit] = field(default_factory=list)


class RuleEngine:
    """Compiled rules.yaml."""

    def __init__(self, rules: RulesFile) -> None:
        self.rules = rules
        self._index: dict[str, list[tuple[str, _Entry]]] = defaultdict(list)
        # (kind, key, regex, weight, gates): the regex runs only on texts that touch every gate
        self._patterns: list[tuple[GroupKind, str, re.Pattern[str], float, list[frozenset[str]]]] = []
        self._groups: dict[tuple[GroupKind, str], RuleGroup] = {}
        groups: list[tuple[GroupKind, str, RuleGroup]] = [
            *(("category", c.value, g) for c, g in rules.categories.items()),
            *(("flag", f.value, g) for f, g in rules.flags.items()),
            *(("signal", s, g) for s, g in rules.signals.items()),
        ]
        for kind, key, group in groups:
            self._groups[(kind, key)] = group
            for word_only, table in ((False, group.terms), (True, group.words)):
                for weight, terms in table.items():
                    for term in terms:
                        term = str(term).lower()
                        self._index[term[:2]].append((term, _Entry(kind, key, float(weight), word_only)))
            for p in group.patterns:
                self._patterns.append((kind, key, re.compile(p.regex), p.w, _gates(p.regex)))
        self._max_single = {k for k in self._index if len(k) == 1}
        self._cues = {k: frozenset(g.extra_cues) for k, g in self._groups.items() if g.extra_cues}

    def vocabulary(self) -> set[str]:
        """Every literal term (for the segmenter's dictionary)."""
        # whole-word terms stay out: adding them would make jieba agree with them by construction
        terms = {t for entries in self._index.values() for t, e in entries if len(t) > 1 and not e.word_only}
        return terms | {w.lower() for w in self.rules.segmenter_words}

    def _scan(self, text: str) -> list[tuple[str, int, _Entry]]:
        found: list[tuple[str, int, _Entry]] = []
        index = self._index
        singles = self._max_single
        for i in range(len(text)):
            cands = index.get(text[i : i + 2])
            if cands:
                for term, entry in cands:
                    if text.startswith(term, i):
                        found.append((term, i, entry))
            ch = text[i]
            if ch in singles:
                for term, entry in index[ch]:
                    found.append((term, i, entry))
        return found

    def evaluate(
        self,
        text: str,
        segmenter: Segmenter,
        policy: Policy,
        repeat_count: int = 0,
    ) -> Evidence:
        """Match every rule against normalised `text` and weigh the evidence."""
        spans = clause_spans(text)
        clauses: dict[int, ClauseView] = {}

        def clause_at(pos: int) -> ClauseView:
            for s, e in spans:
                if s <= pos < e:
                    view = clauses.get(s)
                    if view is None:
                        view = clauses[s] = ClauseView(text, s, e, segmenter)
                    return view
            return ClauseView(text, pos, pos + 1, segmenter)

        hits: list[Hit] = []
        for term, start, entry in self._scan(text):
            end = start + len(term)
            if entry.word_only and not clause_at(start).is_word(start, end):
                continue
            hits.append(Hit(entry.kind, entry.key, term, start, end, entry.weight))
        chars = set(text)
        for kind, key, rx, weight, gates in self._patterns:
            for gate in gates:  # a plain loop: a generator per pattern costs more than the test
                if chars.isdisjoint(gate):
                    break
            else:
                for m in rx.finditer(text):
                    hits.append(Hit(kind, key, f"/{m.group(0)}/", m.start(), m.end(), weight))

        ev = Evidence()
        cues = self._cues
        by_group: dict[tuple[GroupKind, str], list[Hit]] = defaultdict(list)
        for h in hits:
            by_group[(h.kind, h.key)].append(h)
        scores: dict[tuple[GroupKind, str], float] = {}
        fired_terms: dict[tuple[GroupKind, str], list[str]] = {}
        for gkey, group_hits in by_group.items():
            kind = gkey[0]
            group = self._groups[gkey]
            # a hit inside a longer hit of the same group adds nothing new ("工资" in "拖欠工资")
            group_hits.sort(key=lambda h: (h.start, -(h.end - h.start)))
            kept: list[Hit] = []
            span = (-1, -1)  # the literal hit reaching furthest right so far; sorted by start, so it
            for h in group_hits:  # contains a later literal hit iff it ends at or after it
                if h.term[0] != "/":
                    if span[1] >= h.end and span != (h.start, h.end):
                        continue
                    if h.end > span[1]:
                        span = (h.start, h.end)
                kept.append(h)
            total = 0.0
            seen: set[str] = set()
            terms: list[str] = []
            for h in kept:
                if h.term in seen:
                    continue
                if kind != "category" and group.negatable:
                    cue = clause_at(h.start).negation_before(h.start, cues.get(gkey, _NO_CUES))
                    if cue is not None:
                        ev.negated.append(
                            Hit(h.kind, h.key, h.term, h.start, h.end, h.weight, negated_by=cue)
                        )
                        continue
                seen.add(h.term)
                total += h.weight
                terms.append(h.term.strip("/"))
            scores[gkey] = total
            fired_terms[gkey] = terms

        for c, gkey in _CATEGORY_KEYS:
            score = scores.get(gkey, 0.0)
            if score > 0:
                ev.category_scores[c] = score
                ev.category_terms[c] = fired_terms[gkey]
        for f, gkey in _FLAG_KEYS:
            flag_group = self._groups.get(gkey)
            if flag_group is not None and scores.get(gkey, 0.0) >= flag_group.threshold:
                ev.flags[f] = fired_terms[gkey]
        for name, signal_group in self.rules.signals.items():
            if scores.get(("signal", name), 0.0) >= signal_group.threshold:
                ev.signals[name] = fired_terms[("signal", name)]

        self._detectors(text, policy, repeat_count, ev)
        return ev

    @staticmethod
    def _detectors(text: str, policy: Policy, repeat_count: int, ev: Evidence) -> None:
        """Risk flags that need numbers, not words."""
        limits = policy.thresholds
        big = money_amounts(text, limits.large_sum_yuan)
        if big:
            ev.flags.setdefault(RiskFlag.LARGE_SUM, []).extend(f"{q.text}≈{q.value:,.0f}元" for q in big)
        many = people_counts(text, limits.many_affected_people)
        if many:
            ev.flags.setdefault(RiskFlag.MANY_AFFECTED, []).extend(q.text for q in many)
        if repeat_count >= limits.repeat_count:
            ev.flags.setdefault(RiskFlag.REPEATED, []).append(f"已合并重复来件{repeat_count}次")
