"""``ghl-pipeline``: the operator's terminal commands (CONTRACT §5).

Every command exits 0 on success and 1 with a one-line reason on stderr on failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from ghl_pipeline.runs import RunFailed, run_sync_job

log = logging.getLogger("ghl_pipeline.cli")


class CommandError(Exception):
    """A failure the CLI reports as one line and exit status 1."""


# --------------------------------------------------------------------------------------------------
# Printing


def render_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, total: Sequence[str] | None = None
) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned (numbers)."""
    everything = [header, *rows, *([total] if total else [])]
    widths = [max(len(r[i]) for r in everything) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    rule = "  ".join("-" * w for w in widths)
    out = [line(header), rule, *(line(r) for r in rows)]
    if total:
        out += [rule, line(total)]
    return "\n".join(out)


def format_summary(summary: dict) -> str:
    """A readable table of a sync's per-project counts."""
    projects = summary["projects"]
    rows = [
        (
            name,
            str(p.get("fetched", "")),
            str(p["new_records"]),
            str(p["updated_records"]),
            str(p["rejected_records"]),
            str(p.get("ghl_requests", "")),
        )
        for name, p in sorted(projects.items())
    ]
    total = (
        "TOTAL",
        str(sum(int(p.get("fetched", 0)) for p in projects.values())),
        str(summary["new_records"]),
        str(summary["updated_records"]),
        str(summary["rejected_records"]),
        str(sum(int(p.get("ghl_requests", 0)) for p in projects.values())),
    )
    header = ("project", "fetched", "new", "updated", "rejected", "GHL requests")
    return render_table(header, rows, total=total)


def _public_summary(summary: dict) -> dict:
    return {
        "new_records": summary["new_records"],
        "updated_records": summary["updated_records"],
        "rejected_records": summary["rejected_records"],
        "projects": {
            name: {k: p[k] for k in ("new_records", "updated_records", "rejected_records")}
            for name, p in summary["projects"].items()
        },
    }


# --------------------------------------------------------------------------------------------------
# Commands


def cmd_sync(args: argparse.Namespace) -> int:
    from ghl_pipeline.windows import SyncConfigError, parse_sync_request

    try:  # checked here too, so a typo fails in a second, without starting Dagster
        parse_sync_request(args.date_from, args.date_to, args.project)
    except SyncConfigError as exc:
        raise CommandError(str(exc)) from None
    summary = run_sync_job(date_from=args.date_from, date_to=args.date_to, project_name=args.project)
    if args.json:
        print(json.dumps(_public_summary(summary), sort_keys=True))
    else:
        print(format_summary(summary))
        print(f"\nSynced {summary['new_records']} new call records (run {summary['run_id']}).")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from ghl_pipeline.warehouse.db import get_engine
    from ghl_pipeline.warehouse.schema import DuplicateCallsError, upgrade

    try:
        report = upgrade(get_engine())
    except DuplicateCallsError as exc:
        raise CommandError(str(exc).replace("\n", " ")) from None
    print(report)
    return 0


def cmd_simulator(args: argparse.Namespace) -> int:
    from ghl_pipeline.ghl.simulator import serve_forever

    serve_forever(port=args.port)
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    from ghl_pipeline.gateway import GatewayConfigError, run

    try:
        run(host=args.host, port=args.port)
    except GatewayConfigError as exc:
        raise CommandError(str(exc)) from None
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ghl_pipeline.warehouse.db import get_engine
    from ghl_pipeline.warehouse.status import project_status

    rows = project_status(get_engine())
    if args.json:
        print(json.dumps(rows, default=str, sort_keys=True))
        return 0
    if not rows:
        print("No projects yet. Add rows to the projects table (see README).")
        return 0
    header = ("project", "active", "calls", "latest call (UTC)", "last synced (UTC)", "rejects 24h")
    table = [
        (
            r["project_name"],
            "yes" if r["active"] else "no",
            str(r["calls"]),
            _fmt_ts(r["latest_call"]),
            _fmt_ts(r["last_synced"]),
            str(r["rejects_24h"]),
        )
        for r in rows
    ]
    print(render_table(header, table))
    return 0


def _fmt_ts(value) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


def cmd_demo(args: argparse.Namespace) -> int:
    from ghl_pipeline.demo import run_demo

    return run_demo(days=args.days)


def cmd_backfill(args: argparse.Namespace) -> int:
    from ghl_pipeline.backfill import BackfillError, run_backfill

    try:
        first, last = date.fromisoformat(args.date_from), date.fromisoformat(args.date_to)
    except ValueError as exc:
        raise CommandError(f"--from/--to: dates must be YYYY-MM-DD ({exc})") from None
    try:
        report = run_backfill(
            first=first, last=last, project_name=args.project, force=args.force, workers=args.workers
        )
    except BackfillError as exc:
        raise CommandError(str(exc)) from None
    print(report.describe())
    return 0 if report.ok else 1


def local_today(timezone: str | None) -> date:
    """Today's date in ``timezone`` (UTC when none)."""
    return datetime.now(ZoneInfo(timezone) if timezone else UTC).date()


class _Parser(argparse.ArgumentParser):
    """argparse, with its error line kept to one printable line whatever the arguments hold."""

    def error(self, message: str):  # noqa: ANN201 - argparse's signature
        printable = message.encode("utf-8", "backslashreplace").decode("utf-8")
        printable = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in printable)
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {printable}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``ghl-pipeline`` argument parser."""
    parser = _Parser(
        prog="ghl-pipeline",
        description="Keep the dashboard's all_calls table in step with GoHighLevel (through Dagster).",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show Dagster's run logs and tracebacks on the terminal"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "demo",
        help="sync 7 days of 3 demo projects from the GHL simulator into an embedded Postgres",
        description="No account, no services: starts the GHL simulator and an embedded Postgres, syncs the "
        "last days of 3 demo projects through the real sync_ghl_calls job and prints a summary.",
    )
    p.add_argument(
        "--days", type=int, default=7, choices=range(1, 32), metavar="N", help="days to sync (1-31)"
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "sync",
        help="run the sync_ghl_calls job for a date range",
        description="Runs sync_ghl_calls: dates are inclusive calendar days in each project's time zone; "
        "ISO-8601 datetimes with offset are a half-open window.",
    )
    p.add_argument(
        "--from", dest="date_from", required=True, help="YYYY-MM-DD or ISO-8601 datetime with offset"
    )
    p.add_argument("--to", dest="date_to", required=True, help="YYYY-MM-DD or ISO-8601 datetime with offset")
    p.add_argument("--project", help="one project's name (default: every active project)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "backfill",
        help="refill calendar days through Dagster, batched and resumable",
        description="Materializes the all_calls partitions of those days (every active project or one), "
        "one run per project per ≤31 days. Days already materialized are skipped unless --force, so a "
        "killed backfill resumes by running the same command again.",
    )
    p.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="last day, YYYY-MM-DD")
    p.add_argument("--project", help="one project's name (default: every active project)")
    p.add_argument("--force", action="store_true", help="re-sync days that are already materialized")
    p.add_argument(
        "--workers", type=int, default=4, help="runs in parallel, one project each (default 4; 1-16)"
    )
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("db", help="database maintenance", description="Database maintenance.")
    db_sub = p.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    up = db_sub.add_parser(
        "upgrade",
        help="create or upgrade the tables in place, keeping every row",
        description="Creates projects, all_calls, all_calls_rejects and the contact cache when missing and "
        "upgrades an older all_calls in place; refuses, naming them, when duplicate ghl_ids block the "
        "unique index.",
    )
    up.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser(
        "simulator",
        help="serve the GHL simulator on loopback",
        description="Serves the GHL simulator (the demo's three locations) on 127.0.0.1 for local work.",
    )
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.set_defaults(func=cmd_simulator)

    p = sub.add_parser(
        "gateway",
        help="the authenticated front door for the dashboard",
        description="Serves POST /sync and GET /sync/{runId} in front of the Dagster webserver, checking "
        "the caller's Supabase JWT. Configured by environment variables (see README).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser("status", help="per project: calls stored, latest call, last sync, recent rejects")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ghl-pipeline`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("httpx", "dagster", "alembic", "sqlalchemy", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    if args.verbose:
        os.environ["GHL_PIPELINE_VERBOSE"] = "1"
    try:
        return args.func(args)
    except (CommandError, RunFailed) as exc:
        print(f"ghl-pipeline {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ghl-pipeline {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the operator; details with GHL_PIPELINE_DEBUG=1
        if os.environ.get("GHL_PIPELINE_DEBUG") or args.verbose:
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"ghl-pipeline {args.command}: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
