"""Records port: claims, document evidence, outcomes, the audit chain, idempotency.

Every change happens inside one `RecordsTx`; the audit entry describing it is appended in
that same transaction, so a change and its audit entry are committed together or not at
all, and only then is anyone told "done".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from server.domain.audit import AuditEntry
from server.domain.claims import Claim, ClaimState
from server.domain.members import MemberRecord
from server.domain.verification import FieldCheck


class ClaimExists(Exception):
    """A claim with that booking code (or id) is already recorded."""


class IdempotencyConflict(Exception):
    """The key was used before with a different request body."""


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """What to log; the store assigns seq, prev_hash and hash when it appends."""

    actor: str
    role: str
    action: str
    claim_id: str | None = None
    decision: str | None = None
    reason_codes: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    fingerprints: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    document_id: str
    claim_id: str
    kind: str
    sha256: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    session_id: str | None
    uploaded_by: str
    uploaded_at: datetime
    verdict: str | None = None
    verdict_reasons: tuple[str, ...] = ()
    verdict_by: str | None = None
    verdict_at: datetime | None = None
    purged_at: datetime | None = None
    # Delivered under a capture grant once its session had ended (server/domain/grants).
    after_session: bool = False


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    outcome_id: str
    claim_id: str
    decision: str
    reason_codes: tuple[str, ...]
    note: str
    decided_by: str
    branch: str
    session_id: str | None
    fingerprints: tuple[str, ...]
    evidence: tuple[str, ...]
    decided_at: datetime
    audit_seq: int
    # What was compared (server.domain.verification evidence) and the SHA-256 of its
    # canonical JSON, which the outcome's audit entry holds too.
    verification: dict[str, Any] | None = None
    verification_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class AnalysisRecord:
    """The machine's advice on one document: `analysis` "reading" (the document read by
    OCR and compared with the record) or "face" (a face still against the claim's KTP).
    `status` pending, done, unavailable (with `reason`), or purged with the document."""

    document_id: str
    analysis: str
    claim_id: str
    status: str
    started_at: datetime
    reason: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutcomeFilter:
    branch: str | None = None
    decided_by: str | None = None
    decision: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 1000
    offset: int = 0
    # The reader's scope (server.domain.access: AccessDecision.branches); None: all.
    branches: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class RecordsTx(Protocol):
    """The statements of one transaction. Synchronous: a whole transaction runs in one
    go on the store's writer, and the domain decisions between its statements are pure."""

    def get_claim(self, claim_id: str, *, for_update: bool = False) -> Claim | None: ...
    def find_claim_by_booking(self, booking_code: str) -> Claim | None: ...
    def find_claims_by_nik(self, nik: str) -> list[Claim]: ...
    def add_claim(self, claim: Claim) -> None: ...
    def set_claim_state(self, claim_id: str, state: ClaimState) -> None: ...
    def documents_of(self, claim_id: str) -> list[DocumentRecord]: ...
    def get_document(
        self, document_id: str, *, for_update: bool = False
    ) -> DocumentRecord | None: ...
    def add_document(self, document: DocumentRecord) -> None: ...
    def set_verdict(
        self, document_id: str, verdict: str, reasons: tuple[str, ...], by: str, at: datetime
    ) -> None: ...
    def set_purged(self, document_id: str, at: datetime) -> None: ...
    def blob_in_use(self, sha256: str) -> bool:
        """Whether any document not purged refers to this blob. Serialised with every
        transaction that adds a document (they all append to the audit chain), so a
        document added after this answer commits only after this transaction does."""
        ...

    def add_outcome(self, outcome: OutcomeRecord) -> None: ...
    def append_audit(self, draft: AuditDraft, at: datetime) -> AuditEntry: ...
    # The verification workbench (server.domain.members, server.domain.verification).
    def put_member(self, nik: str, kpj: str, record: MemberRecord) -> None:
        """Add or replace a member of the membership table (the local directory)."""
        ...

    def find_member(self, nik: str, kpj: str) -> MemberRecord | None: ...
    def set_claim_member(self, claim_id: str, record: MemberRecord) -> None: ...
    def get_claim_member(self, claim_id: str) -> MemberRecord | None: ...
    def set_analysis(self, analysis: AnalysisRecord) -> None:
        """Add or replace the analysis (document_id, analysis)."""
        ...

    def analyses_of(self, claim_id: str) -> list[AnalysisRecord]: ...
    def purge_analyses(self, document_id: str, at: datetime) -> None:
        """Drop what was read from a purged document (its values are personal data)."""
        ...

    def set_field_check(self, claim_id: str, check: FieldCheck) -> None: ...
    def field_checks_of(self, claim_id: str) -> list[FieldCheck]: ...
    def outcome_evidence_hashes(self) -> list[tuple[int, str | None, str | None]]:
        """(audit_seq, SHA-256 of the verification JSON as stored now, the SHA-256 recorded
        beside it) of every outcome (None: an outcome from before the workbench)."""
        ...


T = TypeVar("T")
IdempotentWork = Callable[[RecordsTx], tuple[int, dict[str, Any]]]


class RecordStore(Protocol):
    async def write(self, fn: Callable[[RecordsTx], T]) -> T:
        """Run `fn` in one transaction: committed when this returns, rolled back if it
        raises (the exception propagates)."""
        ...

    async def read(self, fn: Callable[[RecordsTx], T]) -> T:
        """Run `fn`'s reads on one consistent snapshot, off the writer (it must not write)."""
        ...

    async def idempotent(
        self, principal: str, key: str, request_hash: str, work: IdempotentWork
    ) -> StoredResponse:
        """Run `work` once per (principal, key): its response is stored in the same
        transaction, and a retry gets that response back. A different request under the
        same key raises IdempotencyConflict."""
        ...

    async def close(self) -> None: ...
    async def get_claim(self, claim_id: str) -> Claim | None: ...
    async def find_claim_by_booking(self, booking_code: str) -> Claim | None: ...
    async def find_claims_by_nik(self, nik: str) -> list[Claim]: ...
    async def documents_of(self, claim_id: str) -> list[DocumentRecord]: ...
    async def get_document(self, document_id: str) -> DocumentRecord | None: ...
    async def list_outcomes(self, where: OutcomeFilter) -> list[OutcomeRecord]: ...
    def audit_entries(self, up_to: int | None = None) -> AsyncIterator[AuditEntry]: ...
    async def audit_max_seq(self) -> int: ...
    async def audit_head(self) -> tuple[int, str]: ...
    async def documents_older_than(self, cutoff: datetime) -> list[DocumentRecord]: ...
    async def stored_request_hash(self, principal: str, key: str) -> str | None:
        """The request hash stored under (principal, key) by `idempotent`, if any: tells
        whether a refused request could still be the retry of an answered one."""
        ...
