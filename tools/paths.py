"""Where the repository's files are, named once: the tools run from a checkout, never from the product's
wheel, so they find deploy/ and data/ next to themselves."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY_DIR = REPO_ROOT / "deploy"
CORPUS_DIR = REPO_ROOT / "data" / "corpus"
STATE_DIR = REPO_ROOT / ".triage"  # the default state dir of the local infrastructure
ASSETS_DIR = STATE_DIR / "assets"  # the browser libraries the desk API serves (`triage assets`, DESK_ASSETS_DIR)
