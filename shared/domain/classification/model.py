"""The statistical signal: TF-IDF over character 1-2 grams + multinomial logistic regression, scored.

Training is not here: `tools.model` fits with scikit-learn and exports the vocabulary, idf and
coefficients to plain numpy arrays (.npz + JSON, never a pickle); this module scores them with the same
analyzer, so a service never imports scikit-learn. `tests/unit/test_classification.py` checks that both
give the same probabilities.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

# what a built model's features mean: a model built for another analyzer is refused at load (bump on change)
FEATURE_VERSION = "char12-saga-v1"
NGRAM_RANGE = (1, 2)  # 5-fold CV on train: 1-2 grams 0.80 blended vs 0.80 for 1-3, a third fewer lookups

_DIGITS_RE = re.compile(r"\d+(?:\.\d+)?")
_DROP_RE = re.compile(r"[\s,.!?;:，。！？；：、…~～\"“”'‘’()（）【】\[\]<>《》|/\-—_*#@]+")

FloatArray = npt.NDArray[np.float64]


def analyzer(text: str) -> list[str]:
    """Character 1-2 grams of normalised text, inside runs of text between punctuation; every
    number becomes "0" so amounts and dates do not become vocabulary."""
    text = _DIGITS_RE.sub("0", text)
    grams: list[str] = []
    lo, hi = NGRAM_RANGE
    for run in _DROP_RE.split(text):
        for n in range(lo, hi + 1):
            grams += [run[i : i + n] for i in range(len(run) - n + 1)]
    return grams


@dataclass
class LinearTextModel:
    """A fitted TF-IDF + logistic-regression model as numpy arrays."""

    classes: list[str]  # the labels: categories for the category model, units for the danger model
    vocabulary: dict[str, int]
    idf: FloatArray  # (n_features,)
    coef: FloatArray  # (n_features, n_classes): rows gathered per text
    intercept: FloatArray  # (n_classes,)

    def __post_init__(self) -> None:
        self._coef_by_class: FloatArray = np.ascontiguousarray(self.coef.T)

    def decision(self, texts: Sequence[str]) -> FloatArray:
        """Decision values for a batch: the TF-IDF rows are built as flat index arrays and scored in
        one pass (same arithmetic as scikit-learn: sublinear tf, idf, l2 norm, then x @ coef + b)."""
        vocab = self.vocabulary
        rows: list[int] = []
        cols: list[int] = []
        for row, text in enumerate(texts):
            idx = [j for j in map(vocab.get, analyzer(text)) if j is not None]
            cols.extend(idx)
            rows.extend([row] * len(idx))
        out = np.tile(self.intercept, (len(texts), 1))
        if not cols:
            return out
        n_features = len(self.idf)
        keys = np.asarray(rows, dtype=np.int64) * n_features + np.asarray(cols, dtype=np.int64)
        uniq, counts = np.unique(keys, return_counts=True)  # sorted by row, then feature
        r = uniq // n_features
        c = uniq % n_features
        vals = (1.0 + np.log(counts)) * self.idf[c]
        norms = np.sqrt(np.bincount(r, weights=vals * vals, minlength=len(texts)))
        vals /= norms[r]
        n_rows = len(texts)
        for k in range(len(self.classes)):  # 19 gathers + bincounts beat one (nnz x classes) product
            out[:, k] += np.bincount(r, weights=vals * self._coef_by_class[k][c], minlength=n_rows)
        return out

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        z = self.decision(texts)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs: FloatArray = e / e.sum(axis=1, keepdims=True)
        return probs

    # -- persistence: npz arrays + a JSON vocabulary, no pickle --------------------------------

    def save(self, path: Path) -> None:
        """Written by `tools.model` into a model directory it is building (not yet in use)."""
        terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        np.savez(
            path,
            idf=self.idf,
            coef=self.coef,
            intercept=self.intercept,
            meta=np.array(json.dumps({"classes": list(self.classes), "terms": terms})),
        )

    @classmethod
    def load(cls, path: Path) -> LinearTextModel:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return cls(
                classes=[str(c) for c in meta["classes"]],
                vocabulary={t: i for i, t in enumerate(meta["terms"])},
                idf=np.asarray(data["idf"], dtype=np.float64),
                coef=np.asarray(data["coef"], dtype=np.float64),
                intercept=np.asarray(data["intercept"], dtype=np.float64),
            )
