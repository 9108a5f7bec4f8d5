"""The floor: the server's live picture of booths, CSOs and sessions.

Glue around the pure parts. It feeds socket events to the Dispatcher (who serves whom) and
the booth session state machine (how far each booth is), carries out their decisions by
sending messages through the Router port, keeps LiveState (which authorises every relayed
offer/answer/candidate) in step, and runs the timers the dispatcher asks for.

Every mutation runs under one asyncio.Lock, so decisions are applied in the order they
were made. Relays take no lock: they only read LiveState.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import structlog

from server.dispatch import (
    Assigned,
    BoothRequest,
    CsoProfile,
    CsoRetired,
    Decision,
    Dequeued,
    DispatchConfig,
    Dispatcher,
    DispatchError,
    Released,
    Requeued,
    ReservationLapsed,
    Reserved,
)
from server.domain.privacy import mask_nik
from server.domain.sdp import dtls_fingerprints
from server.domain.turn import ice_servers_for
from server.metrics import Metrics
from server.ports.live_state import LiveSession, LiveState
from server.ports.router import FLOOR_TOPIC, Router
from server.principal import Principal
from server.settings import Settings
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Ack,
    Answer,
    BoothAssigned,
    BoothInfo,
    BoothOffered,
    Candidate,
    CheckIn,
    ClaimSummary,
    CsoView,
    Envelope,
    FloorEvent,
    FloorSnapshot,
    Focus,
    IceServer,
    Language,
    Offer,
    OfferWithdrawn,
    PeerState,
    Queued,
    QueueStats,
    Role,
    SessionEnded,
    SessionView,
    WalkInRef,
    Welcome,
)
from signaling.messages import Assigned as AssignedMsg
from signaling.messages import Reserved as ReservedMsg
from signaling.session import IN_CALL, BoothSession, IllegalTransition, SessionEvent, SessionState

log = structlog.get_logger("loket.floor")

EndReason = Literal["completed", "booth_left", "cso_ended", "cso_lost", "booth_lost", "moved"]
Relayed = Offer | Answer | Candidate | PeerState
FloorEventKind = Literal[
    "booth_checked_in", "booth_reserved", "booth_assigned", "booth_requeued", "booth_left",
    "session_ended", "cso_joined", "cso_lost", "cso_paused", "cso_resumed", "cso_left",
    "peer_state",
]  # fmt: skip


@dataclass
class BoothEntry:
    principal: Principal
    connection: str
    resume_token: str
    machine: BoothSession = field(default_factory=BoothSession)
    claim: ClaimSummary | None = None
    language: Language = Language.INDONESIAN
    priority: int = 0
    checked_in_at: float = 0.0  # unix time, shown to people and in metrics
    queued_since: float = 0.0  # monotonic, kept across a reconnect to hold the place
    session_id: str | None = None
    lost_deadline: float | None = None  # monotonic; set while the socket is gone
    last_queued: tuple[int, int] | None = None  # (position, eta) last told to the booth

    @property
    def booth_id(self) -> str:
        return self.principal.subject

    def info(self) -> BoothInfo:
        p = self.principal
        return BoothInfo(booth_id=p.subject, branch=p.branch, label=p.display_name)


@dataclass
class CsoEntry:
    principal: Principal
    connection: str
    resume_token: str
    connected: bool = True
    paused: bool = False
    focused: str | None = None

    @property
    def cso_id(self) -> str:
        return self.principal.subject


def claim_summary(message: CheckIn, claim_id: str | None = None) -> ClaimSummary:
    claim = message.claim
    if isinstance(claim, WalkInRef):
        return ClaimSummary(
            kind="walk_in",
            claim_id=claim_id,
            claim_type=claim.claim_type,
            nik_masked=mask_nik(claim.nik),
        )
    return ClaimSummary(kind="booking", claim_id=claim_id, booking_code=claim.booking_code)


class Floor:
    def __init__(
        self,
        settings: Settings,
        router: Router,
        live: LiveState,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._router = router
        self._live = live
        self._metrics = metrics
        self._clock = clock
        self._wall = wall
        self._dispatcher = Dispatcher(
            DispatchConfig(
                reservation_timeout=settings.reservation_timeout,
                grace_period=settings.grace_period,
                decline_cooldown=settings.decline_cooldown,
                default_service_time=settings.default_service_time,
            )
        )
        self._booths: dict[str, BoothEntry] = {}
        self._csos: dict[str, CsoEntry] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._queue_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        secret = settings.turn_secret
        self._turn_secret = secret.get_secret_value().encode() if secret else None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run_timers(), name="floor-timers"),
            asyncio.create_task(self._run_broadcasts(), name="floor-broadcasts"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @property
    def waiting(self) -> int:
        return self._dispatcher.waiting_count()

    # --- booths -------------------------------------------------------------------------

    async def booth_connected(
        self, principal: Principal, connection: str, resume: str | None
    ) -> None:
        """Send `welcome` (and, on resume, where the booth stands) to a booth socket."""
        async with self._lock:
            entry = self._booths.get(principal.subject)
            resumed = entry is not None and resume is not None and resume == entry.resume_token
            if entry is None or not resumed:
                if entry is not None:  # a fresh kiosk start: forget the old visit
                    await self._booth_gone(entry, "booth_left")
                entry = BoothEntry(principal, connection, secrets.token_urlsafe(24))
                self._booths[principal.subject] = entry
            else:
                entry.connection = connection
                entry.lost_deadline = None
                if entry.machine.state is SessionState.RECONNECTING:
                    self._transition(entry, SessionEvent.RESUME)
            await self._send(entry.booth_id, self._welcome(principal, Role.BOOTH, entry, resumed))
            if resumed:
                await self._rejoin_queue_if_needed(entry)
                await self._replay_booth(entry)
            self._wake.set()

    async def booth_disconnected(self, booth_id: str, connection: str) -> None:
        async with self._lock:
            entry = self._booths.get(booth_id)
            if entry is None or entry.connection != connection:
                return  # replaced by a newer socket
            if entry.machine.state in (SessionState.IDLE, SessionState.ENDED):
                del self._booths[booth_id]
                return
            state = entry.machine.state
            self._transition(entry, SessionEvent.CONNECTION_LOST)
            entry.lost_deadline = self._clock() + self._settings.grace_period
            if state in (SessionState.QUEUED, SessionState.RESERVED):
                # Out of the queue while away (no CSO is offered an empty booth); the place
                # is kept through queued_since and restored on resume.
                await self._apply(self._dispatcher.leave(booth_id, self._clock()), "booth_lost")
            log.info("booth_connection_lost", booth_id=booth_id, state=str(state))
            self._wake.set()

    async def check_in(self, booth_id: str, message: CheckIn, claim_id: str | None = None) -> None:
        """Queue the booth. `claim_id`: the recorded claim its participant checked in for."""
        async with self._lock:
            entry = self._booth(booth_id)
            if entry.machine.state is not SessionState.IDLE:
                raise ProtocolError(
                    ErrorCode.ILLEGAL_TRANSITION,
                    f"booth is already {entry.machine.state}; check in once per visit",
                    ref=message.id,
                )
            # One participant, one booth: checked under the lock, so two booths checking
            # in for the same claim at the same moment cannot both get through.
            elsewhere = claim_id and self._booth_holding_claim(claim_id, besides=booth_id)
            if elsewhere:
                raise ProtocolError(
                    ErrorCode.CLAIM_REFUSED,
                    f"this claim is already checked in at booth {elsewhere}",
                    ref=message.id,
                )
            entry.claim = claim_summary(message, claim_id)
            entry.language = message.language
            entry.priority = 1 if message.needs_assistance else 0
            entry.checked_in_at = self._wall()
            entry.queued_since = self._clock()
            self._transition(entry, SessionEvent.CHECK_IN)
            await self._send(booth_id, Ack(reply_to=message.id))
            await self._event("booth_checked_in", booth_id=booth_id)
            await self._enqueue(entry)

    async def leave(self, booth_id: str, message_id: str | None) -> None:
        async with self._lock:
            entry = self._booth(booth_id)
            await self._send(booth_id, Ack(reply_to=message_id))
            if entry.machine.state is not SessionState.IDLE:
                await self._apply(self._dispatcher.leave(booth_id, self._clock()), "booth_left")
                entry.machine = BoothSession()
                entry.session_id = None
                await self._event("booth_left", booth_id=booth_id)

    # --- CSOs ---------------------------------------------------------------------------

    async def cso_connected(
        self, principal: Principal, connection: str, resume: str | None
    ) -> None:
        async with self._lock:
            entry = self._csos.get(principal.subject)
            resumed = entry is not None and (resume == entry.resume_token or entry.connected)
            if entry is None:
                entry = CsoEntry(principal, connection, secrets.token_urlsafe(24))
                self._csos[principal.subject] = entry
            entry.connection = connection
            entry.connected = True
            await self._send(entry.cso_id, self._welcome(principal, Role.CSO, entry, resumed))
            profile = CsoProfile(
                cso_id=principal.subject,
                capacity=min(principal.capacity, self._settings.cso_capacity),
                branch=principal.branch,
                pools=principal.pools or frozenset({principal.branch}),
                skills=principal.skills,
            )
            now = self._clock()
            decisions = self._dispatcher.add_cso(profile, now)
            if entry.paused:
                decisions += self._dispatcher.pause_cso(entry.cso_id, now)
            await self._replay_cso(entry)
            await self._event(
                "cso_joined", cso_id=entry.cso_id, detail="resumed" if resumed else None
            )
            await self._apply(decisions)
            self._wake.set()

    async def cso_disconnected(self, cso_id: str, connection: str) -> None:
        async with self._lock:
            entry = self._csos.get(cso_id)
            if entry is None or entry.connection != connection:
                return
            entry.connected = False
            entry.focused = None
            await self._event("cso_lost", cso_id=cso_id)
            await self._apply(self._dispatcher.cso_lost(cso_id, self._clock()), "cso_lost")
            self._wake.set()

    async def set_availability(self, cso_id: str, available: bool, message_id: str) -> None:
        async with self._lock:
            entry = self._cso(cso_id)
            await self._send(cso_id, Ack(reply_to=message_id))
            if available == (not entry.paused):
                return
            entry.paused = not available
            now = self._clock()
            if available:
                decisions = self._dispatcher.resume_cso(cso_id, now)
            else:
                decisions = self._dispatcher.pause_cso(cso_id, now)
            await self._event("cso_resumed" if available else "cso_paused", cso_id=cso_id)
            await self._apply(decisions)
            self._wake.set()

    async def accept(self, cso_id: str, session_id: str, message_id: str) -> None:
        async with self._lock:
            session = await self._own_session(cso_id, session_id, message_id)
            if session.state is not SessionState.RESERVED:
                raise ProtocolError(
                    ErrorCode.ILLEGAL_TRANSITION,
                    f"session is {session.state}, not awaiting acceptance",
                    ref=message_id,
                )
            decisions = self._dispatch(
                lambda now: self._dispatcher.accept(session.booth_id, cso_id, now), message_id
            )
            await self._send(cso_id, Ack(reply_to=message_id))
            await self._apply(decisions)
            self._wake.set()

    async def decline(self, cso_id: str, session_id: str, message_id: str) -> None:
        async with self._lock:
            session = await self._own_session(cso_id, session_id, message_id)
            decisions = self._dispatch(
                lambda now: self._dispatcher.decline(session.booth_id, cso_id, now), message_id
            )
            await self._send(cso_id, Ack(reply_to=message_id))
            await self._apply(decisions)
            self._wake.set()

    async def end_session(self, cso_id: str, session_id: str, message_id: str) -> None:
        async with self._lock:
            session = await self._own_session(cso_id, session_id, message_id)
            decisions = self._dispatch(
                lambda now: self._dispatcher.release(session.booth_id, now), message_id
            )
            await self._send(cso_id, Ack(reply_to=message_id))
            await self._apply(decisions, "cso_ended")
            self._wake.set()

    async def focus(self, cso_id: str, session_id: str | None, message_id: str) -> None:
        """Talk to one booth; every other booth of this CSO goes on hold."""
        async with self._lock:
            entry = self._cso(cso_id)
            if session_id is not None:
                target = await self._own_session(cso_id, session_id, message_id)
                if target.state not in IN_CALL:
                    raise ProtocolError(
                        ErrorCode.ILLEGAL_TRANSITION,
                        f"session is {target.state}; focus a booth once it is connected",
                        ref=message_id,
                    )
            await self._send(cso_id, Ack(reply_to=message_id))
            entry.focused = session_id
            for session in await self._live.of_peer(cso_id):
                booth = self._booths.get(session.booth_id)
                if booth is None or booth.machine.state not in IN_CALL:
                    continue
                focused = session.session_id == session_id
                was = booth.machine.state is SessionState.FOCUSED
                event = SessionEvent.FOCUS if focused else SessionEvent.UNFOCUS
                if booth.machine.state is SessionState.CONNECTING or focused != was:
                    self._transition(booth, event)
                    await self._sync_session_state(booth)
                    await self._send(
                        booth.booth_id, Focus(session_id=session.session_id, focused=focused)
                    )

    # --- supervisors --------------------------------------------------------------------

    async def supervisor_connected(self, principal: Principal, connection: str) -> None:
        welcome = Welcome(
            role=Role.SUPERVISOR,
            peer_id=principal.subject,
            display_name=principal.display_name,
            heartbeat_interval=self._settings.heartbeat_interval,
            heartbeat_timeout=self._settings.heartbeat_timeout,
            resume_token=connection,
        )
        await self._send(principal.subject, welcome)
        await self._send(principal.subject, await self.snapshot())

    async def snapshot(self) -> FloorSnapshot:
        now = self._wall()
        waiting = [b for b in self._booths.values() if b.machine.state is SessionState.QUEUED]
        by_branch: dict[str, int] = {}
        for b in waiting:
            by_branch[b.principal.branch] = by_branch.get(b.principal.branch, 0) + 1
        oldest = min((b.checked_in_at for b in waiting), default=now)
        csos = []
        for cso in self._csos.values():
            sessions = [
                SessionView(
                    session_id=s.session_id,
                    booth_id=s.booth_id,
                    branch=self._booths[s.booth_id].principal.branch
                    if s.booth_id in self._booths
                    else "",
                    state=str(s.state),
                    since=s.created_at,
                )
                for s in await self._live.of_peer(cso.cso_id)
            ]
            state: Literal["available", "paused", "lost"] = (
                "lost" if not cso.connected else "paused" if cso.paused else "available"
            )
            csos.append(
                CsoView(
                    cso_id=cso.cso_id,
                    name=cso.principal.display_name,
                    state=state,
                    capacity=min(cso.principal.capacity, self._settings.cso_capacity),
                    load=len(sessions),
                    sessions=sessions,
                )
            )
        return FloorSnapshot(
            queue=QueueStats(
                waiting=len(waiting), oldest_wait_s=max(0.0, now - oldest), by_branch=by_branch
            ),
            csos=csos,
        )

    async def session_of_claim(self, claim_id: str) -> LiveSession | None:
        """The live session in which this claim is being verified, if any."""
        for booth in self._booths.values():
            if booth.session_id and booth.claim and booth.claim.claim_id == claim_id:
                return await self._live.get(booth.session_id)
        return None

    def _booth_holding_claim(self, claim_id: str, *, besides: str) -> str | None:
        """Another booth (not `besides`) where this claim is checked in right now."""
        for booth in self._booths.values():
            if (
                booth.booth_id != besides
                and booth.claim is not None
                and booth.claim.claim_id == claim_id
                and booth.machine.state not in (SessionState.IDLE, SessionState.ENDED)
            ):
                return booth.booth_id
        return None

    # --- relay --------------------------------------------------------------------------

    async def relay(self, sender: Principal, message: Relayed, received_at: float) -> None:
        """Forward offer/answer/candidate/peer_state between the two ends of one session."""
        session = await self._live.get(message.session_id)
        if session is None or not session.has_end(sender.subject):
            raise ProtocolError(
                ErrorCode.NOT_IN_SESSION,
                "you are not an end of that session",
                ref=message.id,
            )
        if session.state not in (*IN_CALL, SessionState.RECONNECTING):
            raise ProtocolError(
                ErrorCode.ILLEGAL_TRANSITION,
                f"session is {session.state}; signal only after the booth is assigned",
                ref=message.id,
            )
        if isinstance(message, Offer | Answer):
            prints = dtls_fingerprints(message.sdp)
            if sender.subject == session.booth_id:
                session = replace(session, booth_fingerprints=prints)
            else:
                session = replace(session, cso_fingerprints=prints)
            await self._live.put(session)
        if isinstance(message, PeerState):
            await self._peer_state(sender, session, message)
            if sender.subject == session.cso_id:
                return  # the booth has no use for the console's view
        target = session.other_end(sender.subject)
        if not await self._router.send(target, message, received_at=received_at):
            raise ProtocolError(
                ErrorCode.PEER_UNAVAILABLE, "the other end is not connected", ref=message.id
            )

    async def _peer_state(self, sender: Principal, session: LiveSession, msg: PeerState) -> None:
        if sender.subject != session.booth_id or msg.state != "connected":
            return
        async with self._lock:
            booth = self._booths.get(session.booth_id)
            if booth and booth.session_id == session.session_id:
                if booth.machine.state is SessionState.CONNECTING:
                    focused = self._csos.get(session.cso_id)
                    self._transition(booth, SessionEvent.MEDIA_UP)
                    if focused and focused.focused == session.session_id:
                        self._transition(booth, SessionEvent.FOCUS)
                    await self._sync_session_state(booth)
                await self._event(
                    "peer_state",
                    booth_id=booth.booth_id,
                    cso_id=session.cso_id,
                    session_id=session.session_id,
                    detail=msg.state,
                )

    # --- dispatch decisions -------------------------------------------------------------

    def _dispatch(
        self, call: Callable[[float], list[Decision]], message_id: str | None
    ) -> list[Decision]:
        try:
            return call(self._clock())
        except DispatchError as exc:
            raise ProtocolError(ErrorCode.CONFLICT, str(exc), ref=message_id) from None

    async def _enqueue(self, entry: BoothEntry) -> None:
        request = BoothRequest(
            booth_id=entry.booth_id,
            branch=entry.principal.branch,
            priority=entry.priority,
            # Every CSO speaks Bahasa Indonesia; other languages need a CSO with the skill.
            needs=frozenset()
            if entry.language is Language.INDONESIAN
            else frozenset({f"lang:{entry.language}"}),
            checked_in_at=entry.queued_since,
        )
        await self._apply(self._dispatcher.enqueue(request, self._clock()))
        self._queue_dirty.set()
        self._wake.set()

    async def _rejoin_queue_if_needed(self, entry: BoothEntry) -> None:
        if entry.machine.state is SessionState.QUEUED and not self._dispatcher.has_booth(
            entry.booth_id
        ):
            await self._enqueue(entry)

    async def _apply(self, decisions: list[Decision], end_reason: EndReason = "completed") -> None:
        for decision in decisions:
            match decision:
                case Reserved():
                    await self._on_reserved(decision)
                case Assigned():
                    await self._on_assigned(decision)
                case ReservationLapsed():
                    await self._on_lapsed(decision)
                case Requeued():
                    await self._on_requeued(decision)
                case Released():
                    await self._end_session_of(decision.booth_id, end_reason)
                case Dequeued():
                    await self._on_dequeued(decision, end_reason)
                case CsoRetired():
                    self._csos.pop(decision.cso_id, None)
                    await self._event("cso_left", cso_id=decision.cso_id)
        self._metrics.queue_length.set(self._dispatcher.waiting_count())
        self._metrics.sessions.set(await self._live.count())
        if decisions:
            self._queue_dirty.set()

    async def _on_reserved(self, d: Reserved) -> None:
        booth = self._booths[d.booth_id]
        session_id = uuid.uuid4().hex
        booth.session_id = session_id
        self._transition(booth, SessionEvent.RESERVE)
        await self._live.put(
            LiveSession(
                session_id,
                d.booth_id,
                d.cso_id,
                booth.machine.state,
                self._wall(),
                claim_id=booth.claim.claim_id if booth.claim else None,
            )
        )
        await self._send(
            d.cso_id,
            BoothOffered(
                session_id=session_id,
                booth=booth.info(),
                claim=booth.claim or ClaimSummary(kind="walk_in"),
                language=booth.language,
                expires_in=max(0.0, d.expires_at - self._clock()),
            ),
        )
        await self._send(d.booth_id, ReservedMsg(session_id=session_id))
        await self._event(
            "booth_reserved", booth_id=d.booth_id, cso_id=d.cso_id, session_id=session_id
        )

    async def _on_assigned(self, d: Assigned) -> None:
        booth = self._booths[d.booth_id]
        session_id = booth.session_id
        assert session_id is not None
        self._transition(booth, SessionEvent.ACCEPT)
        await self._sync_session_state(booth)
        self._metrics.assignments.inc()
        self._metrics.wait_seconds.observe(max(0.0, self._wall() - booth.checked_in_at))
        cso = self._csos.get(d.cso_id)
        await self._send(d.booth_id, self._assigned_for_booth(booth, session_id, cso))
        await self._send(d.cso_id, self._assigned_for_cso(booth, session_id, d.cso_id))
        await self._event(
            "booth_assigned", booth_id=d.booth_id, cso_id=d.cso_id, session_id=session_id
        )

    async def _on_lapsed(self, d: ReservationLapsed) -> None:
        booth = self._booths.get(d.booth_id)
        if booth and booth.session_id:
            await self._live.delete(booth.session_id)
            await self._send(d.cso_id, OfferWithdrawn(session_id=booth.session_id, reason=d.reason))
            booth.session_id = None
            if booth.machine.state is SessionState.RESERVED:
                self._transition(booth, SessionEvent.LAPSE)
            booth.last_queued = None

    async def _on_requeued(self, d: Requeued) -> None:
        booth = self._booths.get(d.booth_id)
        if booth is None:
            return
        if booth.session_id:
            await self._close_session(booth.session_id, "cso_lost")
        booth.session_id = None
        booth.last_queued = None
        if booth.machine.can(SessionEvent.REQUEUE):
            self._transition(booth, SessionEvent.REQUEUE)
        self._metrics.requeues.inc()
        await self._event("booth_requeued", booth_id=d.booth_id, cso_id=d.former_cso_id)

    async def _on_dequeued(self, d: Dequeued, reason: EndReason) -> None:
        booth = self._booths.get(d.booth_id)
        if booth and booth.session_id:  # it was reserved for a CSO: withdraw the offer
            session = await self._live.get(booth.session_id)
            await self._live.delete(booth.session_id)
            if session:
                await self._send(
                    session.cso_id,
                    OfferWithdrawn(session_id=session.session_id, reason="booth_left"),
                )
            booth.session_id = None

    async def _end_session_of(self, booth_id: str, reason: EndReason) -> None:
        booth = self._booths.get(booth_id)
        if booth is None or booth.session_id is None:
            return
        await self._close_session(booth.session_id, reason)
        booth.session_id = None
        if booth.machine.can(SessionEvent.END):
            self._transition(booth, SessionEvent.END)
        if booth.lost_deadline is None:
            booth.machine = BoothSession()  # the kiosk is ready for the next participant

    async def _close_session(self, session_id: str, reason: EndReason) -> None:
        session = await self._live.get(session_id)
        if session is None:
            return
        await self._live.delete(session_id)
        ended = SessionEnded(session_id=session_id, reason=reason)
        await self._send(session.booth_id, ended)
        await self._send(session.cso_id, ended)
        cso = self._csos.get(session.cso_id)
        if cso and cso.focused == session_id:
            cso.focused = None
        await self._event(
            "session_ended",
            booth_id=session.booth_id,
            cso_id=session.cso_id,
            session_id=session_id,
            detail=reason,
        )

    async def _booth_gone(self, entry: BoothEntry, reason: EndReason) -> None:
        if self._dispatcher.has_booth(entry.booth_id):
            await self._apply(self._dispatcher.leave(entry.booth_id, self._clock()), reason)
        elif entry.session_id:
            await self._close_session(entry.session_id, reason)
        self._booths.pop(entry.booth_id, None)
        await self._event("booth_left", booth_id=entry.booth_id, detail=reason)

    # --- replays after a reconnect ------------------------------------------------------

    async def _replay_booth(self, booth: BoothEntry) -> None:
        state = booth.machine.state
        if state is SessionState.RESERVED and booth.session_id:
            await self._send(booth.booth_id, ReservedMsg(session_id=booth.session_id))
        elif state in IN_CALL and booth.session_id:
            session = await self._live.get(booth.session_id)
            cso = self._csos.get(session.cso_id) if session else None
            await self._send(booth.booth_id, self._assigned_for_booth(booth, booth.session_id, cso))
        booth.last_queued = None
        self._queue_dirty.set()

    async def _replay_cso(self, cso: CsoEntry) -> None:
        for session in await self._live.of_peer(cso.cso_id):
            booth = self._booths.get(session.booth_id)
            if booth is None:
                continue
            if session.state is SessionState.RESERVED:
                await self._send(
                    cso.cso_id,
                    BoothOffered(
                        session_id=session.session_id,
                        booth=booth.info(),
                        claim=booth.claim or ClaimSummary(kind="walk_in"),
                        language=booth.language,
                        expires_in=self._settings.reservation_timeout,
                    ),
                )
            else:
                await self._send(
                    cso.cso_id, self._assigned_for_cso(booth, session.session_id, cso.cso_id)
                )

    # --- helpers ------------------------------------------------------------------------

    def _booth(self, booth_id: str) -> BoothEntry:
        entry = self._booths.get(booth_id)
        if entry is None:
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "booth is not connected")
        return entry

    def _cso(self, cso_id: str) -> CsoEntry:
        entry = self._csos.get(cso_id)
        if entry is None:
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "CSO is not connected")
        return entry

    async def _own_session(self, cso_id: str, session_id: str, message_id: str) -> LiveSession:
        session = await self._live.get(session_id)
        if session is None or session.cso_id != cso_id:
            raise ProtocolError(
                ErrorCode.NOT_IN_SESSION, "that session is not yours", ref=message_id
            )
        return session

    def _transition(self, booth: BoothEntry, event: SessionEvent) -> None:
        try:
            booth.machine.handle(event)
        except IllegalTransition as exc:
            # Our own bookkeeping disagrees with itself: log loudly, keep serving.
            log.error("illegal_session_transition", booth_id=booth.booth_id, error=str(exc))

    async def _sync_session_state(self, booth: BoothEntry) -> None:
        if booth.session_id:
            session = await self._live.get(booth.session_id)
            if session:
                await self._live.put(session.with_state(booth.machine.state))

    def _ice_servers(self, peer_id: str) -> list[IceServer]:
        specs = ice_servers_for(
            self._settings.ice_servers,
            peer_id,
            secret=self._turn_secret,
            now=self._wall(),
            ttl=self._settings.turn_ttl,
        )
        return [
            IceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in specs
        ]

    def _assigned_for_booth(
        self, booth: BoothEntry, session_id: str, cso: CsoEntry | None
    ) -> AssignedMsg:
        return AssignedMsg(
            session_id=session_id,
            cso_name=cso.principal.display_name if cso else "",
            ice_servers=self._ice_servers(booth.booth_id),
            claim_id=booth.claim.claim_id if booth.claim else None,
        )

    def _assigned_for_cso(self, booth: BoothEntry, session_id: str, cso_id: str) -> BoothAssigned:
        return BoothAssigned(
            session_id=session_id,
            booth=booth.info(),
            claim=booth.claim or ClaimSummary(kind="walk_in"),
            language=booth.language,
            ice_servers=self._ice_servers(cso_id),
            checked_in_at=booth.checked_in_at,
        )

    def _welcome(
        self, principal: Principal, role: Role, entry: BoothEntry | CsoEntry, resumed: bool
    ) -> Welcome:
        return Welcome(
            role=role,
            peer_id=principal.subject,
            display_name=principal.display_name,
            heartbeat_interval=self._settings.heartbeat_interval,
            heartbeat_timeout=self._settings.heartbeat_timeout,
            resume_token=entry.resume_token,
            resumed=resumed,
        )

    async def _send(self, peer_id: str, message: Envelope) -> bool:
        return await self._router.send(peer_id, message)

    async def _event(
        self,
        kind: FloorEventKind,
        *,
        booth_id: str | None = None,
        cso_id: str | None = None,
        session_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        log.info(kind, booth_id=booth_id, cso_id=cso_id, session_id=session_id, detail=detail)
        await self._router.publish(
            FLOOR_TOPIC,
            FloorEvent(
                kind=kind, booth_id=booth_id, cso_id=cso_id, session_id=session_id, detail=detail
            ),
        )

    # --- background tasks ---------------------------------------------------------------

    def _next_deadline(self) -> float | None:
        deadlines = [b.lost_deadline for b in self._booths.values() if b.lost_deadline]
        dispatch = self._dispatcher.next_deadline()
        if dispatch is not None:
            deadlines.append(dispatch)
        return min(deadlines, default=None)

    async def _run_timers(self) -> None:
        while True:
            deadline = self._next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock()) + 0.001
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            try:
                await self._fire_due()
            except Exception:  # keep the floor alive; the next tick retries
                log.exception("floor_timer_failed")

    async def _fire_due(self) -> None:
        async with self._lock:
            now = self._clock()
            await self._apply(self._dispatcher.tick(now), "cso_lost")
            for entry in [
                b for b in self._booths.values() if b.lost_deadline and b.lost_deadline <= now
            ]:
                log.info("booth_gone", booth_id=entry.booth_id)
                await self._booth_gone(entry, "booth_lost")

    async def _run_broadcasts(self) -> None:
        """Tell waiting booths their place and wait; tell supervisors the floor changed.

        Debounced: a burst of check-ins costs one pass, not one pass per check-in.
        """
        while True:
            await self._queue_dirty.wait()
            await asyncio.sleep(0.2)
            self._queue_dirty.clear()
            try:
                async with self._lock:
                    await self._send_queue_positions()
                    snapshot = await self.snapshot()
                await self._router.publish(FLOOR_TOPIC, snapshot)
            except Exception:
                log.exception("floor_broadcast_failed")

    async def _send_queue_positions(self) -> None:
        waiting = self._dispatcher.waiting_count()
        for booth in self._booths.values():
            if booth.machine.state is not SessionState.QUEUED or booth.lost_deadline:
                continue
            if (
                not self._dispatcher.has_booth(booth.booth_id)
                or self._dispatcher.state_of(booth.booth_id) != "waiting"
            ):
                continue
            position = self._dispatcher.position(booth.booth_id)
            eta: float | None = self._dispatcher.estimated_wait(booth.booth_id)
            if eta is not None and not math.isfinite(eta):
                eta = None  # no CSO on duty: there is no honest estimate
            key = (position, -1 if eta is None else round(eta))
            if key != booth.last_queued:
                booth.last_queued = key
                await self._send(
                    booth.booth_id,
                    Queued(position=position, waiting=waiting, estimated_wait_s=eta),
                )
