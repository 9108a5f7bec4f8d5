"""The floor's records and addresses: plain data owned by the parts of the core.

- `BoothRecord`, `SessionRecord`: a booth's visit and its session with an officer
  (`booths.py`, `BoothSessions`);
- `CsoRecord`: an officer's socket, break and focus (`officers.py`, `Officers`);
- `Link`: a supervisor's monitor or whisper link (`supervision.py`, `Supervision`).

A peer is addressed by its socket role *and* its subject (`PeerKey`): booth ids and
usernames live in two tables and may coincide, so routing, live state and links never
key by a bare id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from server.domain.access import AccessFacts, SessionFacts
from server.ports.live_state import LiveSession
from server.principal import Principal
from signaling.messages import CheckIn, ClaimSummary, Language, PeerQuality, Role, SessionEndNote
from signaling.session import BoothSession, SessionState


class PeerKey(NamedTuple):
    """Where a message goes: the socket role and the account behind it."""

    role: Role
    subject: str

    @property
    def address(self) -> str:
        """The key routers and live state use (`booth:b1`, `cso:siti`, ...)."""
        return f"{self.role}:{self.subject}"


def booth_key(booth_id: str) -> PeerKey:
    return PeerKey(Role.BOOTH, booth_id)


def cso_key(cso_id: str) -> PeerKey:
    return PeerKey(Role.CSO, cso_id)


def supervisor_key(supervisor_id: str) -> PeerKey:
    return PeerKey(Role.SUPERVISOR, supervisor_id)


@dataclass
class BoothRecord:
    principal: Principal
    resume_token: str
    connection: str | None  # None while the socket is gone (within grace)
    machine: BoothSession = field(default_factory=BoothSession)
    claim: ClaimSummary | None = None
    holds: tuple[str, ...] = ()  # who the participant is (keyed hashes): one booth each
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
    visit_id: str | None = None  # the visit in the reports: its ticket's id, or the check-in's
    ticket_id: str | None = None  # the ticket the participant confirmed here, if any

    @property
    def booth_id(self) -> str:
        return self.principal.subject

    @property
    def key(self) -> PeerKey:
        return booth_key(self.principal.subject)

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
    focused: str | None = None  # session id the CSO talks to; kept while its socket is gone

    @property
    def cso_id(self) -> str:
        return self.principal.subject

    @property
    def key(self) -> PeerKey:
        return cso_key(self.principal.subject)

    @property
    def connected(self) -> bool:
        return self.connection is not None


# A certificate's fingerprint in one description, in at most this many hash functions
# (aiortc writes sha-256, sha-384 and sha-512; Chromium sha-256).
MAX_PRINTS_PER_DESCRIPTION = 4
# What the ends of a session may add to it, at most, in fingerprint lines: a new
# certificate comes with a restarted kiosk or a console tab that took over (each tab keeps
# one for all its calls), so eight of aiortc's or 24 of Chromium's is generous; a peer that
# sends more is refused rather than growing the floor's state (and every snapshot). (How
# many offers and answers a session may carry is a setting: FloorConfig.max_descriptions.)
MAX_EXTRA_FINGERPRINTS = 24


@dataclass
class SessionRecord:
    live: LiveSession
    offer_expires_at: float | None = None  # monotonic, while reserved
    extra_fingerprints: frozenset[str] = frozenset()  # announced by later renegotiations
    descriptions: int = 0  # offers and answers relayed so far
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


LinkKind = Literal["monitor", "whisper"]


@dataclass
class Link:
    link_id: str
    kind: LinkKind
    session_id: str
    supervisor: Principal
    peer: PeerKey  # the booth (monitor: it offers) or the CSO (whisper: it answers)
    claim_id: str | None

    @property
    def supervisor_key(self) -> PeerKey:
        return supervisor_key(self.supervisor.subject)

    def has_end(self, key: PeerKey) -> bool:
        return key in (self.supervisor_key, self.peer)

    def other_end(self, key: PeerKey) -> PeerKey:
        return self.peer if key == self.supervisor_key else self.supervisor_key
