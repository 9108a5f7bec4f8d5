"""The lobby: tickets from the waiting room to a booth. A part of the floor core.

The branch's front of house is the first of two stages: a participant takes a ticket
(booking code or walk-in data, typed once at the desk), waits in the waiting room, is
called to a free booth on the public display and by voice, and confirms the ticket number
at the booth; from there the floor stage (booths.py, the dispatcher) brings an officer.

Each ticket follows a transition table (as h11 and `signaling.session` do), so the
lifecycle can be printed, read and tested exhaustively (tests/unit/test_lobby.py):

    waiting -call-> called -confirm-> served            (the participant is at the booth)
    called -miss-> waiting                               (not confirmed in time: recalled)
    called -recycle-> waiting                            (recalls used up: behind N tickets)
    called -no_show-> no_show                            (recycles used up too)
    called -recall-> called                              (staff: announce it again)
    called -release-> waiting                            (its booth went away: no fault)
    waiting|called -transfer-> waiting                   (staff: another service or branch)
    waiting|called -cancel-> cancelled                   (staff)

`served`, `no_show` and `cancelled` are the ends; a ticket that reaches one leaves the
lobby's state (its story is in the recorded ticket events).

The order, with every exception a stated rule:
- Each (branch, category) has a line ordered by arrival. A ticket that comes back to its
  line (missed, released, transferred) goes back to its place by arrival time, so a
  participant who was not at the booth is called again first: that is the recall.
- The one exception: a recycled ticket goes behind `recycle_behind` tickets of its line.
- Across a branch's lines, a free booth takes the line head with the highest wait plus
  its category's boost (P before A before B by default, without starving B: a B ticket
  that has waited longer than an A ticket's boost is called first). Qmatic calls this
  weighted fair queuing.

Nothing here knows booths or officers: the coordinator (core.py) offers a free booth as
(branch, booth id, booth label) and carries out what the lobby returns. Every state change
of a ticket is recorded once (`Step.record`: a `TicketEvent`, written through the floor's
outbox into `ticket_events`), which is what reports are computed from.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from server.domain.speech import spoken_call
from server.floor.step import Step
from server.principal import Principal
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import ClaimSummary, DisplayCallView, IssueTicket, Language, TicketView


class TicketState(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    SERVED = "served"  # confirmed at its booth: handed to the floor stage
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class TicketStep(StrEnum):
    CALL = "call"
    CONFIRM = "confirm"
    MISS = "miss"
    RECYCLE = "recycle"
    NO_SHOW = "no_show"
    RECALL = "recall"
    RELEASE = "release"
    TRANSFER = "transfer"
    CANCEL = "cancel"


T, K = TicketState, TicketStep
ENDS: frozenset[TicketState] = frozenset({T.SERVED, T.NO_SHOW, T.CANCELLED})
TRANSITIONS: dict[tuple[TicketState, TicketStep], TicketState] = {
    (T.WAITING, K.CALL): T.CALLED,
    (T.CALLED, K.CONFIRM): T.SERVED,
    (T.CALLED, K.MISS): T.WAITING,
    (T.CALLED, K.RECYCLE): T.WAITING,
    (T.CALLED, K.NO_SHOW): T.NO_SHOW,
    (T.CALLED, K.RECALL): T.CALLED,
    (T.CALLED, K.RELEASE): T.WAITING,
    (T.WAITING, K.TRANSFER): T.WAITING,
    (T.CALLED, K.TRANSFER): T.WAITING,
    (T.WAITING, K.CANCEL): T.CANCELLED,
    (T.CALLED, K.CANCEL): T.CANCELLED,
}
# The event each step is recorded as (`ticket_events.kind`).
RECORDED_AS: dict[TicketStep, str] = {
    K.CALL: "called",
    K.CONFIRM: "served",
    K.MISS: "missed",
    K.RECYCLE: "recycled",
    K.NO_SHOW: "no_show",
    K.RECALL: "recalled",
    K.RELEASE: "released",
    K.TRANSFER: "transferred",
    K.CANCEL: "cancelled",
}


class IllegalTicketStep(Exception):
    def __init__(self, state: TicketState, step: TicketStep) -> None:
        super().__init__(f"ticket step {step} is not allowed in state {state}")
        self.state, self.step = state, step


def next_state(state: TicketState, step: TicketStep) -> TicketState:
    try:
        return TRANSITIONS[(state, step)]
    except KeyError:
        raise IllegalTicketStep(state, step) from None


@dataclass(frozen=True, slots=True)
class Category:
    code: str  # one capital letter: the ticket number's prefix, read aloud
    name: str  # what the desk and the display call it
    boost: float  # seconds added to its line head's wait when choosing the next ticket


DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category("P", "Prioritas", 1800.0),  # elderly, disabled, pregnant
    Category("A", "Janji temu", 900.0),  # an appointment, within its check-in window
    Category("B", "Tanpa janji", 0.0),  # walk-ins, and appointments come too late
)


@dataclass(frozen=True, slots=True)
class LobbyConfig:
    categories: tuple[Category, ...] = DEFAULT_CATEGORIES
    call_timeout: float = 90.0  # seconds a called ticket has to be confirmed at its booth
    max_recalls: int = 2  # missed calls that put it back first in line
    recycle_behind: int = 3  # then it waits behind this many tickets of its line ...
    max_recycles: int = 1  # ... this many times, then it is a no-show
    early_window: float = 1800.0  # an appointment's ticket: from 30 min before ...
    late_window: float = 900.0  # ... to 15 min after (later: served as a walk-in)
    utc_offset: float = 7 * 3600.0  # the branches' local time (WIB): ticket numbers per day
    max_waiting: int = 2000  # tickets waiting or called in one branch
    max_pending: int = 256  # ticket requests whose claim is being looked up
    calls_shown: int = 8  # the last calls a display lists
    visit_estimate: float = 600.0  # seconds a booth visit takes, until one was measured

    def category(self, code: str) -> Category | None:
        return next((c for c in self.categories if c.code == code), None)


LOBBY_DEFAULTS = LobbyConfig()


@dataclass
class Ticket:
    ticket_id: str
    number: str  # "B-034"
    branch: str
    category: str
    claim_id: str | None
    claim: ClaimSummary  # masked: what the desk and the officer see
    language: Language
    arrived_at: float  # unix time
    issued_by: str
    state: TicketState = T.WAITING
    booth_id: str | None = None  # while called
    booth_label: str | None = None
    deadline: float | None = None  # floor clock, while called
    calls: int = 0
    misses: int = 0
    recycles: int = 0
    recycled: bool = False  # placed by the recycle rule (may wait behind later tickets)
    seq: int = 0  # issue order (arrival ties: same second)

    @property
    def arrival(self) -> tuple[float, int]:
        """The order of arrival (ties broken by issue order)."""
        return (self.arrived_at, self.seq)

    @property
    def priority(self) -> int:
        """The dispatcher's priority once at the booth (P tickets are served first)."""
        return 1 if self.category == "P" else 0


@dataclass(frozen=True, slots=True)
class PendingTicket:
    """A ticket asked for at the desk whose claim is being looked up."""

    request_id: str
    issuer: Principal  # the desk's (the records audit who asked)
    branch: str
    priority: bool
    language: Language
    ordered_at: float  # floor clock: dropped if never answered
    request: IssueTicket  # until its claim is found (it may carry a walk-in's NIK)


@dataclass(frozen=True, slots=True)
class TimedOut:
    ticket: Ticket
    booth_id: str
    outcome: TicketStep  # MISS, RECYCLE or NO_SHOW


NUMBER = re.compile(r"^([A-Z])[-\s]?0*(\d{1,4})$")


def normalise_number(text: str) -> str | None:
    """ "b34", "B 034", "B-034" -> "B-034"; None if it cannot be a ticket number."""
    found = NUMBER.match(text.strip().upper())
    if found is None:
        return None
    return f"{found.group(1)}-{int(found.group(2)):03d}"


def local_day(wall: float, utc_offset: float) -> str:
    return (datetime.fromtimestamp(wall, UTC) + timedelta(seconds=utc_offset)).date().isoformat()


def choose_category(
    cfg: LobbyConfig, *, priority: bool, booking: bool, appointment: float | None, now: float
) -> str:
    """P for priority, A for an appointment within its check-in window, B otherwise.
    Raises `too_early` (with when to come back) before the window opens."""
    if priority and cfg.category("P"):
        return "P"
    if booking and cfg.category("A"):
        if appointment is None:
            return "A"
        if now < appointment - cfg.early_window:
            opens = appointment - cfg.early_window
            at = (datetime.fromtimestamp(opens, UTC) + timedelta(seconds=cfg.utc_offset)).strftime(
                "%H:%M"
            )
            raise ProtocolError(
                ErrorCode.TOO_EARLY,
                f"the appointment's check-in opens at {at}; please come back then",
            )
        if now <= appointment + cfg.late_window:
            return "A"
    return "B" if cfg.category("B") else cfg.categories[-1].code


class Lobby:
    def __init__(self) -> None:
        self.tickets: dict[str, Ticket] = {}  # waiting or called; ends leave
        self.lines: dict[tuple[str, str], list[str]] = {}  # (branch, category) -> ids
        self.called: dict[str, str] = {}  # booth id -> the ticket called to it
        self.pending: dict[str, PendingTicket] = {}  # request id -> asked at the desk
        self.day = ""
        self.counters: dict[tuple[str, str], int] = {}  # (branch, category) -> last number
        self.calls: dict[str, deque[DisplayCallView]] = {}  # branch -> the last calls
        self.visit_s: dict[str, float] = {}  # branch -> booth visit length (moving average)
        self.changed: set[str] = set()  # branches whose display needs a fresh state
        self.issued = 0  # tickets issued since the floor started (their `seq`)

    # --- reading --------------------------------------------------------------------------

    def waiting_in(self, branch: str) -> int:
        return sum(len(ids) for (b, _), ids in self.lines.items() if b == branch)

    def has_waiting(self, branch: str) -> bool:
        return any(ids for (b, _), ids in self.lines.items() if b == branch)

    def branches(self) -> set[str]:
        return {t.branch for t in self.tickets.values()} | set(self.calls)

    def of_branch(self, branch: str) -> Iterator[Ticket]:
        return (t for t in self.tickets.values() if t.branch == branch)

    def called_to(self, booth_id: str) -> Ticket | None:
        ticket_id = self.called.get(booth_id)
        return self.tickets.get(ticket_id) if ticket_id else None

    def next_deadline(self) -> float | None:
        deadlines = (t.deadline for t in self.tickets.values() if t.deadline is not None)
        return min(deadlines, default=None)

    def overdue(self, now: float) -> list[Ticket]:
        return sorted(
            (t for t in self.tickets.values() if t.deadline is not None and t.deadline <= now),
            key=lambda t: (t.deadline or 0.0, t.ticket_id),
        )

    def position(self, ticket: Ticket) -> int:
        """Tickets of its branch ahead of it, roughly: its place in its own line."""
        line = self.lines.get((ticket.branch, ticket.category), [])
        return line.index(ticket.ticket_id) if ticket.ticket_id in line else 0

    def view(self, ticket: Ticket, now: float) -> TicketView:
        return TicketView(
            ticket_id=ticket.ticket_id,
            number=ticket.number,
            branch=ticket.branch,
            category=ticket.category,
            state=str(ticket.state),  # type: ignore[arg-type]
            arrived_at=ticket.arrived_at,
            waited_s=max(0.0, now - ticket.arrived_at),
            booth_id=ticket.booth_id,
            booth_label=ticket.booth_label,
            calls=ticket.calls,
            misses=ticket.misses,
            recycles=ticket.recycles,
            claim=ticket.claim,
        )

    def estimate(self, branch: str, booths: int, cfg: LobbyConfig) -> float | None:
        """Seconds a new ticket waits for a booth: the tickets ahead, shared among the
        branch's booths, each taking a visit's length (measured, else the setting)."""
        if booths <= 0:
            return None
        visit = self.visit_s.get(branch, cfg.visit_estimate)
        return self.waiting_in(branch) / booths * visit

    def visit_took(self, branch: str, seconds: float) -> None:
        """A booth visit ended after `seconds`: the estimate follows (a moving average)."""
        if seconds <= 0:
            return
        old = self.visit_s.get(branch)
        self.visit_s[branch] = seconds if old is None else 0.8 * old + 0.2 * seconds

    # --- tickets in -----------------------------------------------------------------------

    def ask(self, request: PendingTicket, cfg: LobbyConfig) -> None:
        if len(self.pending) >= cfg.max_pending:
            raise ProtocolError(ErrorCode.RATE_LIMITED, "too many tickets being issued at once")
        if self.waiting_in(request.branch) >= cfg.max_waiting:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"branch {request.branch} already has {cfg.max_waiting} tickets waiting",
            )
        self.pending[request.request_id] = request

    def holder_of_claim(self, claim_id: str) -> Ticket | None:
        return next((t for t in self.tickets.values() if t.claim_id == claim_id), None)

    def issue(
        self,
        step: Step,
        request: PendingTicket,
        category: str,
        claim_id: str | None,
        claim: ClaimSummary,
        cfg: LobbyConfig,
    ) -> Ticket:
        now = step.now.wall
        day = local_day(now, cfg.utc_offset)
        if day != self.day:
            self.day, self.counters = day, {}
        key = (request.branch, category)
        self.counters[key] = self.counters.get(key, 0) + 1
        ticket = Ticket(
            ticket_id=f"tk{step.new_id()}",
            number=f"{category}-{self.counters[key]:03d}",
            branch=request.branch,
            category=category,
            claim_id=claim_id,
            claim=claim,
            language=request.language,
            arrived_at=now,
            issued_by=request.issuer.subject,
            seq=self.issued + 1,
        )
        self.issued += 1
        self.tickets[ticket.ticket_id] = ticket
        self.lines.setdefault(key, []).append(ticket.ticket_id)
        self.changed.add(ticket.branch)
        self._record(step, ticket, "arrived", actor=request.issuer.subject)
        return ticket

    # --- calling --------------------------------------------------------------------------

    def next_for(
        self, branch: str, now: float, cfg: LobbyConfig, *, skip: str | None = None
    ) -> Ticket | None:
        """The ticket a free booth of `branch` calls: the line head with the highest wait
        plus category boost (ties: earlier arrival, then number). `skip`: a ticket that
        just missed its call at this booth: the next one goes first, unless none waits."""
        best: tuple[float, float, int] | None = None
        chosen: Ticket | None = None
        for (b, code), ids in self.lines.items():
            if b != branch or not ids:
                continue
            heads = [tid for tid in ids[:2] if tid != skip]
            if not heads:
                continue
            head = self.tickets[heads[0]]
            category = cfg.category(code)
            boost = category.boost if category else 0.0
            key = (-(now - head.arrived_at + boost), head.arrived_at, head.seq)
            if best is None or key < best:
                best, chosen = key, head
        if chosen is None and skip is not None and skip in self.tickets:
            ticket = self.tickets[skip]
            return ticket if ticket.state is T.WAITING else None
        return chosen

    def call(
        self, step: Step, ticket: Ticket, booth_id: str, booth_label: str, cfg: LobbyConfig
    ) -> DisplayCallView:
        self._step(ticket, K.CALL)
        self._leave_line(ticket)
        ticket.booth_id, ticket.booth_label = booth_id, booth_label
        ticket.deadline = step.now.mono + cfg.call_timeout
        ticket.calls += 1
        self.called[booth_id] = ticket.ticket_id
        self._record(step, ticket, "called", detail=f"call {ticket.calls}")
        return self._announce(step, ticket, cfg)

    def recall(self, step: Step, ticket: Ticket, by: str, cfg: LobbyConfig) -> DisplayCallView:
        """Staff: call it again to the same booth, now, with a fresh deadline."""
        self._step(ticket, K.RECALL)
        ticket.deadline = step.now.mono + cfg.call_timeout
        ticket.calls += 1
        self._record(step, ticket, "recalled", actor=by, detail=f"call {ticket.calls}")
        return self._announce(step, ticket, cfg)

    def _announce(self, step: Step, ticket: Ticket, cfg: LobbyConfig) -> DisplayCallView:
        call = DisplayCallView(
            number=ticket.number,
            booth_id=ticket.booth_id or "",
            booth_label=ticket.booth_label or "",
            at=step.now.wall,
            recall=ticket.calls > 1,
            spoken=spoken_call(ticket.number, ticket.booth_label or "", recall=ticket.calls > 1),
        )
        shown = self.calls.setdefault(ticket.branch, deque(maxlen=cfg.calls_shown))
        shown.appendleft(call)
        self.changed.add(ticket.branch)
        return call

    def confirm(self, step: Step, ticket: Ticket) -> None:
        """The participant typed the ticket's number at its booth."""
        self._step(ticket, K.CONFIRM)
        self._record(step, ticket, "served", detail=f"after {ticket.calls} call(s)")
        self._unbook(ticket)
        self._end(ticket)

    def time_out(self, step: Step, ticket: Ticket, cfg: LobbyConfig) -> TimedOut:
        """Its call ran out unconfirmed: recalled first in line (up to `max_recalls`),
        then recycled behind `recycle_behind` tickets (up to `max_recycles`), then a
        no-show. Its booth is free for the next ticket either way."""
        booth_id = ticket.booth_id or ""
        if ticket.misses < cfg.max_recalls:
            outcome = K.MISS
            ticket.misses += 1
        elif ticket.recycles < cfg.max_recycles:
            outcome = K.RECYCLE
            ticket.recycles += 1
        else:
            outcome = K.NO_SHOW
        self._step(ticket, outcome)
        detail = {
            K.MISS: f"recall {ticket.misses} of {cfg.max_recalls}",
            K.RECYCLE: f"behind {cfg.recycle_behind} tickets",
            K.NO_SHOW: f"after {ticket.calls} call(s)",
        }[outcome]
        self._record(step, ticket, RECORDED_AS[outcome], detail=detail, booth_id=booth_id)
        self._unbook(ticket)
        if outcome is K.NO_SHOW:
            self._end(ticket)
        elif outcome is K.RECYCLE:
            self._recycle(ticket, cfg)
        else:
            self._enter_line(ticket)
        return TimedOut(ticket, booth_id, outcome)

    def release(self, step: Step, ticket: Ticket, why: str) -> None:
        """Its booth went away before anyone confirmed: back to its place, no fault."""
        booth_id = ticket.booth_id
        self._step(ticket, K.RELEASE)
        self._record(step, ticket, "released", detail=why, booth_id=booth_id)
        self._unbook(ticket)
        self._enter_line(ticket)

    def transfer(
        self, step: Step, ticket: Ticket, category: str, branch: str, by: str
    ) -> str | None:
        """Staff: to another service (category) or branch pool, keeping its place by
        arrival. Returns the booth it was called to, if any (now free)."""
        booth_id = ticket.booth_id
        self._step(ticket, K.TRANSFER)
        self._leave_line(ticket)
        self._unbook(ticket)
        detail = f"{ticket.branch}/{ticket.category} -> {branch}/{category}"
        self.changed.add(ticket.branch)
        ticket.branch, ticket.category, ticket.recycled = branch, category, False
        self._record(step, ticket, "transferred", actor=by, detail=detail, booth_id=booth_id)
        self._enter_line(ticket)
        return booth_id

    def cancel(self, step: Step, ticket: Ticket, by: str, why: str) -> str | None:
        booth_id = ticket.booth_id
        self._step(ticket, K.CANCEL)
        self._leave_line(ticket)
        self._unbook(ticket)
        self._record(step, ticket, "cancelled", actor=by, detail=why, booth_id=booth_id)
        self._end(ticket)
        return booth_id

    # --- bookkeeping ----------------------------------------------------------------------

    @staticmethod
    def _step(ticket: Ticket, step: TicketStep) -> None:
        ticket.state = next_state(ticket.state, step)

    def _record(
        self,
        step: Step,
        ticket: Ticket,
        kind: str,
        *,
        actor: str | None = None,
        detail: str | None = None,
        booth_id: str | None = None,
    ) -> None:
        step.record(
            kind,
            branch=ticket.branch,
            visit_id=ticket.ticket_id,
            ticket_id=ticket.ticket_id,
            number=ticket.number,
            category=ticket.category,
            booth_id=booth_id or ticket.booth_id,
            claim_id=ticket.claim_id,
            actor=actor,
            detail=detail,
        )

    def _unbook(self, ticket: Ticket) -> None:
        if ticket.booth_id is not None and self.called.get(ticket.booth_id) == ticket.ticket_id:
            del self.called[ticket.booth_id]
        ticket.booth_id = ticket.booth_label = None
        ticket.deadline = None
        self.changed.add(ticket.branch)

    def _leave_line(self, ticket: Ticket) -> None:
        line = self.lines.get((ticket.branch, ticket.category))
        if line is not None and ticket.ticket_id in line:
            line.remove(ticket.ticket_id)
            if not line:
                del self.lines[(ticket.branch, ticket.category)]

    def _enter_line(self, ticket: Ticket) -> None:
        """Back to its place by arrival: before the first ticket that came after it."""
        line = self.lines.setdefault((ticket.branch, ticket.category), [])
        at = next(
            (i for i, tid in enumerate(line) if self.tickets[tid].arrival > ticket.arrival),
            len(line),
        )
        line.insert(at, ticket.ticket_id)
        ticket.recycled = False
        self.changed.add(ticket.branch)

    def _recycle(self, ticket: Ticket, cfg: LobbyConfig) -> None:
        line = self.lines.setdefault((ticket.branch, ticket.category), [])
        line.insert(min(cfg.recycle_behind, len(line)), ticket.ticket_id)
        ticket.recycled = True
        self.changed.add(ticket.branch)

    def _end(self, ticket: Ticket) -> None:
        self._leave_line(ticket)
        self.tickets.pop(ticket.ticket_id, None)
        self.changed.add(ticket.branch)
