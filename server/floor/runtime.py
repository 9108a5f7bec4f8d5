"""The asyncio shell around the floor core: one lock, timers, supervised tasks, effects.

Every event goes through `handle()`: under one lock the core decides and the effects are
carried out by kind (`server.floor.effects`) before the next event is decided:
- recorded ones (audit entries) go to the floor's outbox, which tries to write them at
  once (briefly, so a slow database cannot stall the floor) and otherwise retries in the
  background, in order, exactly once: a records database that is down never drops the
  rest of a decision;
- committed ones (messages, live sessions, supervisors' updates) in order, against the
  ports (Router, LiveState);
- requested ones (claim lookups) in supervised tasks whose answers come back as events;
- local ones (timer, metrics, the broadcast mark) here.

A poison event (one the core raises on: a bug) must not leave a half-applied core behind
or stall the floor: the runtime keeps a journal (a snapshot every few seconds and the
events applied since), and on such an event rebuilds the core from it without that event,
logs it at error and counts it (`loket_floor_events_quarantined`). A cluster's leader does
the same across processes (server/adapters/redis/).

Supervisors get the floor coalesced: events and "something changed" marks are buffered
and sent at most every `broadcast_interval`, followed by one snapshot per scope, so a
burst of 1,000 check-ins costs one pass, not 1,000 fan-outs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import pickle
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from server.floor import views
from server.floor.core import FloorConfig, FloorCore
from server.floor.effects import (
    Audit,
    Committed,
    DeleteSession,
    Effect,
    FloorChanged,
    Observe,
    PersistSession,
    Publish,
    RecordedEffect,
    ResolveClaim,
    ResolveTicket,
    Send,
    SetTimer,
    TicketEvent,
)
from server.floor.events import (
    BroadcastDue,
    ClaimRefused,
    ClaimResolved,
    DisplayOpened,
    Event,
    Now,
    PeerClosed,
    PeerOpened,
    Received,
    TicketClaimRefused,
    TicketClaimResolved,
    TimerFired,
    VerificationReady,
    capture_undeliverable,
    document_stored,
)
from server.floor.lobby import LobbyConfig
from server.floor.outbox import AuditWriter, MemoryOutbox, OutboxDrainer
from server.floor.snapshot import dump_core, load_core, new_core, replay
from server.metrics import Metrics
from server.ports.live_state import LiveSession, LiveState
from server.ports.router import Router
from server.principal import Principal
from server.settings import Settings
from signaling.errors import ErrorCode
from signaling.messages import (
    CheckIn,
    ClaimSummary,
    Envelope,
    FloorEvent,
    FloorSnapshot,
    IssueTicket,
)

log = structlog.get_logger("loket.floor")

# (booth principal, check-in) -> claim id; raises ClaimLookupError to refuse.
ClaimResolver = Callable[[Principal, CheckIn], Awaitable[str | None]]
# Ticket events to the records database (the floor outbox's writer for them).
TicketEventWriter = Callable[[TicketEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TicketClaim:
    """What the desk's claim lookup found for a ticket (never the full NIK)."""

    claim_id: str
    summary: ClaimSummary
    booking: bool
    appointment: float | None  # unix time


# (desk principal, branch, request) -> the claim; raises ClaimLookupError to refuse.
TicketResolver = Callable[[Principal, str, IssueTicket], Awaitable[TicketClaim]]
MAX_EVENTS_PER_PASS = 500
JOURNAL_INTERVAL = 2.0  # seconds between the journal's snapshots (replay after a poison event)
AUDIT_WAIT = 0.5  # seconds a decision waits for its audit entries before going on without


class FloorStepDown(Exception):
    """This runtime no longer decides (a cluster's leader lost its lease): its loops end
    quietly, without an error log; another process carries on."""


class ClaimLookupError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def floor_config(settings: Settings, secret: str | bytes = b"") -> FloorConfig:
    turn = settings.turn_secret
    raw = secret.encode() if isinstance(secret, str) else secret
    return FloorConfig(
        reservation_timeout=settings.reservation_timeout,
        grace_period=settings.grace_period,
        decline_cooldown=settings.decline_cooldown,
        default_service_time=settings.default_service_time,
        cso_capacity=settings.cso_capacity,
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_timeout=settings.heartbeat_timeout,
        ice_urls=tuple(settings.ice_servers),
        turn_secret=turn.get_secret_value().encode() if turn else None,
        turn_ttl=settings.turn_ttl,
        monitor_visible_to_cso=settings.monitor_visible_to_cso,
        participant_key=derive_key(raw, b"participants") if raw else b"loket-participants",
        speech_key=speech_key(raw),
        lobby=LobbyConfig(
            call_timeout=settings.lobby_call_timeout,
            max_recalls=settings.lobby_max_recalls,
            recycle_behind=settings.lobby_recycle_behind,
            max_recycles=settings.lobby_max_recycles,
            utc_offset=settings.branch_utc_offset * 3600,
        ),
        max_descriptions=settings.max_descriptions_per_session,
    )


def speech_key(secret: bytes) -> bytes:
    """Signs the spoken calls' URLs (the display API checks them with the same key)."""
    return derive_key(secret, b"speech") if secret else b"loket-speech"


def derive_key(secret: bytes, purpose: bytes) -> bytes:
    """A key for one purpose from the secret every process of a region shares."""
    return hashlib.sha256(b"loket/" + purpose + b"\0" + secret).digest()


class Journal:
    """The core's last snapshot and the events applied since: enough to rebuild it."""

    def __init__(self, core: FloorCore) -> None:
        self._snapshot = pickle.dumps(dump_core(core))
        self._applied: list[tuple[Event, Now]] = []
        self.taken_at = time.monotonic()

    def applied(self, event: Event, now: Now) -> None:
        self._applied.append((event, now))

    def snapshot(self, core: FloorCore) -> None:
        if self._applied:
            self._snapshot = pickle.dumps(dump_core(core))
            self._applied = []
        self.taken_at = time.monotonic()

    def rebuild(self, config: FloorConfig) -> FloorCore:
        core = load_core(pickle.loads(self._snapshot), config)
        replay(core, self._applied)
        return core


class FloorRuntime:
    def __init__(
        self,
        config: FloorConfig,
        router: Router,
        live: LiveState,
        metrics: Metrics,
        *,
        resolve_claim: ClaimResolver | None = None,
        write_audit: AuditWriter | None = None,
        resolve_ticket: TicketResolver | None = None,
        write_events: TicketEventWriter | None = None,
        broadcast_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        core: FloorCore | None = None,  # a core rebuilt elsewhere (a cluster's new leader)
    ) -> None:
        self.config = config
        self.core = core if core is not None else new_core(config)
        self._router = router
        self._live = live
        self._metrics = metrics
        self._resolve_claim = resolve_claim
        self._write_audit = write_audit
        self._resolve_ticket = resolve_ticket
        self._write_events = write_events
        self._broadcast_interval = broadcast_interval
        self._clock = clock
        self._wall = wall
        self._lock = asyncio.Lock()
        self._timer_at: float | None = None
        self._wake = asyncio.Event()
        self._dirty = asyncio.Event()
        self._pending_events: list[Publish] = []
        self._dropped_events = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._journal: Journal | None = Journal(self.core) if core is None else None
        self.outbox = MemoryOutbox()
        self._drainer = OutboxDrainer(
            self.outbox,
            self._write_one,
            on_set_aside=metrics.floor_outbox_set_aside.inc,
            pending=lambda _: metrics.floor_outbox_pending.set(len(self.outbox)),
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        router: Router,
        live: LiveState,
        metrics: Metrics,
        secret: str = "",
        **kw: Any,
    ) -> FloorRuntime:
        return cls(floor_config(settings, secret), router, live, metrics, **kw)

    async def _write_one(self, entry: RecordedEffect) -> None:
        if isinstance(entry, TicketEvent):  # a visit's step, for the reports
            if self._write_events is not None:
                await self._write_events(entry)
            return
        log.info("floor_audit", action=entry.action, actor=entry.actor, effect_id=entry.effect_id,
                 **{k: str(v) for k, v in entry.details.items()})  # fmt: skip
        if self._write_audit is not None:
            await self._write_audit(entry)

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._run_timer(), name="floor-timer"),
            asyncio.create_task(self._run_broadcasts(), name="floor-broadcasts"),
            asyncio.create_task(self._drainer.run(), name="floor-outbox"),
        ]

    async def stop(self) -> None:
        # What was decided is written before the process goes, if the database lets us
        # (a cluster's leader that lost its lease leaves the rest to the next one).
        try:
            await self._drainer.flush(2.0)
        except Exception as exc:
            log.info("floor_outbox_left_for_later", error=repr(exc))
        tasks = [*self._loops, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops, self._tasks = [], set()

    # --- the socket layer's calls -----------------------------------------------------------

    async def opened(self, principal: Principal, connection: str, resume: str | None) -> None:
        # A fresh resume token, used if the peer starts afresh (the core draws no randomness).
        await self.handle(PeerOpened(principal, connection, resume, secrets.token_urlsafe(24)))

    async def closed(self, principal: Principal, connection: str) -> None:
        await self.handle(PeerClosed(principal, connection))

    async def received(
        self,
        principal: Principal,
        connection: str,
        message: Envelope,
        received_at: float,
        raw: str | None = None,
    ) -> None:
        await self.handle(Received(principal, connection, message, received_at, raw))

    async def document_stored(self, document: dict[str, Any]) -> None:
        """A picture was stored (the records API's answer body): push it to the console."""
        await self.handle(document_stored(document))

    async def verification_ready(self, claim_id: str, document_id: str, what: str) -> None:
        """Machine advice on a document is stored: tell the officer serving the claim."""
        await self.handle(VerificationReady(claim_id, document_id, what))

    async def capture_undeliverable(self, report: dict[str, Any]) -> None:
        """A booth reported a picture it can never deliver (the records API's answer body,
        with the booth's branch): tell the officer and the supervisors."""
        await self.handle(capture_undeliverable(report))

    async def handle(self, event: Event) -> None:
        async with self._lock:
            now = Now(self._clock(), self._wall())
            try:
                effects = self.core.handle(event, now)
            except Exception:
                self._quarantine(event)
                return
            if self._journal is not None:
                self._journal.applied(event, now)
            await self._execute(effects)

    def _quarantine(self, event: Event) -> None:
        """The core failed on this event (a bug): rebuild it from the journal without the
        event, so the floor goes on from a whole state, and say so loudly."""
        log.error("floor_event_quarantined", kind=type(event).__name__, exc_info=True)
        self._metrics.floor_quarantined.inc()
        if self._journal is not None:
            self.core = self._journal.rebuild(self.config)

    # --- reads for the HTTP side ------------------------------------------------------------

    async def session_of_claim(self, claim_id: str) -> LiveSession | None:
        """The live session in which this claim is being verified, if any."""
        return self.core.session_of_claim(claim_id)

    async def snapshot(self) -> FloorSnapshot:
        return views.snapshot(self.core)

    @property
    def waiting(self) -> int:
        return self.core.dispatcher.waiting_count()

    # --- effects ----------------------------------------------------------------------------

    async def _execute(self, effects: list[Effect]) -> None:
        """Carry out one decision's effects: recorded first (so an audit entry is written
        before anyone hears of what it records, while the database answers), then what is
        committed, in order, then the requests and local effects."""
        recorded = [e for e in effects if isinstance(e, Audit | TicketEvent)]
        if recorded:
            self.outbox.add(recorded)
            # An audit entry is written before anyone hears of what it records; a ticket
            # event needs only to be written once, so it never holds up a call.
            if not any(isinstance(e, Audit) for e in recorded):
                self._drainer.wake()
            elif not await self._drainer.flush(AUDIT_WAIT):
                self._drainer.wake()  # the background drain retries; the floor goes on
        for effect in effects:
            if isinstance(effect, Committed):
                await self._commit_one(effect)
            else:
                self._local(effect)

    async def _commit_one(self, effect: Effect) -> None:
        match effect:
            case Send():
                await self._router.send(
                    effect.to.address,
                    effect.message,
                    received_at=effect.received_at,
                    raw=effect.raw,
                    connection=effect.connection,
                )
            case Publish():
                if isinstance(effect.message, FloorEvent):
                    self._note_event(effect)
                else:
                    for topic in effect.topics:
                        await self._router.publish(topic, effect.message)
            case PersistSession():
                await self._live.put(effect.session)
            case DeleteSession():
                await self._live.delete(effect.session_id)

    def _local(self, effect: Effect) -> None:
        match effect:
            case FloorChanged():
                self._dirty.set()  # gauges and snapshots follow in the broadcast pass
            case SetTimer():
                self._timer_at = effect.at
                self._wake.set()
            case ResolveClaim():
                self._spawn(self._resolve(effect), "resolve-claim")
            case ResolveTicket():
                self._spawn(self._resolve_ticket_claim(effect), "resolve-ticket")
            case Observe():
                self._observe(effect)

    def _note_event(self, publish: Publish) -> None:
        event = publish.message
        assert isinstance(event, FloorEvent)
        log.info(event.kind, booth_id=event.booth_id, cso_id=event.cso_id,
                 session_id=event.session_id, detail=event.detail)  # fmt: skip
        if not publish.topics:
            return
        if len(self._pending_events) < MAX_EVENTS_PER_PASS:
            self._pending_events.append(publish)
        else:
            self._dropped_events += 1  # the snapshot that follows still tells the truth
        self._dirty.set()

    def _observe(self, effect: Observe) -> None:
        if effect.metric == "assignments":
            self._metrics.assignments.inc(effect.value)
        elif effect.metric == "requeues":
            self._metrics.requeues.inc(effect.value)
        else:
            self._metrics.wait_seconds.observe(effect.value)

    async def _resolve(self, effect: ResolveClaim) -> None:
        booth_id = effect.principal.subject
        try:
            claim_id = (
                await self._resolve_claim(effect.principal, effect.request)
                if self._resolve_claim
                else None
            )
        except ClaimLookupError as exc:
            await self.handle(ClaimRefused(booth_id, effect.request, exc.code, exc.message))
            return
        except Exception:
            log.exception("claim_resolution_failed", booth_id=booth_id)
            await self.handle(
                ClaimRefused(
                    booth_id,
                    effect.request,
                    ErrorCode.INTERNAL,
                    "the claim could not be looked up; try again in a moment",
                )
            )
            return
        await self.handle(ClaimResolved(booth_id, effect.request, claim_id))

    async def _resolve_ticket_claim(self, effect: ResolveTicket) -> None:
        who, branch, request = effect.principal, effect.branch, effect.request
        try:
            if self._resolve_ticket is None:
                raise ClaimLookupError(ErrorCode.INTERNAL, "this server issues no tickets")
            found = await self._resolve_ticket(who, branch, request)
        except ClaimLookupError as exc:
            await self.handle(TicketClaimRefused(who, branch, request, exc.code, exc.message))
            return
        except Exception:
            log.exception("ticket_claim_failed", branch=branch)
            await self.handle(
                TicketClaimRefused(who, branch, request, ErrorCode.INTERNAL,
                                   "the claim could not be looked up; try again in a moment")
            )  # fmt: skip
            return
        await self.handle(
            TicketClaimResolved(who, branch, request, found.claim_id, found.summary,
                                found.booking, found.appointment)
        )  # fmt: skip

    async def display_opened(self, branch: str) -> None:
        """A waiting room's display connected: its branch's state goes out now."""
        await self.handle(DisplayOpened(branch))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("floor_task_failed", task=task.get_name(), error=repr(task.exception()))

    # --- background loops -------------------------------------------------------------------

    async def _run_timer(self) -> None:
        while True:
            at = self._timer_at
            timeout = None if at is None else max(0.0, at - self._clock()) + 0.001
            self._wake.clear()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
            # that lands as the event is set, and the loop then never stops (seen in tests).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            if self._timer_at is not None and self._clock() >= self._timer_at:
                try:
                    await self.handle(TimerFired())
                except FloorStepDown:
                    return
                except Exception:  # keep the floor alive; the next tick retries
                    log.exception("floor_timer_failed")

    async def _run_broadcasts(self) -> None:
        """Tell waiting booths their place and supervisors the floor, debounced; keep the
        journal's snapshot fresh on the way."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(JOURNAL_INTERVAL):
                    await self._dirty.wait()
            if self._dirty.is_set():
                await asyncio.sleep(self._broadcast_interval)
                self._dirty.clear()
                try:
                    await self._broadcast_pass()
                except FloorStepDown:
                    return
                except Exception:
                    log.exception("floor_broadcast_failed")
            journal = self._journal
            if journal is not None and time.monotonic() - journal.taken_at >= JOURNAL_INTERVAL:
                async with self._lock:
                    journal.snapshot(self.core)

    async def _broadcast_pass(self) -> None:
        events, self._pending_events = self._pending_events, []
        dropped, self._dropped_events = self._dropped_events, 0
        for publish in events:
            for topic in publish.topics:
                await self._router.publish(topic, publish.message)
        if dropped:
            log.info("floor_events_coalesced", dropped=dropped)
        await self.handle(BroadcastDue())
        self._metrics.queue_length.set(self.core.dispatcher.waiting_count())
        self._metrics.sessions.set(len(self.core.sessions))
