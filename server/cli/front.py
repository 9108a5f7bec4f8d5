"""`loket display ...` (the waiting rooms' calling displays) and `loket reports ...`
(service-level reports from the recorded visit events)."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import date
from pathlib import Path

import typer

from server.cli.common import DATA_DIR_OPTION, fail, load_settings, run_database_job

display_app = typer.Typer(
    help="The waiting rooms' public calling displays (/display/): enrol, list, revoke.",
    no_args_is_help=True,
)
reports_app = typer.Typer(
    help="Service-level reports from the recorded visit events: export, rebuild.",
    no_args_is_help=True,
)


@display_app.command("enrol")
def display_enrol(
    branch: str = typer.Option(..., help="The branch whose calls it shows, e.g. jkt01."),
    label: str = typer.Option("Ruang tunggu", help="Where it hangs (for the operator)."),
    display_id: str | None = typer.Option(None, "--display-id", help="Re-key this display."),
    server: str = typer.Option("http://127.0.0.1:8000", help="Its URL as the display sees it."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Print a new display key once, and the address to open on the display's browser."""
    from server.adapters.sql.engine import make_engine
    from server.adapters.sql.front import Displays

    settings = load_settings(data_dir)
    for what, value in (("--branch", branch), ("--display-id", display_id or "x")):
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value):
            raise fail(f"{what} is 1 to 32 letters, digits, '-' or '_'")

    async def job() -> str:
        engine = make_engine(settings)
        displays = Displays(engine)
        try:
            return await displays.enrol(branch, label, display_id)
        finally:
            await displays.close()
            await engine.dispose()

    key = run_database_job(settings, job)
    typer.echo(key)
    typer.echo(f"open on the display: {server.rstrip('/')}/display/#key={key}", err=True)
    typer.echo("(the page keeps the key and drops it from the address bar)", err=True)


@display_app.command("list")
def display_list(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    from server.adapters.sql.engine import make_engine
    from server.adapters.sql.front import Displays

    settings = load_settings(data_dir)

    async def job() -> list[dict[str, object]]:
        engine = make_engine(settings)
        displays = Displays(engine)
        try:
            return await displays.list()
        finally:
            await displays.close()
            await engine.dispose()

    for row in run_database_job(settings, job):
        typer.echo(json.dumps(row))


@display_app.command("revoke")
def display_revoke(display_id: str, data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Its socket closes within LOKET_ACCOUNT_CHECK_INTERVAL seconds."""
    from server.adapters.sql.engine import make_engine
    from server.adapters.sql.front import Displays

    settings = load_settings(data_dir)

    async def job() -> bool:
        engine = make_engine(settings)
        displays = Displays(engine)
        try:
            return await displays.revoke(display_id)
        finally:
            await displays.close()
            await engine.dispose()

    if not run_database_job(settings, job):
        raise fail(f"no display {display_id!r}")
    typer.echo(f"revoked {display_id}")


@reports_app.command("export")
def reports_export(
    branch: str | None = typer.Option(None, help="One branch (default: all)."),
    since: str | None = typer.Option(None, "--from", help="First local day, YYYY-MM-DD."),
    until: str | None = typer.Option(None, "--to", help="Last local day (default: yesterday)."),
    fmt: str = typer.Option("csv", "--format", help="csv or json."),
    output: Path | None = typer.Option(None, "-o", "--output", help="File (default: stdout)."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Arrivals, served, no-shows, waits (average and p90: lobby, floor, total), handling
    time per officer, outcomes by claim type and reason, and the service level with its
    formula, per day (and per hour for one day)."""
    from datetime import timedelta

    from server.adapters.sql.engine import make_engine
    from server.adapters.sql.front import FrontStore
    from server.api.front import report_config
    from server.api.reports import build_report, report_csv
    from server.domain.reports import day_of

    settings = load_settings(data_dir)
    if fmt not in ("csv", "json"):
        raise fail("--format is csv or json")
    cfg = report_config(settings)
    today = day_of(time.time(), cfg)
    try:
        end = date.fromisoformat(until) if until else date.fromisoformat(today) - timedelta(1)
        start = date.fromisoformat(since) if since else end
    except ValueError as exc:
        raise fail(f"a day is YYYY-MM-DD ({exc})") from None
    if end < start or (end - start).days > 366:
        raise fail("--to must be on or after --from, at most 366 days later")

    async def job() -> dict[str, object]:
        engine = make_engine(settings)
        store = FrontStore(engine, cfg)
        try:
            scope = frozenset({branch}) if branch else None
            return await build_report(store, scope, start, end, today)
        finally:
            await store.close()
            await engine.dispose()

    body = run_database_job(settings, job)
    text = report_csv(body) if fmt == "csv" else json.dumps(body, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


@reports_app.command("rebuild")
def reports_rebuild(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    """Recompute every visit and drop every daily rollup, from the recorded events alone
    (the rollups are recomputed as reports ask for them)."""
    from server.adapters.sql.engine import make_engine
    from server.adapters.sql.front import FrontStore
    from server.api.front import report_config

    settings = load_settings(data_dir)

    async def job() -> tuple[int, int]:
        engine = make_engine(settings)
        store = FrontStore(engine, report_config(settings))
        try:
            return await store.rebuild()
        finally:
            await store.close()
            await engine.dispose()

    events, visits = run_database_job(settings, job)
    typer.echo(f"rebuilt {visits} visits from {events} events; daily rollups dropped")
