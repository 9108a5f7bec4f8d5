"""The floor core, pure: scenarios from the first release's bugs, then a hypothesis
RuleBasedStateMachine over random interleavings of everything peers and time can do.

After every step each connected peer's state, as that peer rebuilt it from its `welcome`
plus the messages it has received since, must equal the core's: that is what "resume by
state sync" promises, and it also proves no message was lost or sent to a closed socket.
"""

from __future__ import annotations

import itertools
import pickle
from dataclasses import dataclass, field

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from server.floor import views
from server.floor.core import FloorConfig, FloorCore
from server.floor.effects import (
    Audit,
    DeleteSession,
    Effect,
    PersistSession,
    ResolveClaim,
    Send,
    SetTimer,
)
from server.floor.events import (
    BroadcastDue,
    ClaimRefused,
    ClaimResolved,
    DocumentStored,
    Event,
    Now,
    PeerClosed,
    PeerOpened,
    Received,
    TimerFired,
)
from server.floor.model import booth_key, cso_key
from server.floor.snapshot import SeededIds, dump_core, load_core, replay
from server.ports.live_state import LiveSession
from server.principal import AccountRole, Principal
from signaling.errors import ErrorCode
from signaling.messages import (
    Accept,
    Ack,
    Answer,
    Assigned,
    AvailabilityChanged,
    BookingRef,
    BoothAssigned,
    BoothOffered,
    CaptureStatus,
    CheckIn,
    CloseLink,
    Decline,
    DocumentAdded,
    EndSession,
    Envelope,
    Error,
    Focus,
    FocusBooth,
    Leave,
    LinkClosed,
    LinkOpened,
    MoveBooth,
    Offer,
    OfferWithdrawn,
    OpenLink,
    PeerState,
    Queued,
    RequestCapture,
    Reserved,
    SessionEnded,
    SessionUpdate,
    SetAvailability,
    SetCsoAvailability,
    Welcome,
)
from signaling.session import IN_CALL, SessionState

S = SessionState
CONFIG = FloorConfig(reservation_timeout=5.0, grace_period=10.0, decline_cooldown=3.0)
SDP = "v=0\r\na=fingerprint:sha-256 {}\r\n"


def booth(name: str) -> Principal:
    return Principal(name, AccountRole.BOOTH, f"Booth {name}", "jkt01")


def cso(name: str, capacity: int = 2) -> Principal:
    return Principal(
        name, AccountRole.CSO, name.title(), "jkt01", frozenset({"*"}), capacity=capacity
    )


# --- what a client makes of what it is told ------------------------------------------------


@dataclass
class BoothMirror:
    state: SessionState
    session_id: str | None
    focused: bool
    pending: dict[str, str] = field(default_factory=dict)  # request id -> kind
    links: set[str] = field(default_factory=set)  # monitor links it sends to

    @classmethod
    def from_welcome(cls, welcome: Welcome) -> BoothMirror:
        assert welcome.booth is not None
        b = welcome.booth
        return cls(b.state, b.session_id, b.focused)

    def apply(self, message: Envelope) -> None:
        match message:
            case Ack() if message.reply_to in self.pending:
                if self.pending.pop(message.reply_to) == "check_in":
                    self.state = S.QUEUED
                else:  # leave
                    self.state, self.session_id, self.focused = S.IDLE, None, False
            case Error() if message.reply_to in self.pending:
                self.pending.pop(message.reply_to)
            case Queued():
                if self.state in (S.QUEUED, S.RESERVED):
                    self.state, self.session_id = S.QUEUED, None
            case Reserved():
                self.state, self.session_id = S.RESERVED, message.session_id
            case Assigned():
                self.state, self.session_id, self.focused = S.CONNECTING, message.session_id, False
            case Focus() if message.session_id == self.session_id:
                self.focused = message.focused
                if self.state in (S.ON_HOLD, S.FOCUSED):
                    self.state = S.FOCUSED if self.focused else S.ON_HOLD
            case SessionEnded() if message.session_id == self.session_id:
                requeued = message.reason in ("cso_lost", "moved")
                self.state = S.QUEUED if requeued else S.IDLE
                self.session_id, self.focused = None, False
            case LinkOpened():
                self.links.add(message.link_id)
            case LinkClosed():
                self.links.discard(message.link_id)

    def media_up(self) -> None:
        if self.state is S.CONNECTING:
            self.state = S.FOCUSED if self.focused else S.ON_HOLD


@dataclass
class CsoMirror:
    available: bool
    focused: str | None
    sessions: dict[str, bool]  # session id -> booth connected
    offers: set[str]
    pending: dict[str, tuple[str, object]] = field(default_factory=dict)
    links: set[str] = field(default_factory=set)  # whisper links it hears

    @classmethod
    def from_welcome(cls, welcome: Welcome) -> CsoMirror:
        assert welcome.cso is not None
        c = welcome.cso
        return cls(
            c.available,
            c.focused,
            {s.session_id: s.booth_connected for s in c.sessions},
            {o.session_id for o in c.offers},
        )

    def apply(self, message: Envelope) -> None:
        match message:
            case Ack() if message.reply_to in self.pending:
                kind, value = self.pending.pop(message.reply_to)
                if kind == "focus":
                    self.focused = value  # type: ignore[assignment]
                elif kind == "available":
                    self.available = bool(value)
            case Error() if message.reply_to in self.pending:
                self.pending.pop(message.reply_to)
            case BoothOffered():
                self.offers.add(message.session_id)
            case OfferWithdrawn():
                self.offers.discard(message.session_id)
            case BoothAssigned():
                self.offers.discard(message.session_id)
                self.sessions[message.session_id] = True
            case SessionUpdate():
                self.sessions[message.session_id] = message.booth_connected
            case SessionEnded():
                self.sessions.pop(message.session_id, None)
                if self.focused == message.session_id:
                    self.focused = None
            case AvailabilityChanged():
                self.available = message.available
            case LinkOpened():
                self.links.add(message.link_id)
            case LinkClosed():
                self.links.discard(message.link_id)


# --- the harness: the runtime's job, done by hand ----------------------------------------


class Harness:
    def __init__(self) -> None:
        # Seeded ids: the core can be snapshotted and replayed (a cluster's leader change).
        self.core = FloorCore(CONFIG, new_id=SeededIds("walk"))
        self.applied: list[tuple[Event, Now]] = []  # since `snapshot` was taken
        self.snapshot: bytes = pickle.dumps(dump_core(self.core))
        self.mono, self.wall = 1000.0, 1.9e9
        self.conns = itertools.count()
        self.connected: dict[str, str] = {}  # peer -> its current connection
        self.tokens: dict[str, str] = {}  # peer -> last resume token it was given
        self.booth_mirrors: dict[str, BoothMirror] = {}
        self.cso_mirrors: dict[str, CsoMirror] = {}
        self.live: dict[str, LiveSession] = {}
        self.timer_at: float | None = None
        self.resolving: list[ResolveClaim] = []
        self.audits: list[Audit] = []
        self.errors: list[Error] = []

    def handle(self, event: Event) -> list[Effect]:
        now = Now(self.mono, self.wall)
        self.applied.append((event, now))
        effects = self.core.handle(event, now)
        for effect in effects:
            match effect:
                case Send():
                    # Never to a closed socket: what an offline peer misses is in its welcome.
                    peer = effect.to.subject
                    assert peer in self.connected, f"sent to offline {effect.to}"
                    self._deliver(peer, effect.message)
                case PersistSession():
                    self.live[effect.session.session_id] = effect.session
                case DeleteSession():
                    self.live.pop(effect.session_id, None)
                case SetTimer():
                    self.timer_at = effect.at
                case ResolveClaim():
                    self.resolving.append(effect)
                case Audit():
                    self.audits.append(effect)
        return effects

    def _deliver(self, peer: str, message: Envelope) -> None:
        if peer == "boss":
            return  # the supervisor's view is the snapshot; links are checked on the core
        if isinstance(message, Welcome):
            self.tokens[peer] = message.resume_token
            if message.booth is not None:
                self.booth_mirrors[peer] = BoothMirror.from_welcome(message)
            elif message.cso is not None:
                self.cso_mirrors[peer] = CsoMirror.from_welcome(message)
            return
        if isinstance(message, Error):
            self.errors.append(message)
        mirror = self.booth_mirrors.get(peer) or self.cso_mirrors.get(peer)
        if mirror is not None:
            mirror.apply(message)

    # peers
    def open(self, who: Principal, *, resume: bool = True) -> str:
        old = self.connected.get(who.subject)
        conn = f"c{next(self.conns)}"
        self.connected[who.subject] = conn
        token = self.tokens.get(who.subject) if resume else None
        self.handle(PeerOpened(who, conn, token, f"t{conn}"))
        if old is not None:  # the router closed the replaced socket; its close comes late
            self.handle(PeerClosed(who, old))
        return conn

    def close(self, who: Principal) -> None:
        conn = self.connected.pop(who.subject, None)
        self.booth_mirrors.pop(who.subject, None)
        self.cso_mirrors.pop(who.subject, None)
        if conn is not None:
            self.handle(PeerClosed(who, conn))

    def send(self, who: Principal, message: Envelope) -> list[Effect]:
        conn = self.connected[who.subject]
        mirror = self.booth_mirrors.get(who.subject)
        cmirror = self.cso_mirrors.get(who.subject)
        match message:
            case CheckIn() if mirror:
                mirror.pending[message.id] = "check_in"
            case Leave() if mirror:
                mirror.pending[message.id] = "leave"
            case FocusBooth() if cmirror:
                cmirror.pending[message.id] = ("focus", message.session_id)
            case SetAvailability() if cmirror:
                cmirror.pending[message.id] = ("available", message.available)
        return self.handle(Received(who, conn, message))

    def resolve(self, index: int, *, refuse: bool = False) -> None:
        effect = self.resolving.pop(index)
        request = effect.request
        booth_id = effect.principal.subject
        if refuse:
            self.handle(ClaimRefused(booth_id, request, ErrorCode.CLAIM_NOT_FOUND, "no booking"))
        else:
            code = request.claim.booking_code  # type: ignore[union-attr]
            self.handle(ClaimResolved(booth_id, request, f"claim-{code}"))

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds
        if self.timer_at is not None and self.mono >= self.timer_at:
            self.handle(TimerFired())

    def media_up(self, who: Principal) -> None:
        mirror = self.booth_mirrors.get(who.subject)
        if mirror and mirror.session_id and mirror.state in IN_CALL:
            mirror.media_up()
            self.send(who, PeerState(session_id=mirror.session_id, state="connected"))

    def check_in(self, who: Principal, code: str) -> None:
        self.send(who, CheckIn(claim=BookingRef(booking_code=code)))

    def status(self, booth_id: str) -> tuple[SessionState, str | None, bool]:
        rec = self.core.booths[booth_id]
        return rec.state, rec.session_id, self.core.is_focused(rec)

    def offer_of(self, cso_id: str) -> str:
        return next(s for s, r in self.core.sessions.items()
                    if r.live.cso_id == cso_id and r.live.state is S.RESERVED)  # fmt: skip

    def check(self) -> None:
        check_invariants(self)


def check_invariants(h: Harness) -> None:
    core = h.core
    d = core.dispatcher
    # Each connected peer's rebuilt state equals the core's.
    for peer, mirror in h.booth_mirrors.items():
        rec = core.booths[peer]
        assert (mirror.state, mirror.session_id, mirror.focused) == (
            rec.state,
            rec.session_id,
            core.is_focused(rec),
        ), f"booth {peer} thinks {mirror}, core {rec.state} {rec.session_id}"
    for peer, cm in h.cso_mirrors.items():
        status = views.cso_status(core, core.csos[peer])
        assert cm.offers == {o.session_id for o in status.offers}, peer
        assert cm.sessions == {s.session_id: s.booth_connected for s in status.sessions}, peer
        assert cm.focused == status.focused and cm.available == status.available, peer
    # A booth never has two CSOs; sessions and booths point at each other.
    booths_in_sessions = [r.live.booth_id for r in core.sessions.values()]
    assert len(booths_in_sessions) == len(set(booths_in_sessions))
    for sid, record in core.sessions.items():
        live = record.live
        rec = core.booths[live.booth_id]
        assert rec.session_id == sid and live.state is rec.state
        # The dispatcher agrees on who serves whom and how far.
        assert d.has_booth(live.booth_id) and d.cso_of(live.booth_id) == live.cso_id
        expected = "reserved" if live.state is S.RESERVED else "in_service"
        assert d.state_of(live.booth_id) == expected
    # At most one focused session per CSO, only on one of its live sessions.
    for c in core.csos.values():
        if c.focused is not None:
            record = core.sessions.get(c.focused)
            assert record is not None and record.live.cso_id == c.cso_id
            assert record.live.state in (*IN_CALL, S.RECONNECTING)
    # A checked-in booth with no session is queued (or away); queued booths are waiting.
    for rec in core.booths.values():
        if rec.session_id is None:
            assert rec.state in (S.IDLE, S.QUEUED, S.RECONNECTING), rec
        if rec.state is S.QUEUED:
            assert rec.connected and d.has_booth(rec.booth_id)
            assert d.state_of(rec.booth_id) == "waiting"
        if d.has_booth(rec.booth_id) and d.state_of(rec.booth_id) == "waiting":
            assert rec.state is S.QUEUED
        if not rec.connected:
            assert rec.lost_deadline is not None
    # Links live only within live calls, between connected ends, and their ends know them.
    for link in core.links.values():
        record = core.sessions.get(link.session_id)
        assert record is not None and record.live.state in (*IN_CALL, S.RECONNECTING)
        assert link.supervisor.subject in core.supervisors
        assert link.peer == (
            booth_key(record.live.booth_id)
            if link.kind == "monitor"
            else cso_key(record.live.cso_id)
        )
    for peer, mirror in h.booth_mirrors.items():
        assert mirror.links == {k for k, lk in core.links.items() if lk.peer == booth_key(peer)}
    for peer, cm in h.cso_mirrors.items():
        assert cm.links == {k for k, lk in core.links.items() if lk.peer == cso_key(peer)}
    # Who holds which participant: exactly the booths that hold them (bounded by the floor).
    holders = core._booths.holders
    for key, booth_id in holders.items():
        assert booth_id in core.booths and key in core.booths[booth_id].holds, key
    assert len(holders) == sum(len(b.holds) for b in core.booths.values())
    # Live state (what other processes see) is exactly the core's sessions.
    assert h.live == {sid: r.live for sid, r in core.sessions.items()}
    assert d.waiting_count() == sum(1 for b in core.booths.values() if b.state is S.QUEUED)


# --- scenarios: the first release's edge bugs, each a few lines ---------------------------


@pytest.fixture
def h() -> Harness:
    return Harness()


def _serve(h: Harness, b: Principal, c: Principal, code: str = "BK-1") -> str:
    h.check_in(b, code)
    h.resolve(0)
    sid = h.offer_of(c.subject)
    h.send(c, Accept(session_id=sid))
    return sid


def test_booth_away_when_the_call_ends_is_told_on_resume_and_can_check_in(h: Harness) -> None:
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    sid = _serve(h, b, c)
    h.close(b)
    h.send(c, EndSession(session_id=sid))
    h.open(b)  # resumes with its token
    rec = h.core.booths["b1"]
    assert rec.state is S.IDLE
    welcome_note = h.booth_mirrors["b1"]
    assert welcome_note.state is S.IDLE
    h.check_in(b, "BK-2")
    h.resolve(0)
    assert h.core.booths["b1"].state in (S.QUEUED, S.RESERVED)
    h.check()


def test_restarted_kiosk_gets_only_a_welcome(h: Harness) -> None:
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    sid = _serve(h, b, c)
    conn = h.connected.pop("b1")
    fresh = "fresh"
    h.connected["b1"] = fresh
    effects = h.handle(PeerOpened(b, fresh, None, "t-new"))
    to_booth = [e.message for e in effects if isinstance(e, Send) and e.to == booth_key("b1")]
    assert [type(m) for m in to_booth] == [Welcome]
    to_cso = [e.message for e in effects if isinstance(e, Send) and e.to == cso_key("siti")]
    assert any(isinstance(m, SessionEnded) and m.session_id == sid for m in to_cso)
    h.handle(PeerClosed(b, conn))  # the old socket's close, late: ignored
    assert h.core.booths["b1"].state is S.IDLE


def test_short_drop_mid_call_resumes_where_it_was(h: Harness) -> None:
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    sid = _serve(h, b, c)
    h.media_up(b)
    h.send(c, FocusBooth(session_id=sid))
    assert h.core.booths["b1"].state is S.FOCUSED
    h.close(b)
    assert h.live[sid].state is S.RECONNECTING
    h.advance(2)
    h.open(b)
    assert h.core.booths["b1"].state is S.FOCUSED and h.live[sid].state is S.FOCUSED
    assert h.booth_mirrors["b1"].focused
    h.check()


def test_paused_cso_reconnecting_is_offered_nothing(h: Harness) -> None:
    b, c = booth("b1"), cso("siti")
    h.open(c)
    h.send(c, SetAvailability(available=False))
    h.close(c)
    h.open(b)
    h.check_in(b, "BK-1")
    h.resolve(0)
    effects = h.open(c) and []
    assert not [s for s in h.core.sessions.values() if s.live.cso_id == "siti"], effects
    assert h.cso_mirrors["siti"].available is False
    assert h.core.booths["b1"].state is S.QUEUED
    # Back from the break: the booth is offered at once, no cooldown was incurred.
    h.send(c, SetAvailability(available=True))
    assert h.core.booths["b1"].state is S.RESERVED
    h.check()


def test_a_signaling_blip_of_the_officer_keeps_the_focus(h: Harness) -> None:
    """The call is peer to peer: a console that reconnects (proxy reload, Wi-Fi change)
    must find the booth still focused, not muted and detached (issue 21, C9)."""
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    sid = _serve(h, b, c)
    h.media_up(b)
    h.send(c, FocusBooth(session_id=sid))
    h.close(c)
    assert h.booth_mirrors["b1"].focused is True
    assert h.core.booths["b1"].state is S.FOCUSED
    h.advance(CONFIG.grace_period / 2)
    h.open(c)
    assert h.cso_mirrors["siti"].focused == sid and h.booth_mirrors["b1"].focused
    h.check()
    # Past the grace period the officer is gone and so is the focus.
    h.close(c)
    h.advance(CONFIG.grace_period + 0.1)
    assert h.booth_mirrors["b1"].focused is False
    h.check()


def test_lapsed_offer_is_told_to_the_booth(h: Harness) -> None:
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    h.check_in(b, "BK-1")
    h.resolve(0)
    assert h.booth_mirrors["b1"].state is S.RESERVED
    h.advance(CONFIG.reservation_timeout + 0.1)
    assert h.booth_mirrors["b1"].state is S.QUEUED
    h.check()


def test_refused_check_in_is_refused_before_any_record(h: Harness) -> None:
    b1, b2 = booth("b1"), booth("b2")
    h.open(b1), h.open(b2)
    h.check_in(b1, "BK-1")
    h.check_in(b1, "BK-9")  # already checking in
    h.check_in(b2, "BK-1")  # the same participant at another booth
    assert len(h.resolving) == 1  # only the first reaches the records
    codes = [e.code for e in h.errors]
    assert codes == [ErrorCode.ILLEGAL_TRANSITION, ErrorCode.CLAIM_REFUSED]
    h.resolve(0)
    assert h.booth_mirrors["b1"].state is S.QUEUED and h.booth_mirrors["b2"].state is S.IDLE


def test_offered_cso_may_not_signal_or_focus(h: Harness) -> None:
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    h.check_in(b, "BK-1")
    h.resolve(0)
    sid = h.offer_of("siti")
    h.send(c, Offer(session_id=sid, sdp=SDP.format("AA")))
    h.send(c, FocusBooth(session_id=sid))
    assert [e.code for e in h.errors] == [ErrorCode.ILLEGAL_TRANSITION] * 2


def test_fingerprints_fixed_by_the_first_answer(h: Harness) -> None:
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    sid = _serve(h, b, c)
    h.send(c, Offer(session_id=sid, sdp=SDP.format("C1")))
    h.send(b, Answer(session_id=sid, sdp=SDP.format("B1")))
    h.send(b, Answer(session_id=sid, sdp=SDP.format("B2")))  # a renegotiation
    live = h.live[sid]
    assert live.booth_fingerprints == ("sha-256 B1",) and live.cso_fingerprints == ("sha-256 C1",)
    added = [a for a in h.audits if a.action == "session.fingerprints_added"]
    assert [(a.actor, a.fingerprints) for a in added] == [("b1", ("sha-256 B2",))]


def test_lost_booth_past_grace_frees_the_cso(h: Harness) -> None:
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    sid = _serve(h, b, c)
    h.close(b)
    h.advance(CONFIG.grace_period + 0.1)
    assert "b1" not in h.core.booths and sid not in h.live
    assert sid not in h.cso_mirrors["siti"].sessions
    h.check()


# --- the whole: random interleavings --------------------------------------------------------

BOOTHS = [booth(f"b{i}") for i in range(4)]
BOSS = Principal("boss", AccountRole.SUPERVISOR, "Boss", "jkt01", frozenset({"*"}))
CSOS = [cso("c0", 2), cso("c1", 1)]
CODES = ["BK-1", "BK-2", "BK-3", "BK-4", "BK-5"]


class FloorWalk(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness()

    @initialize()
    def everyone_arrives(self) -> None:
        # Start from a busy floor, so the walk spends its steps on calls, not on setup.
        for peer in (*CSOS, *BOOTHS, BOSS):
            self.h.open(peer)
        for b, code in zip(BOOTHS, CODES, strict=False):
            self.h.check_in(b, code)
        while self.h.resolving:
            self.h.resolve(0)

    def _sid(self, data: st.DataObject, who: str) -> str:
        mine = sorted(
            s for s, r in self.h.core.sessions.items() if who in (r.live.cso_id, r.live.booth_id)
        )
        others = sorted(self.h.core.sessions)
        return data.draw(st.sampled_from([*mine, *others, "s-unknown"]))

    @rule(b=st.sampled_from(BOOTHS), resume=st.booleans())
    def booth_opens(self, b: Principal, resume: bool) -> None:
        self.h.open(b, resume=resume)

    @rule(b=st.sampled_from(BOOTHS))
    def booth_closes(self, b: Principal) -> None:
        self.h.close(b)

    @rule(c=st.sampled_from(CSOS), resume=st.booleans())
    def cso_opens(self, c: Principal, resume: bool) -> None:
        self.h.open(c, resume=resume)

    @rule(c=st.sampled_from(CSOS))
    def cso_closes(self, c: Principal) -> None:
        self.h.close(c)

    @rule(b=st.sampled_from(BOOTHS), code=st.sampled_from(CODES))
    def check_in(self, b: Principal, code: str) -> None:
        if b.subject in self.h.connected:
            self.h.check_in(b, code)

    @precondition(lambda self: bool(self.h.resolving))
    @rule(data=st.data(), refuse=st.booleans())
    def claim_answered(self, data: st.DataObject, refuse: bool) -> None:
        index = data.draw(st.integers(0, len(self.h.resolving) - 1))
        self.h.resolve(index, refuse=refuse)

    @rule(b=st.sampled_from(BOOTHS))
    def leave(self, b: Principal) -> None:
        if b.subject in self.h.connected:
            self.h.send(b, Leave())

    @rule(b=st.sampled_from(BOOTHS))
    def media_up(self, b: Principal) -> None:
        if b.subject in self.h.connected:
            self.h.media_up(b)

    @rule(
        c=st.sampled_from(CSOS),
        data=st.data(),
        kind=st.sampled_from(["accept", "decline", "end", "focus", "offer"]),
    )
    def cso_acts(self, c: Principal, data: st.DataObject, kind: str) -> None:
        if c.subject not in self.h.connected:
            return
        sid = self._sid(data, c.subject)
        message: Envelope = {
            "accept": lambda: Accept(session_id=sid),
            "decline": lambda: Decline(session_id=sid),
            "end": lambda: EndSession(session_id=sid),
            "focus": lambda: FocusBooth(session_id=sid),
            "offer": lambda: Offer(session_id=sid, sdp=SDP.format(c.subject)),
        }[kind]()
        self.h.send(c, message)

    # Productive moves, so deep states (calls with focus, drops mid-call) are reached often.
    @rule(c=st.sampled_from(CSOS), data=st.data(), take=st.booleans())
    def answer_an_offer(self, c: Principal, data: st.DataObject, take: bool) -> None:
        offers = sorted(s for s, r in self.h.core.sessions.items()
                        if r.live.cso_id == c.subject and r.live.state is S.RESERVED)  # fmt: skip
        if offers and c.subject in self.h.connected:
            sid = data.draw(st.sampled_from(offers))
            self.h.send(c, Accept(session_id=sid) if take else Decline(session_id=sid))

    @rule(c=st.sampled_from(CSOS))
    def accept_everything(self, c: Principal) -> None:
        for sid, r in sorted(self.h.core.sessions.items()):
            if r.live.cso_id == c.subject and r.live.state is S.RESERVED:
                self.h.send(c, Accept(session_id=sid)) if c.subject in self.h.connected else None

    @rule()
    def media_flows(self) -> None:
        for b in BOOTHS:
            if b.subject in self.h.connected:
                self.h.media_up(b)

    @rule(c=st.sampled_from(CSOS), data=st.data())
    def focus_a_call(self, c: Principal, data: st.DataObject) -> None:
        calls = sorted(s for s, r in self.h.core.sessions.items()
                       if r.live.cso_id == c.subject and r.live.state in IN_CALL)  # fmt: skip
        if calls and c.subject in self.h.connected:
            self.h.send(c, FocusBooth(session_id=data.draw(st.sampled_from(calls))))

    @rule(b=st.sampled_from(BOOTHS), code=st.sampled_from(CODES))
    def booth_arrives(self, b: Principal, code: str) -> None:
        """Open (if needed), check in and have the claim found, in one move."""
        if b.subject not in self.h.connected:
            self.h.open(b)
        self.h.check_in(b, code)
        if self.h.resolving:
            self.h.resolve(len(self.h.resolving) - 1)

    @rule(open_=st.booleans())
    def supervisor_socket(self, open_: bool) -> None:
        if open_:
            self.h.open(BOSS)
        else:
            self.h.close(BOSS)

    @rule(data=st.data(), kind=st.sampled_from(["monitor", "whisper", "end", "move", "close"]))
    def supervisor_acts(self, data: st.DataObject, kind: str) -> None:
        if BOSS.subject not in self.h.connected:
            return
        sid = self._sid(data, "-")
        if kind in ("monitor", "whisper"):
            message: Envelope = OpenLink(kind=kind, session_id=sid)
        elif kind == "end":
            message = EndSession(session_id=sid)
        elif kind == "move":
            message = MoveBooth(session_id=sid, to_cso_id=data.draw(st.sampled_from(CSOS)).subject)
        else:
            links = sorted(self.h.core.links)
            message = CloseLink(link_id=data.draw(st.sampled_from(links)) if links else "lk-none")
        self.h.send(BOSS, message)

    @rule(data=st.data(), kind=st.sampled_from(["monitor", "whisper", "move"]))
    def supervisor_picks_a_call(self, data: st.DataObject, kind: str) -> None:
        calls = sorted(s for s, r in self.h.core.sessions.items() if r.live.state in IN_CALL)
        if not calls or BOSS.subject not in self.h.connected:
            return
        sid = data.draw(st.sampled_from(calls))
        if kind == "move":
            to = data.draw(st.sampled_from(CSOS)).subject
            self.h.send(BOSS, MoveBooth(session_id=sid, to_cso_id=to))
        else:
            self.h.send(BOSS, OpenLink(kind=kind, session_id=sid))  # type: ignore[arg-type]

    @rule(c=st.sampled_from(CSOS), available=st.booleans())
    def supervisor_steers(self, c: Principal, available: bool) -> None:
        if BOSS.subject in self.h.connected:
            self.h.send(BOSS, SetCsoAvailability(cso_id=c.subject, available=available))

    @rule(c=st.sampled_from(CSOS))
    def unfocus(self, c: Principal) -> None:
        if c.subject in self.h.connected:
            self.h.send(c, FocusBooth(session_id=None))

    @rule(c=st.sampled_from(CSOS), available=st.booleans())
    def availability(self, c: Principal, available: bool) -> None:
        if c.subject in self.h.connected:
            self.h.send(c, SetAvailability(available=available))

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 4.0, 6.0, 11.0]))
    def time_passes(self, seconds: float) -> None:
        self.h.advance(seconds)

    @rule()
    def broadcast(self) -> None:
        self.h.handle(BroadcastDue())

    @rule()
    def snapshot(self) -> None:
        """The leader writes a snapshot; the applied log starts afresh."""
        self.h.snapshot = pickle.dumps(dump_core(self.h.core))
        self.h.applied = []

    @rule()
    def leader_changes(self) -> None:
        """Another process takes over: snapshot + replayed log must be the same floor, and
        the walk goes on with it (the invariants then hold the mirrors against it)."""
        old = self.h.core
        new = load_core(pickle.loads(self.h.snapshot), CONFIG)
        replay(new, self.h.applied)
        assert views.floor_view(new) == views.floor_view(old)
        assert {
            k: (r.state, r.session_id, r.connection, r.pending) for k, r in new.booths.items()
        } == {k: (r.state, r.session_id, r.connection, r.pending) for k, r in old.booths.items()}
        assert {k: r.live for k, r in new.sessions.items()} == {
            k: r.live for k, r in old.sessions.items()
        }
        assert new.next_deadline() == old.next_deadline()
        assert new.ids_handed_out == old.ids_handed_out
        self.h.core = new

    @invariant()
    def consistent(self) -> None:
        check_invariants(self.h)


FloorWalk.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFloorWalk = FloorWalk.TestCase


def test_capture_requests_and_statuses_travel_only_within_a_live_call(h: Harness) -> None:
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    h.check_in(b, "BK-1")
    h.resolve(0)
    offered = h.offer_of("siti")
    ask = RequestCapture(session_id=offered, capture_id="cap-1", kind="ktp")
    assert not [e for e in h.send(c, ask) if isinstance(e, Send) and e.to == booth_key("b1")]
    h.send(c, Accept(session_id=offered))
    sent = [e for e in h.send(c, ask) if isinstance(e, Send) and e.to == booth_key("b1")]
    assert [type(e.message) for e in sent] == [RequestCapture]
    h.send(c, RequestCapture(session_id=offered, capture_id="cap-2", kind="passport"))
    status = CaptureStatus(session_id=offered, capture_id="cap-1", kind="ktp", stage="done")
    to_cso = [e for e in h.send(b, status) if isinstance(e, Send) and e.to == cso_key("siti")]
    assert [type(e.message) for e in to_cso] == [CaptureStatus]
    assert [e.code for e in h.errors] == [ErrorCode.ILLEGAL_TRANSITION, ErrorCode.INVALID_MESSAGE]


def test_a_stored_document_is_pushed_to_the_serving_cso_only(h: Harness) -> None:
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    stored = DocumentStored("claim-BK-1", "d1", "ktp", "ab" * 32, 800, 500)
    assert h.handle(stored) == []  # nobody serves that claim yet
    sid = _serve(h, b, c)
    pushed = [e.message for e in h.handle(stored) if isinstance(e, Send)]
    assert len(pushed) == 1 and isinstance(pushed[0], DocumentAdded)
    assert pushed[0].session_id == sid and pushed[0].document_id == "d1"


def test_a_queued_booth_resuming_hears_its_place_in_the_welcome(h: Harness) -> None:
    b1, b2 = booth("b1"), booth("b2")
    h.open(b1), h.open(b2)
    h.check_in(b1, "BK-1"), h.resolve(0)
    h.check_in(b2, "BK-2"), h.resolve(0)
    h.close(b2)
    conn = f"c{next(h.conns)}"
    h.connected["b2"] = conn
    effects = h.handle(PeerOpened(b2, conn, h.tokens["b2"], "t-x"))
    welcome = next(e.message for e in effects if isinstance(e, Send) and e.to == booth_key("b2"))
    assert isinstance(welcome, Welcome) and welcome.booth is not None
    assert welcome.booth.state is S.QUEUED and welcome.booth.position == 1
