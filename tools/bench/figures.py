"""The benchmark's arithmetic, and what it reads from /proc and /metrics: pure, so tested offline."""

from __future__ import annotations

import argparse
import contextlib
import math
import re
from collections.abc import Mapping
from typing import Any

STEADY_SECONDS = 60.0  # without --sustain the steady load is offered for at most this long
STALL_SECONDS = 60.0  # no new arrival for this long after the last publish: the rest is counted missing
STORE_COMMANDS = "triage_store_commands_total"  # each service's store commands, by command (PyMongo monitoring)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def throughput(count: int, first_ms: float, last_ms: float) -> float:
    """Events per second from the first publish to the last arrival (wall-clock milliseconds)."""
    if count <= 0:
        return 0.0
    # Broker timestamps have millisecond resolution: never divide by less than one millisecond.
    return count / (max(last_ms - first_ms, 1.0) / 1000)


def ratio(pipeline_per_s: float, raw_per_s: float) -> float:
    return pipeline_per_s / raw_per_s if raw_per_s > 0 else 0.0


def steady_plan(max_per_s: float, cases: int, sustain_s: float | None = None) -> tuple[float, int]:
    """The steady offered load, half the measured maximum, and how many events to offer at it: for
    `sustain_s` seconds if given, else N events but no more than a minute's worth (at least one)."""
    rate = max_per_s / 2
    if rate <= 0:
        return 0.0, 0
    seconds = sustain_s if sustain_s is not None else STEADY_SECONDS
    count = max(1, round(rate * seconds))
    return rate, count if sustain_s is not None else min(cases, count)


def latencies_ms(sent_at: Mapping[str, float], arrived_at: Mapping[str, float]) -> list[float]:
    """Publish → arrival of each case that arrived, in milliseconds."""
    return [arrived_at[key] - sent for key, sent in sent_at.items() if key in arrived_at]


def parse_vmrss_kb(status: str) -> int | None:
    """VmRSS from the text of /proc/<pid>/status, in kB."""
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def parse_cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """User + system CPU seconds from the text of /proc/<pid>/stat (the command may hold spaces and ')')."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second  # utime, stime: fields 14 and 15


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition → {'name{labels}': value}; comments and unparsable lines skipped."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            with contextlib.suppress(ValueError):
                samples[match.group(1)] = float(match.group(2))
    return samples


def stage_profile(before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]],
                  wall_s: float) -> dict[str, dict[str, float]]:
    """Per service, from the triage_stage_seconds histogram scraped before and after: events handled, mean
    handler time, and the share of the wall time the handler was busy (1.0 = never idle)."""
    profile: dict[str, dict[str, float]] = {}
    for service, samples in after.items():
        earlier = before.get(service, {})
        sum_key = f'triage_stage_seconds_sum{{service="{service}"}}'
        count_key = f'triage_stage_seconds_count{{service="{service}"}}'
        busy = samples.get(sum_key, 0.0) - earlier.get(sum_key, 0.0)
        handled = samples.get(count_key, 0.0) - earlier.get(count_key, 0.0)
        profile[service] = {
            "handled": int(handled),
            "handler_mean_ms": round(1000 * busy / handled, 2) if handled else 0.0,
            "handler_busy": round(busy / wall_s, 3) if wall_s > 0 else 0.0,
        }
    return profile


def cpu_profile(before: Mapping[str, float], after: Mapping[str, float], events: int,
                wall_s: float) -> dict[str, dict[str, float]]:
    """Per process: CPU seconds spent between the snapshots, per event, and as a share of all of it."""
    spent = {name: max(0.0, after[name] - before[name]) for name in after if name in before}
    total = sum(spent.values())
    profile = {
        name: {
            "cpu_s": round(seconds, 2),
            "cpu_ms_per_event": round(1000 * seconds / events, 3) if events else 0.0,
            "share": round(seconds / total, 3) if total else 0.0,
            "cores": round(seconds / wall_s, 3) if wall_s > 0 else 0.0,
        }
        for name, seconds in sorted(spent.items(), key=lambda item: -item[1])
    }
    profile["total"] = {
        "cpu_s": round(total, 2),
        "cpu_ms_per_event": round(1000 * total / events, 3) if events else 0.0,
        "cores_busy": round(total / wall_s, 2) if wall_s > 0 else 0.0,
    }
    return profile



_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_labels(key: str) -> tuple[str, dict[str, str]]:
    """'name{a="x",b="y"}' (a key of parse_metrics) → ('name', {'a': 'x', 'b': 'y'})."""
    name, _, labels = key.partition("{")
    return name, dict(_LABEL.findall(labels))


def store_commands(samples: Mapping[str, float]) -> dict[str, float] | None:
    """One service's store commands so far, by command; None when it exports no such counter."""
    found: dict[str, float] | None = None
    for key, value in samples.items():
        name, labels = metric_labels(key)
        if name == STORE_COMMANDS:
            found = found if found is not None else {}
            command = labels.get("command", "?")
            found[command] = found.get(command, 0.0) + value
    return found


def per_case(amount: float, cases: int) -> float | None:
    return round(amount / cases, 2) if cases > 0 else None


def store_commands_per_case(before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]],
                            cases: int) -> dict[str, Any]:
    """The store commands the services sent between two scrapes, per case: in all, by command, and per service
    by command. A service without the counter is None (n/a), and so is the whole then: a sum of the others
    would pass for the pipeline's."""
    services: dict[str, dict[str, Any] | None] = {}
    by_command: dict[str, float] = {}
    complete = bool(after)
    for service, samples in after.items():
        now = store_commands(samples)
        if now is None:
            services[service] = None
            complete = False
            continue
        then = store_commands(before.get(service, {})) or {}
        # A restarted service starts again from zero: never count less than nothing.
        spent = {command: max(0.0, count - then.get(command, 0.0)) for command, count in sorted(now.items())}
        for command, count in spent.items():
            by_command[command] = by_command.get(command, 0.0) + count
        services[service] = {"per_case": per_case(sum(spent.values()), cases),
                             "by_command": {command: per_case(count, cases) for command, count in spent.items()}}
    return {
        "per_case": per_case(sum(by_command.values()), cases) if complete else None,
        "by_command": {command: per_case(count, cases) for command, count in sorted(by_command.items())}
        if complete else None,
        "services": services,
    }


def cpu_ms_per_case(phase_profile: Mapping[str, Any]) -> float | None:
    """The phase's total CPU per case (every process it measured, summed), or None if it was not measured."""
    total = phase_profile.get("cpu", {}).get("total")
    return float(total["cpu_ms_per_event"]) if total and total.get("cpu_ms_per_event") else None


def cost_ratio(pipeline: float | None, reference: float | None) -> float | None:
    """The pipeline's cost per case over a reference's; None when either is unknown or the reference free."""
    if pipeline is None or not reference:
        return None
    return round(pipeline / reference, 2)
