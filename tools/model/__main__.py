"""`python -m tools.model [--out DIR]`: build the classification model (what `make model` runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.domain.classification.artefact import ModelError
from tools.model.build import DEFAULT_MODEL_DIR, build_model
from tools.model.corpus import DEFAULT_CORPUS_DIR, CorpusError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.model", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR,
                        help="the model directory (default: %(default)s)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS_DIR,
                        help="the corpus directory with train_*.jsonl (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    args = parser.parse_args(argv)
    try:
        build_model(args.out, args.corpus, force=args.force)
    except (CorpusError, ModelError, OSError) as exc:
        print(f"model: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
