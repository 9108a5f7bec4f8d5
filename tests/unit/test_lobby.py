"""The lobby (front of house), pure: its transition table, scenarios of a branch's day, and
a hypothesis RuleBasedStateMachine over tickets, booths and time through the real floor
core (server/floor/core.py + front.py + lobby.py).

What must hold (issue 24):
- every ticket ends served, no-show or cancelled (once, and for good);
- no booth is called for two tickets, and a called booth is free (idle, connected);
- no ticket waits behind a later ticket of its category except by a stated rule (recycled
  behind N tickets; not called again at once to the booth it just missed);
- what each booth was told (`ticket_called`, `ticket_withdrawn`, its welcome) is what the
  floor holds; every step is recorded once, and snapshot + replay gives the same lobby.
"""

from __future__ import annotations

import itertools
import pickle

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from server.floor import views
from server.floor.core import FloorConfig, FloorCore
from server.floor.effects import Effect, Publish, ResolveTicket, Send, SetTimer, TicketEvent
from server.floor.events import (
    ClaimResolved,
    Event,
    Now,
    PeerClosed,
    PeerOpened,
    Received,
    TicketClaimRefused,
    TicketClaimResolved,
    TimerFired,
)
from server.floor.lobby import (
    ENDS,
    TRANSITIONS,
    IllegalTicketStep,
    LobbyConfig,
    TicketState,
    TicketStep,
    choose_category,
    next_state,
    normalise_number,
)
from server.floor.snapshot import SeededIds, dump_core, load_core, replay
from server.principal import AccountRole, Principal
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Accept,
    Ack,
    BookingRef,
    BoothAssigned,
    BoothOffered,
    CheckIn,
    ClaimSummary,
    ClaimType,
    DisplayCall,
    EndSession,
    Envelope,
    Error,
    IssueTicket,
    Leave,
    TicketAction,
    TicketCalled,
    TicketIssued,
    TicketRef,
    TicketWithdrawn,
    WalkInRef,
    Welcome,
)
from signaling.session import SessionState

S = SessionState
LOBBY = LobbyConfig(call_timeout=30.0, max_recalls=1, recycle_behind=2, max_recycles=1)
CONFIG = FloorConfig(reservation_timeout=5.0, grace_period=10.0, lobby=LOBBY)
DESK = Principal("desk", AccountRole.SUPERVISOR, "Desk", "jkt01", frozenset({"jkt01", "jkt02"}))
OFFICER = Principal("siti", AccountRole.CSO, "Siti", "jkt01", frozenset({"*"}), capacity=6)
DAY = 1_798_000_000.0  # a weekday morning (unix time)


def booth(name: str, branch: str = "jkt01") -> Principal:
    return Principal(name, AccountRole.BOOTH, f"Bilik {name[-1]}", branch)


def walk_in(i: int) -> WalkInRef:
    return WalkInRef(nik=f"31710115019{i:05d}", kpj="12345678901", claim_type=ClaimType.RETIREMENT)


# --- the table --------------------------------------------------------------------------


def test_the_table_allows_exactly_its_steps_and_ends_are_final() -> None:
    for state in TicketState:
        for step in TicketStep:
            if (state, step) in TRANSITIONS:
                assert next_state(state, step) is TRANSITIONS[(state, step)]
            else:
                with pytest.raises(IllegalTicketStep):
                    next_state(state, step)
    assert not [k for k in TRANSITIONS if k[0] in ENDS]  # nothing leaves an end
    reachable = {TicketState.WAITING}
    for _ in range(3):
        reachable |= {TRANSITIONS[k] for k in TRANSITIONS if k[0] in reachable}
    assert reachable == set(TicketState)


def test_numbers_are_read_as_typed() -> None:
    assert normalise_number("b34") == "B-034"
    assert normalise_number(" B-034 ") == "B-034" == normalise_number("B 0034")
    assert normalise_number("34") is None and normalise_number("BB-1") is None


def test_appointments_check_in_window() -> None:
    at = DAY + 3600
    pick = lambda now: choose_category(LOBBY, priority=False, booking=True,  # noqa: E731
                                       appointment=at, now=now)  # fmt: skip
    with pytest.raises(ProtocolError) as early:
        pick(at - LOBBY.early_window - 60)
    assert early.value.code is ErrorCode.TOO_EARLY and "come back" in early.value.message
    assert pick(at - LOBBY.early_window) == "A" and pick(at + LOBBY.late_window) == "A"
    assert pick(at + LOBBY.late_window + 1) == "B"  # too late: served as a walk-in
    assert choose_category(LOBBY, priority=True, booking=True, appointment=at, now=at) == "P"
    assert choose_category(LOBBY, priority=False, booking=False, appointment=None, now=at) == "B"


# --- a harness: the runtime's job, by hand ------------------------------------------------


class Front:
    def __init__(self) -> None:
        self.core = FloorCore(CONFIG, new_id=SeededIds("front"))
        self.snapshot = pickle.dumps(dump_core(self.core))
        self.applied: list[tuple[Event, Now]] = []
        self.mono, self.wall = 1000.0, DAY
        self.conns = itertools.count()
        self.connected: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.timer_at: float | None = None
        self.asked: list[ResolveTicket] = []
        self.records: list[TicketEvent] = []
        self.told: dict[str, str | None] = {}  # booth -> the ticket it was told to expect
        self.desk: list[Envelope] = []
        self.calls: list[DisplayCall] = []
        self.to_officer: list[Envelope] = []
        self.effects: list[Effect] = []  # of the last event
        self.claims = itertools.count(1)

    def handle(self, event: Event) -> list[Effect]:
        now = Now(self.mono, self.wall)
        self.applied.append((event, now))
        effects = self.effects = self.core.handle(event, now)
        for e in effects:
            match e:
                case Send():
                    assert e.to.subject in self.connected, f"sent to offline {e.to}"
                    self._deliver(e.to.subject, e.message)
                case Publish() if isinstance(e.message, DisplayCall):
                    self.calls.append(e.message)
                case SetTimer():
                    self.timer_at = e.at
                case ResolveTicket():
                    self.asked.append(e)
                case TicketEvent():
                    self.records.append(e)
        return effects

    def _deliver(self, peer: str, message: Envelope) -> None:
        match message:
            case Welcome() if message.booth is not None:
                self.tokens[peer] = message.resume_token
                ticket = message.booth.ticket
                self.told[peer] = ticket.number if ticket else None
            case Welcome():
                self.tokens[peer] = message.resume_token
            case TicketCalled():
                self.told[peer] = message.ticket.number
            case TicketWithdrawn():
                assert self.told.get(peer) == message.number, (peer, message)
                self.told[peer] = None
            case TicketIssued() | Error() if peer == DESK.subject:
                self.desk.append(message)
            case BoothOffered() | BoothAssigned():
                self.to_officer.append(message)
            case Ack() if peer in self.told and self.told[peer] is not None:
                rec = self.core.booths.get(peer)
                if rec is not None and rec.ticket_id is not None and rec.state is not S.IDLE:
                    self.told[peer] = None  # its ticket's check-in was taken

    def open(self, who: Principal, *, resume: bool = True) -> None:
        old = self.connected.get(who.subject)
        conn = f"c{next(self.conns)}"
        self.connected[who.subject] = conn
        token = self.tokens.get(who.subject) if resume else None
        self.handle(PeerOpened(who, conn, token, f"t{conn}"))
        if old is not None:
            self.handle(PeerClosed(who, old))

    def close(self, who: Principal) -> None:
        conn = self.connected.pop(who.subject, None)
        self.told.pop(who.subject, None)
        if conn is not None:
            self.handle(PeerClosed(who, conn))

    def send(self, who: Principal, message: Envelope) -> list[Effect]:
        return self.handle(Received(who, self.connected[who.subject], message))

    def issue(
        self, i: int, *, priority: bool = False, booking: bool = False,
        branch: str | None = None, appointment: float | None = None,
    ) -> TicketIssued | Error:  # fmt: skip
        claim = BookingRef(booking_code=f"BK-{i}") if booking else walk_in(i)
        ask = IssueTicket(claim=claim, priority=priority, branch=branch)
        self.send(DESK, ask)
        if not self.asked:
            return self.desk[-1]  # type: ignore[return-value]
        self.answer(self.asked.pop(), appointment=appointment)
        return self.desk[-1]  # type: ignore[return-value]

    def answer(self, asked: ResolveTicket, *, appointment: float | None = None,
               refuse: bool = False) -> None:  # fmt: skip
        ask = asked.request
        if refuse:
            self.handle(TicketClaimRefused(asked.principal, asked.branch, ask,
                                           ErrorCode.CLAIM_REFUSED, "bad NIK"))  # fmt: skip
            return
        claim = ask.claim
        summary = ClaimSummary(kind=claim.kind, claim_type=ClaimType.RETIREMENT,
                               nik_masked="************0001")  # fmt: skip
        claim_id = f"claim-{claim.booking_code if isinstance(claim, BookingRef) else claim.nik}"
        self.handle(TicketClaimResolved(asked.principal, asked.branch, ask, claim_id, summary,
                                        isinstance(claim, BookingRef), appointment))  # fmt: skip

    def confirm(self, who: Principal, number: str | None = None) -> list[Effect]:
        typed = number or self.told[who.subject]
        assert typed is not None
        return self.send(who, CheckIn(claim=TicketRef(number=typed)))

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds
        if self.timer_at is not None and self.mono >= self.timer_at:
            self.handle(TimerFired())

    def kinds(self, number: str) -> list[str]:
        return [r.kind for r in self.records if r.number == number]


@pytest.fixture
def f() -> Front:
    return Front()


def _number(answer: TicketIssued | Error) -> str:
    assert isinstance(answer, TicketIssued), answer
    return answer.ticket.number


def test_a_ticket_is_called_confirmed_and_its_claim_reaches_the_officer(f: Front) -> None:
    f.open(DESK), f.open(OFFICER)
    number = _number(f.issue(1))
    assert number == "B-001" and f.kinds(number) == ["arrived"]
    f.open(booth("b1"))
    assert f.told["b1"] == "B-001"
    call = f.calls[-1]
    assert call.call.booth_label == "Bilik 1"
    assert call.call.spoken == "Nomor antrean B satu, silakan ke bilik satu"
    assert call.audio_url.startswith("/api/display/speech.wav?")
    # The wrong number is refused with what to do; the right one checks the claim in.
    f.confirm(booth("b1"), "B-002")
    assert any(isinstance(e, Send) and isinstance(e.message, Error)
               and e.message.code is ErrorCode.TICKET_MISMATCH for e in f.effects)  # fmt: skip
    f.confirm(booth("b1"), "b1")
    assert f.core.booths["b1"].state is S.RESERVED
    offered = next(m for m in f.to_officer if isinstance(m, BoothOffered))
    assert offered.claim.claim_id == "claim-3171011501900001"  # typed once, at the desk
    assert offered.claim.nik_masked == "************0001"
    f.send(OFFICER, Accept(session_id=offered.session_id))
    f.send(OFFICER, EndSession(session_id=offered.session_id))
    kinds = [r.kind for r in f.records]
    assert kinds == ["arrived", "called", "served", "checked_in", "assigned",
                     "session_ended", "visit_ended"]  # fmt: skip
    visit = {r.visit_id for r in f.records}
    assert len(visit) == 1  # one visit, from the waiting room to the outcome
    assert [r.cso_id for r in f.records if r.kind == "assigned"] == ["siti"]
    assert len({r.effect_id for r in f.records}) == len(f.records)


def test_a_no_show_is_recalled_recycled_then_passed_over_while_the_booth_moves_on(
    f: Front,
) -> None:
    f.open(DESK)
    absent = _number(f.issue(1))
    others = [_number(f.issue(i)) for i in (2, 3, 4)]
    f.open(booth("b1"))
    assert f.told["b1"] == absent
    f.advance(LOBBY.call_timeout + 0.1)  # missed: the booth goes to the next ticket at once
    assert f.kinds(absent)[-1] == "missed" and f.told["b1"] == others[0]
    f.confirm(booth("b1"))
    f.send(booth("b1"), Leave())  # that visit is over: the missed ticket is recalled first
    assert f.told["b1"] == absent and f.calls[-1].call.recall
    assert f.calls[-1].call.spoken.startswith("Panggilan ulang.")
    f.advance(LOBBY.call_timeout + 0.1)  # missed again: recycled behind 2 tickets
    assert f.kinds(absent)[-1] == "recycled" and f.told["b1"] == others[1]
    line = f.core.lobby.lines[("jkt01", "B")]
    assert [f.core.lobby.tickets[t].number for t in line] == [others[2], absent]
    for _ in range(2):
        f.confirm(booth("b1"))
        f.send(booth("b1"), Leave())
    assert f.told["b1"] == absent
    f.advance(LOBBY.call_timeout + 0.1)  # and the last time: a no-show, the booth is free
    assert f.kinds(absent) == ["arrived", "called", "missed", "called", "recycled", "called",
                               "no_show"]  # fmt: skip
    assert f.told["b1"] is None and f.core.is_free(f.core.booths["b1"])
    assert not f.core.lobby.tickets


def test_priority_goes_first_without_starving_walk_ins(f: Front) -> None:
    f.open(DESK)
    b1 = _number(f.issue(1))
    f.advance(LOBBY.categories[0].boost + 60)  # B-001 has waited longer than P's boost
    p1 = _number(f.issue(2, priority=True))
    b2 = _number(f.issue(3))
    p2 = _number(f.issue(4, priority=True))
    f.open(booth("b1")), f.open(booth("b2")), f.open(booth("b3"))
    assert [f.told[b] for b in ("b1", "b2", "b3")] == [b1, p1, p2]
    assert [t.number for t in f.core.lobby.tickets.values() if t.state == "waiting"] == [b2]


def test_the_desk_recalls_transfers_and_cancels(f: Front) -> None:
    f.open(DESK)
    first, second = _number(f.issue(1)), _number(f.issue(2))
    f.open(booth("b1"))
    ticket = f.core.lobby.called_to("b1")
    assert ticket is not None and ticket.number == first
    f.send(DESK, TicketAction(ticket_id=ticket.ticket_id, action="recall"))
    assert f.calls[-1].call.number == first and f.calls[-1].call.recall
    f.send(DESK, TicketAction(ticket_id=ticket.ticket_id, action="transfer", category="P",
                              branch="jkt02"))  # fmt: skip
    assert f.told["b1"] == second  # the booth moved on; the ticket waits in jkt02 now
    assert ticket.branch == "jkt02" and ticket.state == "waiting"
    f.send(DESK, TicketAction(ticket_id=ticket.ticket_id, action="cancel"))
    assert f.kinds(first)[-1] == "cancelled" and ticket.ticket_id not in f.core.lobby.tickets
    outsider = Principal("x", AccountRole.SUPERVISOR, "X", "bdg01", frozenset({"bdg01"}))
    f.open(outsider)
    f.send(outsider, IssueTicket(claim=walk_in(9), branch="jkt01"))
    errors = [e.message for e in f.effects if isinstance(e, Send)]
    assert isinstance(errors[0], Error) and errors[0].code is ErrorCode.FORBIDDEN_FOR_ROLE


def test_tickets_refused_at_the_desk_change_nothing(f: Front) -> None:
    f.open(DESK)
    early = f.issue(1, booking=True, appointment=DAY + 3 * 3600)
    assert isinstance(early, Error) and early.code is ErrorCode.TOO_EARLY
    f.send(DESK, IssueTicket(claim=walk_in(2)))
    f.answer(f.asked.pop(), refuse=True)
    assert isinstance(f.desk[-1], Error) and f.desk[-1].code is ErrorCode.CLAIM_REFUSED
    twice = [f.issue(3), f.issue(3)]
    assert isinstance(twice[0], TicketIssued) and isinstance(twice[1], Error)
    assert len(f.core.lobby.tickets) == 1 and not f.core.lobby.pending
    assert [r.kind for r in f.records] == ["arrived"]


def test_a_booth_called_for_a_ticket_takes_no_one_else_and_hands_it_back_if_it_goes(
    f: Front,
) -> None:
    f.open(DESK)
    number = _number(f.issue(1))
    f.open(booth("b1"))
    f.send(booth("b1"), CheckIn(claim=BookingRef(booking_code="BK-9")))
    refused = [e.message for e in f.effects if isinstance(e, Send)]
    assert isinstance(refused[0], Error) and refused[0].code is ErrorCode.CONFLICT
    f.open(booth("b2"))
    f.close(booth("b1"))  # the kiosk went away: the ticket goes to the other booth, no fault
    assert f.told["b2"] == number and f.kinds(number) == ["arrived", "called", "released",
                                                          "called"]  # fmt: skip


# --- the whole: random interleavings --------------------------------------------------------

BOOTHS = [booth("b1"), booth("b2"), booth("c1", "jkt02")]


class LobbyWalk(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.f = Front()
        self.issued = 0
        self.arrived: dict[str, float] = {}  # number@branch -> arrival

    @initialize()
    def open_the_branch(self) -> None:
        for who in (DESK, OFFICER, *BOOTHS):
            self.f.open(who)

    @rule(priority=st.booleans(), booking=st.booleans(), branch=st.sampled_from(["jkt01", "jkt02"]))
    def arrive(self, priority: bool, booking: bool, branch: str) -> None:
        self.issued += 1
        self.f.issue(self.issued, priority=priority, booking=booking, branch=branch)

    @rule(b=st.sampled_from(BOOTHS), right=st.booleans())
    def confirm(self, b: Principal, right: bool) -> None:
        told = self.f.told.get(b.subject)
        if b.subject in self.f.connected and told is not None:
            self.f.confirm(b, told if right else "Z-999")

    @rule()
    def everyone_called_comes(self) -> None:
        for b in BOOTHS:
            if b.subject in self.f.connected and self.f.told.get(b.subject):
                self.f.confirm(b)

    @rule(b=st.sampled_from(BOOTHS))
    def visit_ends(self, b: Principal) -> None:
        if b.subject in self.f.connected:
            self.f.send(b, Leave())

    @rule(b=st.sampled_from(BOOTHS), resume=st.booleans())
    def booth_reconnects(self, b: Principal, resume: bool) -> None:
        self.f.open(b, resume=resume)

    @rule(b=st.sampled_from(BOOTHS))
    def booth_goes(self, b: Principal) -> None:
        self.f.close(b)

    @rule()
    def officer_takes_everything(self) -> None:
        for sid, r in sorted(self.f.core.sessions.items()):
            if r.live.state is S.RESERVED:
                self.f.send(OFFICER, Accept(session_id=sid))

    @rule(data=st.data(), action=st.sampled_from(["recall", "transfer", "cancel"]))
    def desk_acts(self, data: st.DataObject, action: str) -> None:
        ids = sorted(self.f.core.lobby.tickets)
        if not ids:
            return
        ticket_id = data.draw(st.sampled_from(ids))
        category = data.draw(st.sampled_from(["P", "A", "B"]))
        branch = data.draw(st.sampled_from(["jkt01", "jkt02"]))
        self.f.send(DESK, TicketAction(ticket_id=ticket_id, action=action,  # type: ignore[arg-type]
                                       category=category, branch=branch))  # fmt: skip

    @rule(seconds=st.sampled_from([1.0, 10.0, LOBBY.call_timeout + 0.1, 120.0]))
    def time_passes(self, seconds: float) -> None:
        self.f.advance(seconds)

    @precondition(lambda self: bool(self.f.applied))
    @rule()
    def leader_changes(self) -> None:
        old = self.f.core
        new = load_core(pickle.loads(self.f.snapshot), CONFIG)
        replay(new, self.f.applied)
        assert views.lobby_view(new) == views.lobby_view(old)
        assert new.lobby.lines == old.lobby.lines and new.lobby.called == old.lobby.called
        self.f.core = new

    @invariant()
    def holds(self) -> None:
        check_lobby(self.f)

    def teardown(self) -> None:
        """Closing time: nobody else comes; every ticket still in the lobby must end."""
        f = self.f
        for _ in range(4 * (LOBBY.max_recalls + LOBBY.max_recycles + 2) * 10):
            if not f.core.lobby.tickets:
                break
            for b in BOOTHS:
                if b.subject not in f.connected:
                    f.open(b)
                elif f.core.booths[b.subject].state is not S.IDLE:
                    f.send(b, Leave())
            f.advance(LOBBY.call_timeout + 0.1)
            check_lobby(f)
        assert not f.core.lobby.tickets, "a ticket never ended"
        issued = {r.ticket_id for r in f.records if r.kind == "arrived"}
        for ticket_id in issued:
            ends = [r.kind for r in f.records if r.ticket_id == ticket_id
                    and r.kind in ("served", "no_show", "cancelled")]  # fmt: skip
            assert len(ends) == 1, (ticket_id, ends)


def check_lobby(f: Front) -> None:
    core, lobby = f.core, f.core.lobby
    # No booth is called for two tickets; a called ticket's booth is free but for it.
    called = [t for t in lobby.tickets.values() if t.state is TicketState.CALLED]
    assert len({t.booth_id for t in called}) == len(called)
    assert lobby.called == {t.booth_id: t.ticket_id for t in called}
    for t in called:
        rec = core.booths[t.booth_id or ""]
        assert rec.connected and rec.state is S.IDLE and rec.pending is None
        assert t.deadline is not None and t.branch == rec.principal.branch
    # A free booth is not left idle while its branch has tickets waiting.
    for rec in core.booths.values():
        if core.is_free(rec):
            assert not lobby.has_waiting(rec.principal.branch), rec.booth_id
    # Lines hold exactly the waiting tickets, by arrival but for recycled ones.
    in_lines = [tid for ids in lobby.lines.values() for tid in ids]
    assert sorted(in_lines) == sorted(t.ticket_id for t in lobby.tickets.values()
                                      if t.state is TicketState.WAITING)  # fmt: skip
    for (branch, category), ids in lobby.lines.items():
        tickets = [lobby.tickets[tid] for tid in ids]
        assert all((t.branch, t.category) == (branch, category) for t in tickets)
        for i, ahead in enumerate(tickets):
            for later in tickets[i + 1 :]:
                if ahead.arrival > later.arrival:
                    assert later.recycled, f"{later.number} waits behind later {ahead.number}"
    # A ticket called now took no earlier ticket's turn but by the stated rules.
    missed_now = {r.ticket_id for r in f.records[-40:] if r.kind in ("missed", "recycled")}
    for e in f.effects:
        if isinstance(e, TicketEvent) and e.kind == "called" and e.ticket_id in lobby.tickets:
            t = lobby.tickets[e.ticket_id]
            for other in lobby.tickets.values():
                same_line = (other.branch, other.category) == (t.branch, t.category)
                if same_line and other.state is TicketState.WAITING and other.arrival < t.arrival:
                    assert other.recycled or other.ticket_id in missed_now
    # What each connected booth was told is what the floor holds.
    for peer, told in f.told.items():
        if peer in core.booths and peer in f.connected:
            expected = lobby.called_to(peer)
            assert told == (expected.number if expected else None), (peer, told, expected)
    # Recorded once each; a ticket's ends are final.
    ids = [r.effect_id for r in f.records]
    assert len(ids) == len(set(ids))
    ended = {r.ticket_id for r in f.records if r.kind in ("served", "no_show", "cancelled")}
    assert not ended & set(lobby.tickets)


LobbyWalk.TestCase.settings = settings(
    max_examples=120, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
TestLobbyWalk = LobbyWalk.TestCase


def test_claim_resolved_path_is_unchanged_for_booths_without_tickets(f: Front) -> None:
    """A branch that issues no tickets: a booking code at a free booth still works."""
    f.open(booth("b1"))
    ask = CheckIn(claim=BookingRef(booking_code="BK-1"))
    f.send(booth("b1"), ask)
    f.handle(ClaimResolved("b1", ask, "claim-1"))
    assert f.core.booths["b1"].state is S.QUEUED
    assert [r.kind for r in f.records] == ["checked_in"]
