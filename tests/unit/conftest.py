"""Unit tests import the services as deployed, in development mode: their secrets are the development defaults
(tests of the settings themselves clear the environment first)."""

import os

from shared.config import get_settings

os.environ.setdefault("DEV_MODE", "true")
get_settings.cache_clear()
