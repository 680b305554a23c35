"""The built model on disk: the directory `tools.model` writes (`make model`) and the services only read.

Plain files, never a pickle: `manifest.json` (what it was built from and for), the category model and the
danger model (.npz arrays + a JSON vocabulary) and the segmenter's dictionary (text). Loading checks the
manifest against this code, so a model built for another analyzer or other rule terms stops a service with
a clear message instead of classifying with features it was not trained on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.domain.classification.model import FEATURE_VERSION, LinearTextModel
from shared.domain.classification.text import words_digest

FORMAT = 1  # bump when the files or the manifest change shape
MANIFEST = "manifest.json"
CATEGORY_MODEL = "categories.npz"
DANGER_MODEL = "danger.npz"
DICTIONARY = "segmenter-dict.txt"
FILES = (MANIFEST, CATEGORY_MODEL, DANGER_MODEL, DICTIONARY)


class ModelError(Exception):
    """No usable built model at the configured directory; the message says what to run."""


class Manifest(BaseModel):
    """What a built model was made from (to rebuild only when that changed) and for (checked at load)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int
    features: str  # FEATURE_VERSION of the analyzer the models were fitted with
    key: str  # digest of every input below: the build is skipped while it is unchanged
    corpus_digest: str  # the training files (corpus train_*, danger suites) by name and bytes
    code_version: str  # digest of the training and feature code
    rules_digest: str  # the rule terms in the segmenter's dictionary (`words_digest`)
    danger_routes_digest: str  # the policy's danger kind -> unit, the danger model's labels
    versions: dict[str, str]  # the libraries that fitted the models and gave the dictionary
    built_at: str


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    try:
        return Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise ModelError(f"no model at {directory.absolute()}: run `make model`") from exc
    except (OSError, ValueError, ValidationError) as exc:
        raise ModelError(f"unreadable model manifest {path.absolute()} ({exc}): run `make model`") from exc


@dataclass(frozen=True)
class BuiltModel:
    directory: Path
    manifest: Manifest
    categories: LinearTextModel
    danger: LinearTextModel

    @property
    def dictionary(self) -> Path:
        return self.directory / DICTIONARY


def load_built(directory: Path, rule_terms: Iterable[str]) -> BuiltModel:
    """The model at `directory`, checked against this code's format, analyzer and rule terms."""
    manifest = read_manifest(directory)
    where = directory.absolute()
    ours = {"format": str(FORMAT), "features": FEATURE_VERSION, "rule terms": words_digest(rule_terms)}
    theirs = {"format": str(manifest.format), "features": manifest.features, "rule terms": manifest.rules_digest}
    for what, need in ours.items():
        if theirs[what] != need:
            raise ModelError(f"the model at {where} was built for other {what} ({theirs[what]}, this code needs "
                             f"{need}): run `make model`")
    try:
        categories = LinearTextModel.load(directory / CATEGORY_MODEL)
        danger = LinearTextModel.load(directory / DANGER_MODEL)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"the model at {where} is incomplete or damaged ({exc}): run `make model`") from exc
    if not (directory / DICTIONARY).is_file():
        raise ModelError(f"the model at {where} has no {DICTIONARY}: run `make model`")
    return BuiltModel(directory, manifest, categories, danger)
