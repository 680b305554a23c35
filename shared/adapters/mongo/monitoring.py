"""Every command a service sends to the store, counted by PyMongo's command monitoring: what a case
costs in trips to the store is a figure anyone can read on /metrics (and `triage bench` prints)."""

from __future__ import annotations

from pymongo import monitoring

from shared.metrics import STORE_COMMANDS

# The driver's own traffic, not the service's work.
_HOUSEKEEPING = frozenset({"hello", "ismaster", "isMaster", "ping", "buildInfo", "endSessions", "saslStart",
                           "saslContinue"})


class StoreCommandCounter(monitoring.CommandListener):
    def __init__(self, service: str) -> None:
        self.service = service

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in _HOUSEKEEPING:
            STORE_COMMANDS.labels(self.service, event.command_name).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
