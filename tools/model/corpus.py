"""The labelled sets: the corpus (data/corpus/*.jsonl: train_* for fitting, heldout_* for scoring only)
and the blind evaluation set (data/blind/*.jsonl), written by authors who never saw the corpus, the
rules or the model, and never trained or tuned on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shared.domain.triage import Category, DangerKind, RiskFlag, Unit, Urgency
from tools.paths import CORPUS_DIR

DEFAULT_CORPUS_DIR = CORPUS_DIR
DEFAULT_BLIND_DIR = DEFAULT_CORPUS_DIR.parent / "blind"


class CorpusError(ValueError):
    pass


def _no_danger(value: object) -> object:
    return None if value in ("none", "", None) else value


OptionalDanger = Annotated[DangerKind | None, BeforeValidator(_no_danger)]


class Matter(BaseModel):
    """One matter of a complaint that holds several (一单多诉), as its writer labelled it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    category: Category
    unit: Unit
    urgency: Urgency
    danger: OptionalDanger = None


class Example(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    text: str
    channel: str | None = None
    category: Category
    unit: Unit
    urgency: Urgency
    risk_flags: list[RiskFlag] = []
    # how it is written: an operator's transcript, a letter, a chat message ("register" in the files)
    style: str | None = Field(default=None, validation_alias="register")
    danger: OptionalDanger = None
    matters: list[Matter] = []  # several matters: the most urgent one is labelled at the top level


def train_files(corpus_dir: Path) -> list[Path]:
    return sorted(corpus_dir.glob("train_*.jsonl"))


def heldout_files(corpus_dir: Path) -> list[Path]:
    return sorted(corpus_dir.glob("heldout_*.jsonl"))


def read_examples(paths: list[Path], *, with_flags: bool = True) -> list[Example]:
    """Labelled lines; `with_flags=False` ignores risk flags (the blind set's writers used their own words)."""
    examples: list[Example] = []
    for path in paths:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    if not with_flags and isinstance(data, dict):
                        data.pop("risk_flags", None)
                    examples.append(Example.model_validate(data))
                except (json.JSONDecodeError, ValidationError) as exc:
                    raise CorpusError(f"{path}:{lineno}: bad example: {exc}") from exc
    return examples


def load_train(corpus_dir: Path) -> list[Example]:
    files = train_files(corpus_dir)
    if not files:
        raise CorpusError(f"no train_*.jsonl files in {corpus_dir}")
    return read_examples(files)


def red_team_files(corpus_dir: Path) -> list[Path]:
    """The adversarial danger suites (data/danger/adversarial_*.jsonl) beside the corpus."""
    return sorted((corpus_dir.parent / "danger").glob("adversarial_*.jsonl"))


def load_red_team(corpus_dir: Path) -> list[tuple[str, DangerKind | None]]:
    """The suites' texts with their danger (None for a near miss): training data for the danger model."""
    cases: list[tuple[str, DangerKind | None]] = []
    for path in red_team_files(corpus_dir):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    data = json.loads(line)
                    cases.append((str(data["text"]), DangerKind(data["danger"]) if data["danger"] != "none" else None))
                except (json.JSONDecodeError, KeyError, ValueError) as exc:
                    raise CorpusError(f"{path}:{lineno}: bad case: {exc}") from exc
    return cases


def load_blind(blind_dir: Path | None = None) -> list[Example]:
    blind_dir = blind_dir or DEFAULT_BLIND_DIR
    files = sorted(blind_dir.glob("*.jsonl"))
    if not files:
        raise CorpusError(f"no *.jsonl files in {blind_dir}")
    return read_examples(files, with_flags=False)


def load_heldout(corpus_dir: Path) -> list[Example]:
    files = heldout_files(corpus_dir)
    if not files:
        raise CorpusError(f"no heldout_*.jsonl files in {corpus_dir}")
    return read_examples(files)
