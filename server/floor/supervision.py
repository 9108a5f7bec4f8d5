"""Supervisors on the floor: their sockets, their scope and their monitor/whisper links.

A part of the floor core. A supervisor *monitors* a session (the booth adds a send-only
peer connection to the supervisor: the participant's camera and microphone and a relay of
the CSO's audio it receives, so both voices are heard; the call itself is untouched) or
*whispers* to its CSO (an audio-only peer from the supervisor to the console, never to
the booth). A link has its own id, used as `session_id` in the offer/answer/candidates
between its two ends, and closes when the session ends, either end goes away, or the
supervisor's account opens a new socket (the new page has none of the old peer
connections). Start and stop are audited by the coordinator from what this part returns.

Each supervisor sees the floor of its scope (`server.domain.access.floor_scope`): one
pub/sub topic per distinct scope, so a pass costs one snapshot per scope, however many
supervisors share it.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.domain.access import floor_scope, floor_topic
from server.floor.model import Link, LinkKind, PeerKey, supervisor_key
from server.principal import Principal


@dataclass
class SupervisorRecord:
    principal: Principal
    connection: str

    @property
    def key(self) -> PeerKey:
        return supervisor_key(self.principal.subject)

    @property
    def scope(self) -> frozenset[str] | None:
        return floor_scope(self.principal)


class Supervision:
    def __init__(self) -> None:
        self.records: dict[str, SupervisorRecord] = {}
        self.links: dict[str, Link] = {}
        self._scopes: dict[str, frozenset[str] | None] | None = None  # topic -> scope

    # --- sockets and scopes ---------------------------------------------------------------

    def open(self, principal: Principal, connection: str) -> list[Link]:
        """A supervisor's socket; returns the account's links, which end with its old socket."""
        self.records[principal.subject] = SupervisorRecord(principal, connection)
        self._scopes = None
        return self.links_of(supervisor_key(principal.subject))

    def close(self, principal: Principal, connection: str) -> list[Link] | None:
        """The links to close, or None if a newer socket replaced this one."""
        rec = self.records.get(principal.subject)
        if rec is None or rec.connection != connection:
            return None
        del self.records[principal.subject]
        self._scopes = None
        return self.links_of(rec.key)

    def connected(self, supervisor_id: str) -> bool:
        return supervisor_id in self.records

    def scopes(self) -> dict[str, frozenset[str] | None]:
        """topic -> scope, for every scope a connected supervisor has."""
        if self._scopes is None:
            self._scopes = {floor_topic(r.scope): r.scope for r in self.records.values()}
        return self._scopes

    def topics_for(self, branch: str | None) -> list[str]:
        """The topics whose scope sees `branch` (None: a floor-wide event, every topic)."""
        return [
            topic
            for topic, scope in self.scopes().items()
            if scope is None or branch is None or branch in scope
        ]

    # --- links ----------------------------------------------------------------------------

    def add_link(
        self,
        link_id: str,
        kind: LinkKind,
        session_id: str,
        supervisor: Principal,
        peer: PeerKey,
        claim_id: str | None,
    ) -> Link:
        link = Link(link_id, kind, session_id, supervisor, peer, claim_id)
        self.links[link_id] = link
        return link

    def has_link(self, supervisor_id: str, session_id: str, kind: LinkKind) -> bool:
        return any(
            (lk.supervisor.subject, lk.session_id, lk.kind) == (supervisor_id, session_id, kind)
            for lk in self.links.values()
        )

    def remove_link(self, link_id: str) -> Link | None:
        return self.links.pop(link_id, None)

    def links_of(self, key: PeerKey) -> list[Link]:
        return [lk for lk in self.links.values() if lk.has_end(key)]

    def links_of_session(self, session_id: str) -> list[Link]:
        return [lk for lk in self.links.values() if lk.session_id == session_id]

    def monitored(self, session_id: str) -> bool:
        return any(
            lk.kind == "monitor" and lk.session_id == session_id for lk in self.links.values()
        )
