"""Example-based tests for server.dispatch: one behaviour per test."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable

import pytest

from server.dispatch import (
    AlreadyQueued,
    Assigned,
    BoothRequest,
    CsoProfile,
    CsoRetired,
    Dequeued,
    DispatchConfig,
    Dispatcher,
    DispatchError,
    InvalidTransition,
    NotInService,
    NotReservedFor,
    NotWaiting,
    Released,
    Requeued,
    ReservationLapsed,
    Reserved,
    ServiceTimes,
    UnknownBooth,
    UnknownCso,
)
from server.dispatch.eta import MIN_SAMPLE_S

CFG = DispatchConfig(
    reservation_timeout=15.0,
    grace_period=30.0,
    decline_cooldown=60.0,
    default_service_time=300.0,
    service_time_window=3,
)


def cso(
    cso_id: str,
    capacity: int = 1,
    *,
    branch: str = "JKT",
    pools: Iterable[str] = ("JKT",),
    skills: Iterable[str] = ("lang:id",),
) -> CsoProfile:
    return CsoProfile(cso_id, capacity, branch, frozenset(pools), frozenset(skills))


def booth(
    booth_id: str,
    *,
    branch: str = "JKT",
    priority: int = 0,
    needs: Iterable[str] = ("lang:id",),
) -> BoothRequest:
    return BoothRequest(booth_id, branch, priority, frozenset(needs))


def reserved_to(decisions: list, cso_id: str) -> list[str]:
    return [d.booth_id for d in decisions if isinstance(d, Reserved) and d.cso_id == cso_id]


@pytest.fixture
def d() -> Dispatcher:
    return Dispatcher(CFG)


# --------------------------------------------------------------------------- values


class TestValues:
    def test_config_defaults(self) -> None:
        c = DispatchConfig()
        assert (c.reservation_timeout, c.grace_period, c.decline_cooldown) == (15.0, 30.0, 60.0)
        assert (c.default_service_time, c.service_time_window) == (300.0, 50)

    @pytest.mark.parametrize(
        "kwargs",
        [{"reservation_timeout": 0}, {"grace_period": -1}, {"service_time_window": 0}],
    )
    def test_config_rejects_nonsense(self, kwargs: dict) -> None:
        with pytest.raises(ValueError):
            DispatchConfig(**kwargs)

    @pytest.mark.parametrize("capacity", [0, 7, -1, True, 2.0])
    def test_capacity_must_be_1_to_6(self, capacity: object) -> None:
        with pytest.raises(ValueError):
            CsoProfile("c", capacity, "JKT", frozenset({"JKT"}), frozenset())  # type: ignore[arg-type]

    def test_capacity_bounds_accepted(self) -> None:
        assert cso("a", 1).capacity == 1
        assert cso("a", 6).capacity == 6

    def test_str_instead_of_set_is_rejected(self) -> None:
        with pytest.raises(TypeError):
            CsoProfile("c", 1, "JKT", "JKT", frozenset())  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            BoothRequest("b", "JKT", 0, "lang:id")  # type: ignore[arg-type]

    def test_sets_are_coerced_to_frozensets(self) -> None:
        p = CsoProfile("c", 1, "JKT", {"JKT"}, {"lang:id"})  # type: ignore[arg-type]
        assert isinstance(p.pools, frozenset) and isinstance(p.skills, frozenset)

    def test_decisions_are_frozen(self) -> None:
        r = Reserved("b", "c", 1.0)
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.booth_id = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- reservation


class TestReservation:
    def test_booth_reserved_to_free_cso(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        out = d.enqueue(booth("b1"), 10.0)
        assert out == [Reserved("b1", "x", 25.0)]
        assert d.state_of("b1") == "reserved"
        assert d.cso_of("b1") == "x"
        assert d.booths_of("x") == ("b1",)
        assert d.waiting_count() == 0

    def test_waiting_booth_reserved_when_cso_arrives(self, d: Dispatcher) -> None:
        assert d.enqueue(booth("b1"), 0.0) == []
        assert d.state_of("b1") == "waiting"
        assert d.cso_of("b1") is None
        assert d.add_cso(cso("x"), 5.0) == [Reserved("b1", "x", 20.0)]

    def test_reservation_counts_against_capacity_immediately(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 2), 0.0)
        out = [*d.enqueue(booth("b1"), 1.0), *d.enqueue(booth("b2"), 2.0)]
        out += d.enqueue(booth("b3"), 3.0)
        assert reserved_to(out, "x") == ["b1", "b2"]
        assert d.state_of("b3") == "waiting"

    def test_accept_assigns(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("b1"), 0.0)
        assert d.accept("b1", "x", 3.0) == [Assigned("b1", "x")]
        assert d.state_of("b1") == "in_service"
        assert d.cso_of("b1") == "x"

    def test_accept_by_wrong_cso_or_twice_is_refused(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.add_cso(cso("y"), 0.0)
        d.enqueue(booth("b1"), 0.0)
        assert d.cso_of("b1") == "x"
        with pytest.raises(NotReservedFor):
            d.accept("b1", "y", 1.0)
        d.accept("b1", "x", 1.0)
        with pytest.raises(NotReservedFor):
            d.accept("b1", "x", 2.0)

    def test_late_accept_before_tick_is_honoured(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("b1"), 0.0)
        assert d.accept("b1", "x", 20.0) == [Assigned("b1", "x")]
        assert d.tick(20.0) == []


class TestDeclineAndExpiry:
    def test_decline_goes_to_next_cso(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.add_cso(cso("y"), 1.0)
        assert d.enqueue(booth("b1"), 2.0) == [Reserved("b1", "x", 17.0)]
        out = d.decline("b1", "x", 3.0)
        assert out == [ReservationLapsed("b1", "x", "declined"), Reserved("b1", "y", 18.0)]

    def test_decliner_is_excluded_for_the_cooldown(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("b1"), 0.0)
        assert d.decline("b1", "x", 1.0) == [ReservationLapsed("b1", "x", "declined")]
        assert d.state_of("b1") == "waiting"
        assert d.next_deadline() == 61.0
        assert d.tick(60.9) == []
        assert d.tick(61.0) == [Reserved("b1", "x", 76.0)]

    def test_expiry_goes_to_next_cso(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("b1"), 0.0)
        d.add_cso(cso("y"), 1.0)
        assert d.next_deadline() == 15.0
        assert d.tick(14.9) == []
        out = d.tick(15.0)
        assert out == [ReservationLapsed("b1", "x", "expired"), Reserved("b1", "y", 30.0)]

    def test_lapsed_booth_keeps_its_place_and_cso_takes_the_next(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("a"), 1.0)
        d.enqueue(booth("b"), 2.0)
        d.enqueue(booth("c"), 3.0)
        out = d.decline("a", "x", 4.0)
        assert out == [ReservationLapsed("a", "x", "declined"), Reserved("b", "x", 19.0)]
        assert d.position("a") == 0
        assert d.position("c") == 1
        # Another CSO arriving gets the lapsed booth first: it kept its place.
        assert reserved_to(d.add_cso(cso("y"), 5.0), "y") == ["a"]

    def test_decline_of_unreserved_booth_is_refused(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("b1", needs={"lang:en"}), 0.0)
        with pytest.raises(NotReservedFor):
            d.decline("b1", "x", 1.0)


# --------------------------------------------------------------------------- lost / paused


class TestLostCso:
    def _busy(self, d: Dispatcher) -> None:
        """x serves a (in service) and has b reserved; y is busy with z."""
        d.add_cso(cso("x", 2), 0.0)
        d.enqueue(booth("a"), 1.0)
        d.accept("a", "x", 2.0)
        d.enqueue(booth("b"), 3.0)
        d.add_cso(cso("y", 1), 4.0)
        d.enqueue(booth("z"), 5.0)
        d.accept("z", "y", 5.0)

    def test_lost_cso_drops_reservations_and_keeps_sessions(self, d: Dispatcher) -> None:
        self._busy(d)
        out = d.cso_lost("x", 10.0)
        assert out == [ReservationLapsed("b", "x", "cso_lost")]
        assert d.cso_state("x") == "lost"
        assert d.state_of("a") == "in_service" and d.cso_of("a") == "x"
        assert d.state_of("b") == "waiting"

    def test_reconnect_within_grace_keeps_booths(self, d: Dispatcher) -> None:
        self._busy(d)
        d.cso_lost("x", 10.0)
        d.add_cso(cso("x", 2), 30.0)
        assert d.cso_state("x") == "active"
        assert d.booths_of("x") == ("a",)  # b is cooling off for x
        assert d.tick(40.0) == []  # grace deadline was cancelled
        assert d.cso_of("a") == "x"

    def test_paused_cso_reconnecting_stays_paused_and_keeps_its_deadline(
        self, d: Dispatcher
    ) -> None:
        self._busy(d)
        d.pause_cso("x", 10.0)  # grace deadline 40
        d.cso_lost("x", 12.0)
        d.enqueue(booth("c"), 13.0)
        # Back on its break: nothing is offered, nothing lapses, the old deadline holds.
        assert d.add_cso(cso("x", 2), 20.0, paused=True) == []
        assert d.cso_state("x") == "paused" and d.next_deadline() == 40.0
        assert d.resume_cso("x", 21.0) == [Reserved("c", "x", 36.0)]

    def test_move_offers_the_booth_to_the_chosen_cso_first(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 1), 0.0)
        d.enqueue(booth("a"), 1.0)
        d.accept("a", "x", 2.0)
        d.add_cso(cso("y", 1), 3.0)
        d.add_cso(cso("z", 1), 3.0)  # longer idle than y would win a normal match
        out = d.move("a", "y", 5.0)
        assert out[:2] == [Requeued("a", "x"), Reserved("a", "y", 20.0)]
        with pytest.raises(NotInService):
            d.move("a", "z", 6.0)  # only a booth in service can be moved

    def test_move_to_a_full_cso_waits_at_the_front(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 1), 0.0)
        d.enqueue(booth("a"), 1.0)
        d.accept("a", "x", 2.0)
        d.pause_cso("x", 2.5)
        d.add_cso(cso("y", 1), 3.0)
        d.enqueue(booth("b"), 3.5)
        d.accept("b", "y", 4.0)
        assert d.move("a", "y", 5.0) == [Requeued("a", "x")]
        assert d.state_of("a") == "waiting" and d.position("a") == 0

    def test_past_grace_sessions_requeue_to_front_and_cso_retires(self, d: Dispatcher) -> None:
        self._busy(d)
        d.cso_lost("x", 10.0)
        d.enqueue(booth("vip", priority=9), 11.0)
        assert d.next_deadline() == 40.0
        out = d.tick(40.0)
        assert out == [Requeued("a", "x"), CsoRetired("x")]
        assert not d.has_cso("x")
        # a is ahead of everything, even the higher-priority earlier waiters.
        assert d.position("a") == 0
        assert d.position("b") == 2 and d.position("vip") == 1
        d.release("z", 41.0)
        assert d.cso_of("a") == "y"

    def test_requeued_booth_is_offered_at_once_to_a_free_cso(self, d: Dispatcher) -> None:
        self._busy(d)
        d.cso_lost("x", 10.0)
        d.add_cso(cso("w"), 11.0)  # takes b (lapsed from x)
        d.accept("b", "w", 12.0)
        d.add_cso(cso("v"), 12.0)
        out = d.tick(40.0)
        assert out == [Requeued("a", "x"), CsoRetired("x"), Reserved("a", "v", 55.0)]

    def test_several_requeued_keep_check_in_order_regardless_of_priority(
        self, d: Dispatcher
    ) -> None:
        d.add_cso(cso("x", 3), 0.0)
        d.enqueue(booth("p0", priority=0), 1.0)
        d.enqueue(booth("p5", priority=5), 2.0)
        d.enqueue(booth("p1", priority=1), 3.0)
        for b in ("p0", "p5", "p1"):
            d.accept(b, "x", 4.0)
        d.enqueue(booth("waiting-vip", priority=9), 5.0)
        d.cso_lost("x", 6.0)
        out = d.tick(36.0)
        assert out == [
            Requeued("p0", "x"),
            Requeued("p5", "x"),
            Requeued("p1", "x"),
            CsoRetired("x"),
        ]
        assert [d.position(b) for b in ("p0", "p5", "p1", "waiting-vip")] == [0, 1, 2, 3]

    def test_lost_reservation_excludes_cso_after_reconnect(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("b"), 0.0)
        d.cso_lost("x", 1.0)
        assert d.add_cso(cso("x"), 2.0) == []
        assert d.state_of("b") == "waiting"
        assert d.tick(61.0) == [Reserved("b", "x", 76.0)]

    def test_lost_twice_does_not_extend_grace(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.cso_lost("x", 1.0)
        d.cso_lost("x", 20.0)
        assert d.next_deadline() == 31.0
        assert d.tick(31.0) == [CsoRetired("x")]


class TestPausedCso:
    def test_pause_takes_no_new_booths_and_lapses_offers(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 2), 0.0)
        d.enqueue(booth("a"), 0.0)
        out = d.pause_cso("x", 1.0)
        assert out == [ReservationLapsed("a", "x", "declined")]
        assert d.cso_state("x") == "paused"
        assert d.enqueue(booth("b"), 2.0) == []

    def test_resume_within_grace_keeps_booths(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 2), 0.0)
        d.enqueue(booth("a"), 0.0)
        d.accept("a", "x", 1.0)
        d.pause_cso("x", 2.0)
        d.enqueue(booth("b"), 3.0)
        assert d.resume_cso("x", 10.0) == [Reserved("b", "x", 25.0)]
        assert d.tick(100.0) == [ReservationLapsed("b", "x", "expired")]
        assert d.cso_of("a") == "x"

    def test_paused_past_grace_requeues_but_stays_registered(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 2), 0.0)
        d.enqueue(booth("a"), 0.0)
        d.accept("a", "x", 1.0)
        d.pause_cso("x", 2.0)
        d.add_cso(cso("y"), 3.0)
        assert d.tick(32.0) == [Requeued("a", "x"), Reserved("a", "y", 47.0)]
        assert d.has_cso("x") and d.cso_state("x") == "paused"
        assert d.booths_of("x") == ()

    def test_add_cso_of_paused_cso_resumes_it(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.pause_cso("x", 1.0)
        d.enqueue(booth("a"), 2.0)
        assert d.add_cso(cso("x"), 3.0) == [Reserved("a", "x", 18.0)]

    def test_lost_cso_cannot_be_paused_or_resumed(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.cso_lost("x", 1.0)
        with pytest.raises(InvalidTransition):
            d.pause_cso("x", 2.0)
        with pytest.raises(InvalidTransition):
            d.resume_cso("x", 2.0)

    def test_paused_then_lost_keeps_the_earlier_deadline(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.pause_cso("x", 1.0)
        d.cso_lost("x", 10.0)
        assert d.next_deadline() == 31.0
        assert d.tick(31.0) == [CsoRetired("x")]


class TestRemoveCso:
    def test_logout_requeues_sessions_at_once(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 2), 0.0)
        d.enqueue(booth("a"), 0.0)
        d.accept("a", "x", 1.0)
        d.enqueue(booth("b"), 2.0)
        d.add_cso(cso("y", 1), 3.0)  # nothing waiting for y yet
        out = d.remove_cso("x", 4.0)
        assert out == [
            ReservationLapsed("b", "x", "cso_lost"),
            Requeued("a", "x"),
            CsoRetired("x"),
            Reserved("a", "y", 19.0),
        ]
        assert not d.has_cso("x")
        with pytest.raises(UnknownCso):
            d.booths_of("x")


# --------------------------------------------------------------------------- choice of CSO


class TestCsoChoice:
    def test_least_loaded_fraction_wins(self, d: Dispatcher) -> None:
        d.add_cso(cso("six", 6), 0.0)
        d.add_cso(cso("two", 2), 0.0)
        # Alternate so six ends up 2/6 and two ends up 1/2.
        for i in range(3):
            d.enqueue(booth(f"b{i}"), 1.0 + i)
        assert len(d.booths_of("six")) == 2 and len(d.booths_of("two")) == 1
        out = d.enqueue(booth("next"), 10.0)
        assert reserved_to(out, "six") == ["next"]  # 2/6 < 1/2

    def test_equal_fraction_prefers_lower_absolute_load(self, d: Dispatcher) -> None:
        d.add_cso(cso("four", 4), 0.0)
        d.add_cso(cso("two", 2), 0.0)
        for i in range(3):
            d.enqueue(booth(f"b{i}"), 1.0 + i)
        # four: 2/4, two: 1/2 - same fraction, two has the lower absolute load.
        assert len(d.booths_of("four")) == 2 and len(d.booths_of("two")) == 1
        assert reserved_to(d.enqueue(booth("next"), 10.0), "two") == ["next"]

    def test_least_loaded_then_longest_idle(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 2), 0.0)
        d.add_cso(cso("y", 2), 0.0)
        d.enqueue(booth("a"), 1.0)  # x: registered first, equal idle -> x
        assert d.cso_of("a") == "x"
        d.enqueue(booth("b"), 2.0)  # y is less loaded
        assert d.cso_of("b") == "y"
        d.accept("a", "x", 3.0)
        d.accept("b", "y", 3.0)
        d.release("b", 10.0)  # y idle since 10
        d.release("a", 20.0)  # x idle since 20
        assert d.cso_of(d.enqueue(booth("c"), 30.0)[0].booth_id) == "y"

    def test_idle_among_busy_means_least_recently_given_work(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 3), 0.0)
        d.add_cso(cso("y", 3), 0.0)
        d.enqueue(booth("a"), 1.0)  # -> x at 1
        d.enqueue(booth("b"), 2.0)  # -> y at 2
        assert (d.cso_of("a"), d.cso_of("b")) == ("x", "y")
        assert d.cso_of(d.enqueue(booth("c"), 3.0)[0].booth_id) == "x"

    def test_resume_does_not_count_pause_as_idle(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.add_cso(cso("y"), 5.0)
        d.pause_cso("x", 6.0)
        d.resume_cso("x", 7.0)
        assert reserved_to(d.enqueue(booth("a"), 8.0), "y") == ["a"]


# --------------------------------------------------------------------------- eligibility


class TestEligibility:
    def test_star_pool_serves_every_branch(self, d: Dispatcher) -> None:
        d.add_cso(cso("roam", pools={"*"}), 0.0)
        assert reserved_to(d.enqueue(booth("b", branch="SBY"), 1.0), "roam") == ["b"]

    def test_explicit_pools(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 3, pools={"JKT", "BDG"}), 0.0)
        assert reserved_to(d.enqueue(booth("bdg", branch="BDG"), 1.0), "x") == ["bdg"]
        assert d.enqueue(booth("sby", branch="SBY"), 2.0) == []
        assert d.state_of("sby") == "waiting"

    def test_cross_branch_booth_goes_to_pooled_cso_only(self, d: Dispatcher) -> None:
        d.add_cso(cso("home", branch="JKT", pools={"JKT"}), 0.0)
        d.add_cso(cso("pooled", branch="BDG", pools={"BDG", "SBY"}), 0.0)
        assert reserved_to(d.enqueue(booth("s", branch="SBY"), 1.0), "pooled") == ["s"]

    def test_skills_must_cover_needs(self, d: Dispatcher) -> None:
        d.add_cso(cso("id-only", skills={"lang:id"}), 0.0)
        d.add_cso(cso("claims", skills={"lang:id", "claim:death"}), 1.0)
        out = d.enqueue(booth("death", needs={"lang:id", "claim:death"}), 2.0)
        assert reserved_to(out, "claims") == ["death"]
        assert d.enqueue(booth("en", needs={"lang:en"}), 3.0) == []

    def test_cso_skips_ineligible_head_for_a_later_eligible_booth(self, d: Dispatcher) -> None:
        d.enqueue(booth("en", needs={"lang:en"}), 0.0)
        d.enqueue(booth("id"), 1.0)
        assert reserved_to(d.add_cso(cso("x"), 2.0), "x") == ["id"]

    def test_profile_update_changes_pools_and_capacity(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 1), 0.0)
        d.enqueue(booth("a"), 1.0)
        d.enqueue(booth("b", branch="BDG"), 2.0)
        d.enqueue(booth("c"), 3.0)
        out = d.add_cso(cso("x", 3, pools={"JKT", "BDG"}), 4.0)
        assert reserved_to(out, "x") == ["b", "c"]


class TestQueueOrder:
    def test_priority_then_check_in(self, d: Dispatcher) -> None:
        for i, (bid, prio) in enumerate([("p0a", 0), ("p2", 2), ("p1", 1), ("p0b", 0)]):
            d.enqueue(booth(bid, priority=prio), float(i))
        assert [d.position(b) for b in ("p2", "p1", "p0a", "p0b")] == [0, 1, 2, 3]
        d.add_cso(cso("x", 4), 10.0)
        assert d.booths_of("x") == ("p2", "p1", "p0a", "p0b")

    def test_fifo_within_priority(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("first"), 1.0)
        for i in range(5):
            d.enqueue(booth(f"w{i}"), 2.0)  # same timestamp: insertion order decides
        d.accept("first", "x", 3.0)
        d.release("first", 4.0)
        assert d.cso_of("w0") == "x"
        assert [d.position(f"w{i}") for i in range(1, 5)] == [0, 1, 2, 3]

    def test_best_booth_across_buckets(self, d: Dispatcher) -> None:
        d.enqueue(booth("jkt-late", branch="JKT"), 5.0)
        d.enqueue(booth("bdg-early", branch="BDG"), 1.0)
        d.enqueue(booth("sby-urgent", branch="SBY", priority=1), 9.0)
        d.add_cso(cso("x", 3, pools={"*"}), 10.0)
        assert d.booths_of("x") == ("sby-urgent", "bdg-early", "jkt-late")


# --------------------------------------------------------------------------- queries


class TestQueries:
    def test_position_of_non_waiting_booth_is_refused(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("a"), 0.0)
        with pytest.raises(NotWaiting):
            d.position("a")

    def test_estimated_wait_uses_default_then_mean(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 2), 0.0)
        d.add_cso(cso("y", 2), 0.0)
        for i in range(6):
            d.enqueue(booth(f"b{i}"), 1.0)
        # b4, b5 wait; capacity 4; no samples -> default 300.
        assert d.estimated_wait("b4") == pytest.approx(1 * 300.0 / 4)
        assert d.estimated_wait("b5") == pytest.approx(2 * 300.0 / 4)
        assert d.estimated_wait("b0") == 0.0
        for b in ("b0", "b1"):
            d.accept(b, d.cso_of(b) or "", 10.0)
        d.release("b0", 70.0)  # 60 s
        d.release("b1", 130.0)  # 120 s
        assert d.mean_service_time() == pytest.approx(90.0)
        d.enqueue(booth("b6"), 131.0)  # b4, b5 took the freed slots
        assert d.estimated_wait("b6") == pytest.approx(1 * 90.0 / 4)

    def test_estimated_wait_is_inf_without_active_capacity(self, d: Dispatcher) -> None:
        d.enqueue(booth("a"), 0.0)
        assert math.isinf(d.estimated_wait("a"))
        d.add_cso(cso("x", pools={"BDG"}), 1.0)
        d.pause_cso("x", 2.0)
        assert math.isinf(d.estimated_wait("a"))

    def test_service_time_window(self) -> None:
        st = ServiceTimes(window=3, default=300.0)
        assert st.mean() == 300.0
        for s in (10.0, 20.0, 30.0, 100.0):
            st.record(s)
        assert st.mean() == pytest.approx(50.0)  # last 3
        st.record(-5.0)  # clock hiccup: counts as the shortest believable service
        assert st.mean() == pytest.approx((30.0 + 100.0 + MIN_SAMPLE_S) / 3)

    def test_leave_is_not_a_service_sample(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("a"), 0.0)
        d.accept("a", "x", 0.0)
        d.leave("a", 5.0)
        assert d.mean_service_time() == 300.0

    def test_snapshot_is_plain_and_serialisable(self, d: Dispatcher) -> None:
        d.add_cso(cso("x", 2), 0.0)
        d.enqueue(booth("a"), 0.0)
        d.accept("a", "x", 1.0)
        d.enqueue(booth("b"), 2.0)
        d.enqueue(booth("c", needs={"lang:en"}), 3.0)
        snap = d.snapshot()
        assert (snap.waiting, snap.reserved, snap.in_service) == (1, 1, 1)
        (view,) = snap.csos
        assert (view.cso_id, view.state, view.load, view.capacity) == ("x", "active", 2, 2)
        assert view.reserved == ("b",) and view.in_service == ("a",)
        assert snap.next_deadline == 17.0
        assert json.loads(json.dumps(dataclasses.asdict(snap)))["waiting"] == 1

    def test_next_deadline_drops_stale_timers(self, d: Dispatcher) -> None:
        assert d.next_deadline() is None
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("a"), 0.0)
        assert d.next_deadline() == 15.0
        d.accept("a", "x", 1.0)
        assert d.next_deadline() is None


# --------------------------------------------------------------------------- leave / release


class TestLeaveRelease:
    def test_leave_while_waiting(self, d: Dispatcher) -> None:
        d.enqueue(booth("a"), 0.0)
        assert d.leave("a", 1.0) == [Dequeued("a")]
        assert not d.has_booth("a") and d.waiting_count() == 0

    def test_leave_while_reserved_frees_the_slot(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("a"), 0.0)
        d.enqueue(booth("b"), 1.0)
        assert d.leave("a", 2.0) == [Dequeued("a"), Reserved("b", "x", 17.0)]

    def test_leave_while_in_service_releases(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("a"), 0.0)
        d.accept("a", "x", 1.0)
        assert d.leave("a", 2.0) == [Released("a", "x")]

    def test_release_frees_the_slot_for_the_next_booth(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("a"), 0.0)
        d.enqueue(booth("b"), 1.0)
        d.accept("a", "x", 1.0)
        assert d.release("a", 61.0) == [Released("a", "x"), Reserved("b", "x", 76.0)]
        assert d.mean_service_time() == 60.0

    def test_booth_id_can_come_back_after_leaving(self, d: Dispatcher) -> None:
        d.enqueue(booth("a"), 0.0)
        d.leave("a", 1.0)
        assert d.enqueue(booth("a"), 2.0) == []


# --------------------------------------------------------------------------- errors


class TestErrors:
    def test_errors_are_typed_dispatch_errors(self) -> None:
        for err in (UnknownBooth, UnknownCso, AlreadyQueued, NotReservedFor, NotInService,
                    NotWaiting, InvalidTransition):  # fmt: skip
            assert issubclass(err, DispatchError)

    def test_unknown_booth(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        for call in (
            lambda: d.accept("nope", "x", 0.0),
            lambda: d.decline("nope", "x", 0.0),
            lambda: d.release("nope", 0.0),
            lambda: d.leave("nope", 0.0),
            lambda: d.position("nope"),
            lambda: d.estimated_wait("nope"),
            lambda: d.state_of("nope"),
            lambda: d.cso_of("nope"),
        ):
            with pytest.raises(UnknownBooth):
                call()

    def test_unknown_cso(self, d: Dispatcher) -> None:
        d.enqueue(booth("a"), 0.0)
        for call in (
            lambda: d.cso_lost("nope", 0.0),
            lambda: d.pause_cso("nope", 0.0),
            lambda: d.resume_cso("nope", 0.0),
            lambda: d.remove_cso("nope", 0.0),
            lambda: d.booths_of("nope"),
            lambda: d.accept("a", "nope", 0.0),
        ):
            with pytest.raises(UnknownCso):
                call()

    def test_already_queued_at_any_stage(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("a"), 0.0)
        with pytest.raises(AlreadyQueued):
            d.enqueue(booth("a"), 1.0)  # reserved
        d.accept("a", "x", 1.0)
        with pytest.raises(AlreadyQueued):
            d.enqueue(booth("a", branch="BDG"), 2.0)  # in service
        d.enqueue(booth("b"), 2.0)
        with pytest.raises(AlreadyQueued):
            d.enqueue(booth("b"), 3.0)  # waiting

    def test_release_of_waiting_booth(self, d: Dispatcher) -> None:
        d.enqueue(booth("a"), 0.0)
        with pytest.raises(NotInService):
            d.release("a", 1.0)

    def test_failed_call_leaves_state_unchanged(self, d: Dispatcher) -> None:
        d.add_cso(cso("x"), 0.0)
        d.enqueue(booth("a"), 0.0)
        before = d.snapshot()
        with pytest.raises(DispatchError):
            d.accept("a", "y", 1.0)
        with pytest.raises(DispatchError):
            d.enqueue(booth("a"), 1.0)
        assert d.snapshot() == before
