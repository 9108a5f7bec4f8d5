"""Front of house on SQL: visit events, the visits and daily rollups derived from them, and
the waiting rooms' display keys (migration 0007).

`ticket_events` is the source of truth: one row per step of a visit, written exactly once
by the floor's outbox (the effect id is the key: a retried or replayed write finds it and
changes nothing). `visits` (one row per visit, the fold of its events) and `report_days`
(one row per branch and local day, the figures reports merge) are derived and kept in the
same transaction as each event; both are recomputed from the events by `rebuild()`
(`loket reports rebuild`), so a rollup can never drift from what was recorded. A day's
rollup is computed when a report first asks for that (closed) day, and dropped again if a
late event of that day arrives.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields, replace
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.adapters.sql.engine import readonly
from server.adapters.sql.records import Writer, writer_for
from server.adapters.sql.tables import booths, claims, metadata
from server.domain.reports import (
    DayFigures,
    EventRow,
    ReportConfig,
    Visit,
    day_figures,
    day_of,
    fold,
)

ticket_events = Table(
    "ticket_events",
    metadata,
    Column("event_id", String(40), primary_key=True),
    Column("at", Float, nullable=False),  # unix time of the decision
    Column("kind", String(24), nullable=False),
    Column("branch", String(32), nullable=False),
    Column("visit_id", String(40), nullable=False, index=True),
    Column("ticket_id", String(40), nullable=True),
    Column("number", String(8), nullable=True),
    Column("category", String(4), nullable=True),
    Column("booth_id", String(64), nullable=True),
    Column("cso_id", String(64), nullable=True),
    Column("session_id", String(64), nullable=True),
    Column("claim_id", String(32), nullable=True),
    Column("actor", String(64), nullable=True),
    Column("detail", String(200), nullable=True),
)

visits = Table(
    "visits",
    metadata,
    Column("visit_id", String(40), primary_key=True),
    Column("branch", String(32), nullable=False),
    Column("day", String(10), nullable=False),  # local date of arrival
    Column("arrived_at", Float, nullable=False),
    Column("number", String(8), nullable=True),
    Column("category", String(4), nullable=True),
    Column("called_at", Float, nullable=True),
    Column("calls", Integer, nullable=False),
    Column("reached_booth_at", Float, nullable=True),
    Column("assigned_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("end_reason", String(32), nullable=True),
    Column("cso_id", String(64), nullable=True),
    Column("handle_s", Float, nullable=False),
    Column("session_open_at", Float, nullable=True),
    Column("claim_id", String(32), nullable=True),
    Column("claim_type", String(16), nullable=True),
    Index("ix_visits_day_branch", "day", "branch"),
)

report_days = Table(
    "report_days",
    metadata,
    Column("branch", String(32), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("figures", Text, nullable=False),  # DayFigures.to_row(), JSON
    Column("computed_at", Float, nullable=False),
)

displays = Table(
    "displays",
    metadata,
    Column("display_id", String(64), primary_key=True),
    Column("branch", String(32), nullable=False, index=True),
    Column("label", String(128), nullable=False),
    Column("secret_hash", String(64), nullable=False),  # SHA-256 of a 32-byte random key
    Column("revoked", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

ALL = "*"  # report_days: the marker of a day rolled up for every branch
_VISIT_FIELDS = [f.name for f in fields(Visit)]
_EVENT_FIELDS = [f.name for f in fields(EventRow)]
_P = bindparam
_EVENT_EXISTS = select(ticket_events.c.event_id).where(ticket_events.c.event_id == _P("eid"))
_VISIT = select(visits).where(visits.c.visit_id == _P("vid"))
_CLAIM_TYPE = select(claims.c.claim_type).where(claims.c.claim_id == _P("cid"))


def _visit(row: Any) -> Visit:
    return Visit(**{name: row[name] for name in _VISIT_FIELDS})


def _visit_row(v: Visit, cfg: ReportConfig) -> dict[str, Any]:
    return {**asdict(v), "day": day_of(v.arrived_at, cfg)}


def apply_events(conn: Connection, events: Sequence[EventRow], cfg: ReportConfig) -> int:
    """Write these events (those not written yet) and fold each into its visit, in one
    transaction (the caller's). Returns how many were new."""
    new = 0
    for e in events:
        if conn.execute(_EVENT_EXISTS, {"eid": e.event_id}).first() is not None:
            continue  # written before (a retry, a second leader): exactly once
        conn.execute(insert(ticket_events), [asdict(e)])
        new += 1
        row = conn.execute(_VISIT, {"vid": e.visit_id}).mappings().first()
        before = _visit(row) if row else None
        after = fold(before, e)
        if after.claim_id and after.claim_type is None:
            found = conn.execute(_CLAIM_TYPE, {"cid": after.claim_id}).first()
            if found is not None:
                after = replace(after, claim_type=found[0])
        values = _visit_row(after, cfg)
        if before is None:
            conn.execute(insert(visits), [values])
        else:
            conn.execute(update(visits).where(visits.c.visit_id == e.visit_id).values(values))
        # A day already rolled up got a late event: drop its rollup, recomputed when asked.
        touched = {(after.branch, values["day"]), (ALL, values["day"])}
        if before is not None:
            day = day_of(before.arrived_at, cfg)
            touched |= {(before.branch, day), (ALL, day)}
        for branch, day in touched:
            where = and_(report_days.c.branch == branch, report_days.c.day == day)
            conn.execute(delete(report_days).where(where))
    return new


class FrontStore:
    """The front of house's tables, for the outbox writer, the reports and the CLI."""

    def __init__(self, engine: AsyncEngine, cfg: ReportConfig, writer: Writer | None = None):
        self._engine = engine
        self._reader = readonly(engine)
        self._writer = writer or writer_for(engine)
        self.cfg = cfg

    async def close(self) -> None:
        await self._writer.close()

    async def write_events(self, events: Sequence[EventRow]) -> int:
        return await self._writer.run(lambda conn: apply_events(conn, events, self.cfg))

    # --- reading --------------------------------------------------------------------------

    async def visits_of(self, branches: Iterable[str] | None, days: Sequence[str]) -> list[Visit]:
        query = select(visits).where(visits.c.day.in_(list(days)))
        if branches is not None:
            query = query.where(visits.c.branch.in_(sorted(branches)))
        async with self._reader.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_visit(r) for r in rows]

    async def branches(self) -> list[str]:
        """The branches with booths (what a report's branch picker offers)."""
        async with self._reader.connect() as conn:
            rows = (await conn.execute(select(booths.c.branch).distinct())).all()
        return sorted(r[0] for r in rows)

    async def rollups(
        self, branches: Iterable[str] | None, days: Sequence[str]
    ) -> dict[tuple[str, str], DayFigures]:
        """The stored rollups of these (closed) days; missing ones are computed from the
        visits now and stored. A day rolled up for every branch carries a marker row
        (branch `*`), so a region's report knows it has them all without scanning visits;
        a late event of that day removes the marker with the branch's rollup."""
        wanted = sorted(branches) if branches is not None else None
        query = select(report_days).where(report_days.c.day.in_(list(days)))
        if wanted is not None:
            query = query.where(report_days.c.branch.in_([*wanted, ALL]))
        async with self._reader.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        complete = {r["day"] for r in rows if r["branch"] == ALL}
        found = {
            (r["branch"], r["day"]): DayFigures.from_row(json.loads(r["figures"]))
            for r in rows
            if r["branch"] != ALL
        }
        if wanted is None:
            missing = [d for d in days if d not in complete]
        else:
            missing = [d for d in days if d not in complete
                       and any((b, d) not in found for b in wanted)]  # fmt: skip
        if missing:
            found.update(await self._compute(wanted, missing, found))
        if wanted is not None:
            found = {k: v for k, v in found.items() if k[0] in wanted}
        return found

    async def _compute(
        self, branches: list[str] | None, days: list[str], have: dict[tuple[str, str], Any]
    ) -> dict[tuple[str, str], DayFigures]:
        rows = await self.visits_of(branches, days)
        grouped: dict[tuple[str, str], list[Visit]] = {}
        for v in rows:
            grouped.setdefault((v.branch, day_of(v.arrived_at, self.cfg)), []).append(v)
        fresh = {key: day_figures(vs, self.cfg) for key, vs in grouped.items() if key not in have}
        now = time.time()
        values = [
            {"branch": b, "day": d, "figures": json.dumps(f.to_row()), "computed_at": now}
            for (b, d), f in fresh.items()
        ]
        if branches is None:  # every branch of these days is rolled up now
            values += [{"branch": ALL, "day": d, "figures": "{}", "computed_at": now} for d in days]

        def store(conn: Connection) -> None:
            for value in values:
                where = and_(
                    report_days.c.branch == value["branch"], report_days.c.day == value["day"]
                )
                conn.execute(delete(report_days).where(where))
            if values:
                conn.execute(insert(report_days), values)

        await self._writer.run(store)
        return fresh

    async def rebuild(self) -> tuple[int, int]:
        """Recompute every visit from the events and drop every rollup: (events, visits)."""

        def work(conn: Connection) -> tuple[int, int]:
            rows = conn.execute(select(ticket_events)).mappings().all()
            events = [EventRow(**{k: r[k] for k in _EVENT_FIELDS}) for r in rows]
            folded: dict[str, Visit] = {}
            for e in sorted(events, key=lambda e: (e.at, e.event_id)):
                folded[e.visit_id] = fold(folded.get(e.visit_id), e)
            types = dict(conn.execute(select(claims.c.claim_id, claims.c.claim_type)).all())
            conn.execute(delete(report_days))
            conn.execute(delete(visits))
            values = []
            for v in folded.values():
                row = _visit_row(v, self.cfg)
                if v.claim_id and row["claim_type"] is None:
                    row["claim_type"] = types.get(v.claim_id)
                values.append(row)
            for start in range(0, len(values), 5000):
                conn.execute(insert(visits), values[start : start + 5000])
            return len(events), len(values)

        return await self._writer.run(work)


# --- display keys ---------------------------------------------------------------------------

DISPLAY_KEY_PREFIX = "lkd_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_display_key(key: str) -> tuple[str, str] | None:
    """`lkd_<display id>.<secret>` -> (id, secret); None if it is not one."""
    if not key.startswith(DISPLAY_KEY_PREFIX) or "." not in key or len(key) > 256:
        return None
    display_id, _, secret = key.removeprefix(DISPLAY_KEY_PREFIX).partition(".")
    return (display_id, secret) if display_id and secret else None


class Displays:
    """The waiting rooms' display keys: a random secret per display, kept hashed (a
    32-byte random key needs no slow hash), revocable."""

    def __init__(self, engine: AsyncEngine, writer: Writer | None = None) -> None:
        self._reader = readonly(engine)
        self._writer = writer or writer_for(engine)

    async def close(self) -> None:
        await self._writer.close()

    async def enrol(self, branch: str, label: str, display_id: str | None = None) -> str:
        """A new display (or a new key for `display_id`): returns the key, shown once."""
        display_id = display_id or f"{branch}-d{secrets.token_hex(3)}"
        secret = secrets.token_urlsafe(32)
        row = {"display_id": display_id, "branch": branch, "label": label,
               "secret_hash": _hash(secret), "revoked": 0, "created_at": time.time()}  # fmt: skip

        def write(conn: Connection) -> None:
            conn.execute(delete(displays).where(displays.c.display_id == display_id))
            conn.execute(insert(displays), [row])

        await self._writer.run(write)
        return f"{DISPLAY_KEY_PREFIX}{display_id}.{secret}"

    async def authenticate(self, key: str) -> tuple[str, str, str] | None:
        """(display id, branch, label) of a valid, unrevoked key; else None."""
        parts = split_display_key(key)
        if parts is None:
            return None
        query = select(displays).where(displays.c.display_id == parts[0])
        async with self._reader.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if (
            row is None
            or row["revoked"]
            or not hmac.compare_digest(row["secret_hash"], _hash(parts[1]))
        ):
            return None
        return row["display_id"], row["branch"], row["label"]

    async def list(self) -> list[dict[str, Any]]:
        query = select(displays).order_by(displays.c.branch, displays.c.display_id)
        async with self._reader.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [{k: r[k] for k in ("display_id", "branch", "label", "revoked")} for r in rows]

    async def revoke(self, display_id: str) -> bool:
        def write(conn: Connection) -> bool:
            done = conn.execute(
                update(displays).where(displays.c.display_id == display_id).values(revoked=1)
            )
            return bool(done.rowcount)

        return await self._writer.run(write)
