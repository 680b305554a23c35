"""What one `triage bench` run found: its phases, the JSON summary line, and the report for people."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.bench.figures import cost_ratio, cpu_ms_per_case, ratio, throughput


@dataclass
class Phase:
    """One timed run of events through a chain: how many went in, how many came out, how fast."""

    published: int
    arrived: int
    first_ms: float
    last_ms: float

    @property
    def wall_s(self) -> float:
        return max(self.last_ms - self.first_ms, 0.0) / 1000

    @property
    def per_s(self) -> float:
        return throughput(self.arrived, self.first_ms, self.last_ms)


def _figure(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value}{unit}"


@dataclass
class BenchResult:
    cases: int
    hops: int
    raw: Phase
    pipeline: Phase
    steady_rate: float
    steady_cases: int
    p50_ms: float
    p99_ms: float
    routed: int
    merged: int
    dead_lettered: int
    lost: int
    machine: dict[str, Any]
    raw_per_message: Phase | None = None
    store_bound: Phase | None = None  # the relay hops doing their cases' store work
    store_commands: dict[str, Any] | None = None  # figures.store_commands_per_case of the pipeline phase
    sustain_s: float | None = None
    steady_routed: int = 0
    memory_mb: dict[str, dict[str, float | None]] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return ratio(self.pipeline.per_s, self.raw.per_s)

    @property
    def store_bound_ratio(self) -> float | None:
        return None if self.store_bound is None else ratio(self.pipeline.per_s, self.store_bound.per_s)

    def cpu_per_case(self) -> dict[str, float | None]:
        """Total CPU ms per case of each phase (every process it measured, summed) and the pipeline's over
        the references'."""
        pipeline = cpu_ms_per_case(self.profile.get("pipeline", {}))
        raw = cpu_ms_per_case(self.profile.get("raw", {}))
        store_bound = cpu_ms_per_case(self.profile.get("store_bound", {}))
        return {"pipeline": pipeline, "raw": raw, "store_bound": store_bound,
                "pipeline_over_raw": cost_ratio(pipeline, raw),
                "pipeline_over_store_bound": cost_ratio(pipeline, store_bound)}

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "cases": self.cases,
            "raw_per_s": round(self.raw.per_s, 1),
            "pipeline_per_s": round(self.pipeline.per_s, 1),
            "ratio": round(self.ratio, 3),
            "steady_rate": round(self.steady_rate, 1),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "lost": self.lost,
            "machine": self.machine,
            "hops": self.hops,
            "raw_wall_s": round(self.raw.wall_s, 2),
            "pipeline_wall_s": round(self.pipeline.wall_s, 2),
            "steady_cases": self.steady_cases,
            "steady_routed": self.steady_routed,
            "routed": self.routed,
            "merged": self.merged,
            "dead_lettered": self.dead_lettered,
        }
        if "all_stages_per_s" in self.profile.get("pipeline", {}):
            summary["all_stages_per_s"] = self.profile["pipeline"]["all_stages_per_s"]
        if self.raw_per_message is not None:
            summary["raw_per_message_per_s"] = round(self.raw_per_message.per_s, 1)
        if self.store_bound is not None and self.store_bound_ratio is not None:
            summary["store_bound_per_s"] = round(self.store_bound.per_s, 1)
            summary["ratio_store_bound"] = round(self.store_bound_ratio, 3)
        if self.store_commands is not None:
            summary["store_commands"] = self.store_commands
        summary["cpu_ms_per_case"] = self.cpu_per_case()
        if self.sustain_s is not None:
            summary["sustain_s"] = self.sustain_s
        summary["memory_mb"] = self.memory_mb
        summary["profile"] = self.profile
        return summary

    def report(self) -> list[str]:
        all_stages = self.profile.get("pipeline", {}).get("all_stages_per_s")
        lines = [
            f"raw transport, {self.hops} relay hops: {self.raw.per_s:.1f} events/s "
            f"({self.raw.arrived}/{self.raw.published} in {self.raw.wall_s:.2f} s)",
        ]
        if self.raw_per_message is not None:
            one_by_one = self.profile.get("raw_per_message", {}).get("cpu", {}).get("total", {})
            lines.append(f"raw transport, one event at a time per hop: "
                         f"{self.raw_per_message.per_s:.1f} events/s, "
                         f"{one_by_one.get('cpu_ms_per_event', 0)} CPU ms per event")
        if (bound := self.store_bound) is not None:
            lines.append(f"store-bound reference, the {self.hops} hops each doing its case's store work (one insert, "
                         f"then one update by _id per hop): {bound.per_s:.1f} cases/s "
                         f"({bound.arrived}/{bound.published} in {bound.wall_s:.2f} s)")
        lines += [
            f"pipeline: {self.pipeline.per_s:.1f} cases/s ({self.pipeline.arrived}/{self.pipeline.published} "
            f"routed in {self.pipeline.wall_s:.2f} s)",
            f"ratio pipeline/raw: {self.ratio:.3f}",
            *([f"ratio pipeline/store-bound reference: {self.store_bound_ratio:.3f}"]
              if self.store_bound_ratio is not None else []),
            *([f"with the follow-up done too: {all_stages:.1f} cases/s"] if all_stages is not None else []),
            f"steady load {self.steady_rate:.1f}/s, {self.steady_cases} cases: publish → routed "
            f"p50 {self.p50_ms} ms, p99 {self.p99_ms} ms",
            f"in the store: routed {self.routed}, merged as repeats {self.merged}, "
            f"dead-lettered {self.dead_lettered}, lost {self.lost}",
        ]
        if self.store_commands is not None:
            lines += store_command_lines(self.store_commands)
        lines += self._cpu_report()
        if self.memory_mb:
            lines.append("memory (VmRSS, MB) at the start → end of the steady load: " + ", ".join(
                f"{name} {row['start']} → {row['end']}" for name, row in self.memory_mb.items()))
        return lines

    def _cpu_report(self) -> list[str]:
        lines: list[str] = []
        cpu = self.profile.get("pipeline", {}).get("cpu", {})
        stages = self.profile.get("pipeline", {}).get("stages", {})
        if cpu:
            total = cpu.get("total", {})
            lines.append(f"where the pipeline's time goes (the max-throughput run until the follow-up was done "
                         f"too; {total.get('cores_busy', 0)} cores busy, "
                         f"{total.get('cpu_ms_per_event', 0)} CPU ms per case):")
            lines += cpu_lines(cpu, stages)
        reference = self.profile.get("store_bound", {}).get("cpu", {})
        if reference:
            lines.append(f"where the store-bound reference's time goes "
                         f"({reference.get('total', {}).get('cores_busy', 0)} cores busy):")
            lines += cpu_lines(reference)
        idle = self.profile.get("idle", {}).get("cpu", {}).get("total")
        if idle:
            lines.append(f"idle floor: {idle['cores_busy']} cores busy with no events flowing")
        raw_cpu = self.profile.get("raw", {}).get("cpu", {}).get("total")
        if raw_cpu:
            lines.append(f"raw transport for comparison: {raw_cpu['cpu_ms_per_event']} CPU ms per event, "
                         f"{raw_cpu['cores_busy']} cores busy")
        per_case = self.cpu_per_case()
        if per_case["pipeline"] is not None:
            lines.append(f"total CPU per case (every process measured, summed): pipeline {per_case['pipeline']} ms, "
                         f"raw transport {_figure(per_case['raw'], ' ms')}, "
                         f"store-bound reference {_figure(per_case['store_bound'], ' ms')}")
            lines.append(f"CPU per case, pipeline/raw: {_figure(per_case['pipeline_over_raw'])}; "
                         f"pipeline/store-bound reference: {_figure(per_case['pipeline_over_store_bound'])}")
        return lines


def cpu_lines(cpu: Mapping[str, Mapping[str, float]], stages: Mapping[str, Mapping[str, float]] | None = None,
              ) -> list[str]:
    """One line per process: its CPU, per case, its share, and (for a service) its handler's time."""
    lines = []
    for name, row in cpu.items():
        if name == "total":
            continue
        stage = (stages or {}).get(name)
        handler = (f"; handler {stage['handler_mean_ms']} ms/case, busy {stage['handler_busy']:.0%} "
                   f"of the wall time") if stage else ""
        lines.append(f"  {name:<15} CPU {row['cpu_s']:>7} s  {row['cpu_ms_per_event']:>7} ms/case  "
                     f"{row['share']:>5.0%}{handler}")
    return lines


def store_command_lines(figures: Mapping[str, Any]) -> list[str]:
    """Store commands per case, in all, per service and per command ("n/a" where a service has no counter)."""

    def commands(by_command: Mapping[str, float | None]) -> str:
        return ", ".join(f"{command} {_figure(count)}" for command, count in by_command.items())

    lines = [f"store commands per case (the services' triage_store_commands_total, until the follow-up was "
             f"done): {_figure(figures.get('per_case'))}"]
    for service, row in figures.get("services", {}).items():
        lines.append(f"  {service:<15} n/a" if row is None else
                     f"  {service:<15} {_figure(row['per_case']):>7}  ({commands(row['by_command']) or 'none'})")
    if figures.get("by_command"):
        lines.append(f"  by command: {commands(figures['by_command'])}")
    return lines
