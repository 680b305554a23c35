from tests.e2e.conftest import *  # noqa: F403  (the same real broker, server and services)
