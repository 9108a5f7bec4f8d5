"""Service-level reports for supervisors and branch managers: JSON, CSV and the page's data.

Every figure comes from the recorded visit events (server/domain/reports.py states how);
closed days are read from their rollups (computed once from the visits, recomputable from
the events), today from its visits. Supervisors see their branches, auditors all.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from server.adapters.sql.front import FrontStore
from server.api.params import LocalDate
from server.auth.deps import current_principal
from server.domain.access import AccessFacts, Action, decide
from server.domain.csv_cells import SpreadsheetCsv
from server.domain.reports import (
    SL_SOURCE,
    DayFigures,
    Visit,
    by_hour,
    day_figures,
    day_of,
    figures,
    formula,
    merge,
)
from server.principal import Principal

router = APIRouter(tags=["reports"])
MAX_DAYS = 366
Branch = Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


def _store(request: Request) -> FrontStore:
    store: FrontStore = request.app.state.front
    return store


def _days(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


async def build_report(
    store: FrontStore, branches: frozenset[str] | None, start: date, end: date, today: str
) -> dict[str, Any]:
    """The report of these branches (None: all) over [start, end] (local days)."""
    cfg = store.cfg
    days = _days(start, end)
    closed = [d for d in days if d < today]
    live_days = [d for d in days if d >= today]
    rolled = await store.rollups(branches, closed) if closed else {}
    single = start == end
    visits: list[Visit] = await store.visits_of(branches, days if single else live_days)
    per_day: dict[str, DayFigures] = {d: DayFigures() for d in days}
    per_branch: dict[str, DayFigures] = {}
    for (branch, day), fig in rolled.items():
        per_day[day].absorb(fig)
        per_branch.setdefault(branch, DayFigures()).absorb(fig)
    for v in visits:
        day = day_of(v.arrived_at, cfg)
        if day in live_days:
            per_day[day].add(v, cfg)
            per_branch.setdefault(v.branch, DayFigures()).add(v, cfg)
    total = merge(per_day.values())
    exact = visits if single else None  # one day: percentiles from every visit
    report: dict[str, Any] = {
        "branches": sorted(branches) if branches is not None else None,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "target_wait_s": cfg.target_wait,
        "short_abandon_s": cfg.short_abandon,
        "formula": formula(cfg),
        "definition": SL_SOURCE,
        "totals": asdict(figures(total, exact)),
        "days": [{"day": d, **asdict(figures(per_day[d]))} for d in days],
        "per_branch": [{"branch": b, **asdict(figures(per_branch[b]))} for b in sorted(per_branch)],
        "officers": [
            {"cso_id": cso, "visits": int(n), "avg_handle_s": s / n if n else None}
            for cso, (n, s) in sorted(total.officers.items())
        ],
        "outcomes": [
            {"claim_type": key.split("|")[0], "reason": key.split("|")[1], "visits": n}
            for key, n in sorted(total.outcomes.items())
        ],
    }
    if single:
        hours = by_hour(visits, cfg)
        report["hours"] = [
            {"hour": h, **asdict(figures(hours[h], [v for v in visits if _hour(v, cfg) == h]))}
            for h in sorted(hours)
        ]
        report["days"][0] = {"day": days[0], **asdict(figures(day_figures(visits, cfg), visits))}
    return report


def _hour(v: Visit, cfg: Any) -> int:
    from server.domain.reports import local_time

    return local_time(v.arrived_at, cfg).hour


def _scope(who: Principal, branch: str | None) -> frozenset[str] | None:
    verdict = decide(who, Action.OUTCOME_LIST, AccessFacts(claim_branch=branch))
    if not verdict:
        raise HTTPException(403, verdict.reason)
    if branch is not None:
        return frozenset({branch})
    return verdict.branches


def _range(since: date | None, until: date | None, today: str) -> tuple[date, date]:
    end = until or since or (date.fromisoformat(today) - timedelta(days=1))
    start = since or end
    if end < start:
        raise HTTPException(422, "`to` is before `from`")
    if (end - start).days >= MAX_DAYS:
        raise HTTPException(422, f"at most {MAX_DAYS} days in one report")
    return start, end


@router.get("/api/reports", summary="Service-level report (default: yesterday)")
async def report(
    request: Request,
    who: Annotated[Principal, Depends(current_principal)],
    branch: Branch = None,
    since: Annotated[LocalDate | None, Query(alias="from")] = None,
    until: Annotated[LocalDate | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    store = _store(request)
    today = day_of(request.app.state.clock(), store.cfg)
    scope = _scope(who, branch)
    start, end = _range(since, until, today)
    body = await build_report(store, scope, start, end, today)
    body["today"] = today
    body["known_branches"] = [b for b in await store.branches() if scope is None or b in scope]
    return body


CSV_FIELDS = [
    "branch", "day", "hour", "arrivals", "served", "no_show", "cancelled", "left",
    "no_show_pct", "avg_lobby_wait", "p90_lobby_wait", "avg_floor_wait", "p90_floor_wait",
    "avg_total_wait", "p90_total_wait", "avg_handle", "service_level", "sl_met", "sl_base",
    "excluded",
]  # fmt: skip


def report_csv(body: dict[str, Any]) -> str:
    """One row per day (and per hour of a single day), then the totals; the formula last."""
    out = io.StringIO()
    writer = SpreadsheetCsv(out, CSV_FIELDS)
    writer.writeheader()
    branch = ",".join(body["branches"]) if body["branches"] else "all"
    for row in body["days"]:
        writer.writerow(_csv_row(branch, row, row["day"], ""))
    for row in body.get("hours", []):
        writer.writerow(_csv_row(branch, row, body["from"], str(row["hour"])))
    writer.writerow(_csv_row(branch, body["totals"], f"{body['from']}..{body['to']}", "total"))
    out.write(f'"# {body["formula"]}"\r\n')
    return out.getvalue()


def _csv_row(branch: str, row: dict[str, Any], day: str, hour: str) -> dict[str, Any]:
    values = {k: row.get(k) for k in CSV_FIELDS}
    values.update(branch=branch, day=day, hour=hour)
    for key, value in values.items():
        if isinstance(value, float):
            values[key] = round(value, 4 if key in ("service_level", "no_show_pct") else 1)
    return values


@router.get("/api/reports.csv", summary="The same report as CSV (spreadsheet-safe)")
async def report_as_csv(
    request: Request,
    who: Annotated[Principal, Depends(current_principal)],
    branch: Branch = None,
    since: Annotated[LocalDate | None, Query(alias="from")] = None,
    until: Annotated[LocalDate | None, Query(alias="to")] = None,
) -> Response:
    body = await report(request, who, branch, since, until)
    name = f"loket-report-{body['branches'][0] if body['branches'] else 'all'}-{body['from']}"
    return Response(
        report_csv(body),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
