"""Claims, documents and outcomes: the use cases behind the REST API, the CLI and check-in.

The rules are in server/domain (pure); storage behind server/ports/records.RecordStore;
document bytes in the encrypted BlobStore. Here: who may do what, in which order, and
the audit entry that goes with every change and every read of personal data.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from server.adapters.blobs import BlobMissing, BlobStore, decode_check, load_or_create_key
from server.domain.audit import ChainProblem, ProblemKind, verify_chain
from server.domain.claims import (
    Claim,
    ClaimRuleError,
    ClaimState,
    Decision,
    decide,
    judge_document,
    new_booked_claim,
    register_walk_in,
    transition,
)
from server.domain.documents import (
    DocumentKind,
    Verdict,
)
from server.domain.images import ImageKind, check_image
from server.domain.privacy import mask_nik
from server.ports.live_state import LiveSession
from server.ports.records import (
    AuditDraft,
    ClaimExists,
    DocumentRecord,
    OutcomeFilter,
    OutcomeRecord,
    RecordStore,
    RecordsTx,
    StoredResponse,
)
from server.principal import AccountRole, Principal
from server.record_views import (
    checklist_json,
    claim_checklist,
    claim_json,
    document_json,
    outcome_json,
)
from server.settings import Settings
from signaling.messages import BookingRef, ClaimType, WalkInRef

log = structlog.get_logger("loket.records")

CONTENT_TYPES = {ImageKind.JPEG: "image/jpeg", ImageKind.PNG: "image/png"}
READERS = frozenset({AccountRole.SUPERVISOR, AccountRole.AUDITOR})


class RecordsError(Exception):
    """A refused request: `status` for HTTP, `code` for clients, `message` for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(what: str) -> RecordsError:
    return RecordsError(404, "not_found", f"no {what}; check the id")


def forbidden(message: str) -> RecordsError:
    return RecordsError(403, "forbidden", message)


def from_rule(exc: ClaimRuleError) -> RecordsError:
    return RecordsError(409 if exc.code == "invalid_transition" else 422, exc.code, exc.message)


# How the records side asks the floor which live session a claim is being verified in.
SessionLookup = Callable[[str], Awaitable[LiveSession | None]]


def request_hash(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def new_id() -> str:
    return uuid.uuid4().hex


def documents_key(settings: Settings) -> bytes:
    """The AES-256-GCM key: from settings, or (development) generated in data_dir."""
    if settings.documents_key is not None:
        try:
            key = base64.b64decode(settings.documents_key.get_secret_value(), validate=True)
        except ValueError:
            raise ValueError(
                "LOKET_DOCUMENTS_KEY must be base64 (openssl rand -base64 32)"
            ) from None
        if len(key) != 32:
            raise ValueError("LOKET_DOCUMENTS_KEY must decode to 32 bytes")
        return key
    return load_or_create_key(settings.data_dir / "keys" / "documents.key")


def _draft(who: Principal, action: str, **fields: Any) -> AuditDraft:
    return AuditDraft(actor=who.subject, role=str(who.role), action=action, **fields)


@dataclass(frozen=True)
class ImportRow:
    """One row of a claims import, as read from CSV or JSON (strings, not yet validated)."""

    booking_code: str
    nik: str
    kpj: str
    claim_type: str
    branch: str
    appointment: str
    balance_idr: str


@dataclass(frozen=True)
class ImportResult:
    line: int
    ok: bool
    claim_id: str | None = None
    error: str | None = None


class RecordsService:
    def __init__(
        self,
        settings: Settings,
        store: RecordStore,
        blobs: BlobStore,
        session_of_claim: SessionLookup,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.session_of_claim = session_of_claim
        self._now = clock

    # --- check-in (from the booth socket) -----------------------------------------------

    async def check_in(self, booth: Principal, ref: BookingRef | WalkInRef) -> Claim:
        """The claim a participant checks in for; a walk-in is registered on the spot.

        No quota: nothing here refuses a participant for lack of a slot. Refusals are
        only for an unknown booking code (check in as a walk-in) or a decided claim.
        """
        now = self._now()

        def work(tx: RecordsTx) -> Claim:
            if isinstance(ref, BookingRef):
                found = tx.find_claim_by_booking(ref.booking_code)
                if found is None:
                    raise RecordsError(404, "claim_not_found", f"no booking {ref.booking_code}")
                claim = found
            else:
                claim = self._walk_in(tx, booth, ref, now)
            if claim.state is not ClaimState.CHECKED_IN:
                try:
                    claim = transition(claim, ClaimState.CHECKED_IN)
                except ClaimRuleError as exc:
                    raise RecordsError(409, "claim_refused", exc.message) from None
                tx.set_claim_state(claim.claim_id, claim.state)
                tx.append_audit(_draft(booth, "claim.checked_in", claim_id=claim.claim_id), now)
            return claim

        return await self.store.write(work)

    def _walk_in(self, tx: RecordsTx, booth: Principal, ref: WalkInRef, now: datetime) -> Claim:
        # The same participant and claim, still open: they are back (follow-up, crash).
        for existing in tx.find_claims_by_nik(ref.nik):
            if (
                existing.kpj == ref.kpj
                and existing.claim_type is ref.claim_type
                and existing.state not in (ClaimState.APPROVED, ClaimState.REJECTED)
                and existing.state is not ClaimState.CANCELLED
            ):
                claim = tx.get_claim(existing.claim_id, for_update=True)
                assert claim is not None
                return claim
        try:
            claim = register_walk_in(new_id(), ref.nik, ref.kpj, ref.claim_type, booth.branch, now)
        except ClaimRuleError as exc:
            raise RecordsError(422, "claim_refused", exc.message) from None
        tx.add_claim(claim)
        tx.append_audit(
            _draft(booth, "claim.registered", claim_id=claim.claim_id,
                   details={"walk_in": True, "claim_type": str(claim.claim_type)}),
            now,
        )  # fmt: skip
        log.info("walk_in_registered", claim_id=claim.claim_id, nik=mask_nik(ref.nik))
        return claim

    # --- who may see a claim --------------------------------------------------------------

    async def _serving_session(self, who: Principal, claim_id: str) -> LiveSession | None:
        session = await self.session_of_claim(claim_id)
        if session is not None and session.has_end(who.subject):
            return session
        return None

    async def _may_read(self, who: Principal, claim_id: str, *, booth_ok: bool) -> None:
        if who.role in READERS:
            return
        if who.role is AccountRole.CSO and await self._serving_session(who, claim_id):
            return
        booth_in_session = booth_ok and who.role is AccountRole.BOOTH
        if booth_in_session and await self._serving_session(who, claim_id):
            return
        raise forbidden(
            "only the CSO serving this claim, supervisors and auditors may see it"
            if not booth_ok
            else "only the booth and CSO in this claim's live session, supervisors and "
            "auditors may see it"
        )

    async def _claim(self, claim_id: str) -> Claim:
        claim = await self.store.get_claim(claim_id)
        if claim is None:
            raise not_found(f"claim {claim_id}")
        return claim

    async def claim_view(self, who: Principal, claim_id: str) -> dict[str, Any]:
        claim = await self._claim(claim_id)
        await self._may_read(who, claim_id, booth_ok=True)
        docs = await self.store.documents_of(claim_id)
        return {
            "claim": claim_json(claim, full_nik=who.role is AccountRole.AUDITOR),
            "checklist": checklist_json(claim_checklist(claim, docs)),
            "documents": [document_json(d) for d in docs],
        }

    async def lookup(
        self, who: Principal, *, booking_code: str | None, nik: str | None
    ) -> list[dict[str, Any]]:
        if who.role not in READERS | {AccountRole.CSO}:
            raise forbidden("claim lookup is for CSOs, supervisors and auditors")
        if booking_code:
            found = await self.store.find_claim_by_booking(booking_code)
            claims = [found] if found else []
        elif nik:
            claims = await self.store.find_claims_by_nik(nik)
        else:
            raise RecordsError(422, "invalid_request", "give booking_code or nik")
        full = who.role is AccountRole.AUDITOR
        return [claim_json(c, full_nik=full) for c in claims]

    # --- documents ------------------------------------------------------------------------

    async def upload(
        self, booth: Principal, claim_id: str, kind: str, data: bytes, idempotency_key: str
    ) -> StoredResponse:
        if booth.role is not AccountRole.BOOTH:
            raise forbidden("documents are uploaded by the booth in the claim's live session")
        try:
            doc_kind = DocumentKind(kind)
        except ValueError:
            kinds = ", ".join(k.value for k in DocumentKind)
            raise RecordsError(
                422, "invalid_request", f"unknown kind {kind!r}; one of {kinds}"
            ) from None
        digest = request_hash("upload", claim_id, kind, data)
        session = await self._serving_session(booth, claim_id)
        if session is None:
            error = forbidden("this booth has no live session for that claim")
            return await self._refused_unless_replay(booth, idempotency_key, digest, error)
        # Checks and the encrypted, fsynced blob come first: the blob is content-addressed,
        # so a retry writes nothing new, and a blob without a record is only unreferenced.
        image_kind, clean = check_image(data, self.settings.max_document_bytes)
        # Decode check and encrypted, fsynced write run side by side (both release the GIL).
        decoded = asyncio.ensure_future(asyncio.to_thread(decode_check, image_kind, clean))
        stored = asyncio.ensure_future(asyncio.to_thread(self.blobs.put, clean))
        await asyncio.wait([decoded, stored])
        if decoded.exception() is not None:
            if stored.exception() is None:
                # Bytes that fail to decode never become a document: drop their file.
                await asyncio.to_thread(self.blobs.delete, stored.result())
            raise decoded.exception()  # type: ignore[misc]
        width, height = decoded.result()
        sha = stored.result()

        def work(tx: RecordsTx) -> tuple[int, dict[str, Any]]:
            claim = tx.get_claim(claim_id, for_update=True)
            if claim is None:
                raise not_found(f"claim {claim_id}")
            now = self._now()
            doc = DocumentRecord(
                document_id=new_id(), claim_id=claim_id, kind=doc_kind.value, sha256=sha,
                content_type=CONTENT_TYPES[image_kind], size_bytes=len(clean), width=width,
                height=height, session_id=session.session_id, uploaded_by=booth.subject,
                uploaded_at=now,
            )  # fmt: skip
            tx.add_document(doc)
            tx.append_audit(
                _draft(booth, "document.uploaded", claim_id=claim_id, evidence=(sha,),
                       details={"document_id": doc.document_id, "kind": doc.kind,
                                "session_id": session.session_id}),
                now,
            )  # fmt: skip
            return 201, document_json(doc)

        return await self.store.idempotent(booth.subject, idempotency_key, digest, work)

    async def read_document(self, who: Principal, document_id: str) -> tuple[DocumentRecord, bytes]:
        """The picture, for the serving CSO, supervisors and auditors. Never for a booth.
        Each read is audited before the bytes leave."""
        doc = await self.store.get_document(document_id)
        if doc is None:
            raise not_found(f"document {document_id}")
        if who.role is AccountRole.BOOTH:
            raise forbidden("booths cannot read documents back")
        await self._may_read(who, doc.claim_id, booth_ok=False)
        if doc.purged_at is not None:
            raise RecordsError(
                410, "purged", "this document was deleted after its retention period"
            )
        try:
            data = await asyncio.to_thread(self.blobs.get, doc.sha256)
        except BlobMissing:
            raise RecordsError(410, "purged", "the document's file is gone") from None
        viewed = _draft(who, "document.viewed", claim_id=doc.claim_id, evidence=(doc.sha256,),
                        details={"document_id": document_id})  # fmt: skip
        now = self._now()
        await self.store.write(lambda tx: tx.append_audit(viewed, now))
        return doc, data

    async def judge(
        self,
        cso: Principal,
        document_id: str,
        verdict: str,
        reason_codes: list[str],
        idempotency_key: str,
    ) -> StoredResponse:
        doc = await self.store.get_document(document_id)
        if doc is None:
            raise not_found(f"document {document_id}")
        if cso.role is not AccountRole.CSO:
            raise forbidden("only the CSO serving this claim may judge its documents")
        try:
            judged = judge_document(DocumentKind(doc.kind), Verdict(verdict), tuple(reason_codes))
        except ClaimRuleError as exc:
            raise from_rule(exc) from None
        except ValueError:
            raise RecordsError(422, "invalid_request", "verdict is accepted or rejected") from None
        digest = request_hash("verdict", document_id, verdict, *reason_codes)
        if not await self._serving_session(cso, doc.claim_id):
            error = forbidden("only the CSO serving this claim may judge its documents")
            return await self._refused_unless_replay(cso, idempotency_key, digest, error)

        def work(tx: RecordsTx) -> tuple[int, dict[str, Any]]:
            claim = tx.get_claim(doc.claim_id, for_update=True)
            assert claim is not None
            claim = self._start_verification(tx, cso, claim)
            now = self._now()
            tx.set_verdict(document_id, str(judged.verdict), judged.reason_codes, cso.subject, now)
            tx.append_audit(
                _draft(cso, "document.verdict", claim_id=claim.claim_id,
                       decision=str(judged.verdict), reason_codes=judged.reason_codes,
                       evidence=(doc.sha256,), details={"document_id": document_id}),
                now,
            )  # fmt: skip
            updated = tx.get_document(document_id)
            assert updated is not None
            return 200, document_json(updated)

        return await self.store.idempotent(cso.subject, idempotency_key, digest, work)

    async def _refused_unless_replay(
        self, who: Principal, key: str, digest: str, error: RecordsError
    ) -> StoredResponse:
        """Refuse a change `who` may not make now, unless it is the retry of one made while
        it could (the session has ended since): that retry gets its stored answer."""

        def refuse(_: RecordsTx) -> tuple[int, dict[str, Any]]:
            raise error

        return await self.store.idempotent(who.subject, key, digest, refuse)

    def _start_verification(self, tx: RecordsTx, cso: Principal, claim: Claim) -> Claim:
        if claim.state is ClaimState.CHECKED_IN:
            claim = transition(claim, ClaimState.IN_VERIFICATION)
            tx.set_claim_state(claim.claim_id, claim.state)
            tx.append_audit(
                _draft(cso, "claim.verification_started", claim_id=claim.claim_id), self._now()
            )
        return claim

    # --- outcomes --------------------------------------------------------------------------

    async def record_outcome(
        self,
        cso: Principal,
        claim_id: str,
        decision: str,
        reason_codes: list[str],
        note: str,
        idempotency_key: str,
    ) -> StoredResponse:
        if cso.role is not AccountRole.CSO:
            raise forbidden("only the CSO serving this claim records its outcome")
        digest = request_hash("outcome", claim_id, decision, note, *reason_codes)
        try:
            chosen = Decision(decision)
        except ValueError:
            choices = ", ".join(d.value for d in Decision)
            raise RecordsError(422, "invalid_request", f"decision is one of {choices}") from None
        session = await self._serving_session(cso, claim_id)
        if session is None:
            error = forbidden("only the CSO serving this claim records its outcome")
            return await self._refused_unless_replay(cso, idempotency_key, digest, error)

        def work(tx: RecordsTx) -> tuple[int, dict[str, Any]]:
            claim = tx.get_claim(claim_id, for_update=True)
            if claim is None:
                raise not_found(f"claim {claim_id}")
            claim = self._start_verification(tx, cso, claim)
            docs = tx.documents_of(claim_id)
            try:
                decided = decide(claim, chosen, claim_checklist(claim, docs), tuple(reason_codes))
            except ClaimRuleError as exc:
                raise from_rule(exc) from None
            now = self._now()
            evidence = tuple(
                sorted({d.sha256 for d in docs if d.verdict == Verdict.ACCEPTED.value})
            )
            prints = session.cso_fingerprints + session.booth_fingerprints
            entry = tx.append_audit(
                _draft(cso, "outcome.recorded", claim_id=claim_id, decision=chosen.value,
                       reason_codes=tuple(reason_codes), evidence=evidence, fingerprints=prints,
                       details={"session_id": session.session_id, "booth_id": session.booth_id,
                                "cso_fingerprints": list(session.cso_fingerprints),
                                "booth_fingerprints": list(session.booth_fingerprints)}),
                now,
            )  # fmt: skip
            outcome = OutcomeRecord(
                outcome_id=new_id(), claim_id=claim_id, decision=chosen.value,
                reason_codes=tuple(reason_codes), note=note, decided_by=cso.subject,
                branch=claim.branch, session_id=session.session_id, fingerprints=prints,
                evidence=evidence, decided_at=now, audit_seq=entry.seq,
            )  # fmt: skip
            tx.add_outcome(outcome)
            tx.set_claim_state(claim_id, decided.state)
            self._maybe_crash("outcome_before_commit")
            return 201, outcome_json(outcome)

        result = await self.store.idempotent(cso.subject, idempotency_key, digest, work)
        self._maybe_crash("outcome_after_commit")
        return result

    def _maybe_crash(self, point: str) -> None:
        if self.settings.crash_point == point:
            log.warning("crash_point_reached", point=point)
            os.kill(os.getpid(), signal.SIGKILL)

    async def outcomes(self, who: Principal, where: OutcomeFilter) -> list[OutcomeRecord]:
        if who.role not in READERS:
            raise forbidden("outcome lists are for supervisors and auditors")
        return await self.store.list_outcomes(where)

    # --- import, retention, audit -------------------------------------------------------------

    async def import_claims(
        self,
        who: Principal | None,
        rows: Iterable[ImportRow],
        on_row: Callable[[], None] = lambda: None,
    ) -> list[ImportResult]:
        """Each row on its own: a bad row is reported and never stops the good ones."""
        actor = who or Principal("cli", AccountRole.OPERATOR, "loket CLI", "")
        if actor.role not in (AccountRole.OPERATOR,):
            raise forbidden("claims are imported by operators")
        results = []
        for line, row in enumerate(rows, start=1):
            results.append(await self._import_one(actor, line, row))
            on_row()
        return results

    async def _import_one(self, actor: Principal, line: int, row: ImportRow) -> ImportResult:
        now = self._now()
        try:
            appointment = datetime.fromisoformat(row.appointment)
            if appointment.tzinfo is None:
                raise ValueError("appointment needs a time zone, e.g. 2026-12-01T09:00:00+07:00")
            balance = int(row.balance_idr)
            claim = new_booked_claim(
                new_id(), row.booking_code.strip(), row.nik.strip(), row.kpj.strip(),
                ClaimType(row.claim_type.strip()), row.branch.strip(), appointment, now,
                balance_idr=balance,
            )  # fmt: skip
        except ClaimRuleError as exc:
            return ImportResult(line, False, error=exc.message)
        except (ValueError, TypeError) as exc:
            return ImportResult(line, False, error=str(exc))
        imported = _draft(actor, "claim.imported", claim_id=claim.claim_id,
                          details={"booking_code": claim.booking_code})  # fmt: skip

        def work(tx: RecordsTx) -> None:
            tx.add_claim(claim)
            tx.append_audit(imported, now)

        try:
            await self.store.write(work)
        except ClaimExists:
            return ImportResult(line, False, error=f"booking {claim.booking_code} exists already")
        return ImportResult(line, True, claim_id=claim.claim_id)

    async def purge(self, older_than_days: int) -> list[DocumentRecord]:
        """Delete document files past retention; the records and audit keep their hashes."""
        cutoff = self._now() - timedelta(days=older_than_days)
        purged = []
        system = Principal("retention", AccountRole.OPERATOR, "retention purge", "")
        for doc in await self.store.documents_older_than(cutoff):
            # The same picture may serve a newer document (content addressing): keep it.
            still_used = [
                d for d in await self.store.documents_of(doc.claim_id)
                if d.sha256 == doc.sha256 and d.uploaded_at >= cutoff
            ]  # fmt: skip
            if not still_used:
                await asyncio.to_thread(self.blobs.delete, doc.sha256)
            await self.store.mark_purged(
                doc.document_id, self._now(),
                _draft(system, "document.purged", claim_id=doc.claim_id, evidence=(doc.sha256,),
                       details={"document_id": doc.document_id}),
            )  # fmt: skip
            purged.append(doc)
        return purged

    async def verify_audit(self) -> tuple[int, list[ChainProblem]]:
        """Check the chain up to the recorded head; safe while outcomes are being written.

        The head row is read first (an entry and the head move in one transaction), so
        entries appended meanwhile are simply not part of this check. The head catches a
        deleted tail, which the rows alone cannot show; rows past the head that no
        transaction recorded there were added behind Loket's back.
        """
        head_seq, head_hash = await self.store.audit_head()
        entries = [e async for e in self.store.audit_entries(up_to=head_seq)]
        problems = verify_chain(entries, expected_head=head_hash)
        top = await self.store.audit_max_seq()
        head_now, _ = await self.store.audit_head()
        if top > head_now:
            problems.append(
                ChainProblem(
                    top,
                    ProblemKind.HEAD_MISMATCH,
                    f"entries {head_now + 1} to {top} are not part of the recorded chain: they "
                    "were added outside Loket; restore the log from a backup and find out who "
                    "had write access to the database",
                )
            )
        return len(entries), problems
