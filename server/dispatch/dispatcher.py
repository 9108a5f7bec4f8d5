"""The Dispatcher: a sans-I/O state machine that matches waiting booths to CSOs.

Every mutating call takes `now` (seconds on a monotonic clock, non-decreasing between
calls) and returns the list of `Decision`s the async server must carry out, in order.
Nothing here reads a clock or touches I/O; the server calls `tick(now)` at (or after)
`next_deadline()` so timers fire.

Time-driven changes (reservation expiry, grace deadlines, cooldown expiry) happen only in
`tick()`. Until then a reservation still stands, so an accept that races its timer and
arrives first is honoured, and a CSO that reconnects before the tick keeps its booths.

Matching runs at the end of every call. It repeatedly takes the best booth any free CSO
could take (queue order) and gives it to the best free CSO for that booth:
least loaded as a fraction of capacity, then least loaded in absolute terms, then
longest idle, then earliest registered. "Idle since" is stamped when a CSO is offered a
booth and when its load falls back to zero (and on registering/resuming), so among idle
CSOs it is how long they have sat empty, and among equally busy CSOs how long since they
were last given work. The loop ends when no free CSO can take any waiting booth, which is
the invariant every call leaves behind.

A waiting booth that lapses keeps its queue key, so it goes back to its old place; a
booth whose CSO is lost or paused past grace (or logs out) gets a front-tier key instead.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Final

from sortedcontainers import SortedList

from server.dispatch.eta import ServiceTimes
from server.dispatch.model import (
    AlreadyQueued,
    Assigned,
    BoothRequest,
    BoothState,
    CsoProfile,
    CsoRetired,
    CsoState,
    CsoView,
    Decision,
    Dequeued,
    DispatchConfig,
    DispatchSnapshot,
    InvalidTransition,
    LapseReason,
    NotInService,
    NotReservedFor,
    NotWaiting,
    Released,
    Requeued,
    ReservationLapsed,
    Reserved,
    UnknownBooth,
    UnknownCso,
)
from server.dispatch.queue import BucketKey, QueueKey, WaitingQueue, front_key, normal_key

# Deadline kinds in the timer heap.
_EXPIRE: Final = 0  # reservation expires: (booth_id, cso_id)
_GRACE: Final = 1  # lost/paused CSO's grace ends: (cso_id, "")
_COOLDOWN: Final = 2  # decline/lapse exclusion ends: (booth_id, cso_id)

# (when, seq, kind, a, b). Entries are never removed early; they are checked against the
# current state when they come due and dropped if stale (lazy deletion keeps ops O(log n)).
_Deadline = tuple[float, int, int, str, str]


@dataclass(slots=True, eq=False)
class _Booth:
    request: BoothRequest
    bucket: BucketKey
    key: QueueKey
    state: BoothState = "waiting"
    cso_id: str | None = None
    expires_at: float | None = None
    assigned_at: float | None = None


@dataclass(slots=True, eq=False)
class _Cso:
    profile: CsoProfile
    seq: int
    idle_since: float
    state: CsoState = "active"
    # dicts as insertion-ordered sets: booths_of() reports them in the order given.
    reserved: dict[str, None] = field(default_factory=dict)
    in_service: dict[str, None] = field(default_factory=dict)
    grace_deadline: float | None = None
    # Buckets this CSO can serve; refreshed when the queue grows a bucket or the profile
    # changes, so matching never re-tests eligibility per booth.
    buckets: tuple[SortedList, ...] = ()
    buckets_version: int = -1

    @property
    def cso_id(self) -> str:
        return self.profile.cso_id

    @property
    def load(self) -> int:
        return len(self.reserved) + len(self.in_service)

    @property
    def has_room(self) -> bool:
        return self.state == "active" and self.load < self.profile.capacity


class Dispatcher:
    """Matches booths to CSOs. See the module docstring for the rules."""

    def __init__(self, config: DispatchConfig | None = None) -> None:
        self.config: Final = config if config is not None else DispatchConfig()
        self._booths: dict[str, _Booth] = {}
        self._csos: dict[str, _Cso] = {}
        # Active CSOs with spare capacity: the only ones matching has to look at.
        self._free: dict[str, _Cso] = {}
        self._queue = WaitingQueue()
        # booth_id -> {cso_id: excluded until}. Only booths that lapsed have an entry.
        self._exclusions: dict[str, dict[str, float]] = {}
        self._deadlines: list[_Deadline] = []
        self._service = ServiceTimes(
            self.config.service_time_window, self.config.default_service_time
        )
        self._booth_seq = 0
        self._cso_seq = 0
        self._timer_seq = 0

    # ------------------------------------------------------------------ CSO lifecycle

    def add_cso(self, cso: CsoProfile, now: float, *, paused: bool = False) -> list[Decision]:
        """Register a CSO, or take back one that is lost/paused, or update its profile.

        A lost CSO coming back within grace keeps its in-service booths. Lowering capacity
        below the current load takes nothing away; the CSO just gets no new booths until
        its load drops. `paused`: the CSO comes back on a break it took before (a console
        that reconnects remembers it), so it is offered nothing and keeps its grace deadline.
        """
        rec = self._csos.get(cso.cso_id)
        if rec is None:
            rec = _Cso(profile=cso, seq=self._cso_seq, idle_since=now)
            self._cso_seq += 1
            self._csos[cso.cso_id] = rec
            if paused:
                rec.state = "paused"
                self._set_grace(rec, now + self.config.grace_period)
        else:
            if rec.profile != cso:
                rec.profile = cso
                rec.buckets_version = -1
            if paused:
                if rec.state != "paused":
                    rec.state = "paused"
                    # A lost CSO already has its deadline; losing or pausing never extends.
                    self._set_grace(rec, now + self.config.grace_period)
            elif rec.state != "active":
                rec.state = "active"
                rec.grace_deadline = None
                rec.idle_since = now  # time away does not count as idle
        self._refresh(rec)
        return self._match(now)

    def cso_lost(self, cso_id: str, now: float) -> list[Decision]:
        """The CSO's connection is gone: drop its offers now, hold its sessions for grace."""
        rec = self._cso(cso_id)
        out: list[Decision] = []
        if rec.state != "lost":
            out += self._lapse_all(rec, "cso_lost", now)
            rec.state = "lost"
            # A paused CSO that also drops keeps its earlier deadline; losing never extends.
            self._set_grace(rec, now + self.config.grace_period)
            self._refresh(rec)
        out += self._match(now)
        return out

    def pause_cso(self, cso_id: str, now: float) -> list[Decision]:
        """Stop new booths. Pending offers lapse as declined; sessions are held for grace."""
        rec = self._cso(cso_id)
        if rec.state == "lost":
            raise InvalidTransition(f"CSO {cso_id!r} is lost; it must reconnect first")
        out: list[Decision] = []
        if rec.state == "active":
            out += self._lapse_all(rec, "declined", now)
            rec.state = "paused"
            self._set_grace(rec, now + self.config.grace_period)
            self._refresh(rec)
        out += self._match(now)
        return out

    def resume_cso(self, cso_id: str, now: float) -> list[Decision]:
        rec = self._cso(cso_id)
        if rec.state == "lost":
            raise InvalidTransition(f"CSO {cso_id!r} is lost; it must reconnect (add_cso)")
        if rec.state == "paused":
            rec.state = "active"
            rec.grace_deadline = None
            rec.idle_since = now
            self._refresh(rec)
        return self._match(now)

    def remove_cso(self, cso_id: str, now: float) -> list[Decision]:
        """Clean logout: offers lapse, sessions go to the front of the queue at once."""
        rec = self._cso(cso_id)
        out: list[Decision] = self._lapse_all(rec, "cso_lost", now)
        out += self._retire(rec, now)
        out += self._match(now)
        return out

    # ------------------------------------------------------------------ booth lifecycle

    def enqueue(self, booth: BoothRequest, now: float) -> list[Decision]:
        if booth.booth_id in self._booths:
            raise AlreadyQueued(f"booth {booth.booth_id!r} is already known")
        at = now if booth.checked_in_at is None else min(booth.checked_in_at, now)
        key = normal_key(booth.booth_id, booth.priority, at, self._booth_seq)
        self._booth_seq += 1
        rec = _Booth(request=booth, bucket=(booth.branch, booth.needs), key=key)
        self._booths[booth.booth_id] = rec
        self._queue.add(key, rec.bucket)
        return self._match(now)

    def accept(self, booth_id: str, cso_id: str, now: float) -> list[Decision]:
        rec, cso = self._reservation(booth_id, cso_id)
        del cso.reserved[booth_id]
        cso.in_service[booth_id] = None
        rec.state = "in_service"
        rec.expires_at = None
        rec.assigned_at = now
        out: list[Decision] = [Assigned(booth_id, cso_id)]
        out += self._match(now)  # load is unchanged, but keep "every call matches" simple
        return out

    def decline(self, booth_id: str, cso_id: str, now: float) -> list[Decision]:
        rec, cso = self._reservation(booth_id, cso_id)
        out: list[Decision] = [self._lapse(rec, cso, "declined", now)]
        out += self._match(now)
        return out

    def release(self, booth_id: str, now: float) -> list[Decision]:
        """The session ended normally; its length feeds the wait estimate."""
        rec = self._booth(booth_id)
        if rec.state != "in_service" or rec.assigned_at is None:
            raise NotInService(f"booth {booth_id!r} is {rec.state}, not in service")
        self._service.record(now - rec.assigned_at)
        out: list[Decision] = [self._end_service(rec, now)]
        out += self._match(now)
        return out

    def move(self, booth_id: str, to_cso_id: str, now: float) -> list[Decision]:
        """A supervisor moves an in-service booth to another CSO: it leaves its CSO (not a
        service-time sample), goes to the front tier, and is offered to `to_cso_id` first
        if that CSO is active with room and serves it; otherwise it waits at the front."""
        rec = self._booth(booth_id)
        target = self._cso(to_cso_id)
        if rec.state != "in_service":
            raise NotInService(f"booth {booth_id!r} is {rec.state}, not in service")
        old = self._csos[self._cso_id_of(rec)]
        if old is target:
            raise InvalidTransition(f"booth {booth_id!r} is already served by {to_cso_id!r}")
        del old.in_service[booth_id]
        rec.key = front_key(rec.key)
        rec.state = "waiting"
        rec.cso_id = None
        rec.assigned_at = None
        self._queue.add(rec.key, rec.bucket)
        self._load_dropped(old, now)
        self._exclusions.pop(booth_id, None)  # a cooldown must not block a deliberate move
        out: list[Decision] = [Requeued(booth_id, old.cso_id)]
        if target.has_room and target.profile.serves(rec.request.branch, rec.request.needs):
            out.append(self._reserve(rec, target, now))
        out += self._match(now)
        return out

    def leave(self, booth_id: str, now: float) -> list[Decision]:
        """The booth is gone at any stage. Not a service-time sample (it did not finish)."""
        rec = self._booth(booth_id)
        out: list[Decision] = []
        if rec.state == "waiting":
            self._queue.remove(rec.key, rec.bucket)
            self._forget(rec)
            out.append(Dequeued(booth_id))
        elif rec.state == "reserved":
            cso = self._csos[self._cso_id_of(rec)]
            del cso.reserved[booth_id]
            self._forget(rec)
            self._load_dropped(cso, now)
            out.append(Dequeued(booth_id))
        else:
            out.append(self._end_service(rec, now))
        out += self._match(now)
        return out

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Decision]:
        """Fire every deadline that is due (in deadline order), then match."""
        out: list[Decision] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._live(entry):
                continue
            _, _, kind, a, b = entry
            if kind == _EXPIRE:
                out.append(self._lapse(self._booths[a], self._csos[b], "expired", now))
            elif kind == _GRACE:
                rec = self._csos[a]
                rec.grace_deadline = None
                if rec.state == "lost":
                    out += self._retire(rec, now)
                else:  # paused: sessions move on, the CSO stays registered and paused
                    out += self._requeue_all(rec, now)
            else:
                self._drop_exclusion(a, b)
        out += self._match(now)
        return out

    def next_deadline(self) -> float | None:
        """When `tick()` next has something to do, or None. Drops stale timers on the way."""
        heap = self._deadlines
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # ------------------------------------------------------------------ queries

    def position(self, booth_id: str) -> int:
        """0-based place among all waiting booths in queue order. O(log n)."""
        rec = self._booth(booth_id)
        if rec.state != "waiting":
            raise NotWaiting(f"booth {booth_id!r} is {rec.state}")
        return self._queue.position(rec.key)

    def estimated_wait(self, booth_id: str) -> float:
        """Seconds until the booth is likely offered to a CSO (0 if already offered/served).

        (position + 1) * mean_service_time / active_capacity; inf with no active CSO.
        See `server.dispatch.eta`.
        """
        rec = self._booth(booth_id)
        if rec.state != "waiting":
            return 0.0
        return self._service.estimate_wait(self._queue.position(rec.key), self.active_capacity())

    def mean_service_time(self) -> float:
        return self._service.mean()

    def active_capacity(self) -> int:
        """Total capacity of CSOs that can take booths now (not paused, not lost)."""
        return sum(c.profile.capacity for c in self._csos.values() if c.state == "active")

    def waiting_count(self) -> int:
        return len(self._queue)

    def has_booth(self, booth_id: str) -> bool:
        return booth_id in self._booths

    def has_cso(self, cso_id: str) -> bool:
        return cso_id in self._csos

    def state_of(self, booth_id: str) -> BoothState:
        return self._booth(booth_id).state

    def cso_of(self, booth_id: str) -> str | None:
        """The CSO the booth is reserved for or served by; None while waiting."""
        return self._booth(booth_id).cso_id

    def booths_of(self, cso_id: str) -> tuple[str, ...]:
        """Reserved then in-service booths of the CSO."""
        rec = self._cso(cso_id)
        return (*rec.reserved, *rec.in_service)

    def cso_state(self, cso_id: str) -> CsoState:
        return self._cso(cso_id).state

    def cso_profile(self, cso_id: str) -> CsoProfile:
        return self._cso(cso_id).profile

    def snapshot(self) -> DispatchSnapshot:
        csos = tuple(
            CsoView(
                cso_id=c.cso_id,
                branch=c.profile.branch,
                state=c.state,
                capacity=c.profile.capacity,
                load=c.load,
                reserved=tuple(c.reserved),
                in_service=tuple(c.in_service),
                idle_since=c.idle_since,
                grace_deadline=c.grace_deadline,
            )
            for c in self._csos.values()
        )
        return DispatchSnapshot(
            csos=csos,
            waiting=len(self._queue),
            reserved=sum(len(c.reserved) for c in self._csos.values()),
            in_service=sum(len(c.in_service) for c in self._csos.values()),
            active_capacity=self.active_capacity(),
            mean_service_time=self._service.mean(),
            next_deadline=self.next_deadline(),
        )

    # ------------------------------------------------------------------ lookups

    def _booth(self, booth_id: str) -> _Booth:
        rec = self._booths.get(booth_id)
        if rec is None:
            raise UnknownBooth(f"unknown booth {booth_id!r}")
        return rec

    def _cso(self, cso_id: str) -> _Cso:
        rec = self._csos.get(cso_id)
        if rec is None:
            raise UnknownCso(f"unknown CSO {cso_id!r}")
        return rec

    def _reservation(self, booth_id: str, cso_id: str) -> tuple[_Booth, _Cso]:
        rec = self._booth(booth_id)
        cso = self._cso(cso_id)
        if rec.state != "reserved" or rec.cso_id != cso_id:
            raise NotReservedFor(f"booth {booth_id!r} is not reserved for CSO {cso_id!r}")
        return rec, cso

    @staticmethod
    def _cso_id_of(rec: _Booth) -> str:
        if rec.cso_id is None:  # pragma: no cover - guarded by state checks
            raise AssertionError(f"booth {rec.request.booth_id!r} has no CSO")
        return rec.cso_id

    # ------------------------------------------------------------------ transitions

    def _refresh(self, cso: _Cso) -> None:
        if cso.has_room:
            self._free[cso.cso_id] = cso
        else:
            self._free.pop(cso.cso_id, None)

    def _load_dropped(self, cso: _Cso, now: float) -> None:
        if cso.load == 0:
            cso.idle_since = now
        self._refresh(cso)

    def _push(self, when: float, kind: int, a: str, b: str = "") -> None:
        heapq.heappush(self._deadlines, (when, self._timer_seq, kind, a, b))
        self._timer_seq += 1

    def _set_grace(self, cso: _Cso, deadline: float) -> None:
        if cso.grace_deadline is None or deadline < cso.grace_deadline:
            cso.grace_deadline = deadline
            self._push(deadline, _GRACE, cso.cso_id)

    def _live(self, entry: _Deadline) -> bool:
        when, _, kind, a, b = entry
        if kind == _EXPIRE:
            rec = self._booths.get(a)
            return (
                rec is not None
                and rec.state == "reserved"
                and rec.cso_id == b
                and rec.expires_at == when
            )
        if kind == _GRACE:
            cso = self._csos.get(a)
            return cso is not None and cso.grace_deadline == when
        excl = self._exclusions.get(a)
        return excl is not None and excl.get(b) == when

    def _drop_exclusion(self, booth_id: str, cso_id: str) -> None:
        excl = self._exclusions.get(booth_id)
        if excl is not None:
            excl.pop(cso_id, None)
            if not excl:
                del self._exclusions[booth_id]

    def _excluded(self, booth_id: str, cso_id: str, now: float) -> bool:
        excl = self._exclusions.get(booth_id)
        if excl is None:
            return False
        until = excl.get(cso_id)
        return until is not None and until > now

    def _reserve(self, rec: _Booth, cso: _Cso, now: float) -> Reserved:
        booth_id = rec.request.booth_id
        self._queue.remove(rec.key, rec.bucket)
        expires_at = now + self.config.reservation_timeout
        rec.state = "reserved"
        rec.cso_id = cso.cso_id
        rec.expires_at = expires_at
        cso.reserved[booth_id] = None
        cso.idle_since = now
        self._push(expires_at, _EXPIRE, booth_id, cso.cso_id)
        self._refresh(cso)
        return Reserved(booth_id, cso.cso_id, expires_at)

    def _lapse(self, rec: _Booth, cso: _Cso, reason: LapseReason, now: float) -> ReservationLapsed:
        """Withdraw an offer: the booth returns to its old place, the CSO is cooled off."""
        booth_id = rec.request.booth_id
        del cso.reserved[booth_id]
        rec.state = "waiting"
        rec.cso_id = None
        rec.expires_at = None
        self._queue.add(rec.key, rec.bucket)
        until = now + self.config.decline_cooldown
        self._exclusions.setdefault(booth_id, {})[cso.cso_id] = until
        self._push(until, _COOLDOWN, booth_id, cso.cso_id)
        self._load_dropped(cso, now)
        return ReservationLapsed(booth_id, cso.cso_id, reason)

    def _lapse_all(self, cso: _Cso, reason: LapseReason, now: float) -> list[Decision]:
        return [self._lapse(self._booths[b], cso, reason, now) for b in list(cso.reserved)]

    def _requeue_all(self, cso: _Cso, now: float) -> list[Decision]:
        """Move the CSO's sessions to the front tier, keeping their check-in order."""
        out: list[Decision] = []
        for booth_id in list(cso.in_service):
            rec = self._booths[booth_id]
            del cso.in_service[booth_id]
            rec.key = front_key(rec.key)
            rec.state = "waiting"
            rec.cso_id = None
            rec.assigned_at = None
            self._queue.add(rec.key, rec.bucket)
            out.append(Requeued(booth_id, cso.cso_id))
        self._load_dropped(cso, now)
        return out

    def _retire(self, cso: _Cso, now: float) -> list[Decision]:
        out = self._requeue_all(cso, now)
        del self._csos[cso.cso_id]
        self._free.pop(cso.cso_id, None)
        out.append(CsoRetired(cso.cso_id))
        return out

    def _end_service(self, rec: _Booth, now: float) -> Released:
        cso = self._csos[self._cso_id_of(rec)]
        booth_id = rec.request.booth_id
        del cso.in_service[booth_id]
        self._forget(rec)
        self._load_dropped(cso, now)
        return Released(booth_id, cso.cso_id)

    def _forget(self, rec: _Booth) -> None:
        del self._booths[rec.request.booth_id]
        self._exclusions.pop(rec.request.booth_id, None)

    # ------------------------------------------------------------------ matching

    def _buckets_for(self, cso: _Cso) -> tuple[SortedList, ...]:
        if cso.buckets_version != self._queue.version:
            serves = cso.profile.serves
            cso.buckets = tuple(
                sl for (branch, needs), sl in self._queue.buckets() if serves(branch, needs)
            )
            cso.buckets_version = self._queue.version
        return cso.buckets

    def _candidate(self, cso: _Cso, now: float) -> QueueKey | None:
        """The first booth in queue order this CSO may take, from its buckets' heads."""
        best: QueueKey | None = None
        cso_id = cso.cso_id
        for bucket in self._buckets_for(cso):
            if not bucket:
                continue
            head: QueueKey = bucket[0]
            if best is not None and head >= best:
                continue
            if not self._excluded(head.booth_id, cso_id, now):
                best = head
                continue
            # Rare: the head is cooling off for this CSO. Walk past excluded booths only.
            for key in bucket.islice(1):
                if best is not None and key >= best:
                    break
                if not self._excluded(key.booth_id, cso_id, now):
                    best = key
                    break
        return best

    @staticmethod
    def _rank(cso: _Cso) -> tuple[float, int, float, int]:
        # Equal fractions (1/2 vs 3/6) are equal floats: IEEE division is correctly rounded.
        load = cso.load
        return (load / cso.profile.capacity, load, cso.idle_since, cso.seq)

    def _match(self, now: float) -> list[Decision]:
        if not self._free or not self._queue:
            return []
        cands: dict[str, QueueKey] = {}
        for cso_id, cso in self._free.items():
            key = self._candidate(cso, now)
            if key is not None:
                cands[cso_id] = key
        out: list[Decision] = []
        while cands:
            # The earliest booth any free CSO can take. Every free CSO that can take it has
            # it as its own candidate (nothing eligible for it comes earlier), so the best
            # CSO for the booth is among those.
            key = min(cands.values())
            cso = min((self._free[c] for c, k in cands.items() if k == key), key=self._rank)
            out.append(self._reserve(self._booths[key.booth_id], cso, now))
            # Only CSOs that wanted this booth, and the one that took it, need a new look.
            for cso_id, k in list(cands.items()):
                if k != key and cso_id != cso.cso_id:
                    continue
                free = self._free.get(cso_id)
                nxt = self._candidate(free, now) if free is not None else None
                if nxt is None:
                    del cands[cso_id]
                else:
                    cands[cso_id] = nxt
        return out
