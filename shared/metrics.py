"""Every Prometheus metric the services export, defined once.

Labels are domain codes (channel, category, unit, reason), never personal data or free text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

CASES_RECEIVED = Counter(
    "triage_cases_received", "Complaint events accepted by intake", ["channel", "outcome"], registry=REGISTRY
)
CASES_CLASSIFIED = Counter(
    "triage_cases_classified", "Cases classified", ["category", "urgency"], registry=REGISTRY
)
CASES_ROUTED = Counter("triage_cases_routed", "Cases routed to a unit", ["unit", "override"], registry=REGISTRY)
CASES_NEEDING_REVIEW = Counter(
    "triage_cases_needing_review", "Low-confidence decisions flagged for a person", registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "triage_dead_letters", "Events dead-lettered, by service and reason", ["service", "reason"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "triage_retries", "Transient store or broker failures retried", ["service", "error"], registry=REGISTRY
)
STAGE_SECONDS = Histogram(
    "triage_stage_seconds", "Time to process one event, by service", ["service"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_RECORDS = Histogram(
    "triage_batch_records", "Records consumed together in one batch, by service", ["service"], registry=REGISTRY,
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
DEADLINES_OPENED = Counter("triage_deadlines_opened", "Deadlines opened", ["rule"], registry=REGISTRY)
TIMERS_FIRED = Counter("triage_timers_fired", "Follow-up timers fired", ["kind"], registry=REGISTRY)
DESK_ACTIONS = Counter(
    "triage_desk_actions", "Desk actions by unit, action and outcome", ["unit", "action", "outcome"],
    registry=REGISTRY,
)
CALENDAR_UNKNOWN_YEAR = Counter(
    "triage_calendar_unknown_year",
    "Working-day questions about a year beyond the known holiday schedule (weekends-only fallback)",
    ["year"],
    registry=REGISTRY,
)
REPEATS_MERGED = Counter("triage_repeats_merged", "Repeat reports merged into an open case", registry=REGISTRY)
DESK_API_REQUESTS = Counter(
    "triage_desk_api_requests", "Desk API requests by the token's unit, route template and status",
    ["unit", "route", "status"], registry=REGISTRY,
)
STORE_COMMANDS = Counter(
    "triage_store_commands", "Commands sent to the store, by PyMongo's command monitoring", ["service", "command"],
    registry=REGISTRY,
)
SUPERVISOR_RATE = Gauge(
    "triage_supervisor_rate", "A supervisors' rate for the current month, per unit (0..1; absent while undefined)",
    ["unit", "figure"], registry=REGISTRY,
)
SUPERVISOR_CASES = Gauge(
    "triage_supervisor_cases", "A supervisors' count for the current month, per unit (overdue_open: now)",
    ["unit", "figure"], registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "triage_consumer_lag",
    "Records on a partition that this service's consumer has not fetched yet (highwater minus position), "
    "as seen at its latest batch from that partition",
    ["service", "topic", "partition"], registry=REGISTRY,
)
TIMER_SCAN_LAST_SUCCESS = Gauge(
    "triage_timer_scan_last_success_timestamp_seconds",
    "When the follow-up's timer scan last finished without an error, or its start before the first one "
    "(Unix time, real clock; 0 in the services that do not scan)", registry=REGISTRY,
)
FEED_MILESTONES = Counter(
    "triage_feed_milestones", "Milestones the status feed carried to the upstream systems, by milestone",
    ["milestone"], registry=REGISTRY,
)
