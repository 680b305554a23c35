"""The services are imported as deployed, in development mode: their secrets are the development defaults."""

import os

from shared.config import get_settings

os.environ.setdefault("DEV_MODE", "true")
get_settings.cache_clear()
