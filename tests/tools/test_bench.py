"""`triage bench`, the pure parts: its arguments, the arithmetic of its summary, and what it reads from /proc
and /metrics. Offline and quick; the figures themselves come from running it, never from a test."""

from __future__ import annotations

import json
import math

import pytest

from tools.bench.figures import (
    cost_ratio,
    cpu_profile,
    latencies_ms,
    metric_labels,
    parse_cpu_seconds,
    parse_metrics,
    parse_vmrss_kb,
    ratio,
    stage_profile,
    steady_plan,
    store_commands,
    store_commands_per_case,
    throughput,
)
from tools.bench.result import BenchResult, Phase
from tools.demo import percentile
from tools.main import _cmd_bench, build_parser


def bench_args(*argv: str) -> dict[str, object]:
    return vars(build_parser().parse_args(["bench", *argv]))


# --------------------------------------------------------------------------- arguments


def test_the_defaults() -> None:
    args = bench_args()
    assert args["func"] is _cmd_bench
    assert (args["cases"], args["json"], args["sustain"], args["hops"], args["raw_per_message"]) == (
        1000, False, None, 4, False)


def test_the_ten_minute_run() -> None:
    args = bench_args("--cases", "5000", "--json", "--sustain", "600")
    assert (args["cases"], args["json"], args["sustain"]) == (5000, True, 600.0)


@pytest.mark.parametrize("argv", [
    ["--cases", "0"], ["--cases", "-5"], ["--cases", "many"], ["--cases", "2.5"],
    ["--sustain", "0"], ["--sustain", "-1"], ["--sustain", "nan"], ["--sustain", "inf"], ["--hops", "0"],
])
def test_nonsense_is_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        bench_args(*argv)
    assert exited.value.code == 2
    assert "bench" in capsys.readouterr().err


# --------------------------------------------------------------------------- arithmetic


def test_throughput_is_events_over_first_publish_to_last_arrival() -> None:
    assert throughput(1000, 10_000.0, 12_000.0) == 500.0
    assert throughput(0, 10_000.0, 12_000.0) == 0.0
    # All within one millisecond (broker timestamps are whole milliseconds): no division by zero.
    assert throughput(3, 5_000.0, 5_000.0) == 3000.0


def test_phase() -> None:
    phase = Phase(published=100, arrived=90, first_ms=1_000.0, last_ms=4_000.0)
    assert phase.wall_s == 3.0
    assert phase.per_s == 30.0


def test_ratio() -> None:
    assert ratio(250.0, 1000.0) == 0.25
    assert ratio(250.0, 0.0) == 0.0


@pytest.mark.parametrize(("max_per_s", "cases", "sustain", "plan"), [
    (100.0, 5000, None, (50.0, 3000)),  # a minute's worth at half the maximum
    (100.0, 1000, None, (50.0, 1000)),  # or N, whichever is fewer
    (100.0, 1000, 600.0, (50.0, 30000)),  # --sustain: that long, whatever N is
    (0.01, 1000, None, (0.005, 1)),  # at least one
    (0.0, 1000, None, (0.0, 0)),  # nothing was routed: nothing to offer
])
def test_steady_plan(max_per_s: float, cases: int, sustain: float | None, plan: tuple[float, int]) -> None:
    assert steady_plan(max_per_s, cases, sustain) == plan


def test_latencies_and_their_percentiles() -> None:
    sent = {f"c{i}": 1_000.0 for i in range(100)}
    arrived = {f"c{i}": 1_000.0 + i + 1 for i in range(100)} | {"stranger": 9_999.0}
    latencies = latencies_ms(sent, arrived)
    assert sorted(latencies) == [float(i) for i in range(1, 101)]
    assert (percentile(latencies, 0.50), percentile(latencies, 0.99)) == (51.0, 100.0)
    # A case that never arrived has no latency; it shows as lost, not as a small number.
    assert latencies_ms({"a": 0.0, "b": 0.0}, {"a": 12.5}) == [12.5]
    assert percentile([], 0.99) == 0.0


# --------------------------------------------------------------------------- /proc and /metrics


def test_vmrss() -> None:
    status = "Name:\tpython\nVmPeak:\t  300000 kB\nVmRSS:\t   65432 kB\nThreads:\t4\n"
    assert parse_vmrss_kb(status) == 65432
    assert parse_vmrss_kb("Name:\tkthreadd\n") is None


def test_cpu_seconds_of_a_command_with_spaces_and_parentheses() -> None:
    after_state = ["1", "1234", "1234", "0", "-1", "4194560", "100", "0", "0", "0", "250", "50", "7", "3"]
    stat = "1234 (odd) name (x)) S " + " ".join(after_state)
    assert parse_cpu_seconds(stat, 100) == 3.0  # utime 250 + stime 50 ticks; children's not counted


METRICS = """\
# HELP triage_stage_seconds Time to process one event, by service
# TYPE triage_stage_seconds histogram
triage_stage_seconds_bucket{le="0.001",service="intake"} 0.0
triage_stage_seconds_count{service="intake"} %(count)s
triage_stage_seconds_sum{service="intake"} %(sum)s
triage_cases_received_total{channel="12345",outcome="accepted"} 7.0
not a sample
"""


def test_metrics_and_the_stage_profile() -> None:
    before = parse_metrics(METRICS % {"count": "50.0", "sum": "1.5"})
    after = parse_metrics(METRICS % {"count": "1050.0", "sum": "41.5"})
    assert after['triage_cases_received_total{channel="12345",outcome="accepted"}'] == 7.0
    assert not any(key.startswith(("#", "not")) for key in after)
    profile = stage_profile({"intake": before}, {"intake": after, "routing": {}}, wall_s=80.0)
    assert profile["intake"] == {"handled": 1000, "handler_mean_ms": 40.0, "handler_busy": 0.5}
    assert profile["routing"] == {"handled": 0, "handler_mean_ms": 0.0, "handler_busy": 0.0}


def test_cpu_profile() -> None:
    before = {"ferretdb": 10.0, "kafka": 5.0, "intake": 1.0, "gone": 3.0}
    after = {"ferretdb": 40.0, "kafka": 15.0, "intake": 11.0}
    profile = cpu_profile(before, after, events=1000, wall_s=25.0)
    assert list(profile) == ["ferretdb", "kafka", "intake", "total"]  # the biggest first
    assert profile["ferretdb"] == {"cpu_s": 30.0, "cpu_ms_per_event": 30.0, "share": 0.6, "cores": 1.2}
    assert profile["total"] == {"cpu_s": 50.0, "cpu_ms_per_event": 50.0, "cores_busy": 2.0}
    idle = cpu_profile(before, after, events=0, wall_s=0.0)
    assert idle["total"] == {"cpu_s": 50.0, "cpu_ms_per_event": 0.0, "cores_busy": 0.0}


# --------------------------------------------------------------------------- the summary


def result(**overrides: object) -> BenchResult:
    fields: dict[str, object] = dict(
        cases=1000, hops=4,
        raw=Phase(1000, 1000, 0.0, 1_600.0),
        pipeline=Phase(1000, 1000, 0.0, 80_000.0),
        steady_rate=6.25, steady_cases=375, p50_ms=76.6, p99_ms=131.4,
        routed=1375, merged=0, dead_lettered=0, lost=0, machine={"cores": 2},
    )
    return BenchResult(**(fields | overrides))  # type: ignore[arg-type]


def test_the_summary_line() -> None:
    summary = result().summary()
    assert {"cases": 1000, "raw_per_s": 625.0, "pipeline_per_s": 12.5, "ratio": 0.02, "steady_rate": 6.2,
            "p50_ms": 76.6, "p99_ms": 131.4, "lost": 0, "machine": {"cores": 2}}.items() <= summary.items()
    assert "sustain_s" not in summary and "raw_per_message_per_s" not in summary
    line = json.dumps(summary, ensure_ascii=False)
    assert "\n" not in line and json.loads(line) == summary


def test_the_summary_of_a_sustained_run() -> None:
    summary = result(sustain_s=600.0, raw_per_message=Phase(1000, 1000, 0.0, 16_000.0),
                     memory_mb={"intake": {"start": 63.3, "end": 64.0}}).summary()
    assert summary["sustain_s"] == 600.0
    assert summary["raw_per_message_per_s"] == 62.5
    assert summary["memory_mb"] == {"intake": {"start": 63.3, "end": 64.0}}


def test_the_ratio_is_the_pipeline_over_the_raw_transport() -> None:
    fast = result(pipeline=Phase(1000, 1000, 0.0, 2_000.0), raw=Phase(1000, 1000, 0.0, 1_000.0))
    assert math.isclose(fast.ratio, 0.5)
    assert result(raw=Phase(1000, 0, 0.0, 0.0)).ratio == 0.0  # nothing arrived: no ratio rather than a crash


def test_the_report_names_the_figures() -> None:
    lines = result(memory_mb={"intake": {"start": 63.3, "end": 64.0}}).report()
    text = "\n".join(lines)
    assert "625.0 events/s" in text and "12.5 cases/s" in text and "ratio pipeline/raw: 0.020" in text
    assert "p50 76.6 ms, p99 131.4 ms" in text and "intake 63.3 → 64.0" in text


def test_the_throughput_with_every_stage_done_is_reported_when_measured() -> None:
    assert "all_stages_per_s" not in result().summary()
    measured = result(profile={"pipeline": {"all_stages_per_s": 9.1}})
    assert measured.summary()["all_stages_per_s"] == 9.1
    assert "with the follow-up done too: 9.1 cases/s" in measured.report()


# --------------------------------------------------------------------------- store commands per case

STORE = """\
# HELP triage_store_commands_total Commands sent to the store, by service and command
# TYPE triage_store_commands_total counter
triage_store_commands_total{service="intake",command="find"} %(find)s
triage_store_commands_total{command="insert",service="intake"} %(insert)s
triage_store_commands_created{service="intake",command="find"} 1.7e9
triage_stage_seconds_count{service="intake"} 3.0
"""


def test_the_labels_of_a_sample_in_any_order() -> None:
    assert metric_labels('triage_store_commands_total{command="update",service="routing"}') == (
        "triage_store_commands_total", {"command": "update", "service": "routing"})
    assert metric_labels("process_cpu_seconds_total") == ("process_cpu_seconds_total", {})


def test_store_commands_are_read_by_command_and_absent_when_not_exported() -> None:
    samples = parse_metrics(STORE % {"find": "12.0", "insert": "4.0"})
    assert store_commands(samples) == {"find": 12.0, "insert": 4.0}  # the _created samples are not commands
    assert store_commands(parse_metrics(METRICS % {"count": "1.0", "sum": "1.0"})) is None
    assert store_commands({}) is None


def test_store_commands_per_case_in_all_per_service_and_per_command() -> None:
    before = {"intake": parse_metrics(STORE % {"find": "100.0", "insert": "50.0"}),
              "routing": {'triage_store_commands_total{service="routing",command="update"}': 10.0}}
    after = {"intake": parse_metrics(STORE % {"find": "300.0", "insert": "150.0"}),
             "routing": {'triage_store_commands_total{service="routing",command="update"}': 110.0,
                         'triage_store_commands_total{service="routing",command="find"}': 50.0}}
    figures = store_commands_per_case(before, after, cases=100)
    assert figures["per_case"] == 4.5  # (200 + 100) + (100 + 50) commands over 100 cases
    assert figures["by_command"] == {"find": 2.5, "insert": 1.0, "update": 1.0}
    assert figures["services"]["intake"] == {"per_case": 3.0, "by_command": {"find": 2.0, "insert": 1.0}}
    # A command first seen after the first scrape counts from zero.
    assert figures["services"]["routing"] == {"per_case": 1.5, "by_command": {"find": 0.5, "update": 1.0}}


def test_a_service_without_the_counter_makes_the_whole_n_a() -> None:
    after = {"intake": parse_metrics(STORE % {"find": "30.0", "insert": "10.0"}), "followup": {}}
    figures = store_commands_per_case({}, after, cases=10)
    assert figures["services"] == {"intake": {"per_case": 4.0, "by_command": {"find": 3.0, "insert": 1.0}},
                                   "followup": None}
    assert figures["per_case"] is None and figures["by_command"] is None
    lines = result(store_commands=figures).report()
    assert any(line.startswith("store commands per case") and line.endswith(": n/a") for line in lines)
    assert any(line.split() == ["followup", "n/a"] for line in lines)
    # Nothing arrived: no per-case figure rather than a division by zero; a restart never counts negative.
    none = store_commands_per_case({"intake": {'triage_store_commands_total{command="find"}': 9.0}},
                                   {"intake": {'triage_store_commands_total{command="find"}': 2.0}}, cases=0)
    assert none["per_case"] is None and none["services"]["intake"] == {"per_case": None, "by_command": {"find": None}}
    restarted = store_commands_per_case({"intake": {'triage_store_commands_total{command="find"}': 9.0}},
                                        {"intake": {'triage_store_commands_total{command="find"}': 2.0}}, cases=1)
    assert restarted["per_case"] == 0.0


def test_the_store_commands_are_reported_and_in_the_summary() -> None:
    figures = store_commands_per_case({}, {"intake": parse_metrics(STORE % {"find": "30.0", "insert": "10.0"})}, 10)
    measured = result(store_commands=figures)
    assert measured.summary()["store_commands"]["per_case"] == 4.0
    text = "\n".join(measured.report())
    assert "store commands per case (the services' triage_store_commands_total" in text and ": 4.0" in text
    assert "intake              4.0  (find 3.0, insert 1.0)" in text and "by command: find 3.0, insert 1.0" in text
    assert "store_commands" not in result().summary()  # not measured: not claimed


# --------------------------------------------------------------------------- the store-bound reference and CPU per case


def cpu_phase(**ms_per_case: float) -> dict[str, object]:
    rows: dict[str, dict[str, float]] = {name: {"cpu_s": ms, "cpu_ms_per_event": ms, "share": 0.0, "cores": 0.0}
                                         for name, ms in ms_per_case.items()}
    rows["total"] = {"cpu_s": sum(ms_per_case.values()), "cpu_ms_per_event": sum(ms_per_case.values()),
                     "cores_busy": 1.5}
    return {"cpu": rows}


def test_cost_ratio() -> None:
    assert cost_ratio(50.0, 5.0) == 10.0
    assert cost_ratio(50.0, None) is None and cost_ratio(None, 5.0) is None and cost_ratio(50.0, 0.0) is None


def test_the_store_bound_reference_and_cpu_per_case_of_each_phase() -> None:
    profile = {"pipeline": cpu_phase(intake=10.0, ferretdb=30.0, kafka=5.0, bench=5.0),
               "raw": cpu_phase(kafka=3.0, bench=2.0),
               "store_bound": cpu_phase(kafka=3.0, ferretdb=15.0, bench=2.0)}
    measured = result(store_bound=Phase(1000, 1000, 0.0, 4_000.0), profile=profile)
    assert measured.store_bound_ratio == 0.05  # 12.5 cases/s over 250 cases/s
    assert measured.cpu_per_case() == {"pipeline": 50.0, "raw": 5.0, "store_bound": 20.0,
                                       "pipeline_over_raw": 10.0, "pipeline_over_store_bound": 2.5}
    summary = measured.summary()
    assert (summary["store_bound_per_s"], summary["ratio_store_bound"]) == (250.0, 0.05)
    assert summary["cpu_ms_per_case"]["pipeline_over_store_bound"] == 2.5
    text = "\n".join(measured.report())
    assert "store-bound reference, the 4 hops each doing its case's store work" in text and "250.0 cases/s" in text
    assert "ratio pipeline/store-bound reference: 0.050" in text
    assert "where the store-bound reference's time goes" in text
    assert "  ferretdb        CPU    15.0 s     15.0 ms/case" in text  # per process, in the reference phase
    assert ("total CPU per case (every process measured, summed): pipeline 50.0 ms, raw transport 5.0 ms, "
            "store-bound reference 20.0 ms") in text
    assert "CPU per case, pipeline/raw: 10.0; pipeline/store-bound reference: 2.5" in text


def test_without_the_reference_its_figures_are_n_a() -> None:
    measured = result(profile={"pipeline": cpu_phase(intake=10.0), "raw": cpu_phase(kafka=2.0)})
    assert measured.store_bound_ratio is None and "store_bound_per_s" not in measured.summary()
    text = "\n".join(measured.report())
    assert "store-bound reference n/a" in text and "pipeline/store-bound reference: n/a" in text


def test_store_commands_from_what_prometheus_client_exposes() -> None:
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    registry = CollectorRegistry()
    counter = Counter("triage_store_commands", "Store commands, by command", ["service", "command"], registry=registry)
    counter.labels(service="routing", command="findAndModify").inc(3)
    counter.labels(service="routing", command="update").inc(5)
    samples = parse_metrics(generate_latest(registry).decode())
    assert store_commands(samples) == {"findAndModify": 3.0, "update": 5.0}
