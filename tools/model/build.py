"""Building the model directory (`make model`, `python -m tools.model`): fitted once, loaded by the services.

The build reads the corpus's train_*.jsonl and the red-team suites, the rule terms and the policy's danger
routes, and digests them with the training code and scikit-learn's version into one key. A directory whose
manifest carries the same key is left alone; otherwise the models are fitted into a staging directory that
then replaces the old one, so a service never reads a half-written model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import shared.domain.classification.artefact as artefact_code
import shared.domain.classification.model as model_code
import shared.domain.classification.text as text_code
import tools.model.corpus as corpus_code
import tools.model.training as training_code
from shared.domain.classification.artefact import (
    CATEGORY_MODEL,
    DANGER_MODEL,
    DICTIONARY,
    FILES,
    FORMAT,
    MANIFEST,
    Manifest,
    ModelError,
    load_built,
    read_manifest,
)
from shared.domain.classification.model import FEATURE_VERSION
from shared.domain.classification.policy import Policy, load_policy
from shared.domain.classification.rules import DEFAULT_RULES_PATH, RuleEngine, load_rules_file
from shared.domain.classification.text import words_digest
from tools.model.corpus import DEFAULT_CORPUS_DIR, CorpusError, red_team_files, train_files
from tools.model.training import fit_categories, fit_danger, segmenter_dictionary
from tools.paths import REPO_ROOT

DEFAULT_MODEL_DIR = REPO_ROOT / "model"
# the code whose change changes the fitted models or the files: its bytes are the model's code version
TRAINING_CODE = (training_code, corpus_code, sys.modules[__name__], model_code, text_code, artefact_code)

Say = Callable[[str], None]


def _say(line: str) -> None:
    print(line, flush=True)


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:24]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


@dataclass(frozen=True)
class Inputs:
    """Everything a build reads, digested: equal inputs give the same models."""

    corpus_dir: Path
    train: list[Path]
    red_team: list[Path]
    rule_terms: list[str]
    policy: Policy
    corpus_digest: str
    code_version: str
    rules_digest: str
    danger_routes_digest: str
    versions: dict[str, str]

    @property
    def key(self) -> str:
        return _digest(json.dumps({
            "format": FORMAT, "features": FEATURE_VERSION, "corpus": self.corpus_digest, "code": self.code_version,
            "rules": self.rules_digest, "danger_routes": self.danger_routes_digest, "versions": self.versions,
        }, sort_keys=True).encode())


def read_inputs(corpus_dir: Path | None = None) -> Inputs:
    corpus_dir = corpus_dir or DEFAULT_CORPUS_DIR
    train = train_files(corpus_dir)
    if not train:
        raise CorpusError(f"no train_*.jsonl in {corpus_dir}: the model is trained on the corpus's training part")
    red_team = red_team_files(corpus_dir)
    named = [(f"{p.parent.name}/{p.name}", p) for p in [*train, *red_team]]
    corpus_digest = _digest(*(part for name, p in named for part in (name.encode(), p.read_bytes())))
    code_version = _digest(*(part for m in TRAINING_CODE
                             for part in (m.__name__.encode(), Path(str(m.__file__)).read_bytes())))
    rule_terms = RuleEngine(load_rules_file(DEFAULT_RULES_PATH)).vocabulary()
    policy = load_policy()
    routes = {kind.value: route.unit.value for kind, route in policy.danger.routes.items()}
    return Inputs(
        corpus_dir=corpus_dir, train=train, red_team=red_team, rule_terms=sorted(rule_terms), policy=policy,
        corpus_digest=corpus_digest, code_version=code_version, rules_digest=words_digest(rule_terms),
        danger_routes_digest=_digest(json.dumps(routes, sort_keys=True).encode()),
        versions={"scikit-learn": _version("scikit-learn"), "jieba": _version("jieba")},
    )


def _changes(old: Manifest, new: Inputs) -> str:
    named = {
        "corpus": (old.corpus_digest, new.corpus_digest), "training code": (old.code_version, new.code_version),
        "rule terms": (old.rules_digest, new.rules_digest),
        "danger routes": (old.danger_routes_digest, new.danger_routes_digest),
        "libraries": (old.versions, new.versions), "format": ((old.format, old.features), (FORMAT, FEATURE_VERSION)),
    }
    changed = [name for name, (a, b) in named.items() if a != b]
    return "changed: " + (", ".join(changed) if changed else "key")


def _up_to_date(out: Path, inputs: Inputs) -> tuple[bool, str]:
    """Whether `out` holds a loadable model of exactly these inputs; if not, why it is (re)built."""
    try:
        current = read_manifest(out)
    except ModelError:
        return False, "no model yet" if not out.exists() else "no readable manifest"
    if current.key != inputs.key:
        return False, _changes(current, inputs)
    try:
        load_built(out, inputs.rule_terms)
    except ModelError as exc:
        return False, str(exc)
    return True, f"built {current.built_at}"


def build_model(out: Path = DEFAULT_MODEL_DIR, corpus_dir: Path | None = None, *, force: bool = False,
                say: Say = _say) -> Manifest:
    """Fit both models from the corpus into `out`, unless it already holds them for the same inputs."""
    inputs = read_inputs(corpus_dir)
    fresh, why = _up_to_date(out, inputs)
    if fresh and not force:
        say(f"model: {out} is up to date ({why}, key {inputs.key}); nothing to do")
        return read_manifest(out)
    strangers = sorted(p.name for p in out.iterdir() if p.name not in FILES) if out.is_dir() else []
    if strangers:
        raise ModelError(f"{out} holds other files than a model ({', '.join(strangers[:3])}): not replacing it")
    say(f"model: building {out} ({'forced' if fresh else why})")
    say(f"model: training on {len(inputs.train)} train files in {inputs.corpus_dir} "
        f"and {len(inputs.red_team)} red-team suites")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        t0 = time.perf_counter()
        categories = fit_categories(inputs.corpus_dir)
        categories.save(staging / CATEGORY_MODEL)
        say(f"model: category model fitted in {time.perf_counter() - t0:.1f} s "
            f"({len(categories.classes)} categories, {len(categories.vocabulary)} features)")
        t0 = time.perf_counter()
        danger = fit_danger(inputs.corpus_dir, inputs.policy)
        danger.save(staging / DANGER_MODEL)
        say(f"model: danger model fitted in {time.perf_counter() - t0:.1f} s ({', '.join(danger.classes)})")
        (staging / DICTIONARY).write_text(segmenter_dictionary(inputs.rule_terms), encoding="utf-8")
        manifest = Manifest(
            format=FORMAT, features=FEATURE_VERSION, key=inputs.key, corpus_digest=inputs.corpus_digest,
            code_version=inputs.code_version, rules_digest=inputs.rules_digest,
            danger_routes_digest=inputs.danger_routes_digest, versions=inputs.versions,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
        load_built(staging, inputs.rule_terms)  # what the services will do with it
        _replace(out, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"model: wrote {out} (key {inputs.key})")
    return manifest


def _replace(out: Path, staging: Path) -> None:
    if not out.exists():
        staging.rename(out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
