"""Scoring a labelled set and a throughput benchmark.

`evaluate` scores a set with the model built from train_*.jsonl only (`make model`'s, built here when
missing or stale) and exactly the code the services use: each complaint is split into its matters, and
each matter classified and routed (`triage_many`); the complaint is scored by its most urgent matter, as
its writer labelled it. The sets: `heldout` (the corpus's held-out part) and `blind` (written by authors
who never saw the corpus, rules or model).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from threadpoolctl import threadpool_limits

from shared.domain.classification.classifier import Classifier
from shared.domain.classification.complaints import most_urgent, triage_complaints, triage_many
from shared.domain.classification.policy import Policy, load_policy
from shared.domain.triage import Category, Unit, Urgency
from tools.model.build import DEFAULT_MODEL_DIR, build_model
from tools.model.corpus import DEFAULT_CORPUS_DIR, Example, load_blind, load_heldout, load_train

_PRIORITY_UNITS = {Unit.POLICE, Unit.COMMAND}


@dataclass
class Miss:
    id: str
    text: str
    expected: str
    got: str


@dataclass
class EvaluationReport:
    n: int
    unit_accuracy: float
    category_accuracy: float
    urgency_accuracy: float
    category_macro_f1: float
    critical_total: int
    critical_caught: int  # flagged critical AND routed to police or command
    needs_review: int
    unit_confusion: dict[Unit, dict[Unit, int]]
    category_f1: dict[Category, float]
    misses: list[Miss] = field(default_factory=list)
    policy_version: str = ""
    name: str = "held-out"
    unit_target: float = 0.95
    critical_right: int = 0  # critical AND at the unit its writer chose
    wrong_units: int = 0
    wrong_units_flagged: int = 0  # of the wrongly routed, how many a person was asked to review
    false_critical: int = 0  # not critical, yet routed as critical
    multi_total: int = 0  # complaints labelled with several matters
    multi_split: int = 0  # of those, how many were split into several cases
    single_split: int = 0  # complaints of one matter that were split all the same
    by_style: dict[str, tuple[int, int]] = field(default_factory=dict)  # style -> (n, unit right)

    @property
    def critical_recall(self) -> float:
        return self.critical_caught / self.critical_total if self.critical_total else 1.0

    def format_text(self, show_misses: bool = False) -> str:
        non_critical = self.n - self.critical_total
        lines = [
            f"{self.name} examples: {self.n}   policy {self.policy_version}",
            "",
            "| metric | value | target |",
            "|---|---|---|",
            f"| unit accuracy | {self.unit_accuracy:.3f} | ≥ {self.unit_target:.2f} |",
            f"| category accuracy | {self.category_accuracy:.3f} | ≥ 0.85 |",
            f"| category macro-F1 | {self.category_macro_f1:.3f} | |",
            f"| urgency accuracy | {self.urgency_accuracy:.3f} | |",
            f"| critical recall (critical and sent to police/command) | {self.critical_recall:.3f} "
            f"({self.critical_caught}/{self.critical_total}) | 1.000 |",
            f"| critical and at the writer's unit | {self.critical_right}/{self.critical_total} | all |",
            f"| not critical, routed as critical | {self.false_critical}/{non_critical} "
            f"({self.false_critical / max(non_critical, 1):.3f}) | |",
            f"| flagged for review | {self.needs_review} ({self.needs_review / max(self.n, 1):.3f}) | ≤ 0.15 |",
            f"| wrong units flagged for review | {self.wrong_units_flagged}/{self.wrong_units} "
            f"({self.wrong_units_flagged / max(self.wrong_units, 1):.3f}) | ≥ 0.60 |",
            f"| several matters split into cases | {self.multi_split}/{self.multi_total} | |",
            f"| one matter split all the same | {self.single_split}/{self.n - self.multi_total} | |",
            "",
            "unit accuracy by how it is written: "
            + ", ".join(f"{k} {ok / n:.2f} ({n})" for k, (n, ok) in sorted(self.by_style.items())),
            "",
            "unit confusion (rows: expected, columns: routed)",
        ]
        units = list(Unit)
        lines.append("| expected \\ routed | " + " | ".join(u.value for u in units) + " |")
        lines.append("|---" * (len(units) + 1) + "|")
        for exp in units:
            row = self.unit_confusion.get(exp, {})
            lines.append(f"| {exp.value} | " + " | ".join(str(row.get(u, 0)) for u in units) + " |")
        lines += ["", "category F1: " + ", ".join(f"{c.value} {f:.2f}" for c, f in self.category_f1.items())]
        if show_misses and self.misses:
            lines += ["", "misses:"]
            lines += [f"  {m.id}: expected {m.expected}, got {m.got} | {m.text[:80]}" for m in self.misses]
        return "\n".join(lines)


def _f1_scores(pairs: list[tuple[Category, Category]]) -> dict[Category, float]:
    scores: dict[Category, float] = {}
    for c in Category:
        tp = sum(1 for e, g in pairs if e == c and g == c)
        fp = sum(1 for e, g in pairs if e != c and g == c)
        fn = sum(1 for e, g in pairs if e == c and g != c)
        if tp + fp + fn == 0:
            continue
        scores[c] = 2 * tp / (2 * tp + fp + fn)
    return scores


def score(
    classifier: Classifier, policy: Policy, examples: list[Example], name: str = "held-out", unit_target: float = 0.95
) -> EvaluationReport:
    complaints = triage_complaints(classifier, policy, [e.text for e in examples], [e.channel for e in examples])
    confusion: dict[Unit, dict[Unit, int]] = {u: dict.fromkeys(Unit, 0) for u in Unit}
    unit_ok = cat_ok = urg_ok = crit_total = crit_ok = crit_right = review = 0
    wrong = wrong_flagged = false_critical = multi_total = multi_split = single_split = 0
    by_style: dict[str, tuple[int, int]] = {}
    misses: list[Miss] = []
    pairs: list[tuple[Category, Category]] = []
    for ex, ps in zip(examples, complaints, strict=True):
        _, assessment, decision = most_urgent(ps)
        flagged = any(d.needs_review for _, _, d in ps)
        if ex.matters:
            multi_total += 1
            multi_split += len(ps) > 1
        else:
            single_split += len(ps) > 1
        confusion[ex.unit][decision.unit] += 1
        right_unit = decision.unit == ex.unit
        unit_ok += right_unit
        cat_ok += assessment.category == ex.category
        urg_ok += decision.urgency == ex.urgency
        review += flagged
        if not right_unit:
            wrong += 1
            wrong_flagged += flagged
        style = ex.style or ex.channel or "?"
        n_style, ok_style = by_style.get(style, (0, 0))
        by_style[style] = (n_style + 1, ok_style + right_unit)
        pairs.append((ex.category, assessment.category))
        if ex.urgency == Urgency.CRITICAL:
            crit_total += 1
            crit_ok += decision.urgency == Urgency.CRITICAL and decision.unit in _PRIORITY_UNITS
            crit_right += decision.urgency == Urgency.CRITICAL and right_unit
        else:
            false_critical += decision.urgency == Urgency.CRITICAL
        expected = f"{ex.unit.value}/{ex.category.value}/{ex.urgency.value}"
        got = f"{decision.unit.value}/{assessment.category.value}/{decision.urgency.value}"
        if expected != got:
            misses.append(Miss(ex.id, ex.text, expected, got))
    n = len(examples)
    f1 = _f1_scores(pairs)
    return EvaluationReport(
        n=n,
        unit_accuracy=unit_ok / n,
        category_accuracy=cat_ok / n,
        urgency_accuracy=urg_ok / n,
        category_macro_f1=sum(f1.values()) / len(f1) if f1 else 0.0,
        critical_total=crit_total,
        critical_caught=crit_ok,
        needs_review=review,
        unit_confusion=confusion,
        category_f1=f1,
        misses=misses,
        policy_version=policy.version,
        name=name,
        unit_target=unit_target,
        critical_right=crit_right,
        wrong_units=wrong,
        wrong_units_flagged=wrong_flagged,
        false_critical=false_critical,
        multi_total=multi_total,
        multi_split=multi_split,
        single_split=single_split,
        by_style=by_style,
    )


SETS = ("heldout", "blind")


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def built_model(corpus_dir: Path, model_dir: Path | None = None) -> Iterator[Path]:
    """A model directory built from `corpus_dir`: `model_dir`, or `make model`'s for the default corpus
    (reused when up to date), or a temporary one for another corpus (never replacing the services' model)."""
    if model_dir is None and corpus_dir.resolve() != DEFAULT_CORPUS_DIR.resolve():
        with tempfile.TemporaryDirectory() as tmp:
            build_model(Path(tmp) / "model", corpus_dir, say=_to_stderr)
            yield Path(tmp) / "model"
        return
    model_dir = model_dir or DEFAULT_MODEL_DIR
    build_model(model_dir, corpus_dir, say=_to_stderr)
    yield model_dir


def evaluate(
    corpus_dir: Path | None = None,
    model_dir: Path | None = None,
    policy: Policy | None = None,
    which: str = "heldout",
) -> EvaluationReport:
    """Score the held-out part or the blind set with the model trained on train_*.jsonl only."""
    if which not in SETS:
        raise ValueError(f"unknown set {which!r}: one of {', '.join(SETS)}")
    corpus_dir = corpus_dir or DEFAULT_CORPUS_DIR
    policy = policy or load_policy()
    with built_model(corpus_dir, model_dir) as built:
        classifier = Classifier.load(built, policy=policy)
    if which == "blind":
        return score(classifier, policy, load_blind(), name="blind", unit_target=0.93)
    return score(classifier, policy, load_heldout(corpus_dir))


def benchmark(n: int = 5000, corpus_dir: Path | None = None) -> dict[str, float]:
    """Build time (both models fitted into an empty directory), load time of the built model, and
    texts/second of classify + route on one core, over `n` texts cycled from the corpus."""
    corpus_dir = corpus_dir or DEFAULT_CORPUS_DIR
    policy = load_policy()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_model(Path(tmp) / "model", corpus_dir, say=lambda _line: None)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        classifier = Classifier.load(Path(tmp) / "model", policy=policy)
        load = time.perf_counter() - t0
    pool = [e.text for e in load_train(corpus_dir)]
    # vary the texts so that no per-clause cache makes repeats free
    texts = [f"{pool[i % len(pool)]}（{i}）" for i in range(n)]
    with threadpool_limits(limits=1):  # the per-text products are small: one core, explicitly
        t0 = time.perf_counter()
        for start in range(0, n, 256):
            triage_many(classifier, policy, texts[start : start + 256])
        elapsed = time.perf_counter() - t0
    lengths = Counter(len(t) for t in texts)
    mean_len = sum(k * v for k, v in lengths.items()) / n
    return {
        "build_seconds": round(build, 3),
        "load_seconds": round(load, 3),
        "texts": float(n),
        "mean_chars": round(mean_len, 1),
        "seconds": round(elapsed, 3),
        "texts_per_second": round(n / elapsed, 1),
    }
