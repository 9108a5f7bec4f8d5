"""What the floor core asks for, typed by the guarantee it needs.

The core decides; the runtime carries out what it decided. Effects differ in what must be
true when they happen, so each is a subclass of one of four kinds, and the runtimes
(`runtime.py` in one process, `adapters/redis/leader.py` in a cluster) handle a kind, not a
list of special cases:

- `Committed`: part of the decision itself. Nobody hears of a decision before it is
  durable: in a cluster these go inside the leader's fenced commit (a deposed leader cannot
  send one); in one process they are carried out in order before the next event.
- `Recorded`: rows in the records database (the audit chain). Written through the floor's
  outbox, which is committed with the decision and delivered after it, in order, retried
  until it succeeds and exactly once (each carries an id the store deduplicates on). A
  records database that is down delays them; it never drops the rest of a decision.
- `Requested`: work outside the floor whose answer comes back as an event (a claim lookup).
  Started only once the decision that asked for it is committed, so a decision that never
  commits starts nothing; the next leader asks again for what is still pending.
- `Local`: this process only (its timer, metrics, the broadcast pass); nothing depends on
  them surviving it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from server.floor.model import PeerKey
from server.ports.live_state import LiveSession
from server.principal import Principal
from signaling.messages import CheckIn, Envelope, IssueTicket


class Committed:
    __slots__ = ()


class Recorded:
    __slots__ = ()


class Requested:
    __slots__ = ()


class Local:
    __slots__ = ()


# --- committed with the decision ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send(Committed):
    """Deliver to a peer's current socket. The core emits it only for connected peers;
    what an offline peer misses is in the state its next `welcome` carries."""

    to: PeerKey
    message: Envelope
    received_at: float | None = None
    raw: str | None = None  # the relayed frame itself; None: encode `message`
    # The socket it is for: a message decided for one socket must never reach the peer's
    # next one, whose welcome already carries the state it tells (a duplicate otherwise).
    connection: str | None = None


@dataclass(frozen=True, slots=True)
class Publish(Committed):
    """To the supervisors listening on each of `topics` (one per scope of branches:
    `server.domain.access.floor_topic`). Floor events are coalesced by the runtime into
    its next broadcast pass (and logged there, listened to or not)."""

    topics: tuple[str, ...]
    message: Envelope


@dataclass(frozen=True, slots=True)
class PersistSession(Committed):
    session: LiveSession


@dataclass(frozen=True, slots=True)
class DeleteSession(Committed):
    session_id: str


# --- recorded through the outbox ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Audit(Recorded):
    """An entry on the hash-chained audit log: a supervisor's steering, monitoring or
    whispering, or DTLS fingerprints a renegotiation added to a session. `effect_id` comes
    from the core's seeded ids, so a replayed or retried delivery is recognised."""

    effect_id: str
    at: float  # unix time of the decision (the entry's time, however late it is written)
    actor: str
    role: str
    action: str
    claim_id: str | None
    details: dict[str, Any] = field(default_factory=dict)
    fingerprints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TicketEvent(Recorded):
    """One step of a visit, for the reports (a row of `ticket_events`, written exactly
    once by `effect_id`): every state change of a ticket (`arrived`, `called`, `missed`,
    `recycled`, `no_show`, `served`, `recalled`, `released`, `transferred`, `cancelled`)
    and the floor stage's milestones (`checked_in` at the booth, `assigned` to an
    officer, `session_ended` with its reason, `visit_ended`). `visit_id` ties them: the
    ticket's id, or the check-in's for a participant who walked straight to a booth."""

    effect_id: str
    at: float  # unix time of the decision
    kind: str
    branch: str
    visit_id: str
    ticket_id: str | None = None
    number: str | None = None
    category: str | None = None
    booth_id: str | None = None
    cso_id: str | None = None
    session_id: str | None = None
    claim_id: str | None = None
    actor: str | None = None  # the staff who did it, if anyone
    detail: str | None = None  # a session's end reason, a recall's count, ...


RecordedEffect = Audit | TicketEvent


# --- requested, answered by an event --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolveClaim(Requested):
    """Look up (or register, for a walk-in) the claim of a check-in the floor accepted;
    answer with ClaimResolved or ClaimRefused."""

    principal: Principal
    request: CheckIn


@dataclass(frozen=True, slots=True)
class ResolveTicket(Requested):
    """Look up (or register, for a walk-in) the claim a ticket is asked for, in `branch`;
    answer with TicketClaimResolved or TicketClaimRefused."""

    principal: Principal  # the desk's
    branch: str
    request: IssueTicket


# --- local to this process ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetTimer(Local):
    """Fire `TimerFired` at this floor-clock time (None: nothing pending)."""

    at: float | None


@dataclass(frozen=True, slots=True)
class Observe(Local):
    """A metric sample: counters get `value` added, histograms observe it."""

    metric: Literal["assignments", "requeues", "wait_seconds"]
    value: float = 1.0


@dataclass(frozen=True, slots=True)
class FloorChanged(Local):
    """Something supervisors see has changed: the runtime sends one snapshot per pass."""


Effect = Send | Publish | PersistSession | DeleteSession | Audit | TicketEvent | ResolveClaim | ResolveTicket | SetTimer | Observe | FloorChanged  # fmt: skip  # noqa: E501
