"""One step of the floor core: the instant an event is decided at, and what it emits.

The core's parts (booths, officers, supervision) receive the `Step` of the event being
decided and append effects to it; nothing of a step survives it (it is never part of a
snapshot). Ids come from the core's seeded source, so a replay hands out the same ones.
"""

from __future__ import annotations

from collections.abc import Callable

from server.floor.effects import Audit, Effect, FloorChanged, Publish, Send, TicketEvent
from server.floor.events import Now
from server.floor.model import PeerKey
from server.principal import Principal
from signaling.messages import Envelope, FloorEvent


class Step:
    __slots__ = ("connection_of", "effects", "new_id", "now", "topics_for")

    def __init__(
        self,
        now: Now,
        new_id: Callable[[], str],
        topics_for: Callable[[str | None], list[str]],
        connection_of: Callable[[PeerKey], str | None],
    ) -> None:
        self.now = now
        self.new_id = new_id
        self.topics_for = topics_for  # the supervisors' topics that see a branch
        self.connection_of = connection_of  # the socket a peer has now
        self.effects: list[Effect] = []

    def send(
        self,
        to: PeerKey,
        message: Envelope,
        received_at: float | None = None,
        raw: str | None = None,
    ) -> None:
        self.effects.append(Send(to, message, received_at, raw, self.connection_of(to)))

    def publish(self, topic: str, message: Envelope) -> None:
        self.effects.append(Publish((topic,), message))

    def dirty(self) -> None:
        """Something supervisors see changed; the runtime coalesces these into one pass."""
        self.effects.append(FloorChanged())

    def audit(
        self,
        who: Principal | PeerKey,
        action: str,
        *,
        claim_id: str | None = None,
        fingerprints: tuple[str, ...] = (),
        **details: object,
    ) -> None:
        if isinstance(who, Principal):
            actor, role = who.subject, str(who.role)
        else:
            actor, role = who.subject, "session"
        kept = {k: v for k, v in details.items() if v is not None}
        at = self.now.wall
        self.effects.append(
            Audit(self.new_id(), at, actor, role, action, claim_id, kept, fingerprints)
        )

    def event(
        self,
        kind: str,
        *,
        branch: str | None,
        booth_id: str | None = None,
        cso_id: str | None = None,
        session_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        """A floor event for the supervisors whose scope covers `branch`."""
        message = FloorEvent(
            kind=kind,  # type: ignore[arg-type]
            booth_id=booth_id,
            cso_id=cso_id,
            session_id=session_id,
            detail=detail,
        )
        self.effects.append(Publish(tuple(self.topics_for(branch)), message))

    def record(
        self,
        kind: str,
        *,
        branch: str,
        visit_id: str,
        ticket_id: str | None = None,
        number: str | None = None,
        category: str | None = None,
        booth_id: str | None = None,
        cso_id: str | None = None,
        session_id: str | None = None,
        claim_id: str | None = None,
        actor: str | None = None,
        detail: str | None = None,
    ) -> None:
        """A visit's step for the reports (server.floor.effects.TicketEvent)."""
        event = TicketEvent(
            self.new_id(), self.now.wall, kind, branch, visit_id, ticket_id, number,
            category, booth_id, cso_id, session_id, claim_id, actor, detail,
        )  # fmt: skip
        self.effects.append(event)
