"""The floor core: booths, CSOs, sessions and focus as a pure, sans-I/O state machine.

In the style of h11's `Connection` and python-websockets' `Protocol`: the runtime feeds it
events (`server.floor.events`) with the time, and it returns the effects to carry out,
in order. It reads no clock, opens no socket and awaits nothing, so every interleaving of
check-ins, offers, drops, resumes and timeouts can be explored by a property test
(tests/unit/test_floor_core.py) in milliseconds.

It owns:
- the Dispatcher (who serves whom, queue order, reservations, grace periods);
- one `BoothSession` state machine per booth (how far each booth is), whose every
  transition, including resume and `ended -> idle`, goes through the session table;
- the live sessions (booth, CSO, state, DTLS fingerprints), mirrored to the LiveState port
  through PersistSession / DeleteSession effects;
- each CSO's availability and focus;
- access decisions for socket actions, through `server.domain.access.decide`.

Resume is by state sync: a peer that (re)connects gets `welcome` carrying its whole
authoritative state (views.py), and the core never sends to a peer that is offline:
what it misses is reflected in that state instead of being replayed.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

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
from server.domain.access import AccessFacts, Action, SessionFacts
from server.domain.documents import DocumentKind
from server.domain.privacy import mask_nik
from server.domain.sdp import dtls_fingerprints
from server.floor import views
from server.floor.events import (
    BroadcastDue,
    ClaimRefused,
    ClaimResolved,
    DeleteSession,
    DocumentStored,
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
)
from server.floor.supervision import Link, Supervision
from server.ports.live_state import LiveSession
from server.principal import AccountRole, Principal
from signaling.codec import error_reply
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Accept,
    Ack,
    Answer,
    Candidate,
    CaptureStatus,
    CheckIn,
    ClaimSummary,
    CloseLink,
    Decline,
    DocumentAdded,
    EndReason,
    EndSession,
    Envelope,
    FloorEvent,
    FloorSample,
    Focus,
    FocusBooth,
    Language,
    Leave,
    MoveBooth,
    Offer,
    OfferWithdrawn,
    OpenLink,
    PeerQuality,
    PeerState,
    PeerStats,
    Queued,
    RequestCapture,
    SessionEnded,
    SessionEndNote,
    SessionUpdate,
    SetAvailability,
    SetCsoAvailability,
    Subscribe,
    WalkInRef,
)
from signaling.messages import Reserved as ReservedMsg
from signaling.session import (
    BoothSession,
    IllegalTransition,
    SessionEvent,
    SessionState,
)

S, E = SessionState, SessionEvent
DOCUMENT_KINDS = frozenset(k.value for k in DocumentKind)
RELAYED: frozenset[type] = frozenset({Candidate, Offer, Answer, PeerState, CaptureStatus})
HISTORY_STEP = 30.0  # seconds between the queue samples supervisors chart
HISTORY_POINTS = 120  # an hour of them


@dataclass(frozen=True, slots=True)
class FloorConfig:
    reservation_timeout: float = 15.0
    grace_period: float = 30.0  # a lost or paused CSO keeps its booths; a lost booth its place
    decline_cooldown: float = 60.0
    default_service_time: float = 300.0
    cso_capacity: int = 6
    heartbeat_interval: float = 10.0
    heartbeat_timeout: float = 30.0
    ice_urls: tuple[str, ...] = ()
    turn_secret: bytes | None = None
    turn_ttl: int = 3600
    monitor_visible_to_cso: bool = True  # the console marks a session a supervisor watches


@dataclass
class BoothRecord:
    principal: Principal
    resume_token: str
    connection: str | None  # None while the socket is gone (within grace)
    machine: BoothSession = field(default_factory=BoothSession)
    claim: ClaimSummary | None = None
    claim_key: str | None = None  # who the participant is, to refuse a second booth
    language: Language = Language.INDONESIAN
    priority: int = 0
    checked_in_at: float = 0.0  # unix time, shown to people
    queued_since: float = 0.0  # monotonic, kept across a drop to hold the place
    session_id: str | None = None
    lost_deadline: float | None = None  # monotonic, while the socket is gone
    pending: CheckIn | None = None  # a check-in waiting for its claim to be resolved
    last_queued: tuple[int, int] | None = None  # (position, eta) last told
    last_ended: SessionEndNote | None = None  # a session that ended while it was away
    reconnects: int = 0  # resumes after a drop since the kiosk started (supervisors' alerts)

    @property
    def booth_id(self) -> str:
        return self.principal.subject

    @property
    def connected(self) -> bool:
        return self.connection is not None

    @property
    def state(self) -> SessionState:
        return self.machine.state


@dataclass
class CsoRecord:
    principal: Principal
    resume_token: str
    connection: str | None
    paused: bool = False  # remembered across reconnects: a break survives a network blip
    focused: str | None = None  # session id the CSO talks to

    @property
    def cso_id(self) -> str:
        return self.principal.subject

    @property
    def connected(self) -> bool:
        return self.connection is not None


@dataclass
class SessionRecord:
    live: LiveSession
    offer_expires_at: float | None = None  # monotonic, while reserved
    extra_fingerprints: tuple[str, ...] = ()  # announced by later renegotiations
    state_since: float = 0.0  # unix time of the last step, for supervisors' timers
    quality: dict[str, PeerQuality] = field(default_factory=dict)  # "booth"/"cso" -> latest
    _facts: AccessFacts | None = field(default=None, repr=False)

    def facts(self) -> AccessFacts:
        """What the access policy needs, cached until the session changes."""
        live = self.live
        cached = self._facts
        if cached is None or cached.session is None or cached.session.state is not live.state:
            cached = self._facts = AccessFacts(
                session=SessionFacts(live.session_id, live.booth_id, live.cso_id, live.state)
            )
        return cached


_NO_SESSION = AccessFacts()


def claim_summary(message: CheckIn, claim_id: str | None) -> ClaimSummary:
    claim = message.claim
    if isinstance(claim, WalkInRef):
        return ClaimSummary(
            kind="walk_in",
            claim_id=claim_id,
            claim_type=claim.claim_type,
            nik_masked=mask_nik(claim.nik),
        )
    return ClaimSummary(kind="booking", claim_id=claim_id, booking_code=claim.booking_code)


def claim_key(message: CheckIn) -> str:
    claim = message.claim
    if isinstance(claim, WalkInRef):
        return f"walk_in:{claim.nik}:{claim.claim_type}"
    return f"booking:{claim.booking_code}"


class FloorCore(Supervision):
    def __init__(
        self, config: FloorConfig, *, new_id: Callable[[], str] = lambda: uuid.uuid4().hex
    ) -> None:
        self.config = config
        self.dispatcher = Dispatcher(
            DispatchConfig(
                reservation_timeout=config.reservation_timeout,
                grace_period=max(config.grace_period, 1e-3),
                decline_cooldown=max(config.decline_cooldown, 1e-3),
                default_service_time=config.default_service_time,
            )
        )
        self.booths: dict[str, BoothRecord] = {}
        self.csos: dict[str, CsoRecord] = {}
        self.sessions: dict[str, SessionRecord] = {}
        self._new_id = new_id
        self._out: list[Effect] = []
        self._now = Now(0.0, 0.0)
        self._timer_at: float | None = None
        # Booths whose socket is gone, so deadlines need not scan every booth per event.
        self._away: set[str] = set()
        # claim key or "claim:<id>" -> the booth holding it (checked on use).
        self._holders: dict[str, str] = {}
        self.supervisors: dict[str, str] = {}  # supervisor id -> its socket
        self._away_in_queue: list[str] = []  # see _apply
        self.links: dict[str, Link] = {}  # monitor and whisper links by id
        self.history: deque[FloorSample] = deque(maxlen=HISTORY_POINTS)  # the last hour

    # --- the one entry point --------------------------------------------------------------

    def handle(self, event: Event, now: Now) -> list[Effect]:
        """Apply one event; return the effects to carry out, in order."""
        self._now = now
        self._out = []
        try:
            if type(event) is Received and type(event.message) in RELAYED:
                # The hot path (trickled candidates): nothing here moves a deadline.
                try:
                    self._received(event)
                except ProtocolError as exc:
                    exc.ref = exc.ref or event.message.id
                    self._send(event.principal.subject, error_reply(exc))
                return self._out
            match event:
                case PeerOpened():
                    self._opened(event)
                case PeerClosed():
                    self._closed(event)
                case Received():
                    try:
                        self._received(event)
                    except ProtocolError as exc:
                        if exc.ref is None:
                            exc.ref = event.message.id
                        self._send(event.principal.subject, error_reply(exc))
                case ClaimResolved():
                    self._claim_resolved(event)
                case ClaimRefused():
                    self._claim_refused(event)
                case DocumentStored():
                    self._document_stored(event)
                case TimerFired():
                    self._timer()
                case BroadcastDue():
                    self._broadcast()
            self._schedule()
            return self._out
        finally:
            self._out = []

    def next_deadline(self) -> float | None:
        deadlines = []
        for booth_id in list(self._away):
            rec = self.booths.get(booth_id)
            if rec is None or rec.lost_deadline is None:
                self._away.discard(booth_id)
            else:
                deadlines.append(rec.lost_deadline)
        dispatch = self.dispatcher.next_deadline()
        if dispatch is not None:
            deadlines.append(dispatch)
        return min(deadlines, default=None)

    # --- queries for the runtime (HTTP side) -------------------------------------------------

    def session_of_claim(self, claim_id: str) -> LiveSession | None:
        for booth in self.booths.values():
            if booth.session_id and booth.claim and booth.claim.claim_id == claim_id:
                record = self.sessions.get(booth.session_id)
                return record.live if record else None
        return None

    def sessions_of(self, peer_id: str) -> list[SessionRecord]:
        return sorted(
            (s for s in self.sessions.values() if peer_id in (s.live.cso_id, s.live.booth_id)),
            key=lambda s: (s.live.created_at, s.live.session_id),
        )

    # --- sockets ------------------------------------------------------------------------------

    def _opened(self, ev: PeerOpened) -> None:
        role = ev.principal.role
        if role is AccountRole.BOOTH:
            self._booth_opened(ev)
        elif role is AccountRole.CSO:
            self._cso_opened(ev)
        else:
            self._supervisor_opened(ev.principal, ev.connection)

    def _closed(self, ev: PeerClosed) -> None:
        role = ev.principal.role
        if role is AccountRole.BOOTH:
            self._booth_closed(ev.principal.subject, ev.connection)
        elif role is AccountRole.CSO:
            self._cso_closed(ev.principal.subject, ev.connection)
        else:
            self._supervisor_closed(ev.principal, ev.connection)

    def _booth_opened(self, ev: PeerOpened) -> None:
        booth_id = ev.principal.subject
        self._close_links(peer_id=booth_id)  # a new socket has no peer for an old link
        rec = self.booths.get(booth_id)
        resumed = rec is not None and ev.resume is not None and ev.resume == rec.resume_token
        if rec is not None and not resumed:
            # A kiosk that starts afresh (restart, lost token): its old visit is over. The
            # new socket hears nothing of it; the CSO is told the booth left.
            rec.connection = None
            self._booth_gone(rec, "booth_left")
            rec = None
        if rec is None:
            rec = BoothRecord(ev.principal, ev.new_token, ev.connection)
            self.booths[booth_id] = rec
        else:
            rec.connection = ev.connection
            rec.principal = ev.principal
            rec.lost_deadline = None
            # A check-in in flight belonged to the old socket; the welcome says idle, so
            # the kiosk sends it again (the records find the same claim).
            rec.pending = None
            rec.reconnects += 1
            if rec.state is S.RECONNECTING:
                self._transition(rec, E.RESUME)
                self._align_focus(rec)
        # Back in the queue first, so the welcome tells its place; the welcome still goes
        # out before anything that re-queueing produced for this booth (e.g. `reserved`).
        first = len(self._out)
        if rec.state is S.QUEUED and not self.dispatcher.has_booth(booth_id):
            self._enqueue(rec)
        self._out.insert(first, Send(booth_id, views.booth_welcome(self, rec, resumed)))
        rec.last_ended = None  # told in the welcome
        place = views.queue_place(self, rec)
        rec.last_queued = (place[0], -1 if place[2] is None else round(place[2])) if place else None
        if rec.session_id:
            self._tell_cso_session(rec)
        if resumed:
            self._event("booth_resumed", booth_id=booth_id, session_id=rec.session_id)

    def _booth_closed(self, booth_id: str, connection: str) -> None:
        rec = self.booths.get(booth_id)
        if rec is None or rec.connection != connection:
            return  # replaced by a newer socket
        rec.connection = None
        rec.pending = None  # a check-in in flight dies with its socket
        self._close_links(peer_id=booth_id)
        if rec.state is S.IDLE:
            del self.booths[booth_id]
            return
        if (
            self.dispatcher.has_booth(booth_id)
            and self.dispatcher.state_of(booth_id) != "in_service"
        ):
            # Out of the queue while away (no CSO is offered an empty booth, and an offer in
            # flight is withdrawn first, so it never looks like a call); the place is kept in
            # queued_since and restored on resume.
            self._apply(self.dispatcher.leave(booth_id, self._now.mono), "booth_lost")
        self._transition(rec, E.CONNECTION_LOST)
        rec.lost_deadline = self._now.mono + self.config.grace_period
        self._away.add(booth_id)
        if rec.session_id:
            self._tell_cso_session(rec)
        self._event("booth_lost", booth_id=booth_id, session_id=rec.session_id)

    def _cso_opened(self, ev: PeerOpened) -> None:
        cso_id = ev.principal.subject
        self._close_links(peer_id=cso_id)
        rec = self.csos.get(cso_id)
        resumed = rec is not None
        if rec is None:
            rec = CsoRecord(ev.principal, ev.new_token, ev.connection)
            self.csos[cso_id] = rec
        rec.connection = ev.connection
        rec.principal = ev.principal
        profile = CsoProfile(
            cso_id=cso_id,
            capacity=min(ev.principal.capacity, self.config.cso_capacity),
            branch=ev.principal.branch,
            pools=ev.principal.pools or frozenset({ev.principal.branch}),
            skills=ev.principal.skills,
        )
        # Welcome first, then whatever the dispatcher decides now (offers come after it).
        decisions = self.dispatcher.add_cso(profile, self._now.mono, paused=rec.paused)
        self._send(cso_id, views.cso_welcome(self, rec, resumed))
        self._event("cso_joined", cso_id=cso_id, detail="resumed" if resumed else None)
        self._apply(decisions)

    def _cso_closed(self, cso_id: str, connection: str) -> None:
        rec = self.csos.get(cso_id)
        if rec is None or rec.connection != connection:
            return
        rec.connection = None
        self._close_links(peer_id=cso_id)
        self._set_focus(rec, None)  # nobody is talking to that booth any more: tell it
        self._event("cso_lost", cso_id=cso_id)
        self._apply(self.dispatcher.cso_lost(cso_id, self._now.mono), "cso_lost")

    # --- inbound messages ----------------------------------------------------------------------

    def _received(self, ev: Received) -> None:
        me = ev.principal.subject
        current = self._connection_of(ev.principal)
        if current is not None and current != ev.connection:
            return  # a replaced socket's last words; its peer has a newer socket
        message = ev.message
        match message:
            case Candidate() | Offer() | Answer() | PeerState():  # the hot path: first
                if message.session_id in self.links and not isinstance(message, PeerState):
                    self._relay_link(ev.principal, message, ev.received_at, ev.raw)
                elif ev.principal.role in (AccountRole.BOOTH, AccountRole.CSO):
                    self._relay(ev.principal, message, ev.received_at, ev.raw)
                else:
                    raise ProtocolError(ErrorCode.NOT_IN_SESSION, "you are not an end of that link")
            case RequestCapture() | CaptureStatus():
                if isinstance(message, RequestCapture) and message.kind not in DOCUMENT_KINDS:
                    raise ProtocolError(
                        ErrorCode.INVALID_MESSAGE,
                        f"unknown document kind {message.kind!r}",
                        ref=message.id,
                    )
                self._relay(ev.principal, message, ev.received_at, ev.raw)
            case CheckIn():
                self._check_in(self._booth(me), message)
            case Leave():
                self._leave(self._booth(me), message)
            case SetAvailability():
                self._availability(self._cso(me), message)
            case Accept():
                self._accept(ev.principal, message)
            case Decline():
                self._decline(ev.principal, message)
            case FocusBooth():
                self._focus(ev.principal, message)
            case EndSession() if ev.principal.role is AccountRole.CSO:
                self._end(ev.principal, message)
            case EndSession():
                self._supervisor_end(ev.principal, message)
            case MoveBooth():
                self._move(ev.principal, message)
            case SetCsoAvailability():
                self._steer_availability(ev.principal, message)
            case OpenLink():
                self._open_link(ev.principal, message)
                self._dirty()  # the floor view marks monitored sessions
            case CloseLink():
                self._close_link_request(ev.principal, message)
                self._dirty()
            case Subscribe():
                self._send(me, views.snapshot(self))
            case PeerStats():
                self._peer_stats(ev.principal, message)
            case _:
                raise ProtocolError(ErrorCode.FORBIDDEN_FOR_ROLE, "not handled here")

    def _check_in(self, rec: BoothRecord, msg: CheckIn) -> None:
        if rec.state is not S.IDLE or rec.pending is not None:
            state = "checking in" if rec.pending else str(rec.state)
            raise ProtocolError(
                ErrorCode.ILLEGAL_TRANSITION,
                f"booth is already {state}; check in once per visit",
                ref=msg.id,
            )
        # Refused here, before any record is touched: a refused check-in changes nothing.
        self._refuse_if_elsewhere(rec, claim_key(msg), None, msg.id)
        rec.pending = msg
        self._hold(rec, claim_key(msg))
        self._out.append(ResolveClaim(rec.principal, msg))

    def _claim_resolved(self, ev: ClaimResolved) -> None:
        rec = self.booths.get(ev.booth_id)
        if rec is None or rec.pending is None or rec.pending.id != ev.request.id:
            return  # the socket went away meanwhile; it checks in again on return
        rec.pending = None
        msg = ev.request
        try:
            self._refuse_if_elsewhere(rec, claim_key(msg), ev.claim_id, msg.id)
        except ProtocolError as exc:
            self._send(rec.booth_id, error_reply(exc))
            return
        rec.claim = claim_summary(msg, ev.claim_id)
        rec.claim_key = claim_key(msg)
        self._hold(rec, rec.claim_key, *([f"claim:{ev.claim_id}"] if ev.claim_id else []))
        rec.language = msg.language
        rec.priority = 1 if msg.needs_assistance else 0
        rec.checked_in_at = self._now.wall
        rec.queued_since = self._now.mono
        rec.last_queued = None
        self._transition(rec, E.CHECK_IN)
        self._send(rec.booth_id, Ack(reply_to=msg.id))
        self._event("booth_checked_in", booth_id=rec.booth_id)
        self._enqueue(rec)
        self._tell_position(rec)

    def _claim_refused(self, ev: ClaimRefused) -> None:
        rec = self.booths.get(ev.booth_id)
        if rec is None or rec.pending is None or rec.pending.id != ev.request.id:
            return
        rec.pending = None
        self._send(rec.booth_id, error_reply(ProtocolError(ev.code, ev.message, ref=ev.request.id)))

    def _refuse_if_elsewhere(
        self, rec: BoothRecord, key: str, claim_id: str | None, ref: str
    ) -> None:
        """One participant, one booth. Looked up in an index whose entries are checked
        on use (a stale entry, left by a booth that moved on, is simply dropped)."""
        for index in (key, f"claim:{claim_id}" if claim_id else None):
            if index is None:
                continue
            holder_id = self._holders.get(index)
            if holder_id is None or holder_id == rec.booth_id:
                continue
            holder = self.booths.get(holder_id)
            if holder is not None and self._holds(holder, index):
                raise ProtocolError(
                    ErrorCode.CLAIM_REFUSED,
                    f"this claim is already checked in at booth {holder_id}",
                    ref=ref,
                )
            del self._holders[index]

    @staticmethod
    def _holds(booth: BoothRecord, index: str) -> bool:
        if booth.pending is not None and claim_key(booth.pending) == index:
            return True
        if booth.state is S.IDLE:
            return False
        return booth.claim_key == index or (
            booth.claim is not None and f"claim:{booth.claim.claim_id}" == index
        )

    def _hold(self, booth: BoothRecord, *indexes: str) -> None:
        for index in indexes:
            self._holders[index] = booth.booth_id

    def _leave(self, rec: BoothRecord, msg: Leave) -> None:
        self._send(rec.booth_id, Ack(reply_to=msg.id))
        if rec.state is S.IDLE:
            return
        if self.dispatcher.has_booth(rec.booth_id):
            self._apply(self.dispatcher.leave(rec.booth_id, self._now.mono), "booth_left")
        self._finish_visit(rec)
        self._event("booth_left", booth_id=rec.booth_id)

    def _availability(self, rec: CsoRecord, msg: SetAvailability) -> None:
        self._send(rec.cso_id, Ack(reply_to=msg.id))
        if msg.available == (not rec.paused):
            return
        self._set_paused(rec, not msg.available)

    def _set_paused(self, rec: CsoRecord, paused: bool) -> None:
        rec.paused = paused
        now = self._now.mono
        if rec.connected or not paused:
            decisions = (
                self.dispatcher.pause_cso(rec.cso_id, now)
                if paused
                else self.dispatcher.resume_cso(rec.cso_id, now)
            )
        else:
            decisions = []  # lost: it comes back paused (add_cso remembers the break)
        self._event("cso_paused" if paused else "cso_resumed", cso_id=rec.cso_id)
        self._apply(decisions)

    def _accept(self, who: Principal, msg: Accept) -> None:
        self._session_request(who, Action.SESSION_ACCEPT, msg, self.dispatcher.accept)

    def _decline(self, who: Principal, msg: Decline) -> None:
        self._session_request(who, Action.SESSION_DECLINE, msg, self.dispatcher.decline)

    def _end(self, who: Principal, msg: EndSession) -> None:
        self._session_request(
            who,
            Action.SESSION_END,
            msg,
            lambda booth_id, _, now: self.dispatcher.release(booth_id, now),
            "cso_ended",
        )

    def _session_request(
        self,
        who: Principal,
        action: Action,
        msg: Accept | Decline | EndSession,
        call: Callable[[str, str, float], list[Decision]],
        end_reason: EndReason = "completed",
    ) -> None:
        """A CSO acts on one of its sessions: policy, dispatcher, ack, then the decisions."""
        session = self._authorised(who, action, msg.session_id, msg.id)
        decisions = self._dispatch(lambda now: call(session.booth_id, who.subject, now), msg.id)
        self._send(who.subject, Ack(reply_to=msg.id))
        self._apply(decisions, end_reason)

    def _focus(self, who: Principal, msg: FocusBooth) -> None:
        """Talk to one booth; every other booth of this CSO goes on hold."""
        rec = self._cso(who.subject)
        if msg.session_id is not None:
            self._authorised(who, Action.SESSION_FOCUS, msg.session_id, msg.id)
        self._send(who.subject, Ack(reply_to=msg.id))
        self._set_focus(rec, msg.session_id)

    def _set_focus(self, cso: CsoRecord, session_id: str | None) -> None:
        before = cso.focused
        cso.focused = session_id
        if before == session_id:
            return
        for sid in (before, session_id):
            record = self.sessions.get(sid) if sid else None
            if record is None:
                continue
            booth = self.booths.get(record.live.booth_id)
            if booth is None or booth.session_id != sid:
                continue
            self._align_focus(booth)
            if booth.connected:
                live_id = record.live.session_id
                self._send(booth.booth_id, Focus(session_id=live_id, focused=live_id == session_id))

    def _align_focus(self, booth: BoothRecord) -> None:
        """Make the booth's state say whether its CSO talks to it (once media is up)."""
        if booth.state not in (S.ON_HOLD, S.FOCUSED) or booth.session_id is None:
            return
        focused = self._is_focused(booth)
        if focused and booth.state is S.ON_HOLD:
            self._transition(booth, E.FOCUS)
        elif not focused and booth.state is S.FOCUSED:
            self._transition(booth, E.UNFOCUS)

    def _is_focused(self, booth: BoothRecord) -> bool:
        record = self.sessions.get(booth.session_id or "")
        if record is None:
            return False
        cso = self.csos.get(record.live.cso_id)
        return cso is not None and cso.focused == booth.session_id

    # --- relay ----------------------------------------------------------------------------------

    def _relay(
        self,
        sender: Principal,
        msg: Offer | Answer | Candidate | PeerState | RequestCapture | CaptureStatus,
        received_at: float | None,
        raw: str | None = None,
    ) -> None:
        """Forward signaling and capture messages between the two ends of one session.
        (Which end may send which is fixed by the socket's role: see signaling.messages.)"""
        live = self._authorised(sender, Action.SESSION_SIGNAL, msg.session_id, msg.id)
        record = self.sessions[live.session_id]
        me = sender.subject
        from_booth = me == live.booth_id
        if isinstance(msg, Offer | Answer):
            self._fingerprints(record, me, from_booth, dtls_fingerprints(msg.sdp))
        if isinstance(msg, PeerState):
            if from_booth:
                self._booth_media(self.booths[live.booth_id], msg)
            else:
                return  # the booth has no use for the console's view of the connection
        target_id = live.other_end(me)
        target = self.csos.get(target_id) if from_booth else self.booths.get(target_id)
        if target is None or not target.connected:
            raise ProtocolError(
                ErrorCode.PEER_UNAVAILABLE, "the other end is not connected", ref=msg.id
            )
        self._send(target_id, msg, received_at, raw)

    def _fingerprints(
        self, record: SessionRecord, peer_id: str, from_booth: bool, prints: tuple[str, ...]
    ) -> None:
        """The first offer/answer of each end fixes its fingerprints (the outcome's evidence);
        a renegotiation with other certificates is recorded as an audited addition."""
        if not prints:
            return
        live = record.live
        first = live.booth_fingerprints if from_booth else live.cso_fingerprints
        if not first:
            if from_booth:
                record.live = replace(live, booth_fingerprints=prints)
            else:
                record.live = replace(live, cso_fingerprints=prints)
            self._out.append(PersistSession(record.live))
            return
        new = tuple(p for p in prints if p not in first and p not in record.extra_fingerprints)
        if new:
            record.extra_fingerprints += new
            self._out.append(RecordFingerprints(live.session_id, live.claim_id, peer_id, new))

    def _booth_media(self, booth: BoothRecord, msg: PeerState) -> None:
        if booth.session_id != msg.session_id:
            return
        if msg.state == "connected" and booth.state is S.CONNECTING:
            self._transition(booth, E.MEDIA_UP)
            self._align_focus(booth)
            self._tell_cso_session(booth)
            self._dirty()

    def _peer_stats(self, who: Principal, msg: PeerStats) -> None:
        """Kept for the floor view, never relayed; a notable change marks the floor dirty."""
        live = self._authorised(who, Action.SESSION_SIGNAL, msg.session_id, msg.id)
        record = self.sessions[live.session_id]
        end = "booth" if who.subject == live.booth_id else "cso"
        new = PeerQuality(rtt_ms=msg.rtt_ms, loss=msg.loss, fps=msg.fps, at=self._now.wall)
        old = record.quality.get(end)
        record.quality[end] = new
        if old is None or views.quality_band(old) != views.quality_band(new):
            self._dirty()

    def _document_stored(self, ev: DocumentStored) -> None:
        live = self.session_of_claim(ev.claim_id)
        if live is None or live.state is S.RESERVED:
            return  # nobody serves the claim right now; the claim view lists it
        cso = self.csos.get(live.cso_id)
        if cso is not None and cso.connected:
            self._send(
                cso.cso_id,
                DocumentAdded(
                    session_id=live.session_id,
                    claim_id=ev.claim_id,
                    document_id=ev.document_id,
                    kind=ev.kind,
                    sha256=ev.sha256,
                    width=ev.width,
                    height=ev.height,
                ),
            )

    # --- time -----------------------------------------------------------------------------------

    def _timer(self) -> None:
        now = self._now.mono
        self._apply(self.dispatcher.tick(now), "cso_lost")
        due = [self.booths[b] for b in sorted(self._away) if b in self.booths]
        for rec in [b for b in due if b.lost_deadline is not None and b.lost_deadline <= now]:
            if rec.state is S.IDLE:
                del self.booths[rec.booth_id]  # nothing to hold; it told its story already
            else:
                self._booth_gone(rec, "booth_lost")

    def _broadcast(self) -> None:
        for rec in self.booths.values():
            self._tell_position(rec)
        view = views.snapshot(self)
        if not self.history or view.now is None or view.now - self.history[-1].t >= HISTORY_STEP:
            self.history.append(FloorSample(t=view.now or 0.0, waiting=view.queue.waiting,
                                            oldest_wait_s=view.queue.oldest_wait_s))  # fmt: skip
        self._out.append(Publish(view))

    def _tell_position(self, rec: BoothRecord) -> None:
        place = views.queue_place(self, rec)
        if place is None or not rec.connected:
            return
        position, waiting, eta = place
        key = (position, -1 if eta is None else round(eta))
        if key != rec.last_queued:
            rec.last_queued = key
            self._send(
                rec.booth_id, Queued(position=position, waiting=waiting, estimated_wait_s=eta)
            )

    def _schedule(self) -> None:
        at = self.next_deadline()
        if at != self._timer_at:
            self._timer_at = at
            self._out.append(SetTimer(at))

    # --- dispatcher decisions --------------------------------------------------------------------

    def _dispatch(self, call: Callable[[float], list[Decision]], ref: str) -> list[Decision]:
        try:
            return call(self._now.mono)
        except DispatchError as exc:
            raise ProtocolError(ErrorCode.CONFLICT, str(exc), ref=ref) from None

    def _enqueue(self, rec: BoothRecord) -> None:
        request = BoothRequest(
            booth_id=rec.booth_id,
            branch=rec.principal.branch,
            priority=rec.priority,
            # Every CSO speaks Bahasa Indonesia; other languages need a CSO with the skill.
            needs=frozenset()
            if rec.language is Language.INDONESIAN
            else frozenset({f"lang:{rec.language}"}),
            checked_in_at=rec.queued_since,
        )
        self._apply(self.dispatcher.enqueue(request, self._now.mono))
        self._dirty()

    def _apply(self, decisions: list[Decision], end_reason: EndReason = "completed") -> None:
        for decision in decisions:
            match decision:
                case Reserved():
                    self._on_reserved(decision)
                case Assigned():
                    self._on_assigned(decision)
                case ReservationLapsed():
                    self._on_lapsed(decision)
                case Requeued():
                    self._on_requeued(decision, "moved" if end_reason == "moved" else "cso_lost")
                case Released():
                    self._end_session_of(decision.booth_id, end_reason)
                case Dequeued():
                    self._withdraw_offer_of(decision.booth_id, "booth_left")
                case CsoRetired():  # lost past its grace period: forget it
                    self.csos.pop(decision.cso_id, None)
                    self._event("cso_left", cso_id=decision.cso_id)
        if decisions:
            self._dirty()
        # Booths found away while a batch was carried out leave the queue only now: asking
        # the dispatcher mid-batch would decide on booths whose decisions are still queued.
        while self._away_in_queue:
            booth_id = self._away_in_queue.pop()
            d = self.dispatcher
            if d.has_booth(booth_id) and d.state_of(booth_id) != "in_service":
                self._apply(d.leave(booth_id, self._now.mono))

    def _on_reserved(self, d: Reserved) -> None:
        disp = self.dispatcher
        if not (disp.has_booth(d.booth_id) and disp.cso_of(d.booth_id) == d.cso_id):
            return  # stale: an earlier decision of the same batch took the booth back out
        booth = self.booths[d.booth_id]
        if not booth.connected:
            # Matched in the same breath as it was requeued while away: no CSO is offered
            # an empty booth; it waits again once back.
            self._away_in_queue.append(d.booth_id)
            return
        session_id = self._new_id()
        booth.session_id = session_id
        live = LiveSession(
            session_id,
            d.booth_id,
            d.cso_id,
            S.RESERVED,
            self._now.wall,
            claim_id=booth.claim.claim_id if booth.claim else None,
        )
        self.sessions[session_id] = SessionRecord(
            live, offer_expires_at=d.expires_at, state_since=self._now.wall
        )
        self._out.append(PersistSession(live))
        self._transition(booth, E.RESERVE)
        self._send(d.cso_id, views.offer(self, self.sessions[session_id], booth))
        self._send(d.booth_id, ReservedMsg(session_id=session_id))
        self._event("booth_reserved", booth_id=d.booth_id, cso_id=d.cso_id, session_id=session_id)

    def _on_assigned(self, d: Assigned) -> None:
        booth = self.booths[d.booth_id]
        session_id = booth.session_id
        assert session_id is not None
        self.sessions[session_id].offer_expires_at = None
        self._transition(booth, E.ACCEPT)
        self._out.append(Observe("assignments"))
        self._out.append(Observe("wait_seconds", max(0.0, self._now.wall - booth.checked_in_at)))
        if booth.connected:
            self._send(d.booth_id, views.assigned_for_booth(self, booth))
        self._send(d.cso_id, views.assigned_for_cso(self, self.sessions[session_id], booth))
        self._event("booth_assigned", booth_id=d.booth_id, cso_id=d.cso_id, session_id=session_id)

    def _on_lapsed(self, d: ReservationLapsed) -> None:
        booth = self.booths[d.booth_id]
        self._withdraw_offer_of(d.booth_id, d.reason)
        if booth.state is S.RESERVED:
            self._transition(booth, E.LAPSE)
        booth.last_queued = None
        self._tell_position(booth)  # the kiosk leaves "an officer is coming" at once

    def _withdraw_offer_of(self, booth_id: str, reason: str) -> None:
        booth = self.booths.get(booth_id)
        if booth is None or booth.session_id is None:
            return
        record = self.sessions.pop(booth.session_id, None)
        booth.session_id = None
        if record is None:
            return
        self._out.append(DeleteSession(record.live.session_id))
        cso = self.csos.get(record.live.cso_id)
        if cso is not None and cso.connected:
            self._send(
                cso.cso_id,
                OfferWithdrawn(session_id=record.live.session_id, reason=reason),  # type: ignore[arg-type]
            )

    def _on_requeued(self, d: Requeued, reason: EndReason) -> None:
        booth = self.booths[d.booth_id]
        if booth.session_id:
            self._close_session(booth.session_id, reason)
        booth.session_id = None
        booth.last_queued = None
        away = booth.state is S.RECONNECTING
        self._transition(booth, E.REQUEUE)
        if away:
            # Away itself: it waits again once back; no CSO is offered an empty booth.
            self._transition(booth, E.CONNECTION_LOST)
            self._away_in_queue.append(d.booth_id)
        self._out.append(Observe("requeues"))
        self._event("booth_requeued", booth_id=d.booth_id, cso_id=d.former_cso_id)
        self._tell_position(booth)

    def _end_session_of(self, booth_id: str, reason: EndReason) -> None:
        booth = self.booths.get(booth_id)
        if booth is None or booth.session_id is None:
            return
        session_id = booth.session_id
        self._close_session(session_id, reason)
        booth.session_id = None
        self._finish_visit(booth)
        if not booth.connected:
            booth.last_ended = SessionEndNote(session_id=session_id, reason=reason)

    def _close_session(self, session_id: str, reason: EndReason) -> None:
        record = self.sessions.pop(session_id, None)
        if record is None:
            return
        live = record.live
        self._close_links(session_id=session_id)
        self._out.append(DeleteSession(session_id))
        ended = SessionEnded(session_id=session_id, reason=reason)
        booth, cso = self.booths.get(live.booth_id), self.csos.get(live.cso_id)
        if booth is not None and booth.connected:
            self._send(live.booth_id, ended)
        if cso is not None and cso.connected:
            self._send(live.cso_id, ended)
        if cso is not None and cso.focused == session_id:
            cso.focused = None
        self._event(
            "session_ended",
            booth_id=live.booth_id,
            cso_id=live.cso_id,
            session_id=session_id,
            detail=reason,
        )

    def _finish_visit(self, booth: BoothRecord) -> None:
        """The participant is done (or left): end -> idle, through the session table."""
        if booth.session_id:
            self._close_session(booth.session_id, "booth_left")
        booth.session_id = None
        if booth.state is not S.IDLE:
            self._transition(booth, E.END)
            self._transition(booth, E.RESET)
        booth.claim = None
        booth.claim_key = None
        booth.last_queued = None

    def _booth_gone(self, rec: BoothRecord, reason: EndReason) -> None:
        """A booth left for good (grace ran out, or the kiosk started afresh)."""
        if self.dispatcher.has_booth(rec.booth_id):
            self._apply(self.dispatcher.leave(rec.booth_id, self._now.mono), reason)
        if rec.session_id:
            self._close_session(rec.session_id, reason)
            rec.session_id = None
        del self.booths[rec.booth_id]
        self._event("booth_left", booth_id=rec.booth_id, detail=reason)

    # --- helpers ----------------------------------------------------------------------------------

    def _transition(self, booth: BoothRecord, event: SessionEvent) -> None:
        try:
            booth.machine.handle(event)
        except IllegalTransition as exc:  # pragma: no cover - the property test hunts these
            raise AssertionError(f"floor bookkeeping broke for {booth.booth_id}: {exc}") from exc
        record = self.sessions.get(booth.session_id or "")
        if record is not None and record.live.state is not booth.state:
            record.live = record.live.with_state(booth.state)
            record.state_since = self._now.wall
            self._out.append(PersistSession(record.live))

    def _tell_cso_session(self, booth: BoothRecord) -> None:
        record = self.sessions.get(booth.session_id or "")
        if record is None or record.live.state is S.RESERVED:
            if record is not None:  # an offer in flight: the CSO sees it in its offer list
                self._dirty()
            return
        cso = self.csos.get(record.live.cso_id)
        if cso is not None and cso.connected:
            self._send(
                cso.cso_id,
                SessionUpdate(
                    session_id=record.live.session_id,
                    state=booth.state,
                    booth_connected=booth.connected,
                ),
            )
        self._dirty()

    def _authorised(self, who: Principal, action: Action, session_id: str, ref: str) -> LiveSession:
        record = self.sessions.get(session_id)
        self._check(who, action, record.facts() if record else _NO_SESSION, ref)
        assert record is not None
        return record.live

    def _connection_of(self, who: Principal) -> str | None:
        if who.role is AccountRole.BOOTH:
            booth = self.booths.get(who.subject)
            return booth.connection if booth else None
        if who.role is AccountRole.CSO:
            cso = self.csos.get(who.subject)
            return cso.connection if cso else None
        return None

    def _booth(self, booth_id: str) -> BoothRecord:
        rec = self.booths.get(booth_id)
        if rec is None or not rec.connected:
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "booth is not connected")
        return rec

    def _cso(self, cso_id: str) -> CsoRecord:
        rec = self.csos.get(cso_id)
        if rec is None or not rec.connected:
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "CSO is not connected")
        return rec

    def _send(
        self,
        peer_id: str,
        message: Envelope,
        received_at: float | None = None,
        raw: str | None = None,
    ) -> None:
        self._out.append(Send(peer_id, message, received_at, raw))

    def _dirty(self) -> None:
        """Something supervisors see changed; the runtime coalesces these into one pass."""
        self._out.append(FloorChanged())

    def _event(
        self,
        kind: str,
        *,
        booth_id: str | None = None,
        cso_id: str | None = None,
        session_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        self._out.append(
            Publish(
                FloorEvent(
                    kind=kind,  # type: ignore[arg-type]
                    booth_id=booth_id,
                    cso_id=cso_id,
                    session_id=session_id,
                    detail=detail,
                )
            )
        )
