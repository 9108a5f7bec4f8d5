"""The booth session state machine, shared by the server and the booth client.

Transitions are data (as in h11): `TRANSITIONS[(state, event)] -> state`. Anything not in
the table is an `IllegalTransition`, so the table can be printed, read and tested
exhaustively. `reconnecting` remembers where it came from: a booth that drops while
queued resumes in the queue; one that drops mid-call resumes by renegotiating media.

    idle -check_in-> queued -reserve-> reserved -accept-> connecting -media_up-> on_hold
    on_hold <-focus/unfocus-> focused
    queued/reserved -lapse-> queued (a reservation declined or expired)
    any live state -connection_lost-> reconnecting -resume-> queued | where it was in the call
    any live state -requeue-> queued (CSO lost or paused past its grace period)
    any state but idle/ended -end-> ended -reset-> idle (ready for the next participant)

A signaling drop mid-call leaves the peer connection up (media does not pass the server),
so a booth that resumes goes back to where it was (on hold, focused, or still connecting)
rather than renegotiating from scratch; the kiosk re-reports its peer state after resuming.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SessionState(StrEnum):
    IDLE = "idle"
    QUEUED = "queued"
    RESERVED = "reserved"
    CONNECTING = "connecting"
    ON_HOLD = "on_hold"
    FOCUSED = "focused"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


class SessionEvent(StrEnum):
    CHECK_IN = "check_in"
    RESERVE = "reserve"
    LAPSE = "lapse"
    ACCEPT = "accept"
    MEDIA_UP = "media_up"
    FOCUS = "focus"
    UNFOCUS = "unfocus"
    CONNECTION_LOST = "connection_lost"
    RESUME = "resume"
    REQUEUE = "requeue"
    END = "end"
    RESET = "reset"


S, E = SessionState, SessionEvent

# States in which the booth and a CSO share a peer connection (or are setting one up).
IN_CALL: frozenset[SessionState] = frozenset({S.CONNECTING, S.ON_HOLD, S.FOCUSED})
# States the server still tracks; `ended` and `idle` are outside a session.
ACTIVE: frozenset[SessionState] = frozenset({S.QUEUED, S.RESERVED, S.RECONNECTING} | IN_CALL)

TRANSITIONS: dict[tuple[SessionState, SessionEvent], SessionState] = {
    (S.IDLE, E.CHECK_IN): S.QUEUED,
    (S.QUEUED, E.RESERVE): S.RESERVED,
    (S.RESERVED, E.LAPSE): S.QUEUED,
    (S.RESERVED, E.ACCEPT): S.CONNECTING,
    (S.CONNECTING, E.MEDIA_UP): S.ON_HOLD,
    (S.ON_HOLD, E.FOCUS): S.FOCUSED,
    (S.FOCUSED, E.UNFOCUS): S.ON_HOLD,
    # Media can come back (ICE restart) while focus is kept or not.
    (S.ON_HOLD, E.MEDIA_UP): S.ON_HOLD,
    (S.FOCUSED, E.MEDIA_UP): S.FOCUSED,
    # Focus may be set before media is up; it takes effect once media flows.
    (S.CONNECTING, E.FOCUS): S.CONNECTING,
    (S.CONNECTING, E.UNFOCUS): S.CONNECTING,
    **{(s, E.CONNECTION_LOST): S.RECONNECTING for s in (S.QUEUED, S.RESERVED, *IN_CALL)},
    **{(s, E.REQUEUE): S.QUEUED for s in (*IN_CALL, S.RECONNECTING, S.RESERVED)},
    **{(s, E.END): S.ENDED for s in ACTIVE},
    (S.ENDED, E.RESET): S.IDLE,
    # RESUME's target depends on what was lost; see BoothSession.handle.
    (S.RECONNECTING, E.RESUME): S.RECONNECTING,
}


class IllegalTransition(Exception):
    def __init__(self, state: SessionState, event: SessionEvent) -> None:
        super().__init__(f"event {event} is not allowed in state {state}")
        self.state = state
        self.event = event


def next_state(
    state: SessionState, event: SessionEvent, *, lost_from: SessionState | None = None
) -> SessionState:
    """Pure transition. `lost_from` is the state before `reconnecting` (for RESUME)."""
    try:
        target = TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None
    if event is E.RESUME:
        # A lost reservation was withdrawn: back to the queue. A call resumes where it was.
        return S.QUEUED if lost_from in (S.QUEUED, S.RESERVED, None) else lost_from
    return target


@dataclass
class BoothSession:
    """One booth's journey from check-in to the end of service, as plain data."""

    state: SessionState = S.IDLE
    lost_from: SessionState | None = None
    history: list[tuple[SessionEvent, SessionState]] = field(default_factory=list)

    def can(self, event: SessionEvent) -> bool:
        return (self.state, event) in TRANSITIONS

    def handle(self, event: SessionEvent) -> SessionState:
        new = next_state(self.state, event, lost_from=self.lost_from)
        self.lost_from = self.state if event is E.CONNECTION_LOST else None
        self.state = new
        self.history.append((event, new))
        return new

    @property
    def in_call(self) -> bool:
        return self.state in IN_CALL
