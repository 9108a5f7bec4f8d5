"""Officers on the floor: their sockets, their breaks and whom each is talking to.

A part of the floor core (`core.py` routes events to it). It owns the `CsoRecord`s; what
an officer's focus means for a booth (its state, its `focus` message) is the
coordinator's to carry out, from the `FocusChange` this part returns.

Focus survives a dropped socket: the call is peer to peer and goes on while the console
reconnects, so a signaling blip must not mute the booth. It ends with the session, or
when the officer chooses another booth or nobody.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.dispatch import CsoProfile
from server.floor.model import CsoRecord
from server.principal import Principal


@dataclass(frozen=True, slots=True)
class FocusChange:
    """The officer now talks to `after` instead of `before` (session ids)."""

    before: str | None
    after: str | None


class Officers:
    def __init__(self) -> None:
        self.records: dict[str, CsoRecord] = {}

    def get(self, cso_id: str) -> CsoRecord | None:
        return self.records.get(cso_id)

    def connected(self, cso_id: str) -> CsoRecord | None:
        rec = self.records.get(cso_id)
        return rec if rec is not None and rec.connected else None

    def open(self, principal: Principal, connection: str, new_token: str) -> tuple[CsoRecord, bool]:
        """The officer's socket (new or resumed: a break and focus are kept)."""
        rec = self.records.get(principal.subject)
        resumed = rec is not None
        if rec is None:
            rec = CsoRecord(principal, new_token, connection)
            self.records[principal.subject] = rec
        rec.connection = connection
        rec.principal = principal
        return rec, resumed

    def close(self, cso_id: str, connection: str) -> CsoRecord | None:
        """The record whose socket this was, or None if a newer socket replaced it."""
        rec = self.records.get(cso_id)
        if rec is None or rec.connection != connection:
            return None
        rec.connection = None
        return rec

    def retire(self, cso_id: str) -> None:
        self.records.pop(cso_id, None)

    @staticmethod
    def profile(rec: CsoRecord, capacity: int) -> CsoProfile:
        p = rec.principal
        return CsoProfile(
            cso_id=p.subject,
            capacity=capacity,
            branch=p.branch,
            pools=p.pools or frozenset({p.branch}),
            skills=p.skills,
        )

    def set_focus(self, rec: CsoRecord, session_id: str | None) -> FocusChange | None:
        before = rec.focused
        rec.focused = session_id
        return None if before == session_id else FocusChange(before, session_id)

    def session_closed(self, cso_id: str, session_id: str) -> None:
        rec = self.records.get(cso_id)
        if rec is not None and rec.focused == session_id:
            rec.focused = None

    def focuses(self, cso_id: str, session_id: str | None) -> bool:
        rec = self.records.get(cso_id)
        return session_id is not None and rec is not None and rec.focused == session_id
