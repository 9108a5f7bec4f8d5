"""What goes into the floor core: events, as plain frozen data (what comes out is in
`effects.py`).

The core never performs I/O. The runtime turns socket traffic and timers into events,
calls `FloorCore.handle(event, now)`, and carries out the effects it gets back, in order.
In a cluster, events travel between processes in the versioned format of `wire.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from server.principal import Principal
from signaling.errors import ErrorCode
from signaling.messages import CheckIn, ClaimSummary, Envelope, IssueTicket


class Now(NamedTuple):
    """Both clocks at one instant: the floor's monotonic clock for deadlines (in a
    cluster, carried from one leader to the next), wall (unix) time for people.
    (A NamedTuple: one is made per event, and it is as immutable as the events.)"""

    mono: float
    wall: float


# --- events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerOpened:
    """A socket said a valid `hello`. `new_token` is a fresh resume token, should the
    peer start afresh (the core makes no randomness of its own)."""

    principal: Principal
    connection: str
    resume: str | None
    new_token: str


@dataclass(frozen=True, slots=True)
class PeerClosed:
    principal: Principal
    connection: str


@dataclass(frozen=True, slots=True)
class Received:
    """A validated inbound message from an authenticated socket."""

    principal: Principal
    connection: str
    message: Envelope
    received_at: float | None = None  # monotonic, for relay latency
    raw: str | None = None  # the frame as received (validated), forwarded as-is by relays


@dataclass(frozen=True, slots=True)
class ClaimResolved:
    """The records service found (or registered) the claim behind a check-in."""

    booth_id: str
    request: CheckIn
    claim_id: str | None


@dataclass(frozen=True, slots=True)
class ClaimRefused:
    booth_id: str
    request: CheckIn
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class DocumentStored:
    """A booth's picture is durable: tell the CSO serving the claim (no polling)."""

    claim_id: str
    document_id: str
    kind: str
    sha256: str
    width: int | None = None
    height: int | None = None


def document_stored(body: dict[str, object]) -> DocumentStored:
    """The event for a picture the records API stored (its answer body)."""
    width, height = body.get("width"), body.get("height")
    return DocumentStored(
        claim_id=str(body["claim_id"]),
        document_id=str(body["document_id"]),
        kind=str(body["kind"]),
        sha256=str(body["sha256"]),
        width=width if isinstance(width, int) else None,
        height=height if isinstance(height, int) else None,
    )


@dataclass(frozen=True, slots=True)
class VerificationReady:
    """Machine advice on a stored document is ready (its reading, or a face comparison):
    tell the CSO serving the claim to fetch it (no personal data travels here)."""

    claim_id: str
    document_id: str
    what: str  # "reading" or "face"


@dataclass(frozen=True, slots=True)
class CaptureUndeliverable:
    """A booth reported that a picture taken for a claim will never arrive (the records
    API stored the report): tell the officer serving the claim and the supervisors."""

    claim_id: str
    capture_id: str
    booth_id: str
    session_id: str | None
    kind: str
    reason: str
    branch: str | None = None  # the booth's (should the floor have forgotten the booth)


def capture_undeliverable(report: dict[str, object]) -> CaptureUndeliverable:
    """The event for a report the records API stored (its answer body)."""
    session = report.get("session_id")
    return CaptureUndeliverable(
        claim_id=str(report["claim_id"]),
        capture_id=str(report["capture_id"]),
        booth_id=str(report["booth_id"]),
        session_id=session if isinstance(session, str) else None,
        kind=str(report.get("kind") or ""),
        reason=str(report.get("reason") or "refused"),
        branch=str(report["branch"]) if report.get("branch") else None,
    )


@dataclass(frozen=True, slots=True)
class TimerFired:
    """The deadline the core last asked for (or any later moment) has come."""


@dataclass(frozen=True, slots=True)
class BroadcastDue:
    """Time to tell waiting booths their place and supervisors the floor (debounced)."""


# --- front of house -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TicketClaimResolved:
    """The records found (or registered) the claim a desk asked a ticket for."""

    issuer: Principal
    branch: str
    request: IssueTicket
    claim_id: str
    claim: ClaimSummary  # masked
    booking: bool
    appointment: float | None  # unix time of the booking's appointment, if any


@dataclass(frozen=True, slots=True)
class TicketClaimRefused:
    issuer: Principal
    branch: str
    request: IssueTicket
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class DisplayOpened:
    """A waiting room's display connected: publish its branch's state now."""

    branch: str


Event = (
    PeerOpened | PeerClosed | Received | ClaimResolved | ClaimRefused | DocumentStored
    | VerificationReady | CaptureUndeliverable | TimerFired | BroadcastDue | TicketClaimResolved
    | TicketClaimRefused | DisplayOpened
)  # fmt: skip
