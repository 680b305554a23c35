"""Settings from the environment: the one place every service reads its configuration."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongodb_uri: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = "grievance_triage"
    consumer_group_prefix: str = "triage"

    # Limits on what upstream may send; beyond them an event is dead-lettered with a reason.
    max_event_bytes: int = Field(default=64 * 1024, ge=1024)
    max_text_chars: int = Field(default=8_000, ge=100)

    # Keyed hash for matching complainants without storing who they are in the clear.
    complainant_key_secret: SecretStr = SecretStr("change-me-in-production")
    repeat_window_days: int = Field(default=30, ge=1)

    # Retries of store and publish failures: exponential backoff, capped, never giving up.
    retry_initial_seconds: float = 0.2
    retry_max_seconds: float = 5.0

    # Consumers take up to this many records at a time; cases of a batch run side by side (up to the
    # concurrency), each case's events in order, and the batch's offsets are committed when all are done.
    batch_max_records: int = Field(default=200, ge=1)
    batch_concurrency: int = Field(default=16, ge=1)

    # Follow-up timers: how often the store is scanned for due timers, and how long a claim is held
    # before another instance may take the timer over (its holder presumed dead).
    timer_scan_seconds: float = Field(default=5.0, gt=0)
    timer_lease_seconds: float = Field(default=60.0, gt=0)
    # Demo and tests only: honour a clock offset kept in the store, so deadlines can be passed on purpose.
    simulated_clock: bool = False

    log_level: str = "INFO"

    # The classification model built by `make model` (relative to the working directory); services only read it.
    model_dir: Path = Path("model")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
