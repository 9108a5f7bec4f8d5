"""The floor core: booths, officers, sessions, focus and supervision as a pure, sans-I/O
state machine.

In the style of h11's `Connection` and python-websockets' `Protocol`: the runtime feeds it
events (`server.floor.events`) with the time, and it returns the effects to carry out, in
order, typed by the guarantee each needs (`server.floor.effects`). It reads no clock, opens
no socket and awaits nothing, so every interleaving of check-ins, offers, drops, resumes and
timeouts can be explored by a property test (tests/unit/test_floor_core.py) in milliseconds.

`FloorCore` is the coordinator. The state lives in three parts that own it and exchange
plain data through the coordinator, never by calling each other:
- `BoothSessions` (booths.py): every booth's visit and session, its state machine, who
  holds which participant, grace deadlines;
- `Officers` (officers.py): every officer's socket, break and focus;
- `Supervision` (supervision.py): supervisors' sockets, scopes and monitor/whisper links.
The coordinator owns the Dispatcher (who serves whom, queue order, reservations, grace
periods) and carries each dispatcher decision out across the parts. Every access decision
goes through `server.domain.access.decide`. Views (views.py) read the public read model
below (`booths`, `csos`, `sessions`, `links`, `supervisors`, `is_focused`, ...).

Resume is by state sync: a peer that (re)connects gets `welcome` carrying its whole
authoritative state, and the core never sends to a peer that is offline: what it misses
is reflected in that state instead of being replayed.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from server.dispatch import (
    Assigned,
    BoothRequest,
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
from server.domain.access import AccessFacts, Action, decide, socket_role
from server.domain.documents import DocumentKind
from server.domain.sdp import dtls_fingerprints
from server.floor import views
from server.floor.booths import BoothSessions, claim_summary
from server.floor.effects import Effect, Observe, ResolveClaim, Send, SetTimer
from server.floor.events import (
    BroadcastDue,
    CaptureUndeliverable,
    ClaimRefused,
    ClaimResolved,
    DisplayOpened,
    DocumentStored,
    Event,
    Now,
    PeerClosed,
    PeerOpened,
    Received,
    TicketClaimRefused,
    TicketClaimResolved,
    TimerFired,
    VerificationReady,
)
from server.floor.front import FrontOfHouse
from server.floor.lobby import LOBBY_DEFAULTS, Lobby, LobbyConfig
from server.floor.model import (
    BoothRecord,
    CsoRecord,
    Link,
    PeerKey,
    SessionRecord,
    booth_key,
    cso_key,
)
from server.floor.officers import FocusChange, Officers
from server.floor.step import Step
from server.floor.supervision import Supervision, SupervisorRecord
from server.ports.live_state import LiveSession
from server.principal import Principal
from signaling.codec import error_reply
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Accept,
    Ack,
    Answer,
    AvailabilityChanged,
    Candidate,
    CaptureStatus,
    CheckIn,
    ClaimSummary,
    CloseLink,
    Decline,
    DocumentAdded,
    EndReason,
    EndSession,
    Focus,
    FocusBooth,
    IssueTicket,
    Language,
    Leave,
    LinkClosed,
    LinkOpened,
    LostCapture,
    MoveBooth,
    Offer,
    OfferWithdrawn,
    OpenLink,
    PeerQuality,
    PeerState,
    PeerStats,
    Queued,
    RecordingStatus,
    RequestCapture,
    Role,
    SessionEnded,
    SessionEndNote,
    SessionUpdate,
    SetAvailability,
    SetCsoAvailability,
    Subscribe,
    TicketAction,
    VerificationUpdated,
)
from signaling.messages import Reserved as ReservedMsg
from signaling.session import SessionEvent, SessionState

S, E = SessionState, SessionEvent
DOCUMENT_KINDS = frozenset(k.value for k in DocumentKind)
# Relayed between the two ends of a session as they are (sender and receiver checked).
Relayed = Offer | Answer | Candidate | PeerState | RequestCapture | CaptureStatus | RecordingStatus
RELAYED: frozenset[type] = frozenset(
    {Candidate, Offer, Answer, PeerState, CaptureStatus, RecordingStatus}
)
HISTORY_STEP = 30.0  # seconds between the queue samples supervisors chart
HISTORY_POINTS = 120  # an hour of them
LOST_CAPTURES_KEPT = 50  # undeliverable pictures shown to supervisors (the last hour's)
REFUSAL_CODES = {
    "not_in_session": ErrorCode.NOT_IN_SESSION,
    "illegal_transition": ErrorCode.ILLEGAL_TRANSITION,
}


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
    # Keys the index of who is checked in where (a keyed hash, never a NIK in the floor's
    # state); the same on every process of a cluster (derived from the shared secret).
    participant_key: bytes = b"loket-participants"
    # Offers and answers one session may carry (both ends): a call needs two, an ICE
    # restart or a kiosk restart two more; each is up to a 64 KB SDP relayed (and, in a
    # cluster, logged), so one peer's renegotiation loop is bounded.
    max_descriptions: int = 32
    lobby: LobbyConfig = LOBBY_DEFAULTS  # tickets, calls, recalls (front of house)
    speech_key: bytes = b"loket-speech"  # signs the spoken calls' URLs (derived like the above)


@dataclass(frozen=True, slots=True)
class HistorySample:
    """The queue per branch at one moment: (waiting, oldest wait in seconds)."""

    t: float
    branches: Mapping[str, tuple[int, float]]


def key_of(principal: Principal) -> PeerKey:
    role = socket_role(principal)
    if role is None:
        raise ProtocolError(ErrorCode.FORBIDDEN_FOR_ROLE, "this account has no floor socket")
    return PeerKey(role, principal.subject)


class FloorCore(FrontOfHouse):
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
        self._booths = BoothSessions()
        self._officers = Officers()
        self._supervision = Supervision()
        self._lobby = Lobby()  # the front of house's tickets (front.py connects it)
        self._new_id = new_id
        self._now = Now(0.0, 0.0)
        self._timer_at: float | None = None
        self._away_in_queue: list[str] = []  # see _apply
        self.history: deque[HistorySample] = deque(maxlen=HISTORY_POINTS)  # the last hour
        self.lost_captures: deque[LostCapture] = deque(maxlen=LOST_CAPTURES_KEPT)
        self._step: Step | None = None  # the event being decided (never snapshotted)

    # --- the read model (views, the runtimes, tests) ----------------------------------------

    @property
    def now(self) -> Now:
        return self._now

    @property
    def booths(self) -> Mapping[str, BoothRecord]:
        return MappingProxyType(self._booths.records)

    @property
    def sessions(self) -> Mapping[str, SessionRecord]:
        return MappingProxyType(self._booths.sessions)

    @property
    def csos(self) -> Mapping[str, CsoRecord]:
        return MappingProxyType(self._officers.records)

    @property
    def links(self) -> Mapping[str, Link]:
        return MappingProxyType(self._supervision.links)

    @property
    def supervisors(self) -> Mapping[str, SupervisorRecord]:
        return MappingProxyType(self._supervision.records)

    @property
    def ids_handed_out(self) -> int:
        """How many seeded ids this core drew (a replay must draw as many)."""
        return int(getattr(self._new_id, "counter", 0))

    def is_focused(self, booth: BoothRecord) -> bool:
        record = self._booths.sessions.get(booth.session_id or "")
        return record is not None and self._officers.focuses(record.live.cso_id, booth.session_id)

    def monitored(self, session_id: str) -> bool:
        return self._supervision.monitored(session_id)

    def capacity_of(self, cso: CsoRecord) -> int:
        return min(cso.principal.capacity, self.config.cso_capacity)

    def session_of_claim(self, claim_id: str) -> LiveSession | None:
        record = self._booths.of_claim(claim_id)
        return record.live if record else None

    def sessions_of(self, key: PeerKey) -> list[SessionRecord]:
        field = "booth_id" if key.role is Role.BOOTH else "cso_id"
        return sorted(
            (s for s in self._booths.sessions.values() if getattr(s.live, field) == key.subject),
            key=lambda s: (s.live.created_at, s.live.session_id),
        )

    def connected(self, key: PeerKey) -> bool:
        if key.role is Role.BOOTH:
            booth = self._booths.get(key.subject)
            return booth is not None and booth.connected
        if key.role is Role.CSO:
            return self._officers.connected(key.subject) is not None
        return self._supervision.connected(key.subject)

    def next_deadline(self) -> float | None:
        deadlines = [
            self._booths.next_deadline(),
            self.dispatcher.next_deadline(),
            self._lobby_deadline(),
        ]
        return min((d for d in deadlines if d is not None), default=None)

    # --- the one entry point ----------------------------------------------------------------

    def handle(self, event: Event, now: Now) -> list[Effect]:
        """Apply one event; return the effects to carry out, in order."""
        self._now = now
        step = self._step = Step(
            now, self._new_id, self._supervision.topics_for, self._connection_of
        )
        try:
            if type(event) is Received and type(event.message) in RELAYED:
                # The hot path (trickled candidates): nothing here moves a deadline.
                self._received_safely(event)
                return step.effects
            match event:
                case PeerOpened():
                    self._opened(event)
                case PeerClosed():
                    self._closed(event)
                case Received():
                    self._received_safely(event)
                case ClaimResolved():
                    self._claim_resolved(event)
                case ClaimRefused():
                    self._claim_refused(event)
                case DocumentStored():
                    self._document_stored(event)
                case VerificationReady():
                    self._verification_ready(event)
                case CaptureUndeliverable():
                    self._capture_lost(event)
                case TimerFired():
                    self._timer()
                case BroadcastDue():
                    self._broadcast()
                case TicketClaimResolved():
                    self._ticket_claim_resolved(event)
                case TicketClaimRefused():
                    self._ticket_claim_refused(event)
                case DisplayOpened():
                    self._display_opened(event)
            self._schedule()
            return step.effects
        finally:
            self._step = None

    @property
    def _out(self) -> Step:
        assert self._step is not None, "only while an event is being decided"
        return self._step

    def _received_safely(self, ev: Received) -> None:
        try:
            self._received(ev)
        except ProtocolError as exc:
            exc.ref = exc.ref or ev.message.id
            self._out.send(key_of(ev.principal), error_reply(exc))

    # --- sockets ----------------------------------------------------------------------------

    def _opened(self, ev: PeerOpened) -> None:
        role = socket_role(ev.principal)
        if role is Role.BOOTH:
            self._booth_opened(ev)
        elif role is Role.CSO:
            self._cso_opened(ev)
        elif role is Role.SUPERVISOR:
            self._supervisor_opened(ev.principal, ev.connection)

    def _closed(self, ev: PeerClosed) -> None:
        role = socket_role(ev.principal)
        if role is Role.BOOTH:
            self._booth_closed(ev.principal.subject, ev.connection)
        elif role is Role.CSO:
            self._cso_closed(ev.principal.subject, ev.connection)
        elif role is Role.SUPERVISOR:
            links = self._supervision.close(ev.principal, ev.connection)
            for link in links or ():
                self._close_link(link, "peer_gone")

    def _booth_opened(self, ev: PeerOpened) -> None:
        out = self._out
        booth_id = ev.principal.subject
        self._close_links_of(booth_key(booth_id))  # a new socket has no peer for an old link
        rec = self._booths.get(booth_id)
        resumed = rec is not None and ev.resume is not None and ev.resume == rec.resume_token
        if rec is not None and not resumed:
            # A kiosk that starts afresh (restart, lost token): its old visit is over. The
            # new socket hears nothing of it; the CSO is told the booth left.
            rec.connection = None
            self._booth_gone(rec, "booth_left")
            rec = None
        if rec is None:
            rec = self._booths.add(ev.principal, ev.connection, ev.new_token)
        else:
            self._booths.came_back(rec, ev.principal, ev.connection)
            if rec.state is S.RECONNECTING:
                self._booths.transition(out, rec, E.RESUME)
                self._align_focus(rec)
        # Back in the queue first, so the welcome tells its place; the welcome still goes
        # out before anything that re-queueing produced for this booth (e.g. `reserved`).
        first = len(out.effects)
        if rec.state is S.QUEUED and not self.dispatcher.has_booth(booth_id):
            self._enqueue(rec)
        welcome = views.booth_welcome(self, rec, resumed)
        out.effects.insert(first, Send(rec.key, welcome, connection=rec.connection))
        rec.last_ended = None  # told in the welcome
        place = views.queue_place(self, rec)
        rec.last_queued = (place[0], -1 if place[2] is None else round(place[2])) if place else None
        if rec.session_id:
            self._tell_cso_session(rec)
        if resumed:
            self._event("booth_resumed", rec, session_id=rec.session_id)
        self._booth_maybe_free(rec)  # front of house: a free booth calls the next ticket

    def _booth_closed(self, booth_id: str, connection: str) -> None:
        rec = self._booths.get(booth_id)
        if rec is None or rec.connection != connection:
            return  # replaced by a newer socket
        idle = rec.state is S.IDLE
        self._booths.went_away(rec, None if idle else self._now.mono + self.config.grace_period)
        self._close_links_of(rec.key)
        if idle:
            self._release_ticket_of(rec, "booth_lost")
            self._booths.forget(rec)
            return
        d = self.dispatcher
        if d.has_booth(booth_id) and d.state_of(booth_id) != "in_service":
            # Out of the queue while away (no CSO is offered an empty booth, and an offer in
            # flight is withdrawn first, so it never looks like a call); the place is kept in
            # queued_since and restored on resume.
            self._apply(d.leave(booth_id, self._now.mono), "booth_lost")
        self._booths.transition(self._out, rec, E.CONNECTION_LOST)
        if rec.session_id:
            self._tell_cso_session(rec)
        self._event("booth_lost", rec, session_id=rec.session_id)

    def _cso_opened(self, ev: PeerOpened) -> None:
        key = cso_key(ev.principal.subject)
        self._close_links_of(key)
        rec, resumed = self._officers.open(ev.principal, ev.connection, ev.new_token)
        # Welcome first, then whatever the dispatcher decides now (offers come after it).
        decisions = self.dispatcher.add_cso(
            self._officers.profile(rec, self.capacity_of(rec)), self._now.mono, paused=rec.paused
        )
        self._out.send(key, views.cso_welcome(self, rec, resumed))
        self._cso_event("cso_joined", rec, detail="resumed" if resumed else None)
        self._apply(decisions)

    def _cso_closed(self, cso_id: str, connection: str) -> None:
        rec = self._officers.close(cso_id, connection)
        if rec is None:
            return
        self._close_links_of(rec.key)
        # Focus stays: the call is peer to peer and goes on while the console reconnects.
        self._cso_event("cso_lost", rec)
        self._apply(self.dispatcher.cso_lost(cso_id, self._now.mono), "cso_lost")

    def _supervisor_opened(self, who: Principal, connection: str) -> None:
        # The account's links were its old socket's peer connections: end them, quietly
        # for the new page, which never had them.
        for link in self._supervision.links_of(PeerKey(Role.SUPERVISOR, who.subject)):
            self._close_link(link, "peer_gone", tell_supervisor=False)
        self._supervision.open(who, connection)
        self._out.send(
            PeerKey(Role.SUPERVISOR, who.subject), views.supervisor_welcome(self, who, connection)
        )

    # --- inbound messages -------------------------------------------------------------------

    def _connection_of(self, key: PeerKey) -> str | None:
        if key.role is Role.BOOTH:
            booth = self._booths.get(key.subject)
            return booth.connection if booth else None
        if key.role is Role.CSO:
            cso = self._officers.get(key.subject)
            return cso.connection if cso else None
        sup = self._supervision.records.get(key.subject)
        return sup.connection if sup else None

    def _received(self, ev: Received) -> None:
        key = key_of(ev.principal)
        current = self._connection_of(key)
        if current is not None and current != ev.connection:
            return  # a replaced socket's last words; its peer has a newer socket
        who, message = ev.principal, ev.message
        match message:
            case Candidate() | Offer() | Answer() | PeerState():  # the hot path: first
                link = self._supervision.links.get(message.session_id)
                if link is not None and not isinstance(message, PeerState):
                    self._relay_link(key, link, message, ev.received_at, ev.raw)
                elif key.role in (Role.BOOTH, Role.CSO):
                    self._relay(who, key, message, ev.received_at, ev.raw)
                else:
                    raise ProtocolError(ErrorCode.NOT_IN_SESSION, "you are not an end of that link")
            case RequestCapture() | CaptureStatus() | RecordingStatus():
                if isinstance(message, RequestCapture) and message.kind not in DOCUMENT_KINDS:
                    raise ProtocolError(
                        ErrorCode.INVALID_MESSAGE,
                        f"unknown document kind {message.kind!r}",
                        ref=message.id,
                    )
                self._relay(who, key, message, ev.received_at, ev.raw)
            case CheckIn():
                self._check_in(self._booth(key), message)
            case Leave():
                self._leave(self._booth(key), message)
            case SetAvailability():
                self._availability(self._cso(key), message)
            case Accept():
                self._session_request(who, Action.SESSION_ACCEPT, message, self.dispatcher.accept)
            case Decline():
                self._session_request(who, Action.SESSION_DECLINE, message, self.dispatcher.decline)
            case FocusBooth():
                self._focus(who, message)
            case EndSession() if key.role is Role.CSO:
                self._session_request(
                    who,
                    Action.SESSION_END,
                    message,
                    lambda booth_id, _, now: self.dispatcher.release(booth_id, now),
                    "cso_ended",
                )
            case EndSession():
                self._supervisor_end(who, message)
            case MoveBooth():
                self._move(who, message)
            case SetCsoAvailability():
                self._steer_availability(who, message)
            case OpenLink():
                self._open_link(who, message)
                self._out.dirty()  # the floor view marks monitored sessions
            case CloseLink():
                self._close_link_request(who, message)
                self._out.dirty()
            case Subscribe():
                # A fresh snapshot comes with the next broadcast pass, one per scope
                # however many supervisors ask: asking costs a mark, not a snapshot.
                self._out.send(key, Ack(reply_to=message.id))
                self._out.dirty()
            case PeerStats():
                self._peer_stats(key, who, message)
            case IssueTicket():
                self._issue_ticket(who, message)
            case TicketAction():
                self._ticket_action(who, message)
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
        if self._refuse_unless_ticket(rec, msg):
            return  # the called ticket's participant: their claim was found at the desk
        # Refused here, before any record is touched: a refused check-in changes nothing.
        keys = self._booths.participant_keys(self.config.participant_key, msg)
        self._booths.refuse_if_elsewhere(rec, keys, msg.id)
        rec.pending = msg
        self._booths.hold(rec, keys)
        self._out.effects.append(ResolveClaim(rec.principal, msg))

    def _claim_resolved(self, ev: ClaimResolved) -> None:
        rec = self._booths.get(ev.booth_id)
        if rec is None or rec.pending is None or rec.pending.id != ev.request.id:
            return  # the socket went away meanwhile; it checks in again on return
        rec.pending = None
        msg = ev.request
        keys = self._booths.participant_keys(self.config.participant_key, msg, ev.claim_id)
        try:
            self._booths.refuse_if_elsewhere(rec, keys, msg.id)
        except ProtocolError as exc:
            self._booths.release(rec)
            self._out.send(rec.key, error_reply(exc))
            return
        visit_id = f"v{self._out.new_id()}"
        priority = 1 if msg.needs_assistance else 0
        self._begin_visit(rec, msg, claim_summary(msg, ev.claim_id), keys, priority=priority,
                          visit_id=visit_id)  # fmt: skip

    def _begin_visit(
        self, rec: BoothRecord, msg: CheckIn, claim: ClaimSummary, keys: list[str],
        *, priority: int, visit_id: str, ticket: str | None = None,
    ) -> None:  # fmt: skip
        """The participant is at the booth and known: queue for an officer."""
        rec.claim = claim
        rec.last_ended = None  # a new visit
        self._booths.hold(rec, keys)
        rec.language = msg.language
        rec.priority = priority
        rec.checked_in_at = self._now.wall
        rec.queued_since = self._now.mono
        rec.last_queued = None
        rec.visit_id, rec.ticket_id = visit_id, ticket
        self._booths.transition(self._out, rec, E.CHECK_IN)
        self._out.send(rec.key, Ack(reply_to=msg.id))
        self._event("booth_checked_in", rec)
        kind = str(claim.claim_type) if claim.claim_type else None
        self._milestone("checked_in", rec, detail=kind)  # the claim type, for the reports
        self._enqueue(rec)
        self._tell_position(rec)

    def _claim_refused(self, ev: ClaimRefused) -> None:
        rec = self._booths.get(ev.booth_id)
        if rec is None or rec.pending is None or rec.pending.id != ev.request.id:
            return
        rec.pending = None
        self._booths.release(rec)
        refusal = ProtocolError(ev.code, ev.message, ref=ev.request.id)
        self._out.send(rec.key, error_reply(refusal))

    def _leave(self, rec: BoothRecord, msg: Leave) -> None:
        self._out.send(rec.key, Ack(reply_to=msg.id))
        if rec.state is S.IDLE:
            return
        if self.dispatcher.has_booth(rec.booth_id):
            self._apply(self.dispatcher.leave(rec.booth_id, self._now.mono), "booth_left")
        self._finish_visit(rec, "booth_left")
        self._event("booth_left", rec)

    def _availability(self, rec: CsoRecord, msg: SetAvailability) -> None:
        self._out.send(rec.key, Ack(reply_to=msg.id))
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
        self._cso_event("cso_paused" if paused else "cso_resumed", rec)
        self._apply(decisions)

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
        self._out.send(cso_key(who.subject), Ack(reply_to=msg.id))
        self._apply(decisions, end_reason)

    def _focus(self, who: Principal, msg: FocusBooth) -> None:
        """Talk to one booth; every other booth of this CSO goes on hold."""
        rec = self._cso(cso_key(who.subject))
        if msg.session_id is not None:
            self._authorised(who, Action.SESSION_FOCUS, msg.session_id, msg.id)
        self._out.send(rec.key, Ack(reply_to=msg.id))
        self._set_focus(rec, msg.session_id)

    def _set_focus(self, cso: CsoRecord, session_id: str | None) -> None:
        change = self._officers.set_focus(cso, session_id)
        if change is not None:
            self._focus_changed(change)

    def _focus_changed(self, change: FocusChange) -> None:
        for sid in (change.before, change.after):
            record = self._booths.sessions.get(sid) if sid else None
            if record is None:
                continue
            booth = self._booths.get(record.live.booth_id)
            if booth is None or booth.session_id != sid:
                continue
            self._align_focus(booth)
            if booth.connected:
                live_id = record.live.session_id
                self._out.send(booth.key, Focus(session_id=live_id, focused=sid == change.after))

    def _align_focus(self, booth: BoothRecord) -> None:
        """Make the booth's state say whether its CSO talks to it (once media is up)."""
        if booth.state not in (S.ON_HOLD, S.FOCUSED) or booth.session_id is None:
            return
        focused = self.is_focused(booth)
        if focused and booth.state is S.ON_HOLD:
            self._booths.transition(self._out, booth, E.FOCUS)
        elif not focused and booth.state is S.FOCUSED:
            self._booths.transition(self._out, booth, E.UNFOCUS)

    # --- relay ------------------------------------------------------------------------------

    def _relay(
        self,
        who: Principal,
        key: PeerKey,
        msg: Relayed,
        received_at: float | None,
        raw: str | None = None,
    ) -> None:
        """Forward signaling and capture messages between the two ends of one session.
        (Which end may send which is fixed by the socket's role: see signaling.messages.)"""
        live = self._authorised(who, Action.SESSION_SIGNAL, msg.session_id, msg.id)
        record = self._booths.sessions[live.session_id]
        from_booth = key.role is Role.BOOTH
        target = cso_key(live.cso_id) if from_booth else booth_key(live.booth_id)
        if isinstance(msg, Offer | Answer):
            # Counted only when it can be relayed: a console retrying a booth that is away
            # must not use up the session's descriptions and fingerprints.
            self._connected_or_refuse(target, msg)
            added = self._booths.description(
                self._out,
                record,
                from_booth,
                dtls_fingerprints(msg.sdp),
                msg.id,
                self.config.max_descriptions,
            )
            if added:
                self._out.audit(key, "session.fingerprints_added", claim_id=live.claim_id,
                                fingerprints=added, session_id=live.session_id)  # fmt: skip
        if isinstance(msg, PeerState):
            if not from_booth:
                return  # the booth has no use for the console's view of the connection
            self._booth_media(self._booths.records[live.booth_id], msg)
        self._connected_or_refuse(target, msg)
        self._out.send(target, msg, received_at, raw)

    def _connected_or_refuse(self, target: PeerKey, msg: Relayed) -> None:
        if not self.connected(target):
            raise ProtocolError(
                ErrorCode.PEER_UNAVAILABLE, "the other end is not connected", ref=msg.id
            )

    def _booth_media(self, booth: BoothRecord, msg: PeerState) -> None:
        if booth.session_id != msg.session_id:
            return
        if msg.state == "connected" and booth.state is S.CONNECTING:
            self._booths.transition(self._out, booth, E.MEDIA_UP)
            self._align_focus(booth)
            self._tell_cso_session(booth)
            self._out.dirty()

    def _peer_stats(self, key: PeerKey, who: Principal, msg: PeerStats) -> None:
        """Kept for the floor view, never relayed; a notable change marks the floor dirty."""
        live = self._authorised(who, Action.SESSION_SIGNAL, msg.session_id, msg.id)
        record = self._booths.sessions[live.session_id]
        end = "booth" if key.role is Role.BOOTH else "cso"
        new = PeerQuality(rtt_ms=msg.rtt_ms, loss=msg.loss, fps=msg.fps, at=self._now.wall)
        old = record.quality.get(end)
        record.quality[end] = new
        if old is None or views.quality_band(old) != views.quality_band(new):
            self._out.dirty()

    def _document_stored(self, ev: DocumentStored) -> None:
        record = self._booths.of_claim(ev.claim_id)
        if record is None or record.live.state is S.RESERVED:
            return  # nobody serves the claim right now; the claim view lists it
        live = record.live
        if self._officers.connected(live.cso_id) is not None:
            self._out.send(
                cso_key(live.cso_id),
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

    def _verification_ready(self, ev: VerificationReady) -> None:
        record = self._booths.of_claim(ev.claim_id)
        if record is None or record.live.state is S.RESERVED:
            return  # nobody serves the claim now; the workbench shows it when opened
        live = record.live
        if self._officers.connected(live.cso_id) is not None:
            what: Literal["reading", "face"] = "face" if ev.what == "face" else "reading"
            self._out.send(
                cso_key(live.cso_id),
                VerificationUpdated(session_id=live.session_id, claim_id=ev.claim_id,
                                    document_id=ev.document_id, what=what),
            )  # fmt: skip

    def _capture_lost(self, ev: CaptureUndeliverable) -> None:
        """A picture will never arrive: the officer serving the claim sees its capture fail
        now, supervisors see it on the floor (an alert) for the next hour."""
        booth = self._booths.get(ev.booth_id)
        record = self._booths.sessions.get(ev.session_id or "") or self._booths.of_claim(
            ev.claim_id
        )
        if record is not None and record.live.claim_id != ev.claim_id:
            record = None
        if record is not None and record.live.state is not S.RESERVED:
            live = record.live
            if self._officers.connected(live.cso_id) is not None and ev.kind in DOCUMENT_KINDS:
                with contextlib.suppress(ValueError):  # an id the protocol cannot carry
                    failed = CaptureStatus(session_id=live.session_id, capture_id=ev.capture_id,
                                           kind=ev.kind, stage="failed",
                                           detail=f"not delivered: {ev.reason}")  # fmt: skip
                    self._out.send(cso_key(live.cso_id), failed)
        branch = booth.principal.branch if booth else ev.branch
        self.lost_captures.append(
            LostCapture(
                claim_id=ev.claim_id,
                capture_id=ev.capture_id,
                booth_id=ev.booth_id,
                branch=branch or "",
                kind=ev.kind,
                reason=ev.reason,
                at=self._now.wall,
            )
        )
        self._out.event("capture_undeliverable", branch=branch, booth_id=ev.booth_id,
                        session_id=ev.session_id, detail=f"{ev.kind}: {ev.reason}")  # fmt: skip
        self._out.dirty()

    # --- supervisors: steering and links ----------------------------------------------------

    def _check(self, who: Principal, action: Action, facts: AccessFacts, ref: str) -> None:
        """The access policy's refusal, as the protocol's typed error (one mapping for every
        socket action)."""
        verdict = decide(who, action, facts)
        if not verdict.allowed:
            raise ProtocolError(REFUSAL_CODES.get(verdict.code, ErrorCode.FORBIDDEN_FOR_ROLE),
                                verdict.reason, ref=ref)  # fmt: skip

    def _steer_facts(self, record: SessionRecord | None, branch_of: Role) -> AccessFacts:
        """A session's facts with the branch a supervisor must look after to act on it:
        the booth's (monitor, move, end) or the officer's (whisper)."""
        if record is None:
            return AccessFacts()
        live = record.live
        if branch_of is Role.CSO:
            cso = self._officers.get(live.cso_id)
            branch = cso.principal.branch if cso else None
        else:
            booth = self._booths.get(live.booth_id)
            branch = booth.principal.branch if booth else None
        return AccessFacts(session=record.facts().session, claim_branch=branch)

    def _move(self, who: Principal, msg: MoveBooth) -> None:
        record = self._booths.sessions.get(msg.session_id)
        self._check(who, Action.SESSION_STEER, self._steer_facts(record, Role.BOOTH), msg.id)
        assert record is not None
        live = record.live
        target = self._officers.get(msg.to_cso_id)
        if target is None or not self.dispatcher.has_cso(msg.to_cso_id):
            raise ProtocolError(
                ErrorCode.CONFLICT, f"no officer {msg.to_cso_id!r} is on the floor", ref=msg.id
            )
        # The officer it goes to must be one this supervisor steers, too.
        self._check(who, Action.CSO_STEER, AccessFacts(claim_branch=target.principal.branch),
                    msg.id)  # fmt: skip
        decisions = self._dispatch(
            lambda now: self.dispatcher.move(live.booth_id, msg.to_cso_id, now), msg.id
        )
        self._out.audit(who, "session.moved", claim_id=live.claim_id, session_id=live.session_id,
                        booth_id=live.booth_id, from_cso=live.cso_id,
                        to_cso=msg.to_cso_id)  # fmt: skip
        self._out.send(key_of(who), Ack(reply_to=msg.id))
        self._apply(decisions, "moved")

    def _steer_availability(self, who: Principal, msg: SetCsoAvailability) -> None:
        cso = self._officers.get(msg.cso_id)
        branch = cso.principal.branch if cso else None
        self._check(who, Action.CSO_STEER, AccessFacts(claim_branch=branch), msg.id)
        if cso is None or not self.dispatcher.has_cso(msg.cso_id):
            raise ProtocolError(
                ErrorCode.CONFLICT, f"no officer {msg.cso_id!r} is on the floor", ref=msg.id
            )
        if msg.available and not cso.connected:
            raise ProtocolError(
                ErrorCode.CONFLICT, "that officer is disconnected; they resume on return",
                ref=msg.id,
            )  # fmt: skip
        if msg.available == (not cso.paused):
            self._out.send(key_of(who), Ack(reply_to=msg.id))
            return
        self._out.audit(who, "cso.resumed" if msg.available else "cso.paused",
                        cso_id=cso.cso_id)  # fmt: skip
        self._out.send(key_of(who), Ack(reply_to=msg.id))
        self._set_paused(cso, not msg.available)
        if cso.connected:
            self._out.send(
                cso.key, AvailabilityChanged(available=msg.available, by=who.display_name)
            )

    def _supervisor_end(self, who: Principal, msg: EndSession) -> None:
        record = self._booths.sessions.get(msg.session_id)
        self._check(who, Action.SESSION_STEER, self._steer_facts(record, Role.BOOTH), msg.id)
        assert record is not None
        live = record.live
        decisions = self._dispatch(lambda now: self.dispatcher.release(live.booth_id, now), msg.id)
        self._out.audit(who, "session.ended_by_supervisor", claim_id=live.claim_id,
                        session_id=live.session_id, booth_id=live.booth_id,
                        cso_id=live.cso_id)  # fmt: skip
        self._out.send(key_of(who), Ack(reply_to=msg.id))
        self._apply(decisions, "supervisor_ended")

    def _open_link(self, who: Principal, msg: OpenLink) -> None:
        record = self._booths.sessions.get(msg.session_id)
        end = Role.BOOTH if msg.kind == "monitor" else Role.CSO
        self._check(who, Action.SESSION_MONITOR, self._steer_facts(record, end), msg.id)
        assert record is not None
        live = record.live
        peer = booth_key(live.booth_id) if end is Role.BOOTH else cso_key(live.cso_id)
        if not self.connected(peer):
            raise ProtocolError(
                ErrorCode.PEER_UNAVAILABLE, "that end is reconnecting; try again", ref=msg.id
            )
        if self._supervision.has_link(who.subject, live.session_id, msg.kind):
            raise ProtocolError(
                ErrorCode.CONFLICT, f"already {msg.kind}ing that session", ref=msg.id
            )
        link = self._supervision.add_link(
            f"lk{self._out.new_id()}", msg.kind, live.session_id, who, peer, live.claim_id
        )
        self._out.audit(who, f"{msg.kind}.started", claim_id=live.claim_id,
                        session_id=live.session_id, link_id=link.link_id)  # fmt: skip
        self._out.send(link.supervisor_key, Ack(reply_to=msg.id))
        # The monitored booth offers to the supervisor; a whisperer offers to the officer.
        ends = ((link.supervisor_key, msg.kind == "whisper"), (peer, end is Role.BOOTH))
        for to, offerer in ends:
            self._out.send(
                to,
                LinkOpened(
                    link_id=link.link_id,
                    kind=msg.kind,
                    session_id=live.session_id,
                    offerer=offerer,
                    supervisor_name=who.display_name,
                    ice_servers=views.ice_servers(self, to),
                ),
            )
        if msg.kind == "monitor":
            self._tell_monitored(live.session_id)

    def _close_link_request(self, who: Principal, msg: CloseLink) -> None:
        link = self._supervision.links.get(msg.link_id)
        if link is None or link.supervisor.subject != who.subject:
            raise ProtocolError(ErrorCode.NOT_IN_SESSION, "no such link of yours", ref=msg.id)
        self._out.send(link.supervisor_key, Ack(reply_to=msg.id))
        self._close_link(link, "closed")

    def _close_link(self, link: Link, reason: str, *, tell_supervisor: bool = True) -> None:
        if self._supervision.remove_link(link.link_id) is None:
            return
        self._out.audit(link.supervisor, f"{link.kind}.stopped", claim_id=link.claim_id,
                        session_id=link.session_id, link_id=link.link_id,
                        reason=reason)  # fmt: skip
        closed = LinkClosed(link_id=link.link_id, reason=reason)  # type: ignore[arg-type]
        if tell_supervisor and self.connected(link.supervisor_key):
            self._out.send(link.supervisor_key, closed)
        if self.connected(link.peer):
            self._out.send(link.peer, closed)
        if link.kind == "monitor":
            self._tell_monitored(link.session_id)

    def _close_links_of(self, key: PeerKey) -> None:
        """A peer's new socket, or its socket gone: its links have no peer connection."""
        for link in self._supervision.links_of(key):
            self._close_link(link, "peer_gone")

    def _tell_monitored(self, session_id: str) -> None:
        """The CSO sees a "monitored" mark, if the agency chose to show it."""
        record = self._booths.sessions.get(session_id)
        if record is None or not self.config.monitor_visible_to_cso:
            return
        booth = self._booths.get(record.live.booth_id)
        if self._officers.connected(record.live.cso_id) is not None and booth is not None:
            self._out.send(
                cso_key(record.live.cso_id),
                SessionUpdate(
                    session_id=session_id,
                    state=record.live.state,
                    booth_connected=booth.connected,
                    monitored=self.monitored(session_id),
                ),
            )

    def _relay_link(
        self,
        key: PeerKey,
        link: Link,
        msg: Offer | Answer | Candidate,
        received_at: float | None,
        raw: str | None = None,
    ) -> None:
        if not link.has_end(key):
            raise ProtocolError(ErrorCode.NOT_IN_SESSION, "you are not an end of that link")
        target = link.other_end(key)
        if not self.connected(target):
            raise ProtocolError(ErrorCode.PEER_UNAVAILABLE, "the other end is not connected")
        self._out.send(target, msg, received_at, raw)

    # --- time -------------------------------------------------------------------------------

    def _timer(self) -> None:
        now = self._now.mono
        self._apply(self.dispatcher.tick(now), "cso_lost")
        for rec in self._booths.overdue(now):
            if rec.state is S.IDLE:
                self._booths.forget(rec)  # nothing to hold; it told its story already
            else:
                self._booth_gone(rec, "booth_lost")
        self._lobby_timer()

    def _broadcast(self) -> None:
        for rec in self._booths.records.values():
            self._tell_position(rec)
        now = self._now.wall
        if not self.history or now - self.history[-1].t >= HISTORY_STEP:
            self.history.append(HistorySample(now, views.queue_by_branch(self)))
        for topic, scope in self._supervision.scopes().items():
            self._out.publish(topic, views.snapshot(self, scope))
        self._publish_displays()

    def _tell_position(self, rec: BoothRecord) -> None:
        place = views.queue_place(self, rec)
        if place is None or not rec.connected:
            return
        position, waiting, eta = place
        key = (position, -1 if eta is None else round(eta))
        if key != rec.last_queued:
            rec.last_queued = key
            self._out.send(
                rec.key, Queued(position=position, waiting=waiting, estimated_wait_s=eta)
            )

    def _schedule(self) -> None:
        at = self.next_deadline()
        if at != self._timer_at:
            self._timer_at = at
            self._out.effects.append(SetTimer(at))

    # --- dispatcher decisions ---------------------------------------------------------------

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
        self._out.dirty()

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
                    rec = self._officers.get(decision.cso_id)
                    self._officers.retire(decision.cso_id)
                    if rec is not None:
                        self._cso_event("cso_left", rec)
        if decisions:
            self._out.dirty()
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
        booth = self._booths.records[d.booth_id]
        if not booth.connected:
            # Matched in the same breath as it was requeued while away: no CSO is offered
            # an empty booth; it waits again once back.
            self._away_in_queue.append(d.booth_id)
            return
        record = self._booths.open_session(self._out, booth, d.cso_id, d.expires_at)
        self._booths.transition(self._out, booth, E.RESERVE)
        self._out.send(cso_key(d.cso_id), views.offer(self, record, booth))
        self._out.send(booth.key, ReservedMsg(session_id=record.live.session_id))
        self._event("booth_reserved", booth, cso_id=d.cso_id, session_id=record.live.session_id)

    def _on_assigned(self, d: Assigned) -> None:
        booth = self._booths.records[d.booth_id]
        session_id = booth.session_id
        assert session_id is not None
        record = self._booths.sessions[session_id]
        record.offer_expires_at = None
        self._booths.transition(self._out, booth, E.ACCEPT)
        self._out.effects.append(Observe("assignments"))
        self._out.effects.append(
            Observe("wait_seconds", max(0.0, self._now.wall - booth.checked_in_at))
        )
        if booth.connected:
            self._out.send(booth.key, views.assigned_for_booth(self, booth))
        self._out.send(cso_key(d.cso_id), views.assigned_for_cso(self, record, booth))
        self._event("booth_assigned", booth, cso_id=d.cso_id, session_id=session_id)
        self._milestone("assigned", booth, record=record)

    def _on_lapsed(self, d: ReservationLapsed) -> None:
        booth = self._booths.records[d.booth_id]
        self._withdraw_offer_of(d.booth_id, d.reason)
        if booth.state is S.RESERVED:
            self._booths.transition(self._out, booth, E.LAPSE)
        booth.last_queued = None
        self._tell_position(booth)  # the kiosk leaves "an officer is coming" at once

    def _withdraw_offer_of(self, booth_id: str, reason: str) -> None:
        booth = self._booths.get(booth_id)
        if booth is None or booth.session_id is None:
            return
        record = self._booths.drop_session(self._out, booth.session_id)
        booth.session_id = None
        if record is not None and self._officers.connected(record.live.cso_id) is not None:
            self._out.send(
                cso_key(record.live.cso_id),
                OfferWithdrawn(session_id=record.live.session_id, reason=reason),  # type: ignore[arg-type]
            )

    def _on_requeued(self, d: Requeued, reason: EndReason) -> None:
        booth = self._booths.records[d.booth_id]
        if booth.session_id:
            self._close_session(booth.session_id, reason)
        booth.session_id = None
        booth.last_queued = None
        away = booth.state is S.RECONNECTING
        self._booths.transition(self._out, booth, E.REQUEUE)
        if away:
            # Away itself: it waits again once back; no CSO is offered an empty booth.
            self._booths.transition(self._out, booth, E.CONNECTION_LOST)
            self._away_in_queue.append(d.booth_id)
        self._out.effects.append(Observe("requeues"))
        self._event("booth_requeued", booth, cso_id=d.former_cso_id)
        self._tell_position(booth)

    def _end_session_of(self, booth_id: str, reason: EndReason) -> None:
        booth = self._booths.get(booth_id)
        if booth is None or booth.session_id is None:
            return
        session_id = booth.session_id
        self._close_session(session_id, reason)
        booth.session_id = None
        self._finish_visit(booth, reason)
        # Kept until a welcome tells it or a new visit begins, connected or not: a socket the
        # floor still counts as connected may be dead already (its process killed, not yet
        # reaped), and the `session_ended` sent to it lost; the kiosk must still learn how
        # its visit ended when it resumes, or it would check its participant in again.
        booth.last_ended = SessionEndNote(session_id=session_id, reason=reason)

    def _close_session(self, session_id: str, reason: EndReason) -> None:
        record = self._booths.sessions.get(session_id)
        if record is None:
            return
        for link in self._supervision.links_of_session(session_id):
            self._close_link(link, "session_ended")
        self._booths.drop_session(self._out, session_id)
        live = record.live
        ended = SessionEnded(session_id=session_id, reason=reason)
        booth = self._booths.get(live.booth_id)
        if live.state is not S.RESERVED:  # an offer withdrawn is no session of the visit
            self._milestone("session_ended", booth, record=record, detail=reason)
        if booth is not None and booth.connected:
            self._out.send(booth.key, ended)
        if self._officers.connected(live.cso_id) is not None:
            self._out.send(cso_key(live.cso_id), ended)
        self._officers.session_closed(live.cso_id, session_id)
        branch = booth.principal.branch if booth else None
        self._out.event("session_ended", branch=branch, booth_id=live.booth_id,
                        cso_id=live.cso_id, session_id=session_id, detail=reason)  # fmt: skip

    def _finish_visit(self, booth: BoothRecord, reason: str = "booth_left") -> None:
        """The participant is done (or left): end -> idle, through the session table."""
        if booth.session_id:
            self._close_session(booth.session_id, "booth_left")
        booth.session_id = None
        if booth.state is not S.IDLE:
            self._booths.transition(self._out, booth, E.END)
            self._booths.transition(self._out, booth, E.RESET)
        self._visit_over(booth, reason)
        booth.claim = None
        self._booths.release(booth)
        booth.last_queued = None
        self._booth_maybe_free(booth)  # front of house: the next ticket, if one waits

    def _booth_gone(self, rec: BoothRecord, reason: EndReason) -> None:
        """A booth left for good (grace ran out, or the kiosk started afresh)."""
        if self.dispatcher.has_booth(rec.booth_id):
            self._apply(self.dispatcher.leave(rec.booth_id, self._now.mono), reason)
        if rec.session_id:
            self._close_session(rec.session_id, reason)
            rec.session_id = None
        self._release_ticket_of(rec, reason)
        self._visit_over(rec, reason)
        self._booths.forget(rec)
        self._event("booth_left", rec, detail=reason)

    # --- helpers ----------------------------------------------------------------------------

    def _tell_cso_session(self, booth: BoothRecord) -> None:
        record = self._booths.sessions.get(booth.session_id or "")
        if record is None or record.live.state is S.RESERVED:
            if record is not None:  # an offer in flight: the CSO sees it in its offer list
                self._out.dirty()
            return
        if self._officers.connected(record.live.cso_id) is not None:
            self._out.send(
                cso_key(record.live.cso_id),
                SessionUpdate(
                    session_id=record.live.session_id,
                    state=booth.state,
                    booth_connected=booth.connected,
                ),
            )
        self._out.dirty()

    def _authorised(self, who: Principal, action: Action, session_id: str, ref: str) -> LiveSession:
        record = self._booths.sessions.get(session_id)
        self._check(who, action, record.facts() if record else AccessFacts(), ref)
        assert record is not None
        return record.live

    def _booth(self, key: PeerKey) -> BoothRecord:
        rec = self._booths.get(key.subject)
        if rec is None or not rec.connected:
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "booth is not connected")
        return rec

    def _cso(self, key: PeerKey) -> CsoRecord:
        rec = self._officers.connected(key.subject)
        if rec is None:
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "CSO is not connected")
        return rec

    def _event(
        self,
        kind: str,
        booth: BoothRecord,
        *,
        cso_id: str | None = None,
        session_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        self._out.event(kind, branch=booth.principal.branch, booth_id=booth.booth_id,
                        cso_id=cso_id, session_id=session_id, detail=detail)  # fmt: skip

    def _cso_event(self, kind: str, cso: CsoRecord, *, detail: str | None = None) -> None:
        self._out.event(kind, branch=cso.principal.branch, cso_id=cso.cso_id, detail=detail)

    # --- snapshots (server/floor/snapshot.py) -----------------------------------------------

    def __getstate__(self) -> dict[str, object]:
        state = dict(vars(self))
        state.pop("config", None)
        state.pop("_step", None)
        return state
