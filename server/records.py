"""Claims, documents and outcomes: the use cases behind the REST API, the CLI and check-in.

The rules are in server/domain (pure); storage behind server/ports/records.RecordStore;
document bytes in the encrypted BlobStore. Who may do what is decided by the one access
policy (server/domain/access.decide), from the principal and the claim's live session
(`session_of_claim`); nothing here checks a role by itself. Here: the order of things,
and the audit entry that goes with every change and every read of personal data.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import hashlib
import json
import os
import signal
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from server import workbench
from server.adapters.blobs import BlobMissing, BlobStore, load_or_create_key, sha256_hex
from server.auth.secrets import load_or_create_jwt_secret
from server.domain.access import AccessDecision, AccessFacts, Action, SessionFacts
from server.domain.access import decide as decide_access
from server.domain.audit import AuditEntry, ChainProblem, ProblemKind, verify_chain
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
    validate_kpj,
    validate_nik,
)
from server.domain.documents import (
    DocumentKind,
    Verdict,
)
from server.domain.grants import CaptureGrant, GrantError, grant_key, sign, verify
from server.domain.images import ImageKind, check_image
from server.domain.members import (
    MemberRecord,
    MemberSource,
    has_member_values,
    local_day,
    parse_member,
    typed_walk_in,
    waiting_period_problem,
)
from server.domain.privacy import mask_nik
from server.ports.directory import DirectoryUnavailable, MemberDirectory
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
    claim_json_for,
    document_json,
    outcome_json,
)
from server.settings import Settings
from signaling.messages import BookingRef, ClaimType, WalkInRef

log = structlog.get_logger("loket.records")

CONTENT_TYPES = {ImageKind.JPEG: "image/jpeg", ImageKind.PNG: "image/png"}


class RecordsError(Exception):
    """A refused request: `status` for HTTP, `code` for clients, `message` for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(what: str) -> RecordsError:
    return RecordsError(404, "not_found", f"no {what}; check the id")


def refused(decision: AccessDecision) -> RecordsError:
    """The HTTP refusal for a negative access decision (403, with the policy's code)."""
    return RecordsError(403, decision.code, decision.reason)


def session_facts(live: LiveSession | None) -> SessionFacts | None:
    """What the access policy needs of a live session."""
    if live is None:
        return None
    return SessionFacts(live.session_id, live.booth_id, live.cso_id, live.state)


def document_kind(kind: str) -> DocumentKind:
    try:
        return DocumentKind(kind)
    except ValueError:
        kinds = ", ".join(k.value for k in DocumentKind)
        raise RecordsError(
            422, "invalid_request", f"unknown kind {kind!r}; one of {kinds}"
        ) from None


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


def upload_digest(claim_id: str, kind: str, sha: str) -> str:
    """An upload's idempotency digest: the same whether it came whole or in chunks."""
    return request_hash("upload", claim_id, kind, sha)


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
    # The member record's columns (server.domain.members.MEMBER_FIELDS), when the file
    # has them; empty: the claim is imported without a record (looked up at check-in).
    member: dict[str, str] = field(default_factory=dict)


@dataclass
class PurgeReport:
    purged: list[DocumentRecord] = field(default_factory=list)  # records marked purged
    deleted: set[str] = field(default_factory=set)  # files deleted (sha256)
    kept: set[str] = field(default_factory=set)  # files kept: other documents use them


@dataclass(frozen=True)
class ImportResult:
    line: int
    ok: bool
    claim_id: str | None = None
    error: str | None = None


def _open_walk_in(claims: Iterable[Claim], ref: WalkInRef) -> Claim | None:
    """The open claim a walk-in's NIK, KPJ and claim type come back to, if any."""
    for existing in claims:
        if (
            existing.kpj == ref.kpj
            and existing.claim_type is ref.claim_type
            and existing.state not in (ClaimState.APPROVED, ClaimState.REJECTED)
            and existing.state is not ClaimState.CANCELLED
        ):
            return existing
    return None


def idempotency_owner(who: Principal) -> str:
    """Whose Idempotency-Keys these are: role and id (a booth and a user may share an id)."""
    return f"{who.role}:{who.subject}"


class RecordsService:
    def __init__(
        self,
        settings: Settings,
        store: RecordStore,
        blobs: BlobStore,
        session_of_claim: SessionLookup,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        directory: MemberDirectory | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.session_of_claim = session_of_claim
        self._now = clock
        # Where a claim without a member record looks its member up (check-in, or the
        # officer's "look up again"); None: nowhere (batch jobs).
        self.directory = directory

    # --- for the workbench (server/workbench.py): the same policy, audit and clock ---------

    def now(self) -> datetime:
        return self._now()

    def draft(self, who: Principal, action: str, **fields: Any) -> AuditDraft:
        return _draft(who, action, **fields)

    async def claim(self, claim_id: str) -> Claim:
        """The claim, or a 404."""
        return await self._claim(claim_id)

    async def audit_read(self, who: Principal, action: str, **fields: Any) -> None:
        await self._audit_read(who, action, **fields)

    async def access(
        self, who: Principal, action: Action, claim_id: str, branch: str
    ) -> tuple[AccessDecision, LiveSession | None]:
        """The policy's decision (a 403 when refused) and the claim's live session."""
        decision, live = await self._decide(who, action, claim_id, claim_branch=branch)
        if not decision:
            raise refused(decision)
        return decision, live

    async def access_for_change(
        self, who: Principal, action: Action, claim_id: str, key: str, digest: str
    ) -> StoredResponse | None:
        """None when `who` may make this change now; else the stored answer of the same
        request made while it could (a retry), or the refusal raised."""
        decision, _ = await self._decide(who, action, claim_id)
        if decision:
            return None
        return await self._refused_unless_replay(who, key, digest, refused(decision))

    def start_verification(self, tx: RecordsTx, cso: Principal, claim: Claim) -> Claim:
        return self._start_verification(tx, cso, claim)

    # --- check-in (from the booth socket) -----------------------------------------------

    async def check_in(self, booth: Principal, ref: BookingRef | WalkInRef) -> Claim:
        """The claim a participant checks in for; a walk-in is registered on the spot.

        No quota: nothing here refuses a participant for lack of a slot. Refusals are
        only for an unknown booking code (check in as a walk-in) or a decided claim.
        Everything it writes (a walk-in's registration, the check-in and their audit
        entries) is one transaction: a refusal raises inside it, so it writes nothing.
        The socket layer calls this only once the floor has accepted the booth's state.

        A claim without a confirmed member record first gets one through the directory
        (`MemberDirectory`, bounded by its own timeout): found, or else what was typed,
        marked as not confirmed by the directory and why. A directory that does not answer
        never holds the check-in longer than its timeout.
        """
        member = await self._member_for_check_in(ref)
        now = self._now()

        def work(tx: RecordsTx) -> tuple[Claim, bool]:
            registered = False
            if isinstance(ref, BookingRef):
                found = tx.find_claim_by_booking(ref.booking_code)
                if found is None:
                    raise RecordsError(404, "claim_not_found", f"no booking {ref.booking_code}")
                claim = found
            else:
                claim, registered = self._walk_in(tx, booth, ref, now)
            if claim.state is not ClaimState.CHECKED_IN:
                # Decided before any write: a refused booking leaves no audit entry.
                try:
                    claim = transition(claim, ClaimState.CHECKED_IN)
                except ClaimRuleError as exc:
                    raise RecordsError(409, "claim_refused", exc.message) from None
                tx.set_claim_state(claim.claim_id, claim.state)
                tx.append_audit(_draft(booth, "claim.checked_in", claim_id=claim.claim_id), now)
            if member is not None:
                self._give_member(tx, booth, claim.claim_id, member)
            return claim, registered

        claim, registered = await self.store.write(work)
        if registered:  # logged once committed, never for a registration rolled back
            log.info("walk_in_registered", claim_id=claim.claim_id, nik=mask_nik(claim.nik))
        return claim

    # --- the member record (server/domain/members.py) -------------------------------------

    async def _member_for_check_in(self, ref: BookingRef | WalkInRef) -> MemberRecord | None:
        """A record for the claim this check-in is for, when it has no confirmed one (None:
        it has one, or there is no such booking)."""
        if isinstance(ref, BookingRef):
            claim = await self.store.find_claim_by_booking(ref.booking_code)
            if claim is None:
                return None  # refused in the transaction
        else:
            try:
                validate_nik(ref.nik), validate_kpj(ref.kpj)
            except ClaimRuleError:
                return None  # refused in the transaction, never sent anywhere
            claim = _open_walk_in(await self.store.find_claims_by_nik(ref.nik), ref)
        if claim is not None:
            claim_id = claim.claim_id
            held = await self.store.read(lambda tx: tx.get_claim_member(claim_id))
            if held is not None and held.confirmed:
                return None
            return await self.look_up_member(claim.nik, claim.kpj)
        assert isinstance(ref, WalkInRef)  # a booking was found above, or returned
        return await self.look_up_member(ref.nik, ref.kpj)

    async def look_up_member(self, nik: str, kpj: str) -> MemberRecord:
        """The member through the directory, or a typed record saying why not: never
        raises, never waits past the directory's timeout."""
        now = self._now()
        if self.directory is None:
            return typed_walk_in(now, "not confirmed by the directory: none is configured")
        budget = self.settings.directory_timeout + 1.0  # the adapter's own bound, and a margin
        try:
            async with asyncio.timeout(budget):
                found = await self.directory.lookup(nik, kpj)
        except DirectoryUnavailable as exc:
            log.warning("directory_unavailable", reason=str(exc.reason), detail=exc.message,
                        nik=mask_nik(nik))  # fmt: skip
            return typed_walk_in(now, f"not confirmed by the directory: {exc.message}")
        except TimeoutError:
            return typed_walk_in(now, f"not confirmed by the directory: no answer in {budget:g} s")
        except Exception as exc:  # an adapter's bug must not stop a check-in
            log.exception("directory_failed", nik=mask_nik(nik))
            return typed_walk_in(now, f"not confirmed by the directory: {type(exc).__name__}")
        if found is None:
            return typed_walk_in(
                now, "not confirmed by the directory: it knows no member with this NIK and KPJ"
            )
        return found

    def _give_member(
        self, tx: RecordsTx, who: Principal, claim_id: str, member: MemberRecord
    ) -> bool:
        """Give the claim `member` when it has no record, or when `member` is confirmed
        (the directory answered) and the claim's is not: True when set. An unconfirmed
        record never replaces another (a concurrent check-in may have set one meanwhile).
        Audited without personal values."""
        held = tx.get_claim_member(claim_id)
        if held is not None and (held.confirmed or not member.confirmed):
            return False
        tx.append_audit(
            _draft(who, "member.recorded", claim_id=claim_id,
                   details={"source": str(member.source), "note": member.note,
                            "directory": self.directory.name if self.directory else None}),
            self._now(),
        )  # fmt: skip
        tx.set_claim_member(claim_id, member)
        return True

    async def refresh_member(
        self, cso: Principal, claim_id: str, idempotency_key: str
    ) -> StoredResponse:
        """The serving officer asks the directory again (the record was only typed, or
        the directory has changed): the answer replaces a record that was not confirmed."""
        digest = request_hash("member_lookup", claim_id)
        refusal = await self.access_for_change(
            cso, Action.DOCUMENT_JUDGE, claim_id, idempotency_key, digest
        )
        if refusal is not None:
            return refusal
        claim = await self._claim(claim_id)
        member = await self.look_up_member(claim.nik, claim.kpj)

        def work(tx: RecordsTx) -> tuple[int, dict[str, Any]]:
            changed = self._give_member(tx, cso, claim_id, member)
            held = tx.get_claim_member(claim_id)
            assert held is not None
            return 200, {"claim_id": claim_id, "source": str(held.source), "note": held.note,
                         "confirmed": held.confirmed, "changed": changed}  # fmt: skip

        return await self.store.idempotent(idempotency_owner(cso), idempotency_key, digest, work)

    def _walk_in(
        self, tx: RecordsTx, booth: Principal, ref: WalkInRef, now: datetime
    ) -> tuple[Claim, bool]:
        # The same participant and claim, still open: they are back (follow-up, crash).
        existing = _open_walk_in(tx.find_claims_by_nik(ref.nik), ref)
        if existing is not None:
            claim = tx.get_claim(existing.claim_id, for_update=True)
            assert claim is not None
            return claim, False
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
        return claim, True

    # --- access: every decision through server.domain.access.decide ------------------------

    async def _decide(
        self,
        who: Principal,
        action: Action,
        claim_id: str,
        *,
        claim_branch: str | None = None,
        grant: CaptureGrant | None = None,
    ) -> tuple[AccessDecision, LiveSession | None]:
        """The policy's decision about `claim_id`, given its live session (also returned)
        and a capture grant already verified for this claim (`check_grant`)."""
        live = await self.session_of_claim(claim_id)
        facts = AccessFacts(
            session=session_facts(live),
            claim_branch=claim_branch,
            grant_booth=grant.booth_id if grant is not None else None,
        )
        return decide_access(who, action, facts), live

    async def _claim(self, claim_id: str) -> Claim:
        claim = await self.store.get_claim(claim_id)
        if claim is None:
            raise not_found(f"claim {claim_id}")
        return claim

    async def _audit_read(self, who: Principal, action: str, **fields: Any) -> None:
        """Record a read of personal data; it commits before the data leaves."""
        draft, now = _draft(who, action, **fields), self._now()
        await self.store.write(lambda tx: tx.append_audit(draft, now))

    # --- reads of personal data: each one audited -------------------------------------------

    async def claim_view(self, who: Principal, claim_id: str) -> dict[str, Any]:
        claim = await self._claim(claim_id)
        decision, _ = await self._decide(
            who, Action.CLAIM_READ, claim_id, claim_branch=claim.branch
        )
        if not decision:
            raise refused(decision)
        docs = await self.store.documents_of(claim_id)
        await self._audit_read(
            who, "claim.viewed", claim_id=claim_id, details={"reach": str(decision.reach)}
        )
        return {
            "claim": claim_json_for(claim, decision.reach),
            "checklist": checklist_json(claim_checklist(claim, docs)),
            "documents": [document_json(d) for d in docs],
        }

    async def lookup(
        self, who: Principal, *, booking_code: str | None, nik: str | None
    ) -> list[dict[str, Any]]:
        """Claims by booking code or NIK, each shown as far as the caller's role needs
        (CSOs: a masked summary). Audited with the filter and the claims found."""
        decision = decide_access(who, Action.CLAIM_LOOKUP, AccessFacts())
        if not decision:
            raise refused(decision)
        if booking_code:
            found = await self.store.find_claim_by_booking(booking_code)
            claims = [found] if found else []
            by: dict[str, Any] = {"booking_code": booking_code}
        elif nik:
            claims = await self.store.find_claims_by_nik(nik)
            by = {"nik": mask_nik(nik)}
        else:
            raise RecordsError(422, "invalid_request", "give booking_code or nik")
        shown = []
        for claim in claims:
            each = decide_access(who, Action.CLAIM_LOOKUP, AccessFacts(claim_branch=claim.branch))
            if each:
                shown.append((claim, each.reach))
        await self._audit_read(
            who, "claims.looked_up",
            details={"by": by, "claims": [c.claim_id for c, _ in shown],
                     "reach": sorted({str(r) for _, r in shown})},
        )  # fmt: skip
        return [claim_json_for(claim, reach) for claim, reach in shown]

    async def read_document(self, who: Principal, document_id: str) -> tuple[DocumentRecord, bytes]:
        """The picture, for the serving CSO, supervisors and auditors. Never for a booth.
        Each read is audited before the bytes leave."""
        doc = await self.store.get_document(document_id)
        if doc is None:
            raise not_found(f"document {document_id}")
        claim = await self._claim(doc.claim_id)
        decision, _ = await self._decide(
            who, Action.DOCUMENT_READ, doc.claim_id, claim_branch=claim.branch
        )
        if not decision:
            raise refused(decision)
        if doc.purged_at is not None:
            raise RecordsError(
                410, "purged", "this document was deleted after its retention period"
            )
        try:
            data = await asyncio.to_thread(self.blobs.get, doc.sha256)
        except BlobMissing:
            raise RecordsError(410, "purged", "the document's file is gone") from None
        await self._audit_read(
            who, "document.viewed", claim_id=doc.claim_id, evidence=(doc.sha256,),
            details={"document_id": document_id},
        )  # fmt: skip
        return doc, data

    async def outcomes(
        self, who: Principal, where: OutcomeFilter
    ) -> tuple[list[OutcomeRecord], AccessDecision]:
        """Outcomes matching `where`, within the reader's branches, and the decision (its
        `reach` says whether exports may show full NIKs). Not audited here: the caller
        audits what it hands out (`audit_outcomes_read`)."""
        decision = decide_access(who, Action.OUTCOME_LIST, AccessFacts(claim_branch=where.branch))
        if not decision:
            raise refused(decision)
        if decision.branches is not None:
            where = dataclasses.replace(where, branches=decision.branches)
        return await self.store.list_outcomes(where), decision

    async def audit_outcomes_read(
        self, who: Principal, where: OutcomeFilter, *, fmt: str, rows: int, full_nik: bool
    ) -> None:
        filters = {
            "branch": where.branch, "cso": where.decided_by, "decision": where.decision,
            "since": where.since.isoformat() if where.since else None,
            "until": where.until.isoformat() if where.until else None,
            "limit": where.limit, "offset": where.offset,
        }  # fmt: skip
        action = "outcomes.exported" if fmt == "csv" else "outcomes.listed"
        await self._audit_read(
            who, action,
            details={"format": fmt, "rows": rows, "full_nik": full_nik, "filters": filters},
        )  # fmt: skip

    # --- documents ------------------------------------------------------------------------

    def check_uploader(self, who: Principal) -> None:
        """Refuse at once a principal whose role never uploads (no lookups needed)."""
        decision = decide_access(who, Action.DOCUMENT_UPLOAD)
        if not decision and decision.code == "forbidden":
            raise refused(decision)

    async def prepare_upload(
        self,
        booth: Principal,
        claim_id: str,
        kind: str,
        idempotency_key: str,
        grant_token: str | None = None,
    ) -> DocumentKind:
        """Every check an upload needs before its body is read: the kind, and whether this
        principal may upload to this claim now (a live session, accepted, not ended; or a
        capture grant for it). Refused at once unless the key holds an answer this could be
        the retry of; then the body decides (`upload`: the stored answer, or a 409 for
        another body). So a retry of a stored upload is answered as stored even once its
        session ended or its grant expired."""
        grant, refusal = self._upload_grant(booth, grant_token, claim_id, kind)
        decision, _ = await self._decide(booth, Action.DOCUMENT_UPLOAD, claim_id, grant=grant)
        if refusal is None and not decision:
            refusal = refused(decision)
        if refusal is not None and (
            refusal.code == "forbidden"  # the role: never an upload, so never a retry
            or await self.store.stored_request_hash(idempotency_owner(booth), idempotency_key)
            is None
        ):
            raise refusal
        return document_kind(kind)

    def _upload_grant(
        self, booth: Principal, token: str | None, claim_id: str, kind: str
    ) -> tuple[CaptureGrant | None, RecordsError | None]:
        """The upload's grant, or why it is refused (a refusal that a stored answer for
        the same request still overrides)."""
        if token is None:
            return None, None
        try:
            return self.check_grant(booth, token, claim_id, kind=kind), None
        except RecordsError as exc:
            return None, exc

    async def upload(
        self,
        booth: Principal,
        claim_id: str,
        kind: str,
        data: bytes,
        idempotency_key: str,
        grant_token: str | None = None,
    ) -> StoredResponse:
        """Store a picture for the claim (one-shot POST, or a resumable upload's last
        chunk). With a capture grant for this claim and kind it is accepted after its
        session ended too, and recorded as delivered after the session. A retry of a
        stored upload gets its stored answer, whatever changed since."""
        # One hash of the body serves the idempotency digest and, when there is no
        # metadata to strip (the kiosk's own pictures), the blob's address. It runs in a
        # thread (hashlib lets go of the GIL) while this one checks the picture's structure
        # and drops its metadata without decoding pixels (server/domain/jpeg.py says why);
        # the officer's browser decodes it.
        hashed = asyncio.ensure_future(asyncio.to_thread(sha256_hex, data))
        try:
            image = check_image(data, self.settings.max_document_bytes)
        finally:
            body_sha = await hashed
        digest = upload_digest(claim_id, kind, body_sha)
        grant, refusal = self._upload_grant(booth, grant_token, claim_id, kind)
        decision, session = await self._decide(booth, Action.DOCUMENT_UPLOAD, claim_id, grant=grant)
        sha = body_sha if image.data is data else await asyncio.to_thread(sha256_hex, image.data)
        if refusal is None and not decision:
            refusal = refused(decision)
        if refusal is not None:
            result = await self._refused_unless_replay(booth, idempotency_key, digest, refusal)
            if result.status_code == 201:  # the retry of an upload acknowledged before
                await asyncio.to_thread(self.blobs.put, image.data, sha)
            return result
        doc_kind = document_kind(kind)
        in_session = session is not None and session.booth_id == booth.subject
        if grant is not None:
            session_id = grant.session_id
            after_session = not in_session or session is None or session.session_id != session_id
        else:
            assert session is not None
            session_id, after_session = session.session_id, False
        details: dict[str, Any] = {"session_id": session_id}
        if grant is not None:
            details.update(capture_id=grant.capture_id, after_session=after_session)

        def work(tx: RecordsTx) -> tuple[int, dict[str, Any]]:
            claim = tx.get_claim(claim_id, for_update=True)
            if claim is None:
                raise not_found(f"claim {claim_id}")
            now = self._now()
            doc = DocumentRecord(
                document_id=new_id(), claim_id=claim_id, kind=doc_kind.value, sha256=sha,
                content_type=CONTENT_TYPES[image.kind], size_bytes=len(image.data),
                width=image.width, height=image.height, session_id=session_id,
                uploaded_by=booth.subject, uploaded_at=now, after_session=after_session,
            )  # fmt: skip
            tx.add_document(doc)
            tx.append_audit(
                _draft(booth, "document.uploaded", claim_id=claim_id, evidence=(sha,),
                       details={"document_id": doc.document_id, "kind": doc.kind, **details}),
                now,
            )  # fmt: skip
            return 201, document_json(doc)

        # The encrypted, fsynced blob and the record's transaction run side by side (both
        # wait on the disk, not the GIL); the answer waits for both. A blob without a record
        # is only unreferenced (content-addressed: a retry writes nothing new). A record
        # whose blob failed is never acknowledged: the client's retry with the same key
        # replays the record and writes the blob again (below).
        blob = asyncio.ensure_future(asyncio.to_thread(self.blobs.put, image.data, sha))
        try:
            result = await self.store.idempotent(
                idempotency_owner(booth), idempotency_key, digest, work
            )
        finally:
            await asyncio.wait([blob])
        if blob.exception() is not None:
            log.error("document_blob_write_failed", claim_id=claim_id, error=str(blob.exception()))
            raise RecordsError(
                503, "storage_unavailable",
                "the picture could not be written to disk: send it again (same Idempotency-Key)",
            )  # fmt: skip
        # A retention purge may have deleted this very picture (an old document's copy)
        # between our put and our commit; it cannot after the commit (see `purge`).
        if result.status_code == 201 and not await asyncio.to_thread(self.blobs.exists, sha):
            await asyncio.to_thread(self.blobs.put, image.data, sha)
        return result

    async def stored_upload(
        self, booth: Principal, claim_id: str, kind: str, sha: str, idempotency_key: str
    ) -> StoredResponse | None:
        """The stored answer of an upload of this picture under this key, if it was made
        (a resumable upload created again after its last chunk was acknowledged). Raises
        IdempotencyConflict if the key was used for another request."""
        if await self.store.stored_request_hash(idempotency_owner(booth), idempotency_key) is None:
            return None
        gone = RecordsError(404, "not_found", "no upload under this key")
        digest = upload_digest(claim_id, kind, sha)
        return await self._refused_unless_replay(booth, idempotency_key, digest, gone)

    # --- capture grants (server/domain/grants.py) --------------------------------------

    @functools.cached_property
    def grant_key(self) -> bytes:
        return grant_key(load_or_create_jwt_secret(self.settings))

    def check_grant(
        self,
        booth: Principal,
        token: str,
        claim_id: str,
        *,
        kind: str | None = None,
        capture_id: str | None = None,
        allow_expired: bool = False,
    ) -> CaptureGrant:
        """The grant `token` carries, verified for this booth and claim; a 403 naming the
        problem (grant_invalid, grant_expired, grant_mismatch) otherwise."""
        try:
            return verify(
                token, self.grant_key, now=self._now().timestamp(), booth_id=booth.subject,
                claim_id=claim_id, kind=kind, capture_id=capture_id, allow_expired=allow_expired,
            )  # fmt: skip
        except GrantError as exc:
            raise RecordsError(403, str(exc.problem), exc.message) from None

    async def issue_grant(
        self,
        booth: Principal,
        claim_id: str,
        kind: str,
        session_id: str,
        capture_id: str,
        idempotency_key: str,
    ) -> StoredResponse:
        """A capture grant for the booth in the claim's live session `session_id`, audited
        as `capture.requested`; a retry under the same key gets the same grant."""
        doc_kind = document_kind(kind)
        digest = request_hash("grant", claim_id, doc_kind.value, session_id, capture_id)
        decision, live = await self._decide(booth, Action.DOCUMENT_UPLOAD, claim_id)
        if decision and (live is None or live.session_id != session_id):
            decision = AccessDecision(
                False, reason=f"session {session_id} is not this claim's live session",
                code="not_in_session",
            )  # fmt: skip
        if not decision:
            return await self._refused_unless_replay(
                booth, idempotency_key, digest, refused(decision)
            )
        now = self._now()
        issued = int(now.timestamp())
        grant = CaptureGrant(
            booth.subject, claim_id, doc_kind.value, capture_id, session_id,
            issued, issued + self.settings.capture_grant_ttl,
        )  # fmt: skip
        expires = datetime.fromtimestamp(grant.expires_at, UTC).isoformat()
        body = {
            "grant": sign(grant, self.grant_key), "claim_id": claim_id, "kind": grant.kind,
            "capture_id": capture_id, "session_id": session_id, "expires_at": expires,
        }  # fmt: skip

        def work(tx: RecordsTx) -> tuple[int, dict[str, Any]]:
            if tx.get_claim(claim_id) is None:
                raise not_found(f"claim {claim_id}")
            tx.append_audit(
                _draft(booth, "capture.requested", claim_id=claim_id,
                       details={"capture_id": capture_id, "kind": grant.kind,
                                "session_id": session_id, "grant_expires_at": expires}),
                now,
            )  # fmt: skip
            return 201, body

        return await self.store.idempotent(idempotency_owner(booth), idempotency_key, digest, work)

    async def capture_undeliverable(
        self,
        booth: Principal,
        claim_id: str,
        capture_id: str,
        grant_token: str | None,
        report: dict[str, Any],
        idempotency_key: str,
    ) -> StoredResponse:
        """The kiosk gave up on a picture the server will never take (refused for good, or
        the capture was cut short): audited as `capture.undeliverable`, once per key. The
        booth must cite the capture's grant (expired is fine: that is often why) or be in
        the claim's live session. The caller tells the people (the API's hook)."""
        grant = None
        if grant_token is not None:
            grant = self.check_grant(
                booth, grant_token, claim_id, capture_id=capture_id, allow_expired=True
            )
        digest = request_hash("undeliverable", claim_id, capture_id, json.dumps(report))
        decision, live = await self._decide(booth, Action.DOCUMENT_UPLOAD, claim_id, grant=grant)
        if not decision:
            return await self._refused_unless_replay(
                booth, idempotency_key, digest, refused(decision)
            )
        now = self._now()
        body = {
            "claim_id": claim_id, "capture_id": capture_id, "booth_id": booth.subject,
            "session_id": grant.session_id if grant else live.session_id if live else None,
            "kind": grant.kind if grant else report.get("kind"), "reported_at": now.isoformat(),
            **{k: report.get(k) for k in ("reason", "status", "message")},
        }  # fmt: skip

        def work(tx: RecordsTx) -> tuple[int, dict[str, Any]]:
            if tx.get_claim(claim_id) is None:
                raise not_found(f"claim {claim_id}")
            tx.append_audit(
                _draft(booth, "capture.undeliverable", claim_id=claim_id,
                       details={**body, "grant": grant is not None}),
                now,
            )  # fmt: skip
            return 201, body

        result = await self.store.idempotent(
            idempotency_owner(booth), idempotency_key, digest, work
        )
        if result.status_code == 201 and not result.replayed:
            log.error("capture_undeliverable", **{k: v for k, v in body.items() if v is not None})
        return result

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
        digest = request_hash("verdict", document_id, verdict, *reason_codes)
        decision, _ = await self._decide(cso, Action.DOCUMENT_JUDGE, doc.claim_id)
        if not decision:
            return await self._refused_unless_replay(
                cso, idempotency_key, digest, refused(decision)
            )
        try:
            judged = judge_document(DocumentKind(doc.kind), Verdict(verdict), tuple(reason_codes))
        except ClaimRuleError as exc:
            raise from_rule(exc) from None
        except ValueError:
            raise RecordsError(422, "invalid_request", "verdict is accepted or rejected") from None

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

        return await self.store.idempotent(idempotency_owner(cso), idempotency_key, digest, work)

    async def _refused_unless_replay(
        self, who: Principal, key: str, digest: str, error: RecordsError
    ) -> StoredResponse:
        """Refuse a change `who` may not make now, unless it is the retry of one made while
        it could (the session has ended since): that retry gets its stored answer."""

        def refuse(_: RecordsTx) -> tuple[int, dict[str, Any]]:
            raise error

        return await self.store.idempotent(idempotency_owner(who), key, digest, refuse)

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
        digest = request_hash("outcome", claim_id, decision, note, *reason_codes)
        allowed, session = await self._decide(cso, Action.OUTCOME_RECORD, claim_id)
        if not allowed:
            return await self._refused_unless_replay(cso, idempotency_key, digest, refused(allowed))
        assert session is not None
        try:
            chosen = Decision(decision)
        except ValueError:
            choices = ", ".join(d.value for d in Decision)
            raise RecordsError(422, "invalid_request", f"decision is one of {choices}") from None

        def work(tx: RecordsTx) -> tuple[int, dict[str, Any]]:
            claim = tx.get_claim(claim_id, for_update=True)
            if claim is None:
                raise not_found(f"claim {claim_id}")
            claim = self._start_verification(tx, cso, claim)
            docs = tx.documents_of(claim_id)
            now = self._now()
            # What was compared: the identity rules (an approval needs them met) and the
            # evidence the outcome keeps, from one snapshot of this transaction.
            snap = workbench.load(tx, claim_id)
            assert snap is not None
            identity = workbench.identity_of(snap, local_day(now))
            try:
                decided = decide(claim, chosen, claim_checklist(claim, docs), tuple(reason_codes),
                                 identity=identity)  # fmt: skip
            except ClaimRuleError as exc:
                raise from_rule(exc) from None
            verification, verification_sha = workbench.evidence(snap, identity)
            evidence = tuple(
                sorted({d.sha256 for d in docs if d.verdict == Verdict.ACCEPTED.value})
            )
            prints = session.cso_fingerprints + session.booth_fingerprints
            entry = tx.append_audit(
                _draft(cso, "outcome.recorded", claim_id=claim_id, decision=chosen.value,
                       reason_codes=tuple(reason_codes), evidence=evidence, fingerprints=prints,
                       details={"session_id": session.session_id, "booth_id": session.booth_id,
                                "cso_fingerprints": list(session.cso_fingerprints),
                                "booth_fingerprints": list(session.booth_fingerprints),
                                "verification_sha256": verification_sha,
                                "verification": verification["summary"]}),
                now,
            )  # fmt: skip
            outcome = OutcomeRecord(
                outcome_id=new_id(), claim_id=claim_id, decision=chosen.value,
                reason_codes=tuple(reason_codes), note=note, decided_by=cso.subject,
                branch=claim.branch, session_id=session.session_id, fingerprints=prints,
                evidence=evidence, decided_at=now, audit_seq=entry.seq,
                verification=verification, verification_sha256=verification_sha,
            )  # fmt: skip
            tx.add_outcome(outcome)
            tx.set_claim_state(claim_id, decided.state)
            self._maybe_crash("outcome_before_commit")
            return 201, outcome_json(outcome, audit_hash=entry.hash)

        result = await self.store.idempotent(idempotency_owner(cso), idempotency_key, digest, work)
        self._maybe_crash("outcome_after_commit")
        return result

    def _maybe_crash(self, point: str) -> None:
        if self.settings.crash_point == point:
            log.warning("crash_point_reached", point=point)
            os.kill(os.getpid(), signal.SIGKILL)

    # --- import, retention, audit -------------------------------------------------------------

    async def import_claims(
        self,
        who: Principal | None,
        rows: Iterable[ImportRow],
        on_row: Callable[[], None] = lambda: None,
    ) -> list[ImportResult]:
        """Each row on its own: a bad row is reported and never stops the good ones."""
        actor = who or Principal("cli", AccountRole.OPERATOR, "loket CLI", "")
        decision = decide_access(actor, Action.CLAIM_IMPORT)
        if not decision:
            raise refused(decision)
        results = []
        for line, row in enumerate(rows, start=1):
            results.append(await self._import_one(actor, line, row))
            on_row()
        return results

    async def _import_one(self, actor: Principal, line: int, row: ImportRow) -> ImportResult:
        now = self._now()
        member: MemberRecord | None = None
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
            if has_member_values(row.member):
                member = parse_member(row.member, source=MemberSource.IMPORT, recorded_at=now,
                                      nik=claim.nik, today=local_day(now))  # fmt: skip
                waiting = waiting_period_problem(
                    claim.claim_type, member.employment_end, appointment.date()
                )
                if waiting is not None:
                    raise ValueError(f"employment_end: {waiting}, after the appointment")
        except ClaimRuleError as exc:
            return ImportResult(line, False, error=exc.message)
        except (ValueError, TypeError) as exc:
            return ImportResult(line, False, error=str(exc))
        imported = _draft(actor, "claim.imported", claim_id=claim.claim_id,
                          details={"booking_code": claim.booking_code,
                                   "member": member is not None})  # fmt: skip

        def work(tx: RecordsTx) -> None:
            tx.add_claim(claim)
            tx.append_audit(imported, now)
            if member is not None:  # the claim's record, and the local directory's
                tx.set_claim_member(claim.claim_id, member)
                tx.put_member(claim.nik, claim.kpj, member)

        try:
            await self.store.write(work)
        except ClaimExists:
            return ImportResult(line, False, error=f"booking {claim.booking_code} exists already")
        return ImportResult(line, True, claim_id=claim.claim_id)

    async def purge(
        self, older_than_days: int, keep_claims: frozenset[str] = frozenset()
    ) -> PurgeReport:
        """Purge documents past retention: each record is marked purged (it and the audit
        keep the picture's hash) and its file deleted, unless a document not purged (of
        this claim or any other: files are content-addressed) still uses the same picture.

        Each document is one transaction: mark it, look for other users of the file,
        delete the file if there are none, audit, commit. The look is serialised with
        uploads (`RecordsTx.blob_in_use`), and the file goes before the commit: an upload
        of the same picture either is seen (file kept) or commits after, sees the file
        gone and writes it again (`upload`).
        """
        cutoff = self._now() - timedelta(days=older_than_days)
        report = PurgeReport()
        system = Principal("retention", AccountRole.OPERATOR, "retention purge", "")
        for candidate in await self.store.documents_older_than(cutoff):
            if candidate.claim_id in keep_claims:
                continue  # a legal hold (server/recordings.py): kept past retention
            done = await self.store.write(
                functools.partial(self._purge_one, system, candidate.document_id)
            )
            if done is None:
                continue
            doc, deleted = done
            report.purged.append(doc)
            (report.deleted if deleted else report.kept).add(doc.sha256)
        report.kept -= report.deleted  # a file kept for a while, then its last user went
        return report

    def _purge_one(
        self, system: Principal, document_id: str, tx: RecordsTx
    ) -> tuple[DocumentRecord, bool] | None:
        doc = tx.get_document(document_id, for_update=True)
        if doc is None or doc.purged_at is not None:
            return None  # purged meanwhile by another run
        now = self._now()
        tx.set_purged(doc.document_id, now)
        tx.purge_analyses(doc.document_id, now)  # what was read from it goes with it
        in_use = tx.blob_in_use(doc.sha256)
        if not in_use:
            # Inside the transaction (a short unlink and fsync; purge is a batch job).
            self.blobs.delete(doc.sha256)
        tx.append_audit(
            _draft(system, "document.purged", claim_id=doc.claim_id, evidence=(doc.sha256,),
                   details={"document_id": doc.document_id,
                            "file": "kept: used by another document" if in_use else "deleted"}),
            now,
        )  # fmt: skip
        return doc, not in_use

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
        problems += await self._verify_outcome_evidence(entries)
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

    async def _verify_outcome_evidence(self, entries: list[AuditEntry]) -> list[ChainProblem]:
        """Each outcome's verification evidence still hashes to what its audit entry (in
        the chain) recorded: the chain covers the evidence, not only the decision."""
        recorded = {e.seq: e.details.get("verification_sha256") for e in entries
                    if e.action == "outcome.recorded"}  # fmt: skip
        problems = []
        for seq, actual, stored_sha in await self.store.read(
            lambda tx: tx.outcome_evidence_hashes()
        ):
            if seq not in recorded:
                continue  # appended after the head was read
            if actual != recorded[seq] or (stored_sha is not None and stored_sha != actual):
                problems.append(ChainProblem(
                    seq, ProblemKind.EDITED,
                    f"the outcome of entry {seq} no longer holds the verification evidence its "
                    "audit entry recorded (edited outside Loket): restore it from a backup",
                ))  # fmt: skip
        return problems
