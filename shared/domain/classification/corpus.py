"""The labelled corpus (data/corpus/*.jsonl): train_* for fitting, heldout_* for scoring only."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.domain.triage import Category, RiskFlag, Unit, Urgency

# shared/domain/classification/corpus.py -> repository root is three levels above `shared`
DEFAULT_CORPUS_DIR = Path(__file__).resolve().parents[3] / "data" / "corpus"


def default_corpus_dir() -> Path:
    env = os.environ.get("TRIAGE_CORPUS_DIR")
    return Path(env) if env else DEFAULT_CORPUS_DIR


class CorpusError(ValueError):
    pass


class Example(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    text: str
    channel: str | None = None
    category: Category
    unit: Unit
    urgency: Urgency
    risk_flags: list[RiskFlag] = []


def train_files(corpus_dir: Path) -> list[Path]:
    return sorted(corpus_dir.glob("train_*.jsonl"))


def heldout_files(corpus_dir: Path) -> list[Path]:
    return sorted(corpus_dir.glob("heldout_*.jsonl"))


def read_examples(paths: list[Path]) -> list[Example]:
    examples: list[Example] = []
    for path in paths:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    examples.append(Example.model_validate(json.loads(line)))
                except (json.JSONDecodeError, ValidationError) as exc:
                    raise CorpusError(f"{path}:{lineno}: bad example: {exc}") from exc
    return examples


def load_train(corpus_dir: Path) -> list[Example]:
    files = train_files(corpus_dir)
    if not files:
        raise CorpusError(f"no train_*.jsonl files in {corpus_dir}")
    return read_examples(files)


def load_heldout(corpus_dir: Path) -> list[Example]:
    files = heldout_files(corpus_dir)
    if not files:
        raise CorpusError(f"no heldout_*.jsonl files in {corpus_dir}")
    return read_examples(files)
