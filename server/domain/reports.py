"""Service-level reports from the recorded visit events: pure aggregation, no I/O.

The source of truth is `ticket_events` (one row per step of a visit, written exactly once
by the floor's outbox). Everything here is derived from it and can be recomputed from it
at any time (`loket reports rebuild`):
- a `Visit` is the fold of one visit's events (`fold`): when the participant arrived (took
  a ticket, or checked in at a booth directly), was called, reached the booth, reached an
  officer, and left, and how it ended;
- a `DayFigures` is one branch's day of visits (`day_figures`), the rollup a year of
  reports is read from (`report_days`); figures over many days merge them (`merge`).

Service level (the definition used here, as Genesys Cloud and Qmatic Orchestra define it):
    service level = tickets served within the target wait
                    / (tickets offered - tickets abandoned within the short-abandon time)
where a ticket is offered when it arrives, served when an officer takes its booth, its wait
runs from arrival to that moment (lobby and floor together), and a ticket that ended
without service (no-show, cancelled, left the booth) within `short_abandon` seconds of
arriving is left out of both counts (Genesys: "short abandons" excluded from "offered";
Qmatic: "no-shows under N seconds are not counted"). A ticket served after the target, or
never served after waiting longer than `short_abandon`, counts against the level.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

SL_FORMULA = (
    "service level = tickets served within {target} min / (tickets arrived - tickets that "
    "ended unserved within {short} s of arriving)"
)
SL_SOURCE = (
    "as Genesys Cloud defines it (answered within the threshold / offered less short "
    "abandons) and Qmatic Orchestra reports it (customers served within the target waiting "
    "time; no-shows under N seconds excluded)"
)
BUCKET = 15.0  # seconds: histogram resolution of merged percentiles
MAX_BUCKET = 2880  # 12 hours


@dataclass(frozen=True, slots=True)
class ReportConfig:
    target_wait: float = 900.0  # seconds: the service level's target (15 min)
    short_abandon: float = 60.0  # seconds: unserved tickets ending sooner are excluded
    utc_offset: float = 7 * 3600.0  # local time of the branches (days and hours)


@dataclass(frozen=True, slots=True)
class EventRow:
    """One recorded step (server.floor.effects.TicketEvent, as stored)."""

    event_id: str
    at: float
    kind: str
    branch: str
    visit_id: str
    ticket_id: str | None = None
    number: str | None = None
    category: str | None = None
    booth_id: str | None = None
    cso_id: str | None = None
    session_id: str | None = None
    claim_id: str | None = None
    actor: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Visit:
    visit_id: str
    branch: str
    arrived_at: float  # the ticket's arrival, or the check-in of a participant with none
    number: str | None = None
    category: str | None = None
    called_at: float | None = None  # first call
    calls: int = 0
    reached_booth_at: float | None = None  # confirmed at the booth (or checked in directly)
    assigned_at: float | None = None  # first officer
    ended_at: float | None = None
    outcome: str = "waiting"  # served, no_show, cancelled, left, waiting, at_booth, with_officer
    end_reason: str | None = None  # the last session's end reason
    cso_id: str | None = None  # the officer who served it (the last one)
    handle_s: float = 0.0  # officers' time with it, every session
    session_open_at: float | None = None  # a session in progress (assigned, not yet ended)
    claim_id: str | None = None
    claim_type: str | None = None

    @property
    def lobby_wait(self) -> float | None:
        if self.reached_booth_at is None or self.number is None:
            return None
        return max(0.0, self.reached_booth_at - self.arrived_at)

    @property
    def floor_wait(self) -> float | None:
        if self.assigned_at is None or self.reached_booth_at is None:
            return None
        return max(0.0, self.assigned_at - self.reached_booth_at)

    @property
    def total_wait(self) -> float | None:
        return None if self.assigned_at is None else max(0.0, self.assigned_at - self.arrived_at)

    @property
    def served(self) -> bool:
        return self.assigned_at is not None


UNSERVED_ENDS = {"no_show": "no_show", "cancelled": "cancelled"}


def fold(visit: Visit | None, e: EventRow) -> Visit:
    """The visit after one more of its events (events of one visit, in order)."""
    v = visit or Visit(visit_id=e.visit_id, branch=e.branch, arrived_at=e.at)
    match e.kind:
        case "arrived":
            return replace(v, arrived_at=e.at, number=e.number, category=e.category,
                           claim_id=e.claim_id or v.claim_id, branch=e.branch)  # fmt: skip
        case "called" | "recalled":
            return replace(v, called_at=v.called_at or e.at, calls=v.calls + 1)
        case "transferred":
            return replace(v, branch=e.branch, category=e.category or v.category)
        case "served":
            return replace(v, reached_booth_at=e.at, outcome="at_booth")
        case "no_show" | "cancelled":
            return replace(v, ended_at=e.at, outcome=UNSERVED_ENDS[e.kind])
        case "checked_in":  # detail: the claim type, when the floor knows it
            first = v.reached_booth_at or e.at
            arrived = v.arrived_at if v.number else e.at
            return replace(v, reached_booth_at=first, arrived_at=arrived, outcome="at_booth",
                           claim_id=e.claim_id or v.claim_id,
                           claim_type=e.detail or v.claim_type)  # fmt: skip
        case "assigned":
            return replace(v, assigned_at=v.assigned_at or e.at, cso_id=e.cso_id,
                           session_open_at=e.at, outcome="with_officer")  # fmt: skip
        case "session_ended":
            held = e.at - v.session_open_at if v.session_open_at is not None else 0.0
            return replace(v, handle_s=v.handle_s + max(0.0, held), session_open_at=None,
                           end_reason=e.detail, cso_id=e.cso_id or v.cso_id)  # fmt: skip
        case "visit_ended":
            outcome = "served" if v.assigned_at is not None else "left"
            return replace(v, ended_at=e.at, outcome=outcome, end_reason=v.end_reason or e.detail)
    return v  # missed, recycled, released: the ticket waits on


def fold_all(events: Iterable[EventRow]) -> dict[str, Visit]:
    visits: dict[str, Visit] = {}
    for e in sorted(events, key=lambda e: (e.at, e.event_id)):
        visits[e.visit_id] = fold(visits.get(e.visit_id), e)
    return visits


def local_time(at: float, cfg: ReportConfig) -> datetime:
    return datetime.fromtimestamp(at, UTC) + timedelta(seconds=cfg.utc_offset)


def day_of(at: float, cfg: ReportConfig) -> str:
    return local_time(at, cfg).date().isoformat()


def day_bounds(day: str, cfg: ReportConfig) -> tuple[float, float]:
    """Unix times [start, end) of a local day."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(seconds=cfg.utc_offset)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


# --- figures ------------------------------------------------------------------------------


def _bucket(seconds: float) -> int:
    return min(MAX_BUCKET, int(seconds // BUCKET))


@dataclass
class DayFigures:
    """One branch's day (or any set of visits): counts, sums and histograms that merge."""

    arrivals: int = 0
    served: int = 0
    no_show: int = 0
    cancelled: int = 0
    left: int = 0  # checked in at a booth, left before an officer took it
    excluded: int = 0  # ended unserved within the short-abandon time
    sl_met: int = 0
    lobby_n: int = 0
    lobby_sum: float = 0.0
    floor_n: int = 0
    floor_sum: float = 0.0
    total_n: int = 0
    total_sum: float = 0.0
    handle_n: int = 0
    handle_sum: float = 0.0
    hist: dict[str, dict[int, int]] = field(
        default_factory=lambda: {"lobby": {}, "floor": {}, "total": {}}
    )
    officers: dict[str, list[float]] = field(default_factory=dict)  # cso -> [visits, seconds]
    outcomes: dict[str, int] = field(default_factory=dict)  # "claim type|reason" -> visits

    @property
    def sl_base(self) -> int:
        return self.arrivals - self.excluded

    def add(self, v: Visit, cfg: ReportConfig) -> None:
        self.arrivals += 1
        unserved_end = v.outcome in ("no_show", "cancelled", "left")
        if (
            unserved_end
            and v.ended_at is not None
            and v.ended_at - v.arrived_at < cfg.short_abandon
        ):
            self.excluded += 1
        if v.outcome == "no_show":
            self.no_show += 1
        elif v.outcome == "cancelled":
            self.cancelled += 1
        elif v.outcome == "left":
            self.left += 1
        for name, wait in (("lobby", v.lobby_wait), ("floor", v.floor_wait),
                           ("total", v.total_wait)):  # fmt: skip
            if wait is None:
                continue
            setattr(self, f"{name}_n", getattr(self, f"{name}_n") + 1)
            setattr(self, f"{name}_sum", getattr(self, f"{name}_sum") + wait)
            h = self.hist[name]
            h[_bucket(wait)] = h.get(_bucket(wait), 0) + 1
        if v.served:
            self.served += 1
            if (v.total_wait or 0.0) <= cfg.target_wait:
                self.sl_met += 1
            if v.cso_id:
                row = self.officers.setdefault(v.cso_id, [0.0, 0.0])
                row[0] += 1
                row[1] += v.handle_s
            self.handle_n += 1
            self.handle_sum += v.handle_s
        if v.outcome not in ("waiting", "at_booth", "with_officer"):
            key = f"{v.claim_type or 'unknown'}|{v.end_reason or v.outcome}"
            self.outcomes[key] = self.outcomes.get(key, 0) + 1

    def merge(self, other: DayFigures) -> DayFigures:
        """A new DayFigures of both (neither is changed)."""
        out = DayFigures()
        out.absorb(self)
        out.absorb(other)
        return out

    def absorb(self, other: DayFigures) -> None:
        """Add `other` into this one, in place. A report sums thousands of days into one:
        copying the sum so far at each step (as `merge` does) made that quadratic in the
        officers and outcomes it had gathered (a region's year took 28 s)."""
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("lobby", "floor", "total"):
            h = self.hist.setdefault(name, {})
            for b, n in other.hist.get(name, {}).items():
                h[b] = h.get(b, 0) + n
        for cso, (visits, seconds) in other.officers.items():
            row = self.officers.setdefault(cso, [0.0, 0.0])
            row[0] += visits
            row[1] += seconds
        for k, n in other.outcomes.items():
            self.outcomes[k] = self.outcomes.get(k, 0) + n

    # --- stored as a rollup row ---------------------------------------------------------

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(DayFigures)}
        row["hist"] = {k: {str(b): n for b, n in h.items()} for k, h in self.hist.items()}
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DayFigures:
        out = cls(**{f.name: row[f.name] for f in fields(DayFigures)
                     if f.name not in ("hist", "officers", "outcomes")})  # fmt: skip
        out.hist = {k: {int(b): int(n) for b, n in h.items()} for k, h in row["hist"].items()}
        out.officers = {k: [float(v[0]), float(v[1])] for k, v in row["officers"].items()}
        out.outcomes = {k: int(v) for k, v in row["outcomes"].items()}
        return out


def day_figures(visits: Iterable[Visit], cfg: ReportConfig) -> DayFigures:
    out = DayFigures()
    for v in visits:
        out.add(v, cfg)
    return out


_SUMMED = tuple(
    f.name for f in fields(DayFigures) if f.name not in ("hist", "officers", "outcomes")
)


def merge(days: Iterable[DayFigures]) -> DayFigures:
    out = DayFigures()
    for d in days:
        out.absorb(d)
    return out


def percentile_exact(values: list[float], q: float) -> float | None:
    """The nearest-rank q-quantile: the smallest value at least q of them do not exceed
    (a p90 wait is a wait 90 % of people did not wait longer than), exact."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def percentile_hist(hist: Mapping[int, int], q: float) -> float | None:
    """The nearest-rank q-quantile from a histogram of BUCKET-second buckets: within the
    bucket that holds it (interpolated there), so within BUCKET seconds of the exact one."""
    total = sum(hist.values())
    if total == 0:
        return None
    target = q * total
    seen = 0
    for b in sorted(hist):
        n = hist[b]
        if seen + n >= target:
            return (b + (target - seen) / n) * BUCKET
        seen += n
    return (max(hist) + 1) * BUCKET


@dataclass(frozen=True)
class Figures:
    """What a report row shows."""

    arrivals: int
    served: int
    no_show: int
    cancelled: int
    left: int
    no_show_pct: float | None
    avg_lobby_wait: float | None
    avg_floor_wait: float | None
    avg_total_wait: float | None
    p90_lobby_wait: float | None
    p90_floor_wait: float | None
    p90_total_wait: float | None
    avg_handle: float | None
    service_level: float | None  # 0..1
    sl_met: int
    sl_base: int
    excluded: int


def _avg(total: float, n: int) -> float | None:
    return total / n if n else None


def figures(d: DayFigures, visits: list[Visit] | None = None) -> Figures:
    """A row's figures. With `visits` (one day, one branch: few), percentiles are exact;
    otherwise from the merged histograms."""

    def p90(name: str) -> float | None:
        if visits is not None:
            waits = [getattr(v, f"{name}_wait") for v in visits]
            return percentile_exact([w for w in waits if w is not None], 0.9)
        return percentile_hist(d.hist[name], 0.9)

    return Figures(
        arrivals=d.arrivals,
        served=d.served,
        no_show=d.no_show,
        cancelled=d.cancelled,
        left=d.left,
        no_show_pct=d.no_show / d.arrivals if d.arrivals else None,
        avg_lobby_wait=_avg(d.lobby_sum, d.lobby_n),
        avg_floor_wait=_avg(d.floor_sum, d.floor_n),
        avg_total_wait=_avg(d.total_sum, d.total_n),
        p90_lobby_wait=p90("lobby"),
        p90_floor_wait=p90("floor"),
        p90_total_wait=p90("total"),
        avg_handle=_avg(d.handle_sum, d.handle_n),
        service_level=d.sl_met / d.sl_base if d.sl_base > 0 else None,
        sl_met=d.sl_met,
        sl_base=d.sl_base,
        excluded=d.excluded,
    )


def by_hour(visits: Iterable[Visit], cfg: ReportConfig) -> dict[int, DayFigures]:
    """A day's visits by the local hour they arrived in."""
    hours: dict[int, DayFigures] = {}
    for v in visits:
        hours.setdefault(local_time(v.arrived_at, cfg).hour, DayFigures()).add(v, cfg)
    return hours


def formula(cfg: ReportConfig) -> str:
    target = cfg.target_wait / 60
    shown = f"{target:g}"
    return SL_FORMULA.format(target=shown, short=f"{cfg.short_abandon:g}")
