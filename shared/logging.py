"""Structured logs: one JSON object per line, with the service name and case id, never personal data."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("case_id", "event_id", "reason", "unit", "topic"):
            if (value := getattr(record, key, None)) is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _not_the_topic_creation_warning(record: logging.LogRecord) -> bool:
    # The services leave topic creation to the broker on purpose (shared/runtime.py); FastStream warns at every start.
    return "Auto create topics is disabled" not in record.getMessage()


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka reports every reconnect attempt at ERROR; the retry loop already says what matters.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("pymongo").setLevel(logging.WARNING)
    logging.getLogger("jieba").setLevel(logging.WARNING)
    faststream = logging.getLogger("faststream.access.kafka")
    if _not_the_topic_creation_warning not in faststream.filters:
        faststream.addFilter(_not_the_topic_creation_warning)
