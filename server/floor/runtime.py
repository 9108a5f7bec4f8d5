"""The asyncio shell around the floor core: one lock, timers, supervised tasks, effects.

Every event goes through `handle()`: under one lock the core decides and the effects are
carried out in order against the ports (Router, LiveState) before the next event is
decided, so a decision is never applied out of order, whichever adapter sits behind the
ports (the Redis ones yield on every call). Slow work the core asks for (resolving a
claim against the records database) runs in a supervised task and comes back as an event.

Supervisors get the floor coalesced: events and "something changed" marks are buffered
and sent at most every `broadcast_interval`, followed by one snapshot, so a burst of 1,000
check-ins costs one pass, not 1,000 fan-outs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from server.floor import views
from server.floor.core import FloorConfig, FloorCore
from server.floor.events import (
    Audit,
    BroadcastDue,
    ClaimRefused,
    ClaimResolved,
    DeleteSession,
    Effect,
    Event,
    FloorChanged,
    Now,
    Observe,
    PeerClosed,
    PeerOpened,
    PersistSession,
    Publish,
    Received,
    RecordFingerprints,
    ResolveClaim,
    Send,
    SetTimer,
    TimerFired,
    document_stored,
)
from server.metrics import Metrics
from server.ports.live_state import LiveSession, LiveState
from server.ports.router import FLOOR_TOPIC, Router
from server.principal import Principal
from server.settings import Settings
from signaling.errors import ErrorCode
from signaling.messages import CheckIn, Envelope, FloorEvent, FloorSnapshot

log = structlog.get_logger("loket.floor")

# (booth principal, check-in) -> claim id; raises ClaimLookupError to refuse.
ClaimResolver = Callable[[Principal, CheckIn], Awaitable[str | None]]
FingerprintRecorder = Callable[[RecordFingerprints], Coroutine[Any, Any, None]]
AuditRecorder = Callable[[Audit], Awaitable[None]]
MAX_EVENTS_PER_PASS = 500


class ClaimLookupError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def floor_config(settings: Settings) -> FloorConfig:
    secret = settings.turn_secret
    return FloorConfig(
        reservation_timeout=settings.reservation_timeout,
        grace_period=settings.grace_period,
        decline_cooldown=settings.decline_cooldown,
        default_service_time=settings.default_service_time,
        cso_capacity=settings.cso_capacity,
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_timeout=settings.heartbeat_timeout,
        ice_urls=tuple(settings.ice_servers),
        turn_secret=secret.get_secret_value().encode() if secret else None,
        turn_ttl=settings.turn_ttl,
        monitor_visible_to_cso=settings.monitor_visible_to_cso,
    )


class FloorRuntime:
    def __init__(
        self,
        config: FloorConfig,
        router: Router,
        live: LiveState,
        metrics: Metrics,
        *,
        resolve_claim: ClaimResolver | None = None,
        record_fingerprints: FingerprintRecorder | None = None,
        record_audit: AuditRecorder | None = None,
        broadcast_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        core: FloorCore | None = None,  # a core rebuilt elsewhere (a cluster's new leader)
    ) -> None:
        self.core = core if core is not None else FloorCore(config)
        self._router = router
        self._live = live
        self._metrics = metrics
        self._resolve_claim = resolve_claim
        self._record_fingerprints = record_fingerprints
        self._record_audit = record_audit
        self._broadcast_interval = broadcast_interval
        self._clock = clock
        self._wall = wall
        self._lock = asyncio.Lock()
        self._timer_at: float | None = None
        self._wake = asyncio.Event()
        self._dirty = asyncio.Event()
        self._pending_events: list[FloorEvent] = []
        self._dropped_events = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []

    @classmethod
    def from_settings(
        cls, settings: Settings, router: Router, live: LiveState, metrics: Metrics, **kw: Any
    ) -> FloorRuntime:
        return cls(floor_config(settings), router, live, metrics, **kw)

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._run_timer(), name="floor-timer"),
            asyncio.create_task(self._run_broadcasts(), name="floor-broadcasts"),
        ]

    async def stop(self) -> None:
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

    async def handle(self, event: Event) -> None:
        async with self._lock:
            effects = self.core.handle(event, Now(self._clock(), self._wall()))
            await self._execute(effects)

    # --- reads for the HTTP side -------------------------------------------------------------

    async def session_of_claim(self, claim_id: str) -> LiveSession | None:
        """The live session in which this claim is being verified, if any."""
        return self.core.session_of_claim(claim_id)

    async def snapshot(self) -> FloorSnapshot:
        return views.snapshot(self.core)

    @property
    def waiting(self) -> int:
        return self.core.dispatcher.waiting_count()

    # --- effects ------------------------------------------------------------------------------

    async def _execute(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send():
                    await self._router.send(
                        effect.peer_id,
                        effect.message,
                        received_at=effect.received_at,
                        raw=effect.raw,
                    )
                case Publish():
                    if isinstance(effect.message, FloorEvent):
                        self._note_event(effect.message)
                    else:
                        await self._router.publish(FLOOR_TOPIC, effect.message)
                case FloorChanged():
                    self._dirty.set()  # gauges and snapshots follow in the broadcast pass
                case PersistSession():
                    await self._live.put(effect.session)
                case DeleteSession():
                    await self._live.delete(effect.session_id)
                case SetTimer():
                    self._timer_at = effect.at
                    self._wake.set()
                case ResolveClaim():
                    self._spawn(self._resolve(effect), "resolve-claim")
                case RecordFingerprints():
                    log.info(
                        "fingerprints_added",
                        session_id=effect.session_id,
                        peer_id=effect.peer_id,
                        fingerprints=list(effect.fingerprints),
                    )
                    if self._record_fingerprints is not None:
                        self._spawn(self._record_fingerprints(effect), "record-fingerprints")
                case Audit():
                    log.info("supervisor_action", action=effect.action, actor=effect.actor,
                             **{k: str(v) for k, v in effect.details.items()})  # fmt: skip
                    if self._record_audit is not None:
                        # Written before the next event is decided: under the floor's lock,
                        # so the audit order is the order things happened.
                        await self._record_audit(effect)
                case Observe():
                    self._observe(effect)

    def _note_event(self, event: FloorEvent) -> None:
        log.info(event.kind, booth_id=event.booth_id, cso_id=event.cso_id,
                 session_id=event.session_id, detail=event.detail)  # fmt: skip
        if len(self._pending_events) < MAX_EVENTS_PER_PASS:
            self._pending_events.append(event)
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

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("floor_task_failed", task=task.get_name(), error=repr(task.exception()))

    # --- background loops ---------------------------------------------------------------------

    async def _run_timer(self) -> None:
        while True:
            at = self._timer_at
            timeout = None if at is None else max(0.0, at - self._clock()) + 0.001
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            if self._timer_at is not None and self._clock() >= self._timer_at:
                try:
                    await self.handle(TimerFired())
                except Exception:  # keep the floor alive; the next tick retries
                    log.exception("floor_timer_failed")

    async def _run_broadcasts(self) -> None:
        """Tell waiting booths their place and supervisors the floor, debounced."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._broadcast_interval)
            self._dirty.clear()
            events, self._pending_events = self._pending_events, []
            dropped, self._dropped_events = self._dropped_events, 0
            try:
                for event in events:
                    await self._router.publish(FLOOR_TOPIC, event)
                if dropped:
                    log.info("floor_events_coalesced", dropped=dropped)
                await self.handle(BroadcastDue())
                self._metrics.queue_length.set(self.core.dispatcher.waiting_count())
                self._metrics.sessions.set(len(self.core.sessions))
            except Exception:
                log.exception("floor_broadcast_failed")
