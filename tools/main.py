"""The `triage` command: local infrastructure, the whole pipeline, the demo, offline classification."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path


def _cmd_infra(args: argparse.Namespace) -> int:
    from tools import infra

    return infra.main(args.infra_args)


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.lifecycle:
        return _cmd_lifecycle(args)
    from shared.config import get_settings
    from tools.demo import run_demo
    from tools.processes import start_pipeline

    endpoints, fleet = start_pipeline()
    try:
        result = asyncio.run(run_demo(
            args.cases, endpoints.kafka_bootstrap, endpoints.mongodb_uri, get_settings().mongodb_database,
            progress=not args.json, seed=args.seed, rate=args.rate,
        ))
    finally:
        fleet.stop()
    if not args.json:
        for example in result.examples:
            print(f"  {example['case_id']} → {example['unit']:<9} {example['category']:<16} "
                  f"{example['urgency']:<8} {example['text']}")
        print(f"routed {result.routed}/{result.published} in {result.wall_s}s; by unit: {result.by_unit}; "
              f"dead-lettered {result.dead_lettered}; lost {result.lost}; "
              f"latency p50 {result.p50_ms} ms, p99 {result.p99_ms} ms")
    print(json.dumps(result.summary(), ensure_ascii=False))
    return 0 if result.lost == 0 else 1


def _cmd_lifecycle(args: argparse.Namespace) -> int:
    import uuid

    from tools.lifecycle import desk_tokens, run_lifecycle
    from tools.processes import PIPELINE, WITH_DESK_API, start_pipeline

    tokens = desk_tokens()
    database = f"grievance_triage_lifecycle_{uuid.uuid4().hex[:6]}"
    endpoints, fleet = start_pipeline(
        {"MONGODB_DATABASE": database, "SIMULATED_CLOCK": "true", "TIMER_SCAN_SECONDS": "0.5",
         "DESK_TOKENS": json.dumps(tokens)},
        {**PIPELINE, **WITH_DESK_API},
    )
    try:
        result = asyncio.run(run_lifecycle(
            endpoints.kafka_bootstrap, endpoints.mongodb_uri, database,
            f"http://127.0.0.1:{fleet['desk_api'].port}", tokens, cases=min(args.cases, 60),
        ))
    finally:
        fleet.stop()
    if not args.json:
        for key, value in result.items():
            print(f"  {key:<17} {value}")
    print(json.dumps(result))
    return 0 if result["lost"] == 0 else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    from tools.bench.run import drop_database, run_bench
    from tools.processes import start_pipeline

    # A fresh store for each run: an earlier run's open cases would take this run's complaints for repeats.
    database = f"triage_bench_{uuid.uuid4().hex[:8]}"
    endpoints, fleet = start_pipeline({"MONGODB_DATABASE": database})
    try:
        result = asyncio.run(run_bench(
            args.cases, endpoints.kafka_bootstrap, endpoints.mongodb_uri, database, fleet,
            hops=args.hops, sustain_s=args.sustain, raw_per_message=args.raw_per_message,
            progress=not args.json, seed=args.seed,
        ))
    finally:
        fleet.stop()
        asyncio.run(drop_database(endpoints.mongodb_uri, database))
    if not args.json:
        for line in result.report():
            print(line)
    print(json.dumps(result.summary(), ensure_ascii=False))
    return 0 if result.lost == 0 else 1


def _cmd_assets(args: argparse.Namespace) -> int:
    from tools.infra import assets

    return assets.main(["--out", args.out] if args.out else [])


def _cmd_rebuild_queue(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from tools.rebuild_queue import rebuild_queue

    settings = get_settings()
    filed = asyncio.run(rebuild_queue(settings.mongodb_uri, settings.mongodb_database))
    print(f"rebuild-queue: {filed} open routed cases filed in the desks' queue of {settings.mongodb_database}")
    return 0


def month_arg(text: str) -> str:
    from shared.domain.figures import Period

    try:
        return Period.month(text).label
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a month: {text!r} (YYYY-MM)") from None


def _cmd_feed(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from tools.feed import read_feed

    asyncio.run(read_feed(get_settings().kafka_bootstrap_servers, args.channel, args.follow))
    return 0


def _cmd_erase(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from tools.erase import erase_complainant

    asyncio.run(erase_complainant(get_settings(), args.phone))
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from tools.keys import create_key, key_status, rotate_keys

    settings = get_settings()
    if args.action == "rotate":
        asyncio.run(rotate_keys(settings))
    elif args.action == "create":
        asyncio.run(create_key(settings))
    else:
        for key in asyncio.run(key_status(settings)):
            print(f"{key['id']} {','.join(key['names']) or '-'} wrapped by {key['wrapped_by']}"
                  f"{' (current master key)' if key['current'] else ' (NOT the current master key)'}; "
                  f"made {key['created']}, last wrapped {key['rewrapped']}")
    return 0


def _cmd_retention(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from tools.erase import apply_retention

    settings = get_settings()
    asyncio.run(apply_retention(settings, args.days or settings.retention_days))
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from tools.stats import rebuild_figures

    settings = get_settings()
    cases, facts = asyncio.run(rebuild_figures(settings.mongodb_uri, settings.mongodb_database))
    print(f"stats rebuild: {facts} facts of {cases} cases filed in the figures of {settings.mongodb_database}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from shared.domain.triage import Unit
    from tools.report import render_report

    text = asyncio.run(render_report(get_settings(), args.month, Unit(args.unit) if args.unit else None, args.format))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"report: {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_bench_queue(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from shared.domain.triage import Unit
    from tools.bench.queue import Plan, run_queue_bench

    if args.open * 2 > args.cases:
        raise ValueError("--cases must be at least twice --open (the unit's closed cases are as many)")
    plan = Plan(cases=args.cases, open=args.open, unit=Unit(args.unit), runs=args.runs)
    for line in asyncio.run(run_queue_bench(get_settings().mongodb_uri, plan)):
        print(line)
    return 0


def _cmd_bench_figures(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from tools.bench.supervisor import run_figures_bench

    for line in asyncio.run(run_figures_bench(get_settings().mongodb_uri, args.cases, args.runs)):
        print(line)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from tools.live import run_live

    return run_live(rate=args.rate, desks=not args.no_desks)


def _cmd_classify(args: argparse.Namespace) -> int:
    from tools.classify import classify_jsonl

    with (sys.stdin if args.jsonl == "-" else open(args.jsonl, encoding="utf-8")) as source:
        return classify_jsonl(source, sys.stdout)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from tools.model.evaluation import benchmark, evaluate

    corpus = Path(args.corpus) if args.corpus else None
    if args.benchmark:
        print(json.dumps(benchmark(args.benchmark, corpus)))
        return 0
    if args.misses and args.set == "blind":
        print("the blind set's misses are not shown: read its figures, never tune on its texts", file=sys.stderr)
        return 2
    print(evaluate(corpus, which=args.set).format_text(show_misses=args.misses))
    return 0


def _cmd_deadline(args: argparse.Namespace) -> int:
    from shared.domain.deadlines import due_date

    print(due_date(args.rule, date.fromisoformat(args.start)).isoformat())
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from shared.events import CaseUpdated, ChannelEvent

    model = CaseUpdated if args.feed else ChannelEvent
    print(json.dumps(model.model_json_schema(), ensure_ascii=False, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triage", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("infra", help="local Kafka broker and MongoDB-protocol server: up | down | status")
    p.add_argument("infra_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_infra)

    p = sub.add_parser("assets", help="the desk pages' browser libraries (htmx): fetched from the npm registry "
                       "once, verified, copied to the served dir; prints that dir")
    p.add_argument("--out", default=None, help="the served dir (default .triage/assets; DESK_ASSETS_DIR reads it)")
    p.set_defaults(func=_cmd_assets)

    p = sub.add_parser("run", help="start everything, feed a stream of complaints, show them being routed")
    p.add_argument("--rate", type=float, default=2.0, help="complaints per second (default 2)")
    p.add_argument("--no-desks", action="store_true",
                   help="no demo desks: every case waits for a person at the workbench")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("demo", help="publish N complaints through the pipeline and report")
    p.add_argument("--cases", type=int, default=100)
    p.add_argument("--json", action="store_true", help="print only the summary line")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--rate", type=float, default=None, help="complaints per second (default: as fast as possible)")
    p.add_argument("--lifecycle", action="store_true",
                   help="a scripted day at the desks with a simulated clock (up to 60 cases)")
    p.set_defaults(func=_cmd_demo)

    from tools.bench.figures import positive_float, positive_int

    p = sub.add_parser("bench", help="pipeline throughput and cost against the raw transport and a store-bound "
                       "reference, and latency at half load")
    p.add_argument("--cases", type=positive_int, default=1000)
    p.add_argument("--json", action="store_true", help="print only the summary line")
    p.add_argument("--sustain", type=positive_float, default=None, metavar="SECONDS",
                   help="offer the steady load this long (default: up to a minute) and report memory")
    p.add_argument("--hops", type=positive_int, default=4, help="relay hops of the raw transport (default 4)")
    p.add_argument("--raw-per-message", action="store_true",
                   help="also relay one event at a time per hop (publish, await the ack, commit, next)")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("rebuild-queue", help="drop the desks' queue and file every open routed case again "
                                             "(after an upgrade, or a lost queue; stop the services first)")
    p.set_defaults(func=_cmd_rebuild_queue)
    p = sub.add_parser("stats", help="the supervisors' figures: `stats rebuild` files every case's facts again "
                                     "from the timelines (after an upgrade, or lost figures; stop the services first)")
    p.add_argument("action", choices=["rebuild"])
    p.set_defaults(func=_cmd_stats)
    p = sub.add_parser("feed", help="read the status feed (triage.case-updates.v1) as an upstream system does")
    p.add_argument("--channel", default=None, help="only the updates keyed with this channel, e.g. 12345, online")
    p.add_argument("--follow", action="store_true", help="keep reading as milestones arrive")
    p.set_defaults(func=_cmd_feed)
    p = sub.add_parser("erase", help="remove a complainant's personal data from every case, on their request "
                                     "(the cases and their figures stay; written to erasure_audit)")
    p.add_argument("--phone", required=True)
    p.set_defaults(func=_cmd_erase)
    p = sub.add_parser("keys", help="the data key personal data is encrypted under: status | create | rotate "
                                    "(rewrap it under ENCRYPTION_MASTER_KEY, opening it with the previous one)")
    p.add_argument("action", choices=["status", "create", "rotate"])
    p.set_defaults(func=_cmd_keys)
    p = sub.add_parser("retention", help="remove the personal data of cases closed longer ago than the retention "
                                         "period (RETENTION_DAYS; written to erasure_audit)")
    p.add_argument("--days", type=positive_int, default=None)
    p.set_defaults(func=_cmd_retention)
    p = sub.add_parser("report", help="the monthly report (月度报告) of the supervisors' figures on the store")
    p.add_argument("--month", required=True, type=month_arg, help="YYYY-MM")
    p.add_argument("--unit", choices=["police", "mediation", "visitor", "legal", "command"], default=None)
    p.add_argument("--format", choices=["html", "md", "csv"], default="md")
    p.add_argument("--out", default=None, help="write to this file instead of printing")
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser("bench-queue", help="the desks' queue on the store: a page's read and a save's write cost, "
                       "over a fresh database of N cases (MONGODB_URI, default the local one)")
    p.add_argument("--cases", type=positive_int, default=100_000)
    p.add_argument("--open", type=positive_int, default=10_000, help="open cases of the measured unit")
    p.add_argument("--unit", default="mediation", choices=["police", "mediation", "visitor", "legal", "command"])
    p.add_argument("--runs", type=positive_int, default=50)
    p.set_defaults(func=_cmd_bench_queue)
    p = sub.add_parser("bench-figures", help="the supervisors' page over a year of figures: its server time and a "
                       "save's write, over a fresh database of N cases (MONGODB_URI, default the local one)")
    p.add_argument("--cases", type=positive_int, default=100_000)
    p.add_argument("--runs", type=positive_int, default=30)
    p.set_defaults(func=_cmd_bench_figures)

    p = sub.add_parser("classify", help="classify JSON lines {id, text, channel} offline")
    p.add_argument("--jsonl", required=True, help="input file, or - for standard input")
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("evaluate", help="train on the training part, score the held-out part or the blind set")
    p.add_argument("--corpus", default=None)
    p.add_argument("--set", choices=["heldout", "blind"], default="heldout",
                   help="heldout: the corpus's held-out part; blind: the set written by authors who never saw "
                   "the corpus, rules or model (read its figures, never tune on its misses)")
    p.add_argument("--misses", action="store_true", help="list the misses (held-out set only, to study)")
    p.add_argument("--benchmark", type=int, metavar="N", default=0,
                   help="instead: load time and texts/second of classify + route over N texts on one core")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("deadline", help="the due date of a time-limit rule")
    p.add_argument("rule")
    p.add_argument("--from", dest="start", required=True, help="start date, YYYY-MM-DD")
    p.set_defaults(func=_cmd_deadline)

    p = sub.add_parser("schema", help="print the JSON Schema upstream channels publish against")
    p.add_argument("--feed", action="store_true",
                   help="instead: the schema of the status feed they read (triage.case-updates.v1)")
    p.set_defaults(func=_cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:
        print(f"triage: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
