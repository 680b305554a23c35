"""Settings from the environment: the one place every service reads its configuration.

Production is the default. A public or missing secret stops a service at start-up with one line naming the
setting to set; DEV_MODE=true (`make run`, the tests) lets the development defaults through, with a warning.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from shared.domain.figures import DEFAULT_FLOORS, Figure
from shared.domain.triage import Unit

log = logging.getLogger(__name__)

# The complainant key's default is in this public repository: with it, every phone hash can be reversed by
# enumerating the numbers. Outside DEV_MODE it, and any key this short or this plain, is refused.
DEV_COMPLAINANT_KEY = "change-me-in-production"
KNOWN_COMPLAINANT_KEYS = frozenset({DEV_COMPLAINANT_KEY})
# The development master key that wraps the data key of personal data, public like the one above: outside
# DEV_MODE a service that reads or writes personal data refuses it.
DEV_MASTER_KEY = hashlib.sha512(b"grievance-triage public development master key").digest()[:48] * 2
MASTER_KEY_BYTES = 96  # libmongocrypt's local master key
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT_CHARS = 10
MIN_TOKEN_LENGTH = 8


def _usable_token(token: Any) -> bool:
    """A token or api key: long enough not to be guessed in a few tries, and without the spaces a header splits at."""
    return isinstance(token, str) and len(token) >= MIN_TOKEN_LENGTH and not any(c.isspace() for c in token)


def bootstrap_servers(servers: str) -> list[str]:
    """`host:port,host:port` as the list FastStream needs: it takes a string for one address, so a cluster's
    comma-joined bootstrap would be read as a single host."""
    return [server.strip() for server in servers.split(",") if server.strip()]


class ConfigurationRefused(SystemExit):
    """The process stops: its message, one line naming the setting to fix, is all that is printed."""


class Settings(BaseSettings):
    # Errors must never echo a secret into a log: hide the input in validation messages.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    # Development only: allows the public defaults below (with a warning); never set it in production.
    dev_mode: bool = False

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongodb_uri: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = "grievance_triage"
    # Store commands one process keeps in flight (PyMongo's pool; more wait their turn). On FerretDB all
    # processes together must stay under 100 (see shared/adapters/mongo/ferretdb.py): five at 16 do.
    mongodb_max_connections: int = Field(default=16, ge=1, le=100)
    consumer_group_prefix: str = "triage"

    # Limits on what upstream may send; beyond them an event is dead-lettered with a reason.
    max_event_bytes: int = Field(default=64 * 1024, ge=1024)
    max_text_chars: int = Field(default=8_000, ge=100)

    # Keyed hash for matching complainants without storing who they are in the clear.
    complainant_key_secret: SecretStr = Field(default=SecretStr(DEV_COMPLAINANT_KEY), repr=False)
    repeat_window_days: int = Field(default=30, ge=1)

    # The local master key (96 bytes, base64) that wraps the data key the complainant's name, phone and ID number
    # are encrypted under; better from a file (a mounted secret) than the environment. Only intake and the desk
    # API need it. The previous key is set only while `triage keys rotate` moves the data keys to the new one.
    encryption_master_key: SecretStr | None = Field(default=None, repr=False)
    encryption_master_key_file: Path | None = None
    encryption_previous_master_key: SecretStr | None = Field(default=None, repr=False)
    encryption_previous_master_key_file: Path | None = None

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
    # Demo and tests only (DEV_MODE): honour a clock offset kept in the store, so deadlines can be passed.
    simulated_clock: bool = False

    log_level: str = "INFO"

    # The desk API. DESK_TOKENS='{"<secret>": "police", ...}'; several tokens per unit allow rotation.
    desk_tokens: dict[str, Unit] = Field(default_factory=dict, repr=False)
    # A desk officer's session lasts a shift; signing out ends it at once.
    desk_session_hours: float = Field(default=10.0, gt=0, le=24)
    # Behind TLS (as a deployment should be) the session cookie is sent over HTTPS only.
    desk_secure_cookies: bool = False
    # Where the browser libraries fetched from the npm registry are (`triage assets`); the image sets it.
    desk_assets_dir: Path | None = None
    desk_publish_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    desk_max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    # Failed sign-ins and bad tokens a client address may make in a minute before it is refused (429) until the
    # minute is over: guessing a token takes far more tries than that.
    desk_failed_attempts_per_minute: int = Field(default=10, ge=1, le=10_000)

    # Supervisors see every unit's figures, read-only and without personal data. SUPERVISOR_TOKENS='["<secret>"]'.
    supervisor_tokens: list[str] = Field(default_factory=list, repr=False)
    # A unit under one of these rates is highlighted: SUPERVISOR_FLOORS='{"satisfaction": 0.85, "on_time": 0.92}'.
    supervisor_floors: dict[Figure, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: dict(DEFAULT_FLOORS))
    # How long a process may show figures without looking for newer facts (a page polls; facts come by the second).
    figures_fresh_seconds: float = Field(default=2.0, ge=0, le=300)
    # ... and for the months before the last three, which change only when an old case is worked at last.
    figures_settled_seconds: float = Field(default=60.0, ge=0, le=3600)

    @field_validator("supervisor_tokens", mode="before")
    @classmethod
    def _supervisor_tokens_are_usable(cls, tokens: Any) -> Any:
        if not isinstance(tokens, list) or not all(_usable_token(t) for t in tokens):
            raise ValueError(f"SUPERVISOR_TOKENS must be a JSON list of tokens of at least {MIN_TOKEN_LENGTH} "
                             "characters and no spaces")
        return tokens

    @field_validator("desk_tokens", mode="before")
    @classmethod
    def _tokens_are_usable(cls, tokens: Any) -> Any:
        # Checked before pydantic's own validation, whose error locations would name the token (a dict key).
        units = {u.value for u in Unit}
        if not isinstance(tokens, Mapping):
            raise ValueError("DESK_TOKENS must be a JSON object of token to unit")
        for token, unit in tokens.items():
            if unit not in units:
                raise ValueError("every desk token must map to one of: " + ", ".join(sorted(units)))
            if not _usable_token(token):
                raise ValueError(f"every desk token needs at least {MIN_TOKEN_LENGTH} characters and no spaces")
        return tokens

    # Personal data is kept this many days after a case is closed (`triage retention` removes it then).
    retention_days: int = Field(default=730, ge=1, le=36_500)
    # The status feed (triage.case-updates.v1) written as CloudEvents in binary mode, for consumers that want them.
    feed_cloudevents: bool = False

    # The classification model built by `make model` (relative to the working directory); services only read it.
    model_dir: Path = Path("model")

    # The Open311 GeoReport v2 gateway (services/open311). OPEN311_KEYS='{"<secret>": "portal"}': api_key →
    # the upstream system posting with it; OPEN311_CHANNELS='{"portal": "online"}' the channel each upstream
    # reports as (default online). Limits per api_key (or per address, for reads without one).
    open311_keys: dict[str, str] = Field(default_factory=dict, repr=False)
    open311_channels: dict[str, str] = Field(default_factory=dict)
    open311_rate_per_minute: int = Field(default=60, ge=1, le=100_000)
    open311_max_body_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    open311_max_description_chars: int = Field(default=4_000, ge=100, le=8_000)
    open311_max_results: int = Field(default=200, ge=1, le=1_000)

    @field_validator("open311_keys", mode="before")
    @classmethod
    def _open311_keys_are_usable(cls, keys: Any) -> Any:
        # Checked before pydantic's own validation, whose error locations would name the key (a dict key).
        if not isinstance(keys, Mapping) or not all(
                _usable_token(k) and isinstance(v, str) and re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", v)
                for k, v in keys.items()):
            raise ValueError(f"OPEN311_KEYS must be a JSON object of api key (at least {MIN_TOKEN_LENGTH} characters, "
                             "no spaces) to upstream name (lower-case letters, digits, _ and -)")
        return keys

    def master_keys(self) -> tuple[bytes, bytes | None]:
        """The current master key (the public development one when none is set) and the previous one, if any."""
        current = _master_key(self.encryption_master_key, self.encryption_master_key_file, "ENCRYPTION_MASTER_KEY")
        previous = _master_key(self.encryption_previous_master_key, self.encryption_previous_master_key_file,
                               "ENCRYPTION_PREVIOUS_MASTER_KEY")
        return current or DEV_MASTER_KEY, previous

    def development_defaults(self, *, serves_desks: bool = False, serves_open311: bool = False,
                             personal_data: bool = False) -> list[str]:
        """What only DEV_MODE may run with, each naming the environment variable that fixes it."""
        found = []
        if (personal_data or serves_desks) and self.master_keys()[0] == DEV_MASTER_KEY:
            found.append(f"set ENCRYPTION_MASTER_KEY_FILE (or ENCRYPTION_MASTER_KEY) to {MASTER_KEY_BYTES} random "
                         f"bytes, base64 (e.g. `openssl rand -base64 {MASTER_KEY_BYTES}`): with the public development "
                         "key anyone with the database reads the complainants' personal data")
        key = self.complainant_key_secret.get_secret_value()
        if key in KNOWN_COMPLAINANT_KEYS or len(key) < MIN_SECRET_LENGTH or len(set(key)) < MIN_SECRET_DISTINCT_CHARS:
            found.append(f"set COMPLAINANT_KEY_SECRET to a random secret of at least {MIN_SECRET_LENGTH} characters "
                         "(e.g. `openssl rand -hex 32`): with a known key every phone hash can be reversed")
        if serves_desks and not self.desk_tokens:
            found.append('set DESK_TOKENS (e.g. \'{"<random token>": "police"}\'): without it no desk can sign in')
        if serves_open311 and not self.open311_keys:
            found.append('set OPEN311_KEYS (e.g. \'{"<random key>": "portal"}\'): without it no upstream can post')
        if self.simulated_clock:
            found.append("unset SIMULATED_CLOCK: it lets the store move the deadlines' clock (demo and tests only)")
        return found


def _master_key(value: SecretStr | None, file: Path | None, setting: str) -> bytes | None:
    """A master key from its file or its variable; what does not decode to 96 bytes stops the process, naming
    the setting, never the value."""
    if file is not None:
        try:
            text = file.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            raise ConfigurationRefused(f"{setting}_FILE: cannot read {file}") from None
    elif value is not None:
        text = value.get_secret_value().strip()
    else:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != MASTER_KEY_BYTES:
        raise ConfigurationRefused(f"{setting}: must be {MASTER_KEY_BYTES} bytes, base64")
    return key


def _one_line(error: ValidationError | SettingsError) -> str:
    if isinstance(error, SettingsError):  # a value that does not parse; its text names the field, never the value
        field = re.search(r'field "(\w+)"', str(error))
        return f"{field.group(1).upper() if field else 'a setting'}: not a valid JSON value"
    return "; ".join(f"{'.'.join(str(part) for part in e['loc'][:1]).upper()}: {e['msg']}" for e in error.errors())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings. A value that does not validate stops it here, naming the variable only."""
    try:
        return Settings()
    except (ValidationError, SettingsError) as exc:
        raise ConfigurationRefused(f"invalid settings: {_one_line(exc)}") from None


def refuse_unsafe(settings: Settings, service: str, *, serves_desks: bool = False,
                  serves_open311: bool = False, personal_data: bool = False) -> Settings:
    """Called where a service is built, so it stops at start-up, not at first use: outside DEV_MODE a public
    or missing secret ends the process with one line; in DEV_MODE one warning lists what it let through."""
    defaults = settings.development_defaults(serves_desks=serves_desks, serves_open311=serves_open311,
                                             personal_data=personal_data)
    if defaults and not settings.dev_mode:
        raise ConfigurationRefused(f"{service} refuses to start: " + "; ".join(defaults)
                                   + " (DEV_MODE=true allows this, for development only)")
    if defaults:
        log.warning("DEV_MODE: %s runs with development defaults, never do so in production: %s",
                    service, "; ".join(defaults))
    return settings
