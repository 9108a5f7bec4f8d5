"""Sessions recorded as evidence: the use cases behind /api/recordings and `loket recording`.

The rules are in server/domain/recording.py (pure); rows behind
server/adapters/sql/recordings.py; segment bytes in server/adapters/recording_files.py,
encrypted like document pictures. Who may do what is the one access policy's
(server/domain/access.py: RECORDING_WRITE, RECORDING_PLAY, RECORDING_LIST, LEGAL_HOLD).
Here: the order of things, and the audit entry that goes with each change and each read.

A booth writes its own session's recording: opened at the call's start (the consent in
the same transaction, audited), segments as they are sealed, closed at the end (the
manifest's SHA-256 into the audit chain). A recording grant (server/domain/grants.py, kind
`recording`) lets the kiosk go on delivering after the session ended or the kiosk
restarted. Supervisors of the claim's branch and auditors find, play, verify and export
recordings; every playback and export is audited. Operators place legal holds, which the
retention purge respects.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import hashlib
import hmac
import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from server.adapters.recording_files import SegmentFiles, SegmentMissing, SegmentUnreadable
from server.adapters.sql.recordings import (
    Hold,
    RecordingFilter,
    RecordingRecord,
    RecordingTx,
    SqlRecordingStore,
)
from server.auth.secrets import load_or_create_jwt_secret
from server.domain.access import AccessDecision, AccessFacts, Action, Reach, decide
from server.domain.audit import AuditEntry, canonical_json, entry_fields, verify_chain
from server.domain.grants import CaptureGrant, GrantError, sign, verify
from server.domain.privacy import mask_nik
from server.domain.recording import (
    AuditedEvent,
    ConsentAnswer,
    Ending,
    Facts,
    Limits,
    RecordingError,
    RecordingEvent,
    RecordingState,
    Segment,
    SegmentProblem,
    accept_segment,
    build_manifest,
    check_segment,
    check_segments,
    manifest_bytes,
    manifest_sha256,
    missing_segments,
    segment_file,
    timeline,
    transition,
    within_budget,
)
from server.ports.records import AuditDraft
from server.principal import AccountRole, Principal
from server.records import RecordsError, RecordsService, idempotency_owner, refused, request_hash
from server.records import session_facts as live_facts
from server.settings import Settings
from signaling.messages import BookingRef, TicketRef, WalkInRef

log = structlog.get_logger("loket.recordings")

GRANT_KIND = "recording"
PLAYBACK_PREFIX = "lpb1"
WEBM_MAGIC = b"\x1a\x45\xdf\xa3"  # EBML: every WebM file begins with it
SYSTEM = Principal("retention", AccountRole.OPERATOR, "retention purge", "")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds")


def _draft(who: Principal, action: str, **fields: Any) -> AuditDraft:
    return AuditDraft(actor=who.subject, role=str(who.role), action=action, **fields)


def from_domain(exc: RecordingError) -> RecordsError:
    return RecordsError(exc.status, exc.code, exc.message)


@dataclass(frozen=True)
class OpenRequest:
    session_id: str
    claim_id: str
    consent: dict[str, Any]  # answer, answered_at (unix), language, text_sha256
    media: dict[str, Any]
    started_at: float  # unix, kiosk clock: the recording's 0


@dataclass(frozen=True)
class SegmentDeclared:
    """What a kiosk says of a segment before its bytes (and of its own backlog, clock)."""

    segment: Segment
    pending_bytes: int = 0
    clock_offset_s: float | None = None
    clock_rtt_s: float | None = None


@dataclass
class PurgeReport:
    purged: list[str] = field(default_factory=list)  # recording ids
    held: list[str] = field(default_factory=list)  # skipped: their claim is on legal hold
    files: int = 0


@dataclass(frozen=True)
class Verification:
    recording_id: str
    session_id: str
    state: str
    manifest_sha256: str | None
    chain_seq: int | None
    segments: int
    problems: list[str]
    segment_problems: list[SegmentProblem]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.segment_problems

    def to_json(self) -> dict[str, Any]:
        return {
            "recording_id": self.recording_id,
            "session_id": self.session_id,
            "state": self.state,
            "ok": self.ok,
            "manifest_sha256": self.manifest_sha256,
            "chain_seq": self.chain_seq,
            "segments": self.segments,
            "problems": self.problems,
            "segment_problems": [
                {"seq": p.seq, "fault": str(p.fault), "message": p.message}
                for p in self.segment_problems
            ],
            "notes": self.notes,
        }


class RecordingsService:
    def __init__(
        self,
        settings: Settings,
        store: SqlRecordingStore,
        files: SegmentFiles,
        records: RecordsService,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.files = files
        self.records = records
        self._now = clock
        self.limits = Limits(
            max_segment_bytes=settings.max_recording_segment_bytes,
            max_recording_bytes=settings.max_recording_bytes,
        )
        # Told of what an operator must see (the API counts them in /metrics).
        self.on_failure: Callable[[str, str], None] = lambda where, reason: None

    # --- keys ------------------------------------------------------------------------

    @functools.cached_property
    def _playback_key(self) -> bytes:
        secret = load_or_create_jwt_secret(self.settings)
        return hmac.new(secret.encode(), b"loket recording playback v1", hashlib.sha256).digest()

    def _grant(self, rec: RecordingRecord) -> tuple[str, str]:
        issued = int(self._now().timestamp())
        grant = CaptureGrant(
            rec.booth_id,
            rec.claim_id,
            GRANT_KIND,
            rec.recording_id,
            rec.session_id,
            issued,
            issued + self.settings.recording_grant_ttl,
        )
        expires = datetime.fromtimestamp(grant.expires_at, UTC).isoformat()
        return sign(grant, self.records.grant_key), expires

    def playback_token(self, who: Principal, recording_id: str) -> str:
        expires = int(time.time()) + self.settings.recording_playback_ttl
        body = f"{who.subject}.{recording_id}.{expires}"
        mac = hmac.new(self._playback_key, body.encode(), hashlib.sha256).digest()
        return f"{PLAYBACK_PREFIX}.{body}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def _check_playback(self, who: Principal, recording_id: str, token: str | None) -> None:
        refused_ = RecordsError(
            403,
            "playback_required",
            "open the recording first (GET /api/recordings/{id}, audited) and use its "
            "segment links; they last a few hours",
        )
        if not token or len(token) > 256 or token.count(".") != 4:
            raise refused_
        prefix, subject, rid, expires, mac = token.split(".")
        body = f"{subject}.{rid}.{expires}"
        good = hmac.new(self._playback_key, body.encode(), hashlib.sha256).digest()
        given = base64.urlsafe_b64encode(good).decode().rstrip("=")
        if (
            prefix != PLAYBACK_PREFIX
            or not hmac.compare_digest(given, mac)
            or subject != who.subject
            or rid != recording_id
            or not expires.isdigit()
            or int(expires) < time.time()
        ):
            raise refused_

    # --- the booth: open, segments, close ---------------------------------------------

    async def _writer_check(
        self, booth: Principal, rec: RecordingRecord, grant_token: str | None
    ) -> None:
        """The booth may write this recording: it is the booth's, and its session is live
        (the booth its end) or the booth presents the recording's grant."""
        if booth.role is not AccountRole.BOOTH or booth.subject != rec.booth_id:
            raise RecordsError(404, "not_found", "no such recording")
        grant_booth = None
        if grant_token is not None:
            try:
                verify(
                    grant_token,
                    self.records.grant_key,
                    now=self._now().timestamp(),
                    booth_id=booth.subject,
                    claim_id=rec.claim_id,
                    kind=GRANT_KIND,
                    capture_id=rec.recording_id,
                )
                grant_booth = booth.subject
            except GrantError as exc:
                raise RecordsError(403, str(exc.problem), exc.message) from None
        live = await self.records.session_of_claim(rec.claim_id)
        if live is not None and live.session_id != rec.session_id:
            live = None
        facts = AccessFacts(session=live_facts(live), grant_booth=grant_booth)
        decision = decide(booth, Action.RECORDING_WRITE, facts)
        if not decision:
            raise refused(decision)

    async def open(self, booth: Principal, req: OpenRequest) -> dict[str, Any]:
        """The recording of `req.session_id` (created now, or the one created before: a
        retry), with a fresh grant. The consent's answer is audited with it."""
        existing = await self.store.by_session(req.session_id)
        if existing is not None:
            if existing.booth_id != booth.subject:
                raise RecordsError(404, "not_found", "no such session for this booth")
            return self._opened(existing)
        live = await self.records.session_of_claim(req.claim_id)
        if live is None or live.session_id != req.session_id:
            live = None
        decision = decide(booth, Action.RECORDING_WRITE, AccessFacts(session=live_facts(live)))
        if not decision:
            raise refused(decision)
        assert live is not None
        answer = ConsentAnswer(str(req.consent.get("answer")))
        now = self._now()
        recording_id = uuid.uuid4().hex

        def work(tx: RecordingTx) -> RecordingRecord:
            again = tx.by_session(req.session_id)
            if again is not None:
                return again
            claim = tx.claim(req.claim_id)
            if claim is None:
                raise RecordsError(404, "not_found", f"no claim {req.claim_id}")
            state = RecordingState.OPEN if answer is ConsentAnswer.GIVEN else RecordingState.REFUSED
            rec = RecordingRecord(
                recording_id=recording_id,
                session_id=req.session_id,
                claim_id=req.claim_id,
                booth_id=booth.subject,
                branch=claim.branch,
                officer_id=live.cso_id,
                officer_name=tx.officer_name(live.cso_id) or live.cso_id,
                state=str(state),
                consent=str(answer),
                consent_json=req.consent,
                media=req.media,
                started_at=req.started_at,
                opened_at=now,
                clock_offset_s=0.0,
                clock_rtt_s=None,
            )
            tx.insert(rec)
            details = {
                "recording_id": recording_id,
                "session_id": req.session_id,
                "booth_id": booth.subject,
                "language": str(req.consent.get("language")),
                "text_sha256": str(req.consent.get("text_sha256", "")),
                "answered_at": str(req.consent.get("answered_at_iso", "")),
            }
            tx.append_audit(
                _draft(
                    booth,
                    f"recording.consent_{answer}",
                    claim_id=req.claim_id,
                    decision=str(answer),
                    details=details,
                ),
                now,
            )
            if state is RecordingState.OPEN:
                tx.append_audit(
                    _draft(
                        booth,
                        "recording.started",
                        claim_id=req.claim_id,
                        details={
                            "recording_id": recording_id,
                            "session_id": req.session_id,
                            "officer_id": live.cso_id,
                        },
                    ),
                    now,
                )
            return rec

        rec = await self.store.write(work)
        log.info(
            "recording_opened",
            recording_id=rec.recording_id,
            session_id=rec.session_id,
            consent=rec.consent,
        )
        return self._opened(rec)

    def _opened(self, rec: RecordingRecord) -> dict[str, Any]:
        body: dict[str, Any] = {
            "recording_id": rec.recording_id,
            "session_id": rec.session_id,
            "state": rec.state,
            "consent": rec.consent,
            "server_time": time.time(),
            "segments_stored": rec.segments,
        }
        if rec.state == RecordingState.OPEN:
            body["grant"], body["grant_expires_at"] = self._grant(rec)
        return body

    async def consent_refused(
        self,
        booth: Principal,
        claim: BookingRef | WalkInRef | TicketRef,
        consent: dict[str, Any],
        key: str,
    ) -> tuple[int, dict[str, Any]]:
        """A participant refused before checking in (policy in_person): audited on the
        claim their reference finds (if any), the kiosk told where to send them."""
        if booth.role is not AccountRole.BOOTH:
            raise RecordsError(403, "forbidden", "consent is answered at a booth")
        digest = request_hash("consent_refused", claim.model_dump_json(), json.dumps(consent))
        now = self._now()
        policy = self.policy()

        def work(tx: Any) -> tuple[int, dict[str, Any]]:
            found = None
            reference: dict[str, Any] = {}
            if isinstance(claim, BookingRef):
                found = tx.find_claim_by_booking(claim.booking_code)
                reference = {"booking_code": claim.booking_code}
            elif isinstance(claim, WalkInRef):
                found = next(
                    (
                        c
                        for c in tx.find_claims_by_nik(claim.nik)
                        if c.kpj == claim.kpj and c.claim_type is claim.claim_type
                    ),
                    None,
                )
                reference = {"nik": mask_nik(claim.nik), "claim_type": str(claim.claim_type)}
            else:
                reference = {"ticket": claim.number}
            tx.append_audit(
                _draft(
                    booth,
                    "recording.consent_refused",
                    decision="refused",
                    claim_id=found.claim_id if found else None,
                    details={
                        "policy": policy["refusal"],
                        "booth_id": booth.subject,
                        "branch": booth.branch,
                        "reference": reference,
                        "language": str(consent.get("language")),
                        "text_sha256": str(consent.get("text_sha256", "")),
                        "answered_at": str(consent.get("answered_at_iso", "")),
                    },
                ),
                now,
            )
            return 201, {"recorded": True, **policy}

        stored = await self.records.store.idempotent(idempotency_owner(booth), key, digest, work)
        log.info("recording_consent_refused", booth_id=booth.subject, policy=policy["refusal"])
        return stored.status_code, stored.body

    def policy(self) -> dict[str, Any]:
        s = self.settings
        return {
            "refusal": s.recording_refusal,
            "directions": s.recording_directions,
            "retention_days": s.recording_retention_days,
            "retention_years": round(s.recording_retention_days / 365.25, 1),
        }

    async def _recording(self, recording_id: str) -> RecordingRecord:
        rec = await self.store.get(recording_id)
        if rec is None:
            raise RecordsError(404, "not_found", "no such recording")
        return rec

    async def declare_segment(
        self, booth: Principal, recording_id: str, grant: str | None, declared: SegmentDeclared
    ) -> Segment | None:
        """Everything a segment upload needs checked before its bytes are staged: the
        booth's right, the recording open, the segment's description. None: stored
        already (a retry), nothing more to send."""
        rec = await self._recording(recording_id)
        await self._writer_check(booth, rec, grant)
        try:
            seg = check_segment(declared.segment, self.limits)
        except RecordingError as exc:
            raise from_domain(exc) from None
        stored = await self.store.segments(recording_id)
        try:
            if not accept_segment(stored, seg):
                return None
            within_budget(rec.bytes, seg, self.limits)  # before its bytes are staged
            transition(RecordingState(rec.state), RecordingEvent.SEGMENT)
        except RecordingError as exc:
            raise from_domain(exc) from None
        await self.store.write(lambda tx: self._note_kiosk(tx, rec, declared))
        return seg

    def _note_kiosk(self, tx: RecordingTx, rec: RecordingRecord, told: SegmentDeclared) -> None:
        """The kiosk's backlog (for /metrics) and its clock, kept when measured better."""
        values: dict[str, Any] = {"pending_bytes": max(0, told.pending_bytes)}
        rtt = told.clock_rtt_s
        if told.clock_offset_s is not None and rtt is not None and 0 <= rtt < 30:
            current = tx.get(rec.recording_id)
            if current is not None and (current.clock_rtt_s is None or rtt < current.clock_rtt_s):
                values.update(clock_offset_s=told.clock_offset_s, clock_rtt_s=rtt)
        tx.update(rec.recording_id, **values)

    async def store_segment(
        self, booth: Principal, recording_id: str, grant: str | None, seg: Segment, data: bytes
    ) -> dict[str, Any]:
        """The segment's bytes: checked, written encrypted and durable, and recorded, in one
        transaction (a segment is never replaced: a number holds one content for ever)."""
        if hashlib.sha256(data).hexdigest() != seg.sha256 or len(data) != seg.size:
            raise RecordsError(
                422, "checksum_mismatch", "the segment does not match the SHA-256 declared for it"
            )
        if not data.startswith(WEBM_MAGIC):
            raise RecordsError(415, "not_webm", "a segment is a WebM file")
        rec = await self._recording(recording_id)
        await self._writer_check(booth, rec, grant)
        now = self._now()

        def work(tx: RecordingTx) -> bool:
            current = tx.get(recording_id, for_update=True)
            assert current is not None
            stored = tx.segments(recording_id)
            if not accept_segment(stored, seg):
                if not self.files.path(recording_id, seg.seq).is_file():
                    self.files.put(recording_id, seg.seq, data)  # lost since: write it again
                return False
            within_budget(current.bytes, seg, self.limits)  # and again, under the row's lock
            transition(RecordingState(current.state), RecordingEvent.SEGMENT)
            self.files.put(recording_id, seg.seq, data)  # inside: a refused one is never written
            tx.add_segment(recording_id, seg, now)
            tx.update(
                recording_id,
                segments=current.segments + 1,
                bytes=current.bytes + seg.size,
                recorded_s=current.recorded_s + (seg.end_s - seg.start_s),
                last_upload_at=now,
            )
            return True

        try:
            fresh = await self.store.write(work)
        except RecordingError as exc:
            raise from_domain(exc) from None
        except OSError as exc:
            reason = "storage_full" if getattr(exc, "errno", None) in (28, 122) else "write_failed"
            self.on_failure("server", reason)
            log.error(
                "recording_segment_not_written",
                recording_id=recording_id,
                seq=seg.seq,
                reason=reason,
                error=str(exc),
            )
            if reason == "storage_full":
                raise RecordsError(
                    507,
                    "storage_full",
                    "the server's recording store is full: the kiosk keeps the "
                    "segment and sends it again",
                ) from None
            raise RecordsError(
                503, "storage_unavailable", "the segment could not be written: send it again"
            ) from None
        return {
            "recording_id": recording_id,
            "seq": seg.seq,
            "sha256": seg.sha256,
            "stored": True,
            "replayed": not fresh,
        }

    async def close(
        self,
        booth: Principal,
        recording_id: str,
        grant: str | None,
        ending: Ending,
        listed: list[tuple[int, str]],
    ) -> dict[str, Any]:
        """Every segment the kiosk sealed is here: the manifest is written and its SHA-256
        appended to the audit chain (`recording.closed`). A retry gets the same answer."""
        rec = await self._recording(recording_id)
        if rec.state == RecordingState.CLOSED and booth.subject == rec.booth_id:
            return self._closed(rec)
        await self._writer_check(booth, rec, grant)
        now = self._now()

        def work(tx: RecordingTx) -> RecordingRecord:
            current = tx.get(recording_id, for_update=True)
            assert current is not None
            if current.state == RecordingState.CLOSED:
                return current
            transition(RecordingState(current.state), RecordingEvent.CLOSE)
            stored = tx.segments(recording_id)
            missing = missing_segments(stored, listed)
            if missing:
                raise RecordingError(
                    409,
                    "segments_missing",
                    f"segments {missing} are not here yet: send them first",
                    missing=missing,
                )
            facts = self._facts(current)
            manifest = build_manifest(facts, stored.values(), ending, _iso(now))
            sha = manifest_sha256(manifest)
            entry = tx.append_audit(
                _draft(
                    booth,
                    "recording.closed",
                    claim_id=current.claim_id,
                    evidence=(sha,),
                    details={
                        "recording_id": recording_id,
                        "session_id": current.session_id,
                        "segments": len(stored),
                        "gaps": len(manifest["gaps"]),
                        "duration_ms": round(manifest["duration_s"] * 1000),
                    },
                ),
                now,
            )
            tx.update(
                recording_id,
                state=str(RecordingState.CLOSED),
                closed_at=now,
                manifest=manifest,
                manifest_sha256=sha,
                audit_seq=entry.seq,
                pending_bytes=0,
            )
            return dataclasses.replace(
                current,
                state=str(RecordingState.CLOSED),
                manifest=manifest,
                manifest_sha256=sha,
                audit_seq=entry.seq,
                closed_at=now,
            )

        try:
            rec = await self.store.write(work)
        except RecordingError as exc:
            if exc.code == "segments_missing":
                raise RecordsError(409, exc.code, exc.message) from None
            raise from_domain(exc) from None
        log.info(
            "recording_closed",
            recording_id=recording_id,
            manifest_sha256=rec.manifest_sha256,
            segments=len((rec.manifest or {}).get("segments", [])),
        )
        return self._closed(rec)

    @staticmethod
    def _closed(rec: RecordingRecord) -> dict[str, Any]:
        manifest = rec.manifest or {}
        return {
            "recording_id": rec.recording_id,
            "state": rec.state,
            "manifest_sha256": rec.manifest_sha256,
            "audit_seq": rec.audit_seq,
            "segments": len(manifest.get("segments", [])),
            "gaps": manifest.get("gaps", []),
        }

    def _facts(self, rec: RecordingRecord) -> Facts:
        return Facts(
            recording_id=rec.recording_id,
            session_id=rec.session_id,
            claim_id=rec.claim_id,
            booth_id=rec.booth_id,
            branch=rec.branch,
            officer_id=rec.officer_id,
            officer_name=rec.officer_name,
            started_at=datetime.fromtimestamp(rec.started_at, UTC).isoformat(
                timespec="milliseconds"
            ),
            consent=rec.consent_json,
            media=rec.media,
            clock_offset_s=rec.clock_offset_s,
            clock_rtt_s=rec.clock_rtt_s,
        )

    async def alert(
        self,
        booth: Principal,
        recording_id: str,
        grant: str | None,
        reason: str,
        detail: str,
        key: str,
    ) -> tuple[int, dict[str, Any]]:
        """The kiosk could not record (its disk full, a write failed): audited once per
        key, counted for /metrics, logged as an error."""
        rec = await self._recording(recording_id)
        await self._writer_check(booth, rec, grant)
        digest = request_hash("recording_alert", recording_id, reason, detail)
        now = self._now()

        def work(tx: Any) -> tuple[int, dict[str, Any]]:
            tx.append_audit(
                _draft(
                    booth,
                    "recording.alert",
                    claim_id=rec.claim_id,
                    details={"recording_id": recording_id, "reason": reason, "detail": detail},
                ),
                now,
            )
            return 201, {"recording_id": recording_id, "reason": reason}

        stored = await self.records.store.idempotent(idempotency_owner(booth), key, digest, work)
        if not stored.replayed:
            self.on_failure("kiosk", reason)
            log.error(
                "recording_alert",
                recording_id=recording_id,
                booth_id=booth.subject,
                reason=reason,
                detail=detail,
            )
        return stored.status_code, stored.body

    # --- supervisors and auditors ------------------------------------------------------

    def _reader(self, who: Principal, rec: RecordingRecord) -> AccessDecision:
        decision = decide(who, Action.RECORDING_PLAY, AccessFacts(claim_branch=rec.branch))
        if not decision:
            raise refused(decision)
        return decision

    async def search(self, who: Principal, where: RecordingFilter) -> list[dict[str, Any]]:
        decision = decide(who, Action.RECORDING_LIST, AccessFacts(claim_branch=where.branch))
        if not decision:
            raise refused(decision)
        if where.nik and decision.reach is not Reach.FULL_NIK:
            raise RecordsError(403, "forbidden", "finding recordings by NIK is for auditors")
        if decision.branches is not None:
            where = dataclasses.replace(where, branches=decision.branches)
        found = await self.store.search(where)
        claims = await self.store.claims_of(sorted({r.claim_id for r in found}))
        held = await self.store.held_claims()
        filters = {
            k: v
            for k, v in dataclasses.asdict(where).items()
            if v is not None and k not in ("branches", "limit", "offset")
        }
        if "nik" in filters:
            filters["nik"] = mask_nik(filters["nik"])
        for k in ("since", "until"):
            if k in filters:
                filters[k] = filters[k].isoformat()
        await self.records.audit_read(
            who,
            "recordings.searched",
            details={"filters": filters, "recordings": [r.recording_id for r in found]},
        )
        return [
            self._summary(r, claims.get(r.claim_id), decision.reach, r.claim_id in held)
            for r in found
        ]

    @staticmethod
    def _summary(rec: RecordingRecord, claim: Any, reach: Reach, held: bool) -> dict[str, Any]:
        manifest = rec.manifest or {}
        nik = None
        if claim is not None:
            nik = claim.nik if reach is Reach.FULL_NIK else mask_nik(claim.nik)
        return {
            "recording_id": rec.recording_id,
            "session_id": rec.session_id,
            "claim_id": rec.claim_id,
            "booking_code": claim.booking_code if claim else None,
            "nik": nik,
            "branch": rec.branch,
            "booth_id": rec.booth_id,
            "officer_id": rec.officer_id,
            "officer_name": rec.officer_name,
            "opened_at": rec.opened_at.isoformat(),
            "state": rec.state,
            "consent": rec.consent,
            "segments": rec.segments,
            "bytes": rec.bytes,
            "recorded_s": round(rec.recorded_s, 1),
            "duration_s": manifest.get("duration_s", round(rec.recorded_s, 1)),
            "gaps": len(manifest.get("gaps", [])),
            "legal_hold": held,
            "manifest_sha256": rec.manifest_sha256,
        }

    async def play(self, who: Principal, recording_id: str) -> dict[str, Any]:
        """Everything a player needs: the manifest (or, while open, what is in so far), the
        timeline, the segments' links and the document stills. Audited `recording.played`."""
        rec = await self._recording(recording_id)
        self._reader(who, rec)
        if rec.state == RecordingState.PURGED:
            raise RecordsError(
                410, "purged", "this recording was deleted after its retention period"
            )
        manifest = rec.manifest if rec.manifest is not None else await self._provisional(rec)
        audited = await self.store.read(lambda tx: tx.audit_of_claim(rec.claim_id))
        events = [
            AuditedEvent(
                datetime.fromisoformat(e.at).timestamp(), e.seq, e.action, e.decision, e.details
            )
            for e in audited
        ]
        items = timeline(manifest, rec.started_at, events)
        stills = await self._stills(rec, items)
        await self.records.audit_read(
            who,
            "recording.played",
            claim_id=rec.claim_id,
            evidence=(rec.manifest_sha256,) if rec.manifest_sha256 else (),
            details={"recording_id": recording_id, "session_id": rec.session_id},
        )
        token = self.playback_token(who, recording_id)
        base = f"/api/recordings/{recording_id}/segments"
        return {
            "recording": self._summary(rec, None, Reach.FULL, False),
            "manifest": manifest,
            "timeline": [i.to_json() for i in items],
            "stills": stills,
            "segments": [
                {**s, "url": f"{base}/{s['seq']}?playback={token}"}
                for s in manifest.get("segments", [])
            ],
            "playback": token,
            "mime": 'video/webm; codecs="vp8, opus"',
        }

    async def _provisional(self, rec: RecordingRecord) -> dict[str, Any]:
        """An open recording, as far as it has arrived (no hash: not closed yet)."""
        stored = await self.store.segments(rec.recording_id)
        last = max((s.end_s for s in stored.values()), default=0.0)
        manifest = build_manifest(
            self._facts(rec), stored.values(), Ending(last, "in_progress"), ""
        )
        manifest["in_progress"] = True
        return manifest

    async def _stills(self, rec: RecordingRecord, items: list[Any]) -> list[dict[str, Any]]:
        """The documents of this session, each at the moment its picture was taken (the
        kiosk's mark for its capture; else when it was stored)."""
        docs = await self.records.store.documents_of(rec.claim_id)
        taken = {i.detail.get("detail"): i.at_s for i in items if i.kind == "capture_taken"}
        stored_at = {
            i.detail.get("document_id"): i.detail.get("capture_id")
            for i in items
            if i.kind == "document.uploaded"
        }
        out = []
        for doc in docs:
            if doc.session_id != rec.session_id:
                continue
            capture = stored_at.get(doc.document_id)
            at_s = taken.get(capture) if capture else None
            if at_s is None:
                at_s = doc.uploaded_at.timestamp() - rec.clock_offset_s - rec.started_at
            out.append(
                {
                    "document_id": doc.document_id,
                    "kind": doc.kind,
                    "at_s": round(at_s, 3),
                    "sha256": doc.sha256,
                    "purged": doc.purged_at is not None,
                    "url": f"/api/documents/{doc.document_id}",
                }
            )
        return sorted(out, key=lambda s: s["at_s"])

    async def segment(
        self, who: Principal, recording_id: str, seq: int, playback: str | None
    ) -> bytes:
        rec = await self._recording(recording_id)
        self._reader(who, rec)
        self._check_playback(who, recording_id, playback)
        try:
            return await asyncio.to_thread(self.files.get, recording_id, seq)
        except SegmentMissing:
            raise RecordsError(404, "not_found", f"no segment {seq} in this recording") from None
        except SegmentUnreadable as exc:
            raise RecordsError(409, "segment_unreadable", str(exc)) from None

    # --- verification and export -----------------------------------------------------

    async def resolve(self, ref: str) -> RecordingRecord:
        """A recording by its id or its session's id."""
        rec = await self.store.get(ref) if len(ref) == 32 else None
        rec = rec or await self.store.by_session(ref)
        if rec is None:
            raise RecordsError(404, "not_found", f"no recording of session or id {ref}")
        return rec

    async def verify(self, rec: RecordingRecord) -> Verification:
        """Every segment against the manifest, the manifest against its audit entry, the
        entry against the chain. Problems are named (segment number and fault)."""
        problems: list[str] = []
        manifest, sha = rec.manifest, rec.manifest_sha256
        if rec.state not in (RecordingState.CLOSED, RecordingState.PURGED) or manifest is None:
            problems.append(f"the recording is {rec.state}: it has no manifest to verify yet")
            return Verification(
                rec.recording_id,
                rec.session_id,
                rec.state,
                sha,
                rec.audit_seq,
                rec.segments,
                problems,
                [],
            )
        actual = manifest_sha256(manifest)
        if actual != sha:
            problems.append(
                f"the manifest was changed after it was anchored: its SHA-256 is "
                f"{actual}, the recording says {sha}"
            )
        entries = [e async for e in self.records.store.audit_entries(up_to=rec.audit_seq)]
        entry = entries[-1] if entries and entries[-1].seq == rec.audit_seq else None
        if entry is None:
            problems.append(f"the audit entry {rec.audit_seq} of this recording is missing")
        else:
            if (
                entry.action != "recording.closed"
                or entry.details.get("recording_id") != rec.recording_id
            ):
                problems.append(f"audit entry {entry.seq} is not this recording's closing entry")
            elif actual not in entry.evidence:
                problems.append(
                    f"the manifest's SHA-256 {actual} is not the one audit entry "
                    f"{entry.seq} anchored ({', '.join(entry.evidence)})"
                )
            for p in verify_chain(entries):
                problems.append(f"audit chain: entry {p.seq}: {p.message}")
        seg_problems: list[SegmentProblem] = []
        notes = []
        if rec.state == RecordingState.PURGED:
            notes.append(
                "its segments were deleted by the retention purge on "
                f"{_iso(rec.purged_at or self._now())}; the manifest and its audit "
                "entry remain"
            )
        else:
            found = await asyncio.to_thread(self.files.found, rec.recording_id)
            seg_problems = check_segments(manifest, found)
            rows = await self.store.segments(rec.recording_id)
            listed = {int(s["seq"]): s["sha256"] for s in manifest["segments"]}
            for seq, seg in sorted(rows.items()):
                if listed.get(seq) != seg.sha256:
                    problems.append(
                        f"segment {seq}'s record was changed: it says {seg.sha256}, "
                        f"the manifest {listed.get(seq)}"
                    )
        return Verification(
            rec.recording_id,
            rec.session_id,
            rec.state,
            sha,
            rec.audit_seq,
            len(manifest["segments"]),
            problems,
            seg_problems,
            notes,
        )

    async def export(self, who: Principal, rec: RecordingRecord) -> bytes:
        """A zip an auditor can check without Loket: the segments, the manifest (the exact
        bytes its SHA-256 is over), SHA256SUMS, the timeline, the audit entry anchoring the
        manifest, and a README saying how. Audited `recording.exported`."""
        self._reader(who, rec)
        if rec.state != RecordingState.CLOSED or rec.manifest is None or rec.audit_seq is None:
            raise RecordsError(
                409,
                "recording_" + rec.state,
                f"the recording is {rec.state}: only a closed one is exported",
            )
        manifest = rec.manifest
        entries = [e async for e in self.records.store.audit_entries(up_to=rec.audit_seq)]
        entry = next((e for e in reversed(entries) if e.seq == rec.audit_seq), None)
        if entry is None:
            raise RecordsError(409, "audit_entry_missing", "the recording's audit entry is gone")
        audited = await self.store.read(lambda tx: tx.audit_of_claim(rec.claim_id))
        events = [
            AuditedEvent(
                datetime.fromisoformat(e.at).timestamp(), e.seq, e.action, e.decision, e.details
            )
            for e in audited
        ]
        items = [i.to_json() for i in timeline(manifest, rec.started_at, events)]
        segments: list[tuple[str, bytes]] = []
        for s in manifest["segments"]:
            data = await asyncio.to_thread(self.files.get, rec.recording_id, int(s["seq"]))
            segments.append((segment_file(int(s["seq"])), data))
        await self.records.audit_read(
            who,
            "recording.exported",
            claim_id=rec.claim_id,
            evidence=(rec.manifest_sha256 or "",),
            details={"recording_id": rec.recording_id, "session_id": rec.session_id},
        )
        return await asyncio.to_thread(_zip, manifest, entry, entries, segments, items)

    # --- legal holds and retention -----------------------------------------------------

    async def place_hold(self, who: Principal, claim_id: str, reason: str) -> Hold:
        self._holder(who)
        now = self._now()
        hold = Hold(claim_id, reason[:300], who.subject, now)

        def work(tx: RecordingTx) -> Hold:
            if tx.claim(claim_id) is None:
                raise RecordsError(404, "not_found", f"no claim {claim_id}")
            tx.put_hold(hold)
            tx.append_audit(
                _draft(
                    who, "legal_hold.placed", claim_id=claim_id, details={"reason": hold.reason}
                ),
                now,
            )
            return hold

        return await self.store.write(work)

    async def release_hold(self, who: Principal, claim_id: str, reason: str) -> bool:
        self._holder(who)
        now = self._now()

        def work(tx: RecordingTx) -> bool:
            if tx.hold_of(claim_id) is None:
                return False
            tx.drop_hold(claim_id)
            tx.append_audit(
                _draft(
                    who, "legal_hold.released", claim_id=claim_id, details={"reason": reason[:300]}
                ),
                now,
            )
            return True

        return await self.store.write(work)

    @staticmethod
    def _holder(who: Principal) -> None:
        decision = decide(who, Action.LEGAL_HOLD)
        if not decision:
            raise refused(decision)

    async def purge(self, older_than_days: int) -> PurgeReport:
        """Delete the segments of recordings opened more than `older_than_days` ago, unless
        their claim is on legal hold (checked inside each one's transaction). The row keeps
        the manifest and its hash; the audit chain keeps `recording.purged`."""
        cutoff = self._now() - timedelta(days=older_than_days)
        report = PurgeReport()
        for candidate in await self.store.older_than(cutoff):
            done = await self.store.write(
                functools.partial(self._purge_one, candidate.recording_id)
            )
            if done is None:
                report.held.append(candidate.recording_id)
            elif done >= 0:
                report.purged.append(candidate.recording_id)
                report.files += done
        return report

    def _purge_one(self, recording_id: str, tx: RecordingTx) -> int | None:
        """Files deleted (-1: purged meanwhile by another run), None: held."""
        rec = tx.get(recording_id, for_update=True)
        if rec is None or rec.purged_at is not None:
            return -1
        if tx.hold_of(rec.claim_id) is not None:
            return None
        now = self._now()
        transition(RecordingState(rec.state), RecordingEvent.PURGE)
        files = self.files.delete_recording(recording_id)  # inside: purge is a batch job
        tx.update(recording_id, state=str(RecordingState.PURGED), purged_at=now, pending_bytes=0)
        tx.append_audit(
            _draft(
                SYSTEM,
                "recording.purged",
                claim_id=rec.claim_id,
                evidence=(rec.manifest_sha256,) if rec.manifest_sha256 else (),
                details={"recording_id": recording_id, "files": files},
            ),
            now,
        )
        return files


# --- the export ---------------------------------------------------------------------------

EXPORT_README = """\
Recording {recording_id} (session {session_id}, claim {claim_id})
==========================================================================

What is here
- segment-NNNNNN.webm: the recording, in order (WebM: VP8 video, Opus audio; the
  participant on the left of the picture and the left channel, the officer on the
  right). Play them one after another, e.g. with VLC or ffplay; their timestamps are
  seconds since the recording began, and a jump in them is a gap (manifest.json "gaps"
  says why).
- manifest.json: the recording's manifest, exactly the bytes whose SHA-256 Loket put in
  its hash-chained audit log when the recording closed.
- SHA256SUMS: the SHA-256 of every segment and of manifest.json.
- chain-entry.json: that audit log entry (seq {seq}); its "evidence" is the manifest's
  SHA-256. chain-previous.json: the entry before it.
- timeline.json: the events beside the video (the kiosk's marks from the manifest, the
  claim's audited events: captures, verdicts, outcome, monitoring), in seconds since
  the recording began.

Verify it without Loket
1. Every segment and the manifest are as listed:
       sha256sum -c SHA256SUMS
   ("OK" for each; a segment changed, missing or swapped with another fails here.)
2. The manifest lists these segments in this order with these hashes: compare the
   "segments" of manifest.json with SHA256SUMS (sha256 and file of each, by seq).
3. The manifest is the one the audit log anchored:
       sha256sum manifest.json
   must print {manifest_sha256}, which is "evidence"[0] in chain-entry.json.
4. The entry is intact: its "hash" is the SHA-256 of its other fields as canonical JSON
   (keys sorted, no spaces, UTF-8):
       python3 -c 'import hashlib,json; e=json.load(open("chain-entry.json")); h=e.pop("hash"); \\
         print(h == hashlib.sha256(json.dumps(e, sort_keys=True, separators=(",", ":"), \\
         ensure_ascii=False).encode()).hexdigest())'
   must print True ({entry_hash}). Its "prev_hash" is the hash of chain-previous.json, and
   so on back: the whole chain is checked by `loket audit verify` (or GET
   /api/audit/verify) on the live system, where entry {seq} must hold this same hash.
"""


def _zip(
    manifest: dict[str, Any],
    entry: AuditEntry,
    entries: list[AuditEntry],
    segments: list[tuple[str, bytes]],
    items: list[dict[str, Any]],
) -> bytes:
    raw = manifest_bytes(manifest)
    sums = [f"{hashlib.sha256(data).hexdigest()}  {name}" for name, data in segments]
    sums.append(f"{hashlib.sha256(raw).hexdigest()}  manifest.json")
    previous = next((e for e in reversed(entries) if e.seq == entry.seq - 1), None)
    entry_json = {**entry_fields(entry), "hash": entry.hash}
    readme = EXPORT_README.format(
        recording_id=manifest["recording_id"],
        session_id=manifest["session_id"],
        claim_id=manifest["claim_id"],
        seq=entry.seq,
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        entry_hash=entry.hash,
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        for name, data in segments:
            z.writestr(name, data)
        z.writestr("manifest.json", raw)
        z.writestr("SHA256SUMS", "\n".join(sums) + "\n")
        z.writestr("chain-entry.json", canonical_json(entry_json))
        if previous is not None:
            z.writestr(
                "chain-previous.json",
                canonical_json({**entry_fields(previous), "hash": previous.hash}),
            )
        z.writestr("timeline.json", json.dumps(items, indent=1, ensure_ascii=False))
        z.writestr("README.txt", readme)
    return buffer.getvalue()
