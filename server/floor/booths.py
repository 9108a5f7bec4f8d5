"""Booths and their sessions: a part of the floor core.

It owns every `BoothRecord` (a kiosk's socket and its participant's visit) and every
`SessionRecord` (a booth with an officer, from the offer to the end), and the small
indexes beside them: booths whose socket is gone (for their grace deadlines) and which
booth holds which participant (one participant, one booth).

Each booth's progress is its `BoothSession` state machine (signaling.session); every
transition goes through `transition()`, which keeps the session's live record (what other
processes and the records API see) in step and emits it.

Who may hold a participant is keyed by a keyed hash of who they are (the NIK of a walk-in,
or the booking code), never the NIK itself: the floor's state is snapshotted into Redis,
and it needs to recognise a participant, not to know them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

from server.domain.privacy import mask_nik
from server.floor.effects import DeleteSession, PersistSession
from server.floor.model import (
    MAX_EXTRA_FINGERPRINTS,
    MAX_PRINTS_PER_DESCRIPTION,
    BoothRecord,
    SessionRecord,
)
from server.floor.step import Step
from server.ports.live_state import LiveSession
from server.principal import Principal
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import CheckIn, ClaimSummary, TicketRef, WalkInRef
from signaling.session import IllegalTransition, SessionEvent, SessionState

S = SessionState


def claim_summary(message: CheckIn, claim_id: str | None) -> ClaimSummary:
    claim = message.claim
    assert not isinstance(claim, TicketRef), "a ticket's claim comes from the lobby"
    if isinstance(claim, WalkInRef):
        return ClaimSummary(
            kind="walk_in",
            claim_id=claim_id,
            claim_type=claim.claim_type,
            nik_masked=mask_nik(claim.nik),
        )
    return ClaimSummary(kind="booking", claim_id=claim_id, booking_code=claim.booking_code)


class BoothSessions:
    def __init__(self) -> None:
        self.records: dict[str, BoothRecord] = {}
        self.sessions: dict[str, SessionRecord] = {}
        # Booths whose socket is gone, so deadlines need not scan every booth per event.
        self.away: set[str] = set()
        # participant key -> the booth holding it; an entry lives exactly as long as the
        # booth holds that participant (released with the visit), so the map is bounded
        # by the booths on the floor.
        self.holders: dict[str, str] = {}

    # --- who the participant is -----------------------------------------------------------

    @staticmethod
    def participant_keys(secret: bytes, message: CheckIn, claim_id: str | None = None) -> list[str]:
        claim = message.claim
        if isinstance(claim, WalkInRef):
            who = f"walk_in:{claim.nik}:{claim.claim_type}"
        elif isinstance(claim, TicketRef):
            who = f"ticket:{claim.number}"
        else:
            who = f"booking:{claim.booking_code}"
        keys = [who] + ([f"claim:{claim_id}"] if claim_id else [])
        return [hmac.new(secret, k.encode(), hashlib.sha256).hexdigest()[:32]
                for k in keys]  # fmt: skip

    def refuse_if_elsewhere(self, rec: BoothRecord, keys: list[str], ref: str) -> None:
        """One participant, one booth."""
        for key in keys:
            holder_id = self.holders.get(key)
            if holder_id is not None and holder_id != rec.booth_id:
                raise ProtocolError(
                    ErrorCode.CLAIM_REFUSED,
                    f"this claim is already checked in at booth {holder_id}",
                    ref=ref,
                )

    def hold(self, rec: BoothRecord, keys: list[str]) -> None:
        for key in keys:
            self.holders[key] = rec.booth_id
        rec.holds = tuple(dict.fromkeys((*rec.holds, *keys)))

    def release(self, rec: BoothRecord) -> None:
        for key in rec.holds:
            if self.holders.get(key) == rec.booth_id:
                del self.holders[key]
        rec.holds = ()

    # --- booth records --------------------------------------------------------------------

    def get(self, booth_id: str) -> BoothRecord | None:
        return self.records.get(booth_id)

    def add(self, principal: Principal, connection: str, new_token: str) -> BoothRecord:
        rec = BoothRecord(principal, new_token, connection)
        self.records[principal.subject] = rec
        return rec

    def forget(self, rec: BoothRecord) -> None:
        self.release(rec)
        self.records.pop(rec.booth_id, None)
        self.away.discard(rec.booth_id)

    def went_away(self, rec: BoothRecord, deadline: float | None) -> None:
        """Its socket is gone (deadline None: nothing to hold, it is forgotten)."""
        rec.connection = None
        if rec.pending is not None:  # a check-in in flight dies with its socket
            rec.pending = None
            if rec.state is S.IDLE:
                self.release(rec)
        rec.lost_deadline = deadline
        if deadline is not None:
            self.away.add(rec.booth_id)

    def came_back(self, rec: BoothRecord, principal: Principal, connection: str) -> None:
        rec.connection = connection
        rec.principal = principal
        rec.lost_deadline = None
        self.away.discard(rec.booth_id)
        # A check-in in flight belonged to the old socket; the welcome says idle, so the
        # kiosk sends it again (the records find the same claim).
        if rec.pending is not None:
            rec.pending = None
            if rec.state is S.IDLE:
                self.release(rec)
        rec.reconnects += 1

    def next_deadline(self) -> float | None:
        deadlines = []
        for booth_id in list(self.away):
            rec = self.records.get(booth_id)
            if rec is None or rec.lost_deadline is None:
                self.away.discard(booth_id)
            else:
                deadlines.append(rec.lost_deadline)
        return min(deadlines, default=None)

    def overdue(self, now: float) -> list[BoothRecord]:
        due = [self.records[b] for b in sorted(self.away) if b in self.records]
        return [b for b in due if b.lost_deadline is not None and b.lost_deadline <= now]

    def transition(self, step: Step, rec: BoothRecord, event: SessionEvent) -> None:
        try:
            rec.machine.handle(event)
        except IllegalTransition as exc:  # pragma: no cover - the property test hunts these
            raise AssertionError(f"floor bookkeeping broke for {rec.booth_id}: {exc}") from exc
        record = self.sessions.get(rec.session_id or "")
        if record is not None and record.live.state is not rec.state:
            record.live = record.live.with_state(rec.state)
            record.state_since = step.now.wall
            step.effects.append(PersistSession(record.live))

    # --- sessions -------------------------------------------------------------------------

    def open_session(
        self, step: Step, rec: BoothRecord, cso_id: str, expires_at: float
    ) -> SessionRecord:
        session_id = step.new_id()
        rec.session_id = session_id
        live = LiveSession(
            session_id,
            rec.booth_id,
            cso_id,
            S.RESERVED,
            step.now.wall,
            claim_id=rec.claim.claim_id if rec.claim else None,
        )
        record = SessionRecord(live, offer_expires_at=expires_at, state_since=step.now.wall)
        self.sessions[session_id] = record
        step.effects.append(PersistSession(live))
        return record

    def drop_session(self, step: Step, session_id: str) -> SessionRecord | None:
        record = self.sessions.pop(session_id, None)
        if record is not None:
            step.effects.append(DeleteSession(session_id))
        return record

    def of_claim(self, claim_id: str) -> SessionRecord | None:
        for rec in self.records.values():
            if rec.session_id and rec.claim and rec.claim.claim_id == claim_id:
                return self.sessions.get(rec.session_id)
        return None

    def description(
        self, step: Step, record: SessionRecord, from_booth: bool, prints: tuple[str, ...],
        ref: str, cap: int,
    ) -> tuple[str, ...]:  # fmt: skip
        """An offer or answer between the two ends: counted (at most `cap` per session),
        and its DTLS fingerprints checked. The first offer/answer of each end fixes that
        end's fingerprints (the outcome's evidence); a renegotiation with other
        certificates adds them (at most MAX_EXTRA_FINGERPRINTS lines per session). Returns the
        fingerprints added, to be audited; raises, and nothing is relayed, beyond a cap."""
        if record.descriptions >= cap:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"this session has carried {cap} offers and answers; end it and start again",
                ref=ref,
            )
        record.descriptions += 1
        if not prints:
            return ()
        live = record.live
        first = live.booth_fingerprints if from_booth else live.cso_fingerprints
        if len(prints) > MAX_PRINTS_PER_DESCRIPTION:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE,
                f"at most {MAX_PRINTS_PER_DESCRIPTION} DTLS fingerprints in one description",
                ref=ref,
            )
        if not first:
            record.live = (
                replace(live, booth_fingerprints=prints) if from_booth
                else replace(live, cso_fingerprints=prints)
            )  # fmt: skip
            step.effects.append(PersistSession(record.live))
            return ()
        known = record.extra_fingerprints
        new = tuple(dict.fromkeys(p for p in prints if p not in first and p not in known))
        if not new:
            return ()
        if len(known) + len(new) > MAX_EXTRA_FINGERPRINTS:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"at most {MAX_EXTRA_FINGERPRINTS} new DTLS fingerprint lines per session",
                ref=ref,
            )
        record.extra_fingerprints = known | frozenset(new)
        return new
