"""Reports over a year of a region (issue 24): 300 branches x 365 days x ~27 visits a day,
~3 million visits, on SQLite and on PostgreSQL. Goal: a report page's load p95 <= 2 s.

What is loaded: the `visits` table (what the floor's visit events fold into; the events
themselves are not generated here: a report never reads them) with synthetic days, then
the daily rollups computed from them once (what the first report of a closed day does;
its time is printed). Then each page the reports page asks for, 20 times: one branch's
yesterday (every visit, exact percentiles, by hour), one branch's last 30 days and year,
all branches' yesterday, last 30 days and year. Each is `build_report` plus its JSON, the
work of GET /api/reports. Baseline, in the same run: a bare SELECT of the same rollup rows
(and for single days the same visits) with their JSON parsed: the ratio says what the
figures cost on top of reading them.

    uv run --frozen python bench/reports_bench.py --db sqlite [--branches 300 --days 365]
    uv run --frozen python bench/reports_bench.py --db postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr
from sqlalchemy import insert, select, text

from server.adapters.sql import migrate
from server.adapters.sql.engine import make_engine
from server.adapters.sql.front import FrontStore, report_days, visits
from server.api.reports import build_report
from server.domain.reports import ReportConfig, day_bounds
from server.settings import Settings

CFG = ReportConfig()
REASONS = ("completed",) * 12 + ("cso_ended", "booth_left")
TYPES = ("resignation", "termination", "retirement", "death", "disability")


def day_rows(branch: str, day: str, per_day: int, rng: random.Random) -> list[dict[str, Any]]:
    start, _ = day_bounds(day, CFG)
    rows = []
    for i in range(per_day):
        arrived = start + 8 * 3600 + rng.uniform(0, 7 * 3600)
        lobby = rng.expovariate(1 / 420)
        floor = rng.expovariate(1 / 90)
        fate = rng.random()
        outcome = "no_show" if fate < 0.06 else "cancelled" if fate < 0.08 else "served"
        served = outcome == "served"
        handle = rng.uniform(400, 900) if served else 0.0
        rows.append({
            "visit_id": f"{branch}-{day}-{i}", "branch": branch, "day": day,
            "arrived_at": arrived, "number": f"B-{i + 1:03d}", "category": "B",
            "called_at": arrived + lobby - 60, "calls": 1,
            "reached_booth_at": arrived + lobby if served else None,
            "assigned_at": arrived + lobby + floor if served else None,
            "ended_at": arrived + lobby + floor + handle,
            "outcome": outcome, "end_reason": rng.choice(REASONS) if served else None,
            "cso_id": f"{branch}-cso{rng.randrange(3)}" if served else None,
            "handle_s": handle, "session_open_at": None, "claim_id": None,
            "claim_type": rng.choice(TYPES),
        })  # fmt: skip
    return rows


@contextlib.asynccontextmanager
async def database(kind: str, tmp: Path) -> AsyncIterator[Settings]:
    if kind == "sqlite":
        yield Settings(data_dir=tmp, jwt_secret=SecretStr("bench-" + "x" * 32))
        return
    from tests.support.postgres import create_database, postgres_cluster

    with postgres_cluster() as cluster:
        url = await create_database(cluster)
        yield Settings(data_dir=tmp, jwt_secret=SecretStr("bench-" + "x" * 32), database_url=url)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(q * len(ordered) + 0.5) - 1)]


async def run(kind: str, branches: int, days: int, per_day: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with database(kind, Path(tmp)) as settings:
            await migrate.upgrade(settings)
            engine = make_engine(settings)
            store = FrontStore(engine, CFG)
            names = [f"b{n:03d}" for n in range(branches)]
            today = date.today()
            all_days = [(today - timedelta(days=d)).isoformat() for d in range(days, 0, -1)]
            rng = random.Random(24)
            started = time.perf_counter()
            total = 0
            for day in all_days:
                rows = [r for b in names for r in day_rows(b, day, per_day, rng)]
                async with engine.begin() as conn:
                    await conn.execute(insert(visits), rows)
                total += len(rows)
            load_s = time.perf_counter() - started
            if kind == "postgres":
                async with engine.begin() as conn:
                    await conn.execute(text("ANALYZE visits"))
            started = time.perf_counter()
            for i in range(0, len(all_days), 15):  # a first report of every closed day
                await store.rollups(None, all_days[i : i + 15])
            rollup_s = time.perf_counter() - started
            yesterday = date.fromisoformat(all_days[-1])
            cases = {
                "one branch, yesterday": ({names[0]}, yesterday, yesterday),
                "one branch, 30 days": ({names[0]}, yesterday - timedelta(29), yesterday),
                "one branch, a year": ({names[0]}, yesterday - timedelta(days - 1), yesterday),
                "all branches, yesterday": (None, yesterday, yesterday),
                "all branches, 30 days": (None, yesterday - timedelta(29), yesterday),
                "all branches, a year": (None, yesterday - timedelta(days - 1), yesterday),
            }
            out: dict[str, Any] = {}
            for name, (scope, start, end) in cases.items():
                loads, bare = [], []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    body = await build_report(
                        store, frozenset(scope) if scope else None, start, end, today.isoformat()
                    )
                    json.dumps(body)
                    loads.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    await bare_read(engine, scope, start, end)
                    bare.append(time.perf_counter() - t0)
                out[name] = {
                    "p50_ms": round(1000 * pct(loads, 0.5), 1),
                    "p95_ms": round(1000 * pct(loads, 0.95), 1),
                    "bare_read_p95_ms": round(1000 * pct(bare, 0.95), 1),
                    "ratio_p95": round(pct(loads, 0.95) / max(pct(bare, 0.95), 1e-6), 1),
                    "arrivals": body["totals"]["arrivals"],
                }
            await store.close()
            await engine.dispose()
    return {
        "db": kind, "branches": branches, "days": days, "visits": total,
        "load_visits_s": round(load_s, 1), "first_rollups_s": round(rollup_s, 1),
        "pages": out, "goal_p95_ms": 2000,
    }  # fmt: skip


async def bare_read(engine: Any, scope: set[str] | None, start: date, end: date) -> None:
    """The same rows a report reads, fetched and parsed, nothing computed."""
    days = [(start + timedelta(d)).isoformat() for d in range((end - start).days + 1)]
    async with engine.connect() as conn:
        if start == end:
            query = select(visits).where(visits.c.day == days[0])
            if scope:
                query = query.where(visits.c.branch.in_(sorted(scope)))
            (await conn.execute(query)).all()
            return
        query = select(report_days.c.figures).where(report_days.c.day.in_(days))
        if scope:
            query = query.where(report_days.c.branch.in_(sorted(scope)))
        for (figures,) in (await conn.execute(query)).all():
            json.loads(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--branches", type=int, default=300)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=27, help="visits per branch and day")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    result = asyncio.run(run(args.db, args.branches, args.days, args.per_day, args.repeat))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
