"""Reports from a scripted day of visit events: every figure checked against the one
worked out by hand (below, visit by visit), then the same day through the daily rollup
(stored as a row, merged) and the CSV."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import UTC, datetime

import pytest

from server.api.reports import report_csv
from server.domain.reports import (
    DayFigures,
    EventRow,
    ReportConfig,
    by_hour,
    day_figures,
    day_of,
    figures,
    fold_all,
    formula,
    merge,
    percentile_hist,
)

CFG = ReportConfig(target_wait=900.0, short_abandon=60.0, utc_offset=7 * 3600)
ids = itertools.count()


def at(hhmmss: str) -> float:
    """Local time (WIB) on 2026-12-01 as unix time."""
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return datetime(2026, 12, 1, h - 7, m, s, tzinfo=UTC).timestamp()


def ev(visit: str, kind: str, when: str, **kw: str) -> EventRow:
    return EventRow(f"e{next(ids):04d}", at(when), kind, "jkt01", visit, **kw)


DAY = [
    # V1, ticket B-001: lobby 6 min, floor 2 min, total 8 min (within 15), Siti 10 min.
    ev("v1", "arrived", "09:00:00", number="B-001", category="B"),
    ev("v1", "called", "09:05:00"),
    ev("v1", "served", "09:06:00"),
    ev("v1", "checked_in", "09:06:00"),
    ev("v1", "assigned", "09:08:00", cso_id="siti"),
    ev("v1", "session_ended", "09:18:00", cso_id="siti", detail="completed"),
    ev("v1", "visit_ended", "09:18:00", detail="completed"),
    # V2, B-002: lobby 16 min, floor 4 min, total 20 (over the target), Budi 15 min.
    ev("v2", "arrived", "09:10:00", number="B-002", category="B"),
    ev("v2", "called", "09:25:00"),
    ev("v2", "served", "09:26:00"),
    ev("v2", "checked_in", "09:26:00"),
    ev("v2", "assigned", "09:30:00", cso_id="budi"),
    ev("v2", "session_ended", "09:45:00", cso_id="budi", detail="cso_ended"),
    ev("v2", "visit_ended", "09:45:00", detail="cso_ended"),
    # V3, B-003: called, missed, recalled, a no-show 21.5 min after arriving (counted).
    ev("v3", "arrived", "09:20:00", number="B-003", category="B"),
    ev("v3", "called", "09:30:00"),
    ev("v3", "missed", "09:31:30"),
    ev("v3", "called", "09:40:00"),
    ev("v3", "no_show", "09:41:30"),
    # V4, B-004: cancelled after 30 s: a short abandon, left out of the service level.
    ev("v4", "arrived", "10:05:00", number="B-004", category="B"),
    ev("v4", "cancelled", "10:05:30"),
    # V5: no ticket, straight to a free booth: floor 2 min = total, Siti 10 min.
    ev("v5", "checked_in", "10:10:00"),
    ev("v5", "assigned", "10:12:00", cso_id="siti"),
    ev("v5", "session_ended", "10:22:00", cso_id="siti", detail="completed"),
    ev("v5", "visit_ended", "10:22:00", detail="completed"),
    # V6, P-001: reached the booth after 2 min, left before any officer (10 min: counted).
    ev("v6", "arrived", "10:30:00", number="P-001", category="P"),
    ev("v6", "called", "10:31:00"),
    ev("v6", "served", "10:32:00"),
    ev("v6", "checked_in", "10:32:00"),
    ev("v6", "visit_ended", "10:40:00", detail="booth_left"),
]


@pytest.fixture
def visits() -> list:  # type: ignore[type-arg]
    return list(fold_all(DAY).values())


def test_a_scripted_day_gives_the_hand_computed_figures(visits) -> None:  # type: ignore[no-untyped-def]
    f = figures(day_figures(visits, CFG), visits)
    assert (f.arrivals, f.served, f.no_show, f.cancelled, f.left) == (6, 3, 1, 1, 1)
    assert f.no_show_pct == pytest.approx(1 / 6)
    # Lobby: V1 360, V2 960, V6 120 s. Floor: V1 120, V2 240, V5 120. Total: 480, 1200, 120.
    # p90 is the nearest rank: the 3rd of 3 (ceil(0.9 x 3) = 3), the largest here.
    assert f.avg_lobby_wait == pytest.approx(480) and f.p90_lobby_wait == 960
    assert f.avg_floor_wait == pytest.approx(160) and f.p90_floor_wait == 240
    assert f.avg_total_wait == pytest.approx(600) and f.p90_total_wait == 1200
    assert f.avg_handle == pytest.approx(700)  # (600 + 900 + 600) / 3
    # Service level: V1 and V5 within 15 min, of 6 arrivals less V4's 30 s cancel = 2 / 5.
    assert (f.sl_met, f.sl_base, f.excluded) == (2, 5, 1)
    assert f.service_level == pytest.approx(0.4)
    day = day_figures(visits, CFG)
    assert day.officers == {"siti": [2, 1200.0], "budi": [1, 900.0]}
    assert day.outcomes == {
        "unknown|completed": 2, "unknown|cso_ended": 1, "unknown|no_show": 1,
        "unknown|cancelled": 1, "unknown|booth_left": 1,
    }  # fmt: skip
    assert "15 min" in formula(CFG) and "60 s" in formula(CFG)


def test_by_hour_and_by_day(visits) -> None:  # type: ignore[no-untyped-def]
    assert {day_of(v.arrived_at, CFG) for v in visits} == {"2026-12-01"}
    hours = by_hour(visits, CFG)
    assert sorted(hours) == [9, 10]
    nine, ten = figures(hours[9]), figures(hours[10])
    assert (nine.arrivals, nine.served, nine.no_show) == (3, 2, 1)
    assert nine.service_level == pytest.approx(1 / 3)  # V1 of V1, V2, V3
    assert (ten.arrivals, ten.served, ten.excluded) == (3, 1, 1)
    assert ten.service_level == pytest.approx(1 / 2)  # V5 of V5, V6 (V4 left out)


def test_the_rollup_row_merges_to_the_same_figures(visits) -> None:  # type: ignore[no-untyped-def]
    half = len(visits) // 2
    rows = [day_figures(visits[:half], CFG), day_figures(visits[half:], CFG)]
    stored = [DayFigures.from_row(json.loads(json.dumps(r.to_row()))) for r in rows]
    whole, merged = day_figures(visits, CFG), merge(stored)
    assert merged.to_row() == whole.to_row()
    exact, binned = figures(whole, visits), figures(merged)
    assert binned.service_level == exact.service_level
    assert binned.avg_total_wait == exact.avg_total_wait
    for name in ("lobby", "floor", "total"):  # from 15 s histograms: within a bucket
        binned_p90 = getattr(binned, f"p90_{name}_wait")
        assert 0 <= binned_p90 - getattr(exact, f"p90_{name}_wait") <= 15
    assert percentile_hist({}, 0.9) is None


def test_absorbing_in_place_leaves_the_parts_alone_and_sums_alike(visits) -> None:  # type: ignore[no-untyped-def]
    parts = [day_figures([v], CFG) for v in visits]
    before = [p.to_row() for p in parts]
    summed = merge(parts)  # one accumulator, absorbed in place
    assert summed.to_row() == day_figures(visits, CFG).to_row()
    assert [p.to_row() for p in parts] == before  # no part was changed or aliased
    summed.officers.clear(), summed.outcomes.clear(), summed.hist["total"].clear()
    assert [p.to_row() for p in parts] == before
    assert parts[0].merge(parts[1]).to_row() == merge(parts[:2]).to_row()


def test_events_fold_the_same_in_any_order_of_arrival(visits) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(reversed(DAY))
    assert list(fold_all(shuffled).values()) == visits


def test_the_csv_is_a_spreadsheet_safe_table_with_the_formula() -> None:
    body = {
        "branches": ["=cmd|' /C calc'!A0"], "from": "2026-12-01", "to": "2026-12-01",
        "formula": formula(CFG),
        "days": [{"day": "2026-12-01", "arrivals": 6, "service_level": 0.4}],
        "hours": [{"hour": 9, "arrivals": 3}],
        "totals": {"arrivals": 6, "service_level": 0.4},
    }  # fmt: skip
    text = report_csv(body)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:4] == ["branch", "day", "hour", "arrivals"]
    assert rows[1][0].startswith("'=")  # a branch name cannot become a formula
    assert rows[3][2] == "total" and rows[3][3] == "6"
    assert rows[-1][0].startswith("# service level =")
