"""Supervisors on the floor, as part of the pure core: steering and monitor/whisper links.

- Steering: move a booth to another CSO (its session ends with reason `moved`, the booth is
  offered to that CSO first and keeps its claim), pause or resume an officer, end a stuck
  session. Each is an audit entry.
- Links: a supervisor *monitors* a session (the booth adds a send-only peer connection to
  the supervisor: the participant's camera and microphone and a relay of the CSO's audio
  it receives, so both voices are heard; the call itself is untouched) or *whispers* to its
  CSO (an audio-only peer from the supervisor to the console, never to the booth). A link
  has its own id, used as `session_id` in the offer/answer/candidates between its two
  ends, and closes when the session ends or either end goes away. Start and stop are
  audited.

Everything goes through `server.domain.access.decide` (supervisors of the booth's branch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from server.domain.access import AccessFacts, Action, decide
from server.floor import views
from server.floor.events import Audit
from server.principal import AccountRole, Principal
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Ack,
    Answer,
    AvailabilityChanged,
    Candidate,
    CloseLink,
    EndSession,
    LinkClosed,
    LinkOpened,
    MoveBooth,
    Offer,
    OpenLink,
    SessionUpdate,
    SetCsoAvailability,
)

if TYPE_CHECKING:
    from server.floor.core import FloorCore, SessionRecord

LinkKind = Literal["monitor", "whisper"]
REFUSAL_CODES = {
    "not_in_session": ErrorCode.NOT_IN_SESSION,
    "illegal_transition": ErrorCode.ILLEGAL_TRANSITION,
}


@dataclass
class Link:
    link_id: str
    kind: LinkKind
    session_id: str
    supervisor: Principal
    peer_id: str  # the booth (monitor: it offers) or the CSO (whisper: it answers)
    claim_id: str | None

    def has_end(self, peer_id: str) -> bool:
        return peer_id in (self.supervisor.subject, self.peer_id)

    def other_end(self, peer_id: str) -> str:
        return self.peer_id if peer_id == self.supervisor.subject else self.supervisor.subject


class Supervision:
    """Mixed into FloorCore; kept apart so each file reads as one subject."""

    def _steer_facts(self: FloorCore, record: SessionRecord | None) -> AccessFacts:
        if record is None:
            return AccessFacts()
        booth = self.booths.get(record.live.booth_id)
        base = record.facts()
        return AccessFacts(
            session=base.session, claim_branch=booth.principal.branch if booth else None
        )

    def _check(
        self: FloorCore, who: Principal, action: Action, facts: AccessFacts, ref: str
    ) -> None:
        """The access policy's refusal, as the protocol's typed error (one mapping for every
        socket action, the core's and the supervisors')."""
        verdict = decide(who, action, facts)
        if not verdict.allowed:
            raise ProtocolError(REFUSAL_CODES.get(verdict.code, ErrorCode.FORBIDDEN_FOR_ROLE),
                                verdict.reason, ref=ref)  # fmt: skip

    def _audit(  # emitted before the acknowledgement: the runtime writes it first
        self: FloorCore,
        who: Principal,
        action: str,
        *,
        claim_id: str | None = None,
        **details: object,
    ) -> None:
        self._out.append(Audit(who.subject, str(who.role), action, claim_id, dict(details)))

    # --- supervisor sockets ---------------------------------------------------------------

    def _supervisor_opened(self: FloorCore, who: Principal, connection: str) -> None:
        self.supervisors[who.subject] = connection
        self._send(who.subject, views.supervisor_welcome(self, who, connection))

    def _supervisor_closed(self: FloorCore, who: Principal, connection: str) -> None:
        if self.supervisors.get(who.subject) != connection:
            return
        del self.supervisors[who.subject]
        for link in [lk for lk in self.links.values() if lk.supervisor.subject == who.subject]:
            self._close_link(link, "peer_gone")

    # --- steering --------------------------------------------------------------------------

    def _move(self: FloorCore, who: Principal, msg: MoveBooth) -> None:
        record = self.sessions.get(msg.session_id)
        self._check(who, Action.SESSION_STEER, self._steer_facts(record), msg.id)
        assert record is not None
        live = record.live
        target = self.csos.get(msg.to_cso_id)
        if target is None or not self.dispatcher.has_cso(msg.to_cso_id):
            raise ProtocolError(
                ErrorCode.CONFLICT, f"no officer {msg.to_cso_id!r} is on the floor", ref=msg.id
            )
        decisions = self._dispatch(
            lambda now: self.dispatcher.move(live.booth_id, msg.to_cso_id, now), msg.id
        )
        self._audit(who, "session.moved", claim_id=live.claim_id, session_id=live.session_id,
                    booth_id=live.booth_id, from_cso=live.cso_id, to_cso=msg.to_cso_id)  # fmt: skip
        self._send(who.subject, Ack(reply_to=msg.id))
        self._apply(decisions, "moved")

    def _steer_availability(self: FloorCore, who: Principal, msg: SetCsoAvailability) -> None:
        cso = self.csos.get(msg.cso_id)
        branch = cso.principal.branch if cso else None
        self._check(who, Action.CSO_STEER, AccessFacts(claim_branch=branch), msg.id)
        if cso is None or not self.dispatcher.has_cso(msg.cso_id):
            raise ProtocolError(
                ErrorCode.CONFLICT, f"no officer {msg.cso_id!r} is on the floor", ref=msg.id
            )
        if msg.available and not cso.connected:
            raise ProtocolError(
                ErrorCode.CONFLICT, "that officer is disconnected; they resume on return",
                ref=msg.id,
            )  # fmt: skip
        if msg.available == (not cso.paused):
            self._send(who.subject, Ack(reply_to=msg.id))
            return
        self._audit(who, "cso.resumed" if msg.available else "cso.paused", cso_id=cso.cso_id)
        self._send(who.subject, Ack(reply_to=msg.id))
        self._set_paused(cso, not msg.available)
        if cso.connected:
            self._send(
                cso.cso_id,
                AvailabilityChanged(available=msg.available, by=who.display_name),
            )

    def _supervisor_end(self: FloorCore, who: Principal, msg: EndSession) -> None:
        record = self.sessions.get(msg.session_id)
        self._check(who, Action.SESSION_STEER, self._steer_facts(record), msg.id)
        assert record is not None
        live = record.live
        decisions = self._dispatch(lambda now: self.dispatcher.release(live.booth_id, now), msg.id)
        self._audit(who, "session.ended_by_supervisor", claim_id=live.claim_id,
                    session_id=live.session_id, booth_id=live.booth_id,
                    cso_id=live.cso_id)  # fmt: skip
        self._send(who.subject, Ack(reply_to=msg.id))
        self._apply(decisions, "supervisor_ended")

    # --- links ------------------------------------------------------------------------------

    def _open_link(self: FloorCore, who: Principal, msg: OpenLink) -> None:
        record = self.sessions.get(msg.session_id)
        self._check(who, Action.SESSION_MONITOR, self._steer_facts(record), msg.id)
        assert record is not None
        live = record.live
        peer_id = live.booth_id if msg.kind == "monitor" else live.cso_id
        peer = self.booths.get(peer_id) if msg.kind == "monitor" else self.csos.get(peer_id)
        if peer is None or not peer.connected:
            raise ProtocolError(
                ErrorCode.PEER_UNAVAILABLE, "that end is reconnecting; try again", ref=msg.id
            )
        for link in self.links.values():
            if (link.supervisor.subject, link.session_id, link.kind) == (
                who.subject, live.session_id, msg.kind
            ):  # fmt: skip
                raise ProtocolError(
                    ErrorCode.CONFLICT, f"already {msg.kind}ing that session", ref=msg.id
                )
        link = Link(f"lk{self._new_id()}", msg.kind, live.session_id, who, peer_id, live.claim_id)
        self.links[link.link_id] = link
        self._audit(who, f"{msg.kind}.started", claim_id=live.claim_id,
                    session_id=live.session_id, link_id=link.link_id)  # fmt: skip
        self._send(who.subject, Ack(reply_to=msg.id))
        for end, offerer in (
            (who.subject, msg.kind == "whisper"),
            (peer_id, msg.kind == "monitor"),
        ):
            self._send(
                end,
                LinkOpened(
                    link_id=link.link_id,
                    kind=msg.kind,
                    session_id=live.session_id,
                    offerer=offerer,
                    supervisor_name=who.display_name,
                    ice_servers=views.ice_servers(self, end),
                ),
            )
        if msg.kind == "monitor":
            self._tell_monitored(live.session_id)

    def _close_link_request(self: FloorCore, who: Principal, msg: CloseLink) -> None:
        link = self.links.get(msg.link_id)
        if link is None or link.supervisor.subject != who.subject:
            raise ProtocolError(ErrorCode.NOT_IN_SESSION, "no such link of yours", ref=msg.id)
        self._send(who.subject, Ack(reply_to=msg.id))
        self._close_link(link, "closed")

    def _close_link(self: FloorCore, link: Link, reason: str) -> None:
        if self.links.pop(link.link_id, None) is None:
            return
        # Audited before anyone hears of it: what a peer was told has been recorded.
        self._audit(link.supervisor, f"{link.kind}.stopped", claim_id=link.claim_id,
                    session_id=link.session_id, link_id=link.link_id, reason=reason)  # fmt: skip
        closed = LinkClosed(link_id=link.link_id, reason=reason)  # type: ignore[arg-type]
        if link.supervisor.subject in self.supervisors:
            self._send(link.supervisor.subject, closed)
        if self._end_connected(link, link.peer_id):
            self._send(link.peer_id, closed)
        if link.kind == "monitor":
            self._tell_monitored(link.session_id)

    def _close_links(
        self: FloorCore, *, session_id: str | None = None, peer_id: str | None = None
    ) -> None:
        reason = "session_ended" if session_id else "peer_gone"
        for link in list(self.links.values()):
            if link.session_id == session_id or link.peer_id == peer_id:
                self._close_link(link, reason)

    def monitored(self: FloorCore, session_id: str) -> bool:
        return any(
            lk.kind == "monitor" and lk.session_id == session_id for lk in self.links.values()
        )

    def _tell_monitored(self: FloorCore, session_id: str) -> None:
        """The CSO sees a "monitored" mark, if the agency chose to show it."""
        record = self.sessions.get(session_id)
        if record is None or not self.config.monitor_visible_to_cso:
            return
        cso = self.csos.get(record.live.cso_id)
        booth = self.booths.get(record.live.booth_id)
        if cso is not None and cso.connected and booth is not None:
            self._send(
                cso.cso_id,
                SessionUpdate(
                    session_id=session_id,
                    state=record.live.state,
                    booth_connected=booth.connected,
                    monitored=self.monitored(session_id),
                ),
            )

    def _relay_link(
        self: FloorCore,
        sender: Principal,
        msg: Offer | Answer | Candidate,
        received_at: float | None,
        raw: str | None = None,
    ) -> None:
        link = self.links[msg.session_id]
        if not link.has_end(sender.subject) or (
            sender.role is AccountRole.SUPERVISOR) != (sender.subject == link.supervisor.subject
        ):  # fmt: skip
            raise ProtocolError(ErrorCode.NOT_IN_SESSION, "you are not an end of that link")
        target = link.other_end(sender.subject)
        if not self._end_connected(link, target):
            raise ProtocolError(ErrorCode.PEER_UNAVAILABLE, "the other end is not connected")
        self._send(target, msg, received_at, raw)

    def _end_connected(self: FloorCore, link: Link, end_id: str) -> bool:
        if end_id == link.supervisor.subject:
            return end_id in self.supervisors
        peer = self.booths.get(end_id) if link.kind == "monitor" else self.csos.get(end_id)
        return peer is not None and peer.connected
