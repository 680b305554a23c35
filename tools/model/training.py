"""Fitting: TF-IDF + logistic regression with scikit-learn, exported to the numpy arrays the services score,
and the segmenter's dictionary. Only `tools.model` trains; the services load what it built."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import jieba
import numpy as np

from shared.domain.classification.classifier import NO_DANGER
from shared.domain.classification.model import LinearTextModel, analyzer
from shared.domain.classification.policy import Policy
from shared.domain.classification.text import dictionary_words, normalize
from shared.domain.triage import Urgency
from tools.model.corpus import load_red_team, load_train

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

C_VALUE = 60.0  # leave-one-author-out over the training parts: unit 0.948 at 60 against 0.942 at 10
DANGER_C = 10.0  # the danger model's regularisation (leave-one-suite-out: recall 0.93 at p 0.5, few near misses)
JIEBA_DICT = Path(jieba.__file__).resolve().parent / "dict.txt"
MIN_FREQ = 50  # keeps ~58k of jieba's 349k words: parsed in ~0.1 s instead of ~1.5 s
RULE_TERM_FREQ = 2000  # a rule term outweighs the jieba words it could be split into


def fit_sklearn(
    texts: Sequence[str], labels: Sequence[str], c: float = C_VALUE
) -> tuple[TfidfVectorizer, LogisticRegression]:
    """The scikit-learn fit itself."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    vectorizer = TfidfVectorizer(analyzer=analyzer, sublinear_tf=True, min_df=1, norm="l2")
    x = vectorizer.fit_transform(texts)
    # saga reaches lbfgs's optimum to within 0.01 in probability ~5x faster here; one thread
    # because BLAS threads only contend on a busy machine for a problem this small
    clf = LogisticRegression(C=c, solver="saga", max_iter=3000, class_weight="balanced", random_state=0)
    with threadpool_limits(limits=1):
        clf.fit(x, [str(label) for label in labels])
    return vectorizer, clf


def fit(texts: Sequence[str], labels: Sequence[str], c: float = C_VALUE) -> LinearTextModel:
    """Fit with scikit-learn and export the result to numpy arrays."""
    vectorizer, clf = fit_sklearn(texts, labels, c)
    classes = [str(label) for label in clf.classes_]
    coef = np.asarray(clf.coef_, dtype=np.float64)
    intercept = np.asarray(clf.intercept_, dtype=np.float64)
    if len(classes) == 2:  # binary LR keeps one row; expand so predict_proba stays a softmax
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    vocabulary = {str(k): int(v) for k, v in vectorizer.vocabulary_.items()}
    return LinearTextModel(
        classes=classes,
        vocabulary=vocabulary,
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        coef=np.ascontiguousarray(coef.T),
        intercept=intercept,
    )


def fit_categories(corpus_dir: Path) -> LinearTextModel:
    """The category model: the corpus's train_*.jsonl only (never heldout_*)."""
    examples = load_train(corpus_dir)
    return fit([normalize(e.text) for e in examples], [e.category for e in examples])


def danger_training(corpus_dir: Path, policy: Policy) -> tuple[list[str], list[str]]:
    """The danger model learns who must act now: the corpus's critical cases by their unit, the red-team
    suites' dangers by their kind's unit, everything else (near misses included) as no danger."""
    texts: list[str] = []
    labels: list[str] = []
    for e in load_train(corpus_dir):
        texts.append(normalize(e.text))
        labels.append(e.unit.value if e.urgency is Urgency.CRITICAL else NO_DANGER)
    for text, kind in load_red_team(corpus_dir):
        texts.append(normalize(text))
        labels.append(policy.danger.routes[kind].unit.value if kind else NO_DANGER)
    return texts, labels


def fit_danger(corpus_dir: Path, policy: Policy) -> LinearTextModel:
    texts, labels = danger_training(corpus_dir, policy)
    return fit(texts, labels, DANGER_C)


def segmenter_dictionary(rule_terms: Iterable[str]) -> str:
    """jieba's dictionary without its rare words, plus the rule terms: the words the segmenter knows."""
    kept: list[str] = []
    with JIEBA_DICT.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and (len(parts[0]) == 1 or int(parts[1]) >= MIN_FREQ):
                kept.append(f"{parts[0]} {parts[1]}")
    kept.extend(f"{w} {RULE_TERM_FREQ}" for w in dictionary_words(rule_terms))
    return "\n".join(kept) + "\n"
