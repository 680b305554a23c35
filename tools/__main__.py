"""`python -m tools`: the `triage` command.

The tools are not part of the product: its wheel (pyproject.toml's packages, what deploy/Dockerfile copies)
holds shared/ and services/ only, and has no `triage` script. `make setup` writes .venv/bin/triage, a
two-line shell wrapper that runs `python -m tools` with the repository first on PYTHONPATH, so
`.venv/bin/triage ...` works from any directory of a checkout and always runs the checkout's tools.
"""

import sys

from tools.main import main

sys.exit(main())
