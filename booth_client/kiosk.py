"""The kiosk's bookkeeping without I/O: where the visit stands, rebuilt from `welcome`;
which request a reply answers; what to do when the server closes the socket.

BoothClient (client.py) does the I/O and asks these plain functions and classes what
follows; the unit tests (tests/unit/test_booth_client_parts.py) drive them directly.

Resume is by state sync: `welcome.booth` is the server's whole account of this booth
(state, session, claim, focus, queue place, ICE servers, and a session that ended while
the kiosk was away). The kiosk rebuilds from it on every (re)connect and never expects a
missed message to be replayed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from signaling.messages import (
    Ack,
    BoothStatus,
    Envelope,
    Error,
    IceServer,
    SessionEndNote,
    type_name,
)
from signaling.session import IN_CALL, BoothSession, SessionState

S = SessionState

# Close codes the server uses (server/api/connection.py CloseCode).
CLOSE_PROTOCOL = 4400
CLOSE_UNAUTHENTICATED = 4401  # no/invalid token, or the access token expired
CLOSE_FORBIDDEN = 4403  # account disabled, booth revoked, wrong role
CLOSE_TIMEOUT = 4408
CLOSE_REPLACED = 4409  # another connection with the same identity took over
CLOSE_OVERLOADED = 4429

# A refused check-in worth trying again by itself (the server, not the claim, was the
# problem); any other refusal waits for the participant.
TRANSIENT_REFUSALS = frozenset({"internal", "rate_limited"})


# --- the visit ------------------------------------------------------------------------


@dataclass
class KioskView:
    """What the kiosk shows and knows about its visit."""

    machine: BoothSession = field(default_factory=BoothSession)
    session_id: str | None = None
    claim_id: str | None = None
    position: int | None = None
    waiting: int | None = None
    estimated_wait_s: float | None = None
    focused: bool = False
    cso_name: str | None = None
    ice_servers: list[IceServer] = field(default_factory=list)

    @property
    def state(self) -> SessionState:
        return self.machine.state

    @classmethod
    def from_status(cls, status: BoothStatus | None) -> KioskView:
        """The view `welcome.booth` describes (no status: a booth the server does not know)."""
        if status is None:
            return cls()
        return cls(
            machine=BoothSession(state=status.state),
            session_id=status.session_id,
            claim_id=status.claim_id,
            position=status.position,
            waiting=status.waiting,
            estimated_wait_s=status.estimated_wait_s,
            focused=status.focused,
            cso_name=status.cso_name,
            ice_servers=list(status.ice_servers),
        )


@dataclass(frozen=True)
class Resync:
    """What a (re)connecting kiosk does with its `welcome`."""

    view: KioskView
    keep_peer: bool  # the peer connection belongs to the call we are still in
    report_peer: bool  # resumed mid-call: tell the server the peer connection's state
    finished: SessionEndNote | None  # a session that ended while the kiosk was away
    wants_check_in: bool  # a participant is (still) waiting to check in
    check_in: bool  # ... and the booth is idle: check in now


def resync(
    status: BoothStatus | None,
    *,
    peer_session: str | None,
    wants_check_in: bool,
    rejoin_after_session: bool,
    known_ended: str | None = None,
) -> Resync:
    """Rebuild from `welcome.booth`. `peer_session`: the session of the kiosk's peer
    connection, if it has one; `wants_check_in`: whether a participant is waiting to check
    in (false after a finished session without rejoin, or after a refused check-in);
    `known_ended`: the session whose end the kiosk already heard (the server repeats the
    note until a welcome carries it, in case its `session_ended` was lost)."""
    view = KioskView.from_status(status)
    in_call = view.state in IN_CALL and view.session_id is not None
    keep = in_call and peer_session is not None and peer_session == view.session_id
    finished = status.last_ended if status is not None else None
    if finished is not None and finished.session_id == known_ended:
        finished = None  # told already: nothing to do again
    wants = rejoin_after_session if finished is not None else wants_check_in
    return Resync(
        view=view,
        keep_peer=keep,
        report_peer=keep,
        finished=finished,
        wants_check_in=wants,
        check_in=wants and view.state is S.IDLE,
    )


# --- replies --------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A request the server refused, as the kiosk logs and shows it."""

    request: str  # the refused message's type, e.g. "check_in"
    code: str
    message: str
    hint: str | None = None

    @classmethod
    def of(cls, request: Envelope, error: Error) -> Refusal:
        return cls(type_name(type(request)), str(error.code), error.message, error.hint)

    def __str__(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.request} refused: {self.code}: {self.message}{hint}"


@dataclass(frozen=True)
class Settled:
    """A reply matched to its request: `error` None means acknowledged."""

    request: Envelope
    error: Error | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def refusal(self) -> Refusal | None:
        return None if self.error is None else Refusal.of(self.request, self.error)


class Requests:
    """Messages sent and not yet answered, by id.

    The server answers a request with `ack` (reply_to = its id) or `error` (reply_to/ref =
    its id). Relayed messages (offer, answer, candidate, peer_state) get no ack, only an
    error when refused, so the oldest are forgotten past `keep`. A socket's requests die
    with it: `clear()` on every reconnect (the new `welcome` says what became of them).
    """

    def __init__(self, keep: int = 256) -> None:
        self._keep = keep
        self._sent: OrderedDict[str, Envelope] = OrderedDict()

    def track(self, message: Envelope) -> None:
        self._sent[message.id] = message
        while len(self._sent) > self._keep:
            self._sent.popitem(last=False)

    def settle(self, reply: Envelope) -> Settled | None:
        """The request this `ack`/`error` answers (and forget it); None if it answers
        nothing we are waiting for (an error about no request of ours, a stale ack)."""
        if isinstance(reply, Ack):
            ref = reply.reply_to
        elif isinstance(reply, Error):
            ref = reply.reply_to or reply.ref
        else:
            return None
        request = self._sent.pop(ref, None) if ref else None
        if request is None:
            return None
        return Settled(request, reply if isinstance(reply, Error) else None)

    def pending(self, kind: type[Envelope] | None = None) -> list[Envelope]:
        return [m for m in self._sent.values() if kind is None or isinstance(m, kind)]

    def clear(self) -> list[Envelope]:
        """Forget everything (the socket is gone); returns what was still unanswered."""
        dropped = list(self._sent.values())
        self._sent.clear()
        return dropped

    def __len__(self) -> int:
        return len(self._sent)


# --- the socket closing -----------------------------------------------------------------


class CloseKind(StrEnum):
    RETRY = "retry"  # network loss, restart, timeout: reconnect with backoff
    SLOW_DOWN = "slow_down"  # overloaded: reconnect, but later
    RELOGIN = "relogin"  # token refused or expired: log in with the credential, once
    REPLACED = "replaced"  # another process with this credential took over
    GIVE_UP = "give_up"  # refused again after a fresh login: the credential is no good


@dataclass(frozen=True)
class Reaction:
    kind: CloseKind
    delay: float  # seconds before the next attempt (0 for GIVE_UP)
    note: str


def close_reaction(
    code: int | None,
    *,
    auth_strikes: int,
    backoff: float,
    backoff_max: float,
    replaced_backoff: float,
) -> Reaction:
    """What to do after the socket closed with `code`. `auth_strikes`: how many
    authentication refusals came in a row, this one included (a welcome resets it)."""
    if code in (CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN):
        what = "refused" if code == CLOSE_FORBIDDEN else "not accepted (expired?)"
        if auth_strikes > 1:
            return Reaction(CloseKind.GIVE_UP, 0.0, f"the booth's login was {what} again")
        return Reaction(CloseKind.RELOGIN, 0.0, f"the booth's token was {what}: logging in")
    if code == CLOSE_REPLACED:
        return Reaction(
            CloseKind.REPLACED,
            replaced_backoff,
            "another kiosk process with this booth's credential took over the connection; "
            "not fighting it (is this credential installed on two machines?)",
        )
    if code == CLOSE_OVERLOADED:
        return Reaction(CloseKind.SLOW_DOWN, backoff_max, "the server is overloaded")
    return Reaction(CloseKind.RETRY, backoff, "connection lost")


def refresh_margin(lifetime: float) -> float:
    """Seconds before an access token's expiry to refresh it and send `reauth`: a
    minute for the usual 10 minutes, a third of the lifetime for short ones."""
    return max(0.5, min(60.0, lifetime / 3))
