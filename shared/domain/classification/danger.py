"""Danger now: is someone's life or safety at risk at this moment, and of what kind.

A dispatcher does not wait for the word 危险. She hears who is doing what to whom, with what, whether
it is happening now or about to, and whether the caller means it. This component listens the same way:
`danger.yaml` names word classes (slots: a person, a weapon, a way of holding it, a self-harm act, a
group, a destination, a time) and the situations they combine into ("{hold}…{weapon}", "{group}…
{collective}"), so one situation covers every combination of its slots' words. A situation counts only
in a real, present frame: not negated (他没动手), not over (上个月打过一架), not a figure of speech
(气得我想杀人), not a worry or a hypothetical (万一着火), not a question about the law (会判刑吗), not a
story from the news. Some situations also need the text to say that it is happening now.

The contract: `detect(text)` on normalised text returns a `DangerReading`; `kind` is the danger that
decides where the case goes (the policy maps each kind to a unit that can act at once), `None` when
nobody is in danger now. Pure: regular expressions only, no segmentation; about a quarter of a
millisecond a text, and bounded on long hostile ones (each frame reads at most a few hundred characters
around its cue, and a situation explains at most three dismissals).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.domain.classification.policy import load_checked
from shared.domain.triage import DangerKind

DEFAULT_DANGER_PATH = Path(__file__).resolve().parent.parent / "danger.yaml"

_SENTENCE_END = "。!！?？;；\n()（）"
_CLAUSE_END = _SENTENCE_END + ",，、:：…~～"
_SLOT_RE = re.compile(r"\{(\w+)\}")
_NEGATION_REACH = 3  # characters between a negation cue and what it negates ("没有人打我": 1)
_PAST_REACH = 12  # before a state (self-harm, a fire, someone down), a time marker reaches this far back
_REACH = 200  # the farthest a sentence is read around a cue
_DISMISSALS_PER_SITUATION = 3  # enough to explain; more would only cost time on a hostile text
_STRONG_HYPOTHETICALS = frozenset({"万一", "如果", "假如", "假设", "要是", "一旦", "倘若"})
# states (a fire, a person lying there): a time marker says when they began, not that they are over
_STATES = frozenset({"self_harm", "trapped_disaster", "life_at_risk"})
# told after the fact to claim a loss, these are over unless the text says something is happening now
_TOLD_AFTER = frozenset({"trapped_disaster", "life_at_risk"})


class DangerError(ValueError):
    """danger.yaml is missing or does not match the schema."""


class Situation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: DangerKind
    pattern: str = Field(min_length=1)
    needs: str | None = None  # a slot that must also be somewhere in the text ("now", "plan", "history")
    # a fight that the caller says did not happen ("没动手") or is over ("已经散了") does not count
    deniable: bool = False
    unless: str | None = None  # what in the text dismisses it ("蹲在房顶" in a flood is a refuge)


class Frames(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    negation: str
    negation_breakers: str
    past: str
    present: str
    figurative: str
    figurative_after: str
    hypothetical: str
    threat_consequent: str
    question: str
    reported: str
    animal: str
    habitual: str
    cooking: str
    over: str
    in_care: str
    denied: str
    aftermath: str


class DangerFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    slots: dict[str, str]
    frames: Frames
    situations: list[Situation] = Field(min_length=1)
    priority: list[DangerKind]

    @field_validator("priority")
    @classmethod
    def _every_kind(cls, value: list[DangerKind]) -> list[DangerKind]:
        if set(value) != set(DangerKind) or len(value) != len(DangerKind):
            raise ValueError("priority must list every danger kind once")
        return value


@dataclass(frozen=True, slots=True)
class Finding:
    """One situation found in the text: its kind, the words that made it, and why it counts or not."""

    kind: DangerKind
    cue: str
    start: int
    dismissed: str | None = None  # "negated", "past", "figurative", "hypothetical", "question", ...


@dataclass(frozen=True)
class DangerReading:
    """What `detect` concluded: the deciding danger (or none), every danger found, and what was dismissed."""

    found: tuple[Finding, ...] = ()
    dismissed: tuple[Finding, ...] = field(default=())

    @property
    def kind(self) -> DangerKind | None:
        return self.found[0].kind if self.found else None

    @property
    def kinds(self) -> list[DangerKind]:
        return list(dict.fromkeys(f.kind for f in self.found))


def load_danger_file(path: Path | None = None) -> DangerFile:
    return load_checked(path or DEFAULT_DANGER_PATH, DangerFile, DangerError, "danger cues")


def _expand(pattern: str, slots: dict[str, str], depth: int = 0) -> str:
    if depth > 4:
        raise DangerError(f"slots nest too deeply in {pattern!r}")

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in slots:
            raise DangerError(f"unknown slot {{{name}}} in {pattern!r}")
        return _expand(slots[name], slots, depth + 1)

    return _SLOT_RE.sub(one, pattern)


def _compile(pattern: str, slots: dict[str, str]) -> re.Pattern[str]:
    expanded = _expand(pattern, slots)
    try:
        return re.compile(expanded)
    except re.error as exc:
        raise DangerError(f"bad pattern {pattern!r}: {exc}") from exc


def first_chars(rx: re.Pattern[str]) -> frozenset[str] | None:
    """The characters a match of `rx` can begin with, or None when any may: a text that has none of them
    cannot match, so the regular expression need not run (most texts touch few situations)."""
    from re import _constants as c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]

    def of(items: list[tuple[Any, Any]]) -> frozenset[str] | None:
        found: set[str] = set()
        for op, arg in items:
            if op is c.LITERAL:
                return frozenset(found | {chr(arg)})
            if op is c.IN and all(o is c.LITERAL for o, _ in arg):
                return frozenset(found | {chr(a) for _, a in arg})
            if op in (c.AT, c.ASSERT_NOT, c.ASSERT):
                continue  # zero-width: the match starts at what follows
            inner: frozenset[str] | None
            if op is c.SUBPATTERN:
                inner, optional = of(list(arg[-1])), False
            elif op is c.BRANCH:
                branches = [of(list(b)) for b in arg[1]]
                inner = None if any(b is None for b in branches) else frozenset().union(*branches)  # type: ignore[arg-type]
                optional = any(not b for b in arg[1])
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
                inner, optional = of(list(arg[2])), arg[0] == 0
            else:
                return None
            if inner is None:
                return None
            found |= inner
            if not optional:
                return frozenset(found)
        return None  # everything was optional: an empty match is possible

    return of(list(_parser.parse(rx.pattern)))


def _bounds(text: str, pos: int, ends: str) -> tuple[int, int]:
    """The clause or sentence around `pos`, at most _REACH characters either side (a text without
    punctuation must not make every frame check read all of it)."""
    start, floor = pos, max(0, pos - _REACH)
    while start > floor and text[start - 1] not in ends:
        start -= 1
    end, ceiling = pos, min(len(text), pos + _REACH)
    while end < ceiling and text[end] not in ends:
        end += 1
    return start, end


class DangerDetector:
    """Compiled danger.yaml; `detect` is what classification calls for every text."""

    def __init__(self, cues: DangerFile) -> None:
        self.cues = cues
        slots = cues.slots
        self._situations = [(s, _compile(s.pattern, slots)) for s in cues.situations]
        self._first = [first_chars(rx) for _, rx in self._situations]
        self._unless = {i: _compile(s.unless, slots) for i, s in enumerate(cues.situations) if s.unless}
        f = cues.frames
        self._negation = re.compile(f.negation)
        self._breakers = re.compile(f.negation_breakers)
        self._past = re.compile(f.past)
        self._present = re.compile(f.present)
        self._figurative = re.compile(f.figurative)
        self._figurative_after = re.compile(f.figurative_after)
        self._hypothetical = re.compile(f.hypothetical)
        self._consequent = re.compile(f.threat_consequent)
        self._question = re.compile(f.question)
        self._reported = re.compile(f.reported)
        self._cooking = re.compile(f.cooking)
        self._habitual = re.compile(f.habitual)
        self._animal = re.compile(f.animal)
        self._over = re.compile(f.over)
        self._in_care = re.compile(f.in_care)
        self._denied = re.compile(f.denied)
        self._aftermath = re.compile(f.aftermath)
        self._aim = _compile("{aim}", slots)
        needed = {"now"} | {s.needs for s in cues.situations if s.needs}
        self._needs = {name: _compile(f"{{{name}}}", slots) for name in needed}
        self._order = {k: i for i, k in enumerate(cues.priority)}

    @classmethod
    def load(cls, path: Path | None = None) -> DangerDetector:
        return cls(load_danger_file(path))

    def detect(self, text: str) -> DangerReading:
        """Every situation in `text` (normalised), kept if its frame is real and present."""
        found: list[Finding] = []
        dismissed: list[Finding] = []
        now = self._needs["now"].search(text) is not None
        needs_met: dict[str, bool] = {"now": now}
        taken: set[tuple[DangerKind, int]] = set()
        chars = set(text)
        for i, (situation, rx) in enumerate(self._situations):
            first = self._first[i]
            if first is not None and chars.isdisjoint(first):
                continue
            unless = self._unless.get(i)
            dismissals = 0
            for m in rx.finditer(text):
                key = (situation.kind, m.start())
                if key in taken:
                    continue
                why = self._dismissal(text, m.start(), m.end(), situation, now)
                if why is None and unless is not None and unless.search(
                    text, max(0, m.start() - 40), m.end() + 40
                ):
                    why = "unless"
                if why is None and situation.needs is not None:
                    met = needs_met.get(situation.needs)
                    if met is None:
                        met = needs_met[situation.needs] = self._needs[situation.needs].search(text) is not None
                    why = None if met else f"no_{situation.needs}"
                finding = Finding(situation.kind, m.group(0), m.start(), why)
                (found if why is None else dismissed).append(finding)
                if why is None:
                    taken.add(key)
                    break  # one finding per situation is enough to decide
                dismissals += 1
                if dismissals == _DISMISSALS_PER_SITUATION:
                    break
        found.sort(key=lambda f: (self._order[f.kind], f.start))
        return DangerReading(tuple(found), tuple(dismissed))

    # -- frames -------------------------------------------------------------------------------

    def _dismissal(self, text: str, start: int, end: int, situation: Situation, now: bool) -> str | None:
        kind = situation.kind
        c_start, c_end = _bounds(text, start, _CLAUSE_END)
        s_start, s_end = _bounds(text, start, _SENTENCE_END)
        if self._negated(text, c_start, start, end):
            return "negated"
        # what the caller says next about it: "没动手", "已经散了", "要求赔偿"
        around = (s_start, _bounds(text, min(s_end + 1, len(text)), _SENTENCE_END)[1])
        if situation.deniable and (self._denied.search(text, *around) or self._over.search(text, *around)):
            return "denied"
        told_after = kind.value in _TOLD_AFTER or situation.needs == "now"
        if told_after and not now and self._aftermath.search(text, *around):
            return "aftermath"
        before_clause = text[c_start:start]
        if self._figurative.search(before_clause) or self._figurative_after.match(text, end):
            return "figurative"
        sentence = text[s_start:s_end]
        reported = self._reported.search(text, s_start, start)
        if reported and not self._negation.search(text[max(s_start, reported.start() - 3) : reported.start()]):
            return "reported"  # "不是演习" is not a drill
        if self._is_question(text, s_start, s_end) and not self._needs["now"].search(text, s_start, s_end):
            return "question"
        if self._hypothetical_before(text, s_start, c_start, start, weak_counts=kind is not DangerKind.SELF_HARM):
            return "hypothetical"
        # a despairing person's backstory is in the past, what they say they will do is not; a fire that
        # broke out last night may still be burning
        reach = max(s_start, c_start - _PAST_REACH) if kind.value in _STATES else s_start
        if self._in_past(text, reach, c_end, start, end):
            return "past"
        if self._over.search(text, end, s_end):
            return "over"
        recurring = kind.value in _TOLD_AFTER or situation.deniable
        if recurring and self._habitual.search(before_clause):
            return "habitual"
        if kind in (DangerKind.LIFE_AT_RISK, DangerKind.TRAPPED_DISASTER) and self._animal.search(
            text, max(s_start, start - 12), start
        ):
            return "animal"
        if kind is DangerKind.LIFE_AT_RISK and self._in_care.search(sentence):
            return "in_care"
        beside = text[s_start:start] + text[end:s_end]  # the weapon's own name is no kitchen: 杀猪刀
        if kind is DangerKind.WEAPON and self._cooking.search(beside) and not self._aim.search(sentence):
            return "cooking"
        return None

    def _negated(self, text: str, c_start: int, start: int, end: int) -> bool:
        head = text[start : min(end, start + 2)]
        if self._breakers.match(head):  # the cue itself reasserts: "就要砍死我"
            return False
        for skip in range(_NEGATION_REACH + 1):
            stop = start - skip
            if stop <= c_start:
                return False
            if skip and self._breakers.search(text, stop, start):
                return False
            if self._negation.search(text[max(c_start, stop - 4) : stop]):
                return True
        return False

    def _is_question(self, text: str, s_start: int, s_end: int) -> bool:
        tail = text[s_end : s_end + 1]
        sentence = text[s_start:s_end]
        asks = tail in ("?", "？") or sentence.rstrip().endswith(("吗", "呢", "么"))
        return asks and self._question.search(sentence) is not None

    def _hypothetical_before(self, text: str, s_start: int, c_start: int, start: int, weak_counts: bool) -> bool:
        """A worry or a condition governs the cue, unless a threat's consequence comes between them."""
        last = None
        for m in self._hypothetical.finditer(text, s_start, start):
            last = m
        if last is None:
            return False
        weak = last.group(0) not in _STRONG_HYPOTHETICALS
        if weak and (not weak_counts or last.start() < c_start):
            return False  # 担心, 怕, 隐患 reach only their own clause, and never cancel a fear for a life
        return self._consequent.search(text, last.end(), start) is None

    def _in_past(self, text: str, reach: int, c_end: int, start: int, end: int) -> bool:
        """The latest time marker before the cue in its sentence says it is over; or the cue's own
        clause puts it in the past ("打架是上个月的事"), or its verb does ("打过")."""
        if text.startswith("过", end) and not text.startswith("过来", end) and not text.startswith("过去", end):
            return True
        last_past = last_present = -1
        for m in self._past.finditer(text, reach, start):
            last_past = m.start()
        for m in self._present.finditer(text, reach, end):  # "今晚回来弄死我" says when itself
            last_present = m.start()
        if last_past > last_present:
            return True
        if last_present >= 0:
            return False
        after_past = self._past.search(text, end, c_end)
        return after_past is not None and self._present.search(text, end, c_end) is None
