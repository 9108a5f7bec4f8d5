"""The coordinator's front of house: how the lobby (lobby.py) and the booths meet.

A mixin of `FloorCore` (core.py), kept apart so the floor stage reads as it did: it routes
the desk's requests and the lobby's timers, and connects the two stages by plain data:
- a booth that becomes free (connected, idle, nothing pending, no ticket called to it) is
  offered to its branch's lobby, which calls the next ticket to it: the booth is told
  (`ticket_called`), the display is told (`display_call`, on the branch's display topic,
  with the spoken call's URL), and the call is recorded;
- a participant who types the called number at the booth checks in with the claim typed
  when the ticket was issued (`_begin_visit`, the same path a booking code takes), and the
  floor stage (dispatcher, officers) goes on from there unchanged;
- a call that runs out frees the booth for the next ticket at once (the missed ticket is
  recalled first in line, then recycled, then a no-show: lobby.py states the rules).
Every step of a visit is recorded (`Step.record`): the lobby's ticket steps and the floor
stage's milestones below (`checked_in`, `assigned`, `session_ended`, `visit_ended`).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from server.domain.access import AccessFacts, Action
from server.domain.speech import speech_url
from server.floor import views
from server.floor.booths import BoothSessions
from server.floor.effects import ResolveTicket
from server.floor.events import DisplayOpened, TicketClaimRefused, TicketClaimResolved
from server.floor.lobby import (
    Lobby,
    PendingTicket,
    Ticket,
    TicketStep,
    choose_category,
    normalise_number,
)
from server.floor.model import BoothRecord, PeerKey, SessionRecord, supervisor_key
from server.floor.step import Step
from server.principal import Principal
from signaling.codec import error_reply
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Ack,
    CalledTicket,
    CheckIn,
    ClaimSummary,
    DisplayCall,
    DisplayCallView,
    IssueTicket,
    TicketAction,
    TicketCalled,
    TicketIssued,
    TicketRef,
    TicketWithdrawn,
)
from signaling.session import SessionState

if TYPE_CHECKING:
    from server.floor.core import FloorConfig

S = SessionState
PENDING_TIMEOUT = 60.0  # seconds a ticket's claim lookup may take before it is dropped
WITHDRAWN = {
    TicketStep.MISS: "missed",
    TicketStep.RECYCLE: "recycled",
    TicketStep.NO_SHOW: "no_show",
}


def display_topic(branch: str) -> str:
    """The pub/sub topic a branch's displays listen on (matched by the cluster routers'
    `floor*` pattern, like supervisors' topics)."""
    return f"floor.display:{branch}"


class FrontOfHouse:
    # Provided by FloorCore.
    config: FloorConfig
    _booths: BoothSessions
    _lobby: Lobby
    if TYPE_CHECKING:

        @property
        def _out(self) -> Step: ...

        def _check(self, who: Principal, action: Action, facts: AccessFacts, ref: str) -> None: ...
        def _begin_visit(
            self, rec: BoothRecord, msg: CheckIn, claim: ClaimSummary, keys: list[str],
            *, priority: int, visit_id: str, ticket: str | None = None,
        ) -> None: ...  # fmt: skip
        def connected(self, key: PeerKey) -> bool: ...

    # --- the read model -------------------------------------------------------------------

    @property
    def lobby(self) -> Lobby:
        return self._lobby

    def is_free(self, rec: BoothRecord) -> bool:
        """A booth the lobby may call a ticket to."""
        return (
            rec.connected
            and rec.state is S.IDLE
            and rec.pending is None
            and self._lobby.called_to(rec.booth_id) is None
        )

    # --- the desk -------------------------------------------------------------------------

    def _issue_ticket(self, who: Principal, msg: IssueTicket) -> None:
        branch = msg.branch or who.branch
        self._check(who, Action.TICKET_DESK, AccessFacts(claim_branch=branch), msg.id)
        request = PendingTicket(
            f"{who.subject}:{msg.id}", who, branch, msg.priority, msg.language,
            self._out.now.mono, msg,
        )  # fmt: skip
        try:
            self._lobby.ask(request, self.config.lobby)
        except ProtocolError as exc:
            exc.ref = msg.id
            raise
        self._out.effects.append(ResolveTicket(who, branch, msg))

    def _ticket_claim_resolved(self, ev: TicketClaimResolved) -> None:
        out, cfg = self._out, self.config.lobby
        request = self._lobby.pending.pop(f"{ev.issuer.subject}:{ev.request.id}", None)
        if request is None:
            return  # dropped (too late): the desk was told to try again
        try:
            holder = self._lobby.holder_of_claim(ev.claim_id)
            if holder is not None:
                raise ProtocolError(
                    ErrorCode.CONFLICT, f"this claim already holds ticket {holder.number}"
                )
            if self._booths.holders.get(self._claim_key(ev.claim_id)):
                raise ProtocolError(ErrorCode.CONFLICT, "this claim is being served at a booth")
            category = choose_category(cfg, priority=request.priority, booking=ev.booking,
                                       appointment=ev.appointment, now=out.now.wall)  # fmt: skip
        except ProtocolError as exc:
            exc.ref = ev.request.id
            self._tell_desk(ev.issuer, error_reply(exc))
            return
        claim = ev.claim.model_copy(update={"claim_id": ev.claim_id})
        ticket = self._lobby.issue(out, request, category, ev.claim_id, claim, cfg)
        view = self._lobby.view(ticket, out.now.wall)
        ahead = self._lobby.position(ticket)
        self._tell_desk(
            ev.issuer,
            TicketIssued(reply_to=ev.request.id, ticket=view, ahead=ahead,
                         estimated_wait_s=views.lobby_estimate(self, ticket.branch)),  # type: ignore[arg-type]
        )  # fmt: skip
        out.event("ticket_issued", branch=ticket.branch, detail=ticket.number)
        out.dirty()
        self._call_free_booths(ticket.branch)

    def _ticket_claim_refused(self, ev: TicketClaimRefused) -> None:
        if self._lobby.pending.pop(f"{ev.issuer.subject}:{ev.request.id}", None) is None:
            return
        refusal = ProtocolError(ev.code, ev.message, ref=ev.request.id)
        self._tell_desk(ev.issuer, error_reply(refusal))

    def _tell_desk(self, issuer: Principal, message: TicketIssued | object) -> None:
        key = supervisor_key(issuer.subject)
        if self.connected(key):
            self._out.send(key, message)  # type: ignore[arg-type]

    def _ticket_action(self, who: Principal, msg: TicketAction) -> None:
        out, cfg = self._out, self.config.lobby
        ticket = self._lobby.tickets.get(msg.ticket_id)
        branch = ticket.branch if ticket else None
        self._check(who, Action.TICKET_DESK, AccessFacts(claim_branch=branch), msg.id)
        if ticket is None:
            raise ProtocolError(ErrorCode.CONFLICT, "no such ticket is waiting", ref=msg.id)
        if msg.action == "recall":
            if ticket.booth_id is None:
                raise ProtocolError(
                    ErrorCode.ILLEGAL_TRANSITION, "only a called ticket is recalled", ref=msg.id
                )
            call = self._lobby.recall(out, ticket, who.subject, cfg)
            out.send(supervisor_key(who.subject), Ack(reply_to=msg.id))
            self._announce(ticket, call)
        elif msg.action == "transfer":
            category = msg.category or ticket.category
            to = msg.branch or ticket.branch
            if cfg.category(category) is None:
                raise ProtocolError(
                    ErrorCode.INVALID_MESSAGE, f"no ticket category {category!r}", ref=msg.id
                )
            self._check(who, Action.TICKET_DESK, AccessFacts(claim_branch=to), msg.id)
            if (category, to) == (ticket.category, ticket.branch):
                raise ProtocolError(ErrorCode.CONFLICT, "it is there already", ref=msg.id)
            was = ticket.branch
            booth = self._lobby.transfer(out, ticket, category, to, who.subject)
            out.send(supervisor_key(who.subject), Ack(reply_to=msg.id))
            self._withdrawn(booth, ticket.number, "transferred")
            self._call_free_booths(to)
            if was != to:
                self._call_free_booths(was)
        else:
            number = ticket.number
            booth = self._lobby.cancel(out, ticket, who.subject, msg.reason or "cancelled")
            out.send(supervisor_key(who.subject), Ack(reply_to=msg.id))
            self._withdrawn(booth, number, "cancelled")
        out.dirty()

    # --- calling --------------------------------------------------------------------------

    def _call_free_booths(self, branch: str, skip: str | None = None) -> None:
        """Call waiting tickets of `branch` to its free booths (in booth id order)."""
        if not self._lobby.has_waiting(branch):
            return
        booths = sorted(
            (b for b in self._booths.records.values() if b.principal.branch == branch),
            key=lambda b: b.booth_id,
        )
        for rec in booths:
            if not self._lobby.has_waiting(branch):
                return
            if self.is_free(rec):
                self._call_to(rec, skip)

    def _booth_maybe_free(self, rec: BoothRecord, skip: str | None = None) -> None:
        if self.is_free(rec) and self._lobby.has_waiting(rec.principal.branch):
            self._call_to(rec, skip)

    def _call_to(self, rec: BoothRecord, skip: str | None = None) -> None:
        """Call the next ticket to this free booth. `skip`: a ticket that just missed its
        call here; another goes first (the booth is not held for it), unless none waits."""
        lobby, cfg, out = self._lobby, self.config.lobby, self._out
        ticket = lobby.next_for(rec.principal.branch, out.now.wall, cfg, skip=skip)
        if ticket is None:
            return
        call = lobby.call(out, ticket, rec.booth_id, rec.principal.display_name, cfg)
        self._announce(ticket, call)
        out.event("ticket_called", branch=ticket.branch, booth_id=rec.booth_id,
                  detail=ticket.number)  # fmt: skip
        out.dirty()

    def _announce(self, ticket: Ticket, call: DisplayCallView) -> None:
        """The booth's screen, the waiting room's display and voice."""
        out = self._out
        booth = self._booths.get(ticket.booth_id or "")
        if booth is not None and booth.connected:
            out.send(booth.key, TicketCalled(ticket=self._called_ticket(ticket)))
        url = speech_url(call.spoken, self.config.speech_key)
        out.publish(display_topic(ticket.branch), DisplayCall(branch=ticket.branch, call=call,
                                                              audio_url=url))  # fmt: skip

    def _called_ticket(self, ticket: Ticket) -> CalledTicket:
        left = (ticket.deadline or 0.0) - self._out.now.mono
        return CalledTicket(number=ticket.number, expires_in=max(0.0, left), calls=ticket.calls)

    def called_ticket_of(self, booth_id: str, now_mono: float) -> CalledTicket | None:
        """For the booth's welcome (views)."""
        ticket = self._lobby.called_to(booth_id)
        if ticket is None:
            return None
        left = (ticket.deadline or 0.0) - now_mono
        return CalledTicket(number=ticket.number, expires_in=max(0.0, left), calls=ticket.calls)

    def _withdrawn(self, booth_id: str | None, number: str, reason: str) -> None:
        rec = self._booths.get(booth_id or "")
        if rec is None:
            return
        if rec.connected:
            self._out.send(rec.key, TicketWithdrawn(number=number, reason=reason))  # type: ignore[arg-type]
        self._booth_maybe_free(rec)

    # --- at the booth ---------------------------------------------------------------------

    def _refuse_unless_ticket(self, rec: BoothRecord, msg: CheckIn) -> bool:
        """A booth a ticket is called to takes only that ticket; True: `msg` confirms it
        (and the visit has begun)."""
        called = self._lobby.called_to(rec.booth_id)
        if not isinstance(msg.claim, TicketRef):
            if called is not None:
                raise ProtocolError(
                    ErrorCode.CONFLICT,
                    f"this booth is called for ticket {called.number}; please take a ticket "
                    "at the desk",
                    ref=msg.id,
                )
            return False
        if called is None:
            raise ProtocolError(
                ErrorCode.ILLEGAL_TRANSITION, "no ticket is called to this booth now", ref=msg.id
            )
        if normalise_number(msg.claim.number) != called.number:
            raise ProtocolError(
                ErrorCode.TICKET_MISMATCH,
                f"this booth called another number; check the ticket ({msg.claim.number})",
                ref=msg.id,
            )
        keys = [self._claim_key(called.claim_id)] if called.claim_id else []
        self._booths.refuse_if_elsewhere(rec, keys, msg.id)
        self._lobby.confirm(self._out, called)
        self._out.event("ticket_served", branch=called.branch, booth_id=rec.booth_id,
                        detail=called.number)  # fmt: skip
        summary = replace_claim(called.claim, called.claim_id)
        msg = msg.model_copy(update={"language": called.language})
        self._begin_visit(rec, msg, summary, keys, priority=called.priority,
                          visit_id=called.ticket_id, ticket=called.ticket_id)  # fmt: skip
        return True

    def _claim_key(self, claim_id: str) -> str:
        """The participants' index key of a claim (booths.py: a keyed hash, as a booking
        code's or a walk-in's)."""
        key = f"claim:{claim_id}".encode()
        return hmac.new(self.config.participant_key, key, hashlib.sha256).hexdigest()[:32]

    def _release_ticket_of(self, rec: BoothRecord, why: str) -> None:
        """The booth is going away with a ticket called to it: the ticket goes back to its
        place (no fault of the participant's) and to another free booth."""
        ticket = self._lobby.called_to(rec.booth_id)
        if ticket is None:
            return
        self._lobby.release(self._out, ticket, why)
        self._out.dirty()
        self._call_free_booths(ticket.branch, skip=None)

    # --- time -----------------------------------------------------------------------------

    def _lobby_timer(self) -> None:
        out, cfg = self._out, self.config.lobby
        for key, pending in list(self._lobby.pending.items()):
            if out.now.mono - pending.ordered_at >= PENDING_TIMEOUT:
                del self._lobby.pending[key]
        for ticket in self._lobby.overdue(out.now.mono):
            number = ticket.number
            gone = self._lobby.time_out(out, ticket, cfg)
            kind = "ticket_no_show" if gone.outcome is TicketStep.NO_SHOW else "ticket_missed"
            out.event(kind, branch=ticket.branch, booth_id=gone.booth_id, detail=number)
            out.dirty()
            rec = self._booths.get(gone.booth_id)
            if rec is not None and rec.connected:
                out.send(rec.key, TicketWithdrawn(number=number,
                                                  reason=WITHDRAWN[gone.outcome]))  # type: ignore[arg-type]  # fmt: skip
            if rec is not None:
                self._booth_maybe_free(rec, skip=ticket.ticket_id)
            self._call_free_booths(ticket.branch, skip=ticket.ticket_id)

    def _lobby_deadline(self) -> float | None:
        deadlines = [self._lobby.next_deadline()]
        deadlines += [p.ordered_at + PENDING_TIMEOUT for p in self._lobby.pending.values()]
        return min((d for d in deadlines if d is not None), default=None)

    def _publish_displays(self, only: set[str] | None = None) -> None:
        """The branches' display states whose lobby changed (or `only` these)."""
        branches = only if only is not None else set(self._lobby.changed)
        if only is None:
            self._lobby.changed.clear()
        if not branches:
            return
        booths = views.branch_booths(self, branches)  # type: ignore[arg-type]
        for branch in sorted(branches):
            state = views.display_state(self, branch, booths.get(branch))  # type: ignore[arg-type]
            self._out.publish(display_topic(branch), state)

    def _display_opened(self, ev: DisplayOpened) -> None:
        self._publish_displays({ev.branch})

    # --- the floor stage's milestones -----------------------------------------------------

    def _milestone(
        self, kind: str, booth: BoothRecord | None, *, record: SessionRecord | None = None,
        detail: str | None = None,
    ) -> None:  # fmt: skip
        if booth is None or booth.visit_id is None:
            return
        live = record.live if record is not None else None
        self._out.record(
            kind,
            branch=booth.principal.branch,
            visit_id=booth.visit_id,
            ticket_id=booth.ticket_id,
            booth_id=booth.booth_id,
            cso_id=live.cso_id if live else None,
            session_id=live.session_id if live else None,
            claim_id=booth.claim.claim_id if booth.claim else None,
            detail=detail,
        )

    def _visit_over(self, booth: BoothRecord, reason: str) -> None:
        """The participant left the booth: recorded, the visit's length feeds the lobby's
        estimate, and the booth calls the next ticket if it is free."""
        if booth.visit_id is not None:
            self._milestone("visit_ended", booth, detail=reason)
            self._lobby.visit_took(booth.principal.branch, self._out.now.wall - booth.checked_in_at)
        booth.visit_id = booth.ticket_id = None


def replace_claim(claim: ClaimSummary, claim_id: str | None) -> ClaimSummary:
    return claim.model_copy(update={"claim_id": claim_id}) if claim_id else claim
