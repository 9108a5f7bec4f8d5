"""RecordStore on SQL (SQLite or PostgreSQL through SQLAlchemy 2 async Core)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Executable, RowMapping, Select, and_, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.adapters.sql.engine import make_sync_sqlite_engine, readonly
from server.adapters.sql.tables import (
    audit_head,
    audit_log,
    claims,
    documents,
    idempotency,
    outcomes,
)
from server.adapters.sql.verification import VerificationStatements
from server.domain.audit import AuditEntry, ChainHead, append, canonical_json
from server.domain.claims import Claim, ClaimState
from server.ports.records import (
    AuditDraft,
    ClaimExists,
    DocumentRecord,
    IdempotencyConflict,
    IdempotentWork,
    OutcomeFilter,
    OutcomeRecord,
    RecordsTx,
    StoredResponse,
)
from signaling.messages import ClaimType


def _json(values: Any) -> str:
    return canonical_json(values).decode()


def _claim(row: RowMapping) -> Claim:
    return Claim(
        claim_id=row["claim_id"],
        booking_code=row["booking_code"],
        kpj=row["kpj"],
        nik=row["nik"],
        branch=row["branch"],
        claim_type=ClaimType(row["claim_type"]),
        appointment=row["appointment"],
        balance_idr=int(row["balance_idr"]),
        state=ClaimState(row["state"]),
        walk_in=bool(row["walk_in"]),
        registered_at=row["created_at"],
    )


def _document(row: RowMapping) -> DocumentRecord:
    return DocumentRecord(
        document_id=row["document_id"],
        claim_id=row["claim_id"],
        kind=row["kind"],
        sha256=row["sha256"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        width=row["width"],
        height=row["height"],
        session_id=row["session_id"],
        uploaded_by=row["uploaded_by"],
        uploaded_at=row["uploaded_at"],
        verdict=row["verdict"],
        verdict_reasons=tuple(json.loads(row["verdict_reasons"])),
        verdict_by=row["verdict_by"],
        verdict_at=row["verdict_at"],
        purged_at=row["purged_at"],
        after_session=bool(row["after_session"]),
    )


def _outcome(row: RowMapping) -> OutcomeRecord:
    return OutcomeRecord(
        outcome_id=row["outcome_id"],
        claim_id=row["claim_id"],
        decision=row["decision"],
        reason_codes=tuple(json.loads(row["reason_codes"])),
        note=row["note"],
        decided_by=row["decided_by"],
        branch=row["branch"],
        session_id=row["session_id"],
        fingerprints=tuple(json.loads(row["fingerprints"])),
        evidence=tuple(json.loads(row["evidence"])),
        decided_at=row["decided_at"],
        audit_seq=int(row["audit_seq"]),
        verification=json.loads(row["verification"]) if row["verification"] else None,
        verification_sha256=row["verification_sha256"],
    )


def audit_entry(row: RowMapping) -> AuditEntry:
    """A stored row as the domain sees it (used by `audit verify`: no re-hashing here)."""
    return AuditEntry(
        seq=int(row["seq"]),
        at=row["at"],
        actor=row["actor"],
        role=row["role"],
        action=row["action"],
        claim_id=row["claim_id"],
        decision=row["decision"],
        reason_codes=tuple(json.loads(row["reason_codes"])),
        evidence=tuple(json.loads(row["evidence"])),
        fingerprints=tuple(json.loads(row["fingerprints"])),
        details=json.loads(row["details"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


# Statements built once, executed with parameters: SQLAlchemy then skips rebuilding and
# re-keying the statement each time, which was most of a write's cost on SQLite.
_P = bindparam
_CLAIM_BY_ID = select(claims).where(claims.c.claim_id == _P("claim_id"))
_CLAIM_BY_ID_LOCKED = _CLAIM_BY_ID.with_for_update()
_CLAIM_BY_BOOKING = (
    select(claims).where(claims.c.booking_code == _P("booking_code")).with_for_update()
)
_CLAIMS_BY_NIK = select(claims).where(claims.c.nik == _P("nik")).order_by(claims.c.created_at)
# UPDATE parameters need names other than their columns' (SQLAlchemy reserves those).
_SET_CLAIM_STATE = (
    update(claims)
    .where(claims.c.claim_id == _P("p_claim_id"))
    .values(state=_P("p_state"), updated_at=_P("p_updated_at"))
)
_DOCS_OF_CLAIM = (
    select(documents)
    .where(documents.c.claim_id == _P("claim_id"))
    .order_by(documents.c.uploaded_at, documents.c.document_id)
)
_DOC_BY_ID = select(documents).where(documents.c.document_id == _P("document_id"))
_DOC_BY_ID_LOCKED = _DOC_BY_ID.with_for_update()
_SET_VERDICT = (
    update(documents)
    .where(documents.c.document_id == _P("p_document_id"))
    .values(
        verdict=_P("p_verdict"),
        verdict_reasons=_P("p_verdict_reasons"),
        verdict_by=_P("p_verdict_by"),
        verdict_at=_P("p_verdict_at"),
    )
)
_SET_PURGED = (
    update(documents)
    .where(documents.c.document_id == _P("p_document_id"))
    .values(purged_at=_P("p_purged_at"))
)
_BLOB_IN_USE = (
    select(documents.c.document_id)
    .where(and_(documents.c.sha256 == _P("sha256"), documents.c.purged_at.is_(None)))
    .limit(1)
)
_STORED_RESPONSE = select(idempotency).where(
    and_(idempotency.c.principal == _P("principal"), idempotency.c.key == _P("key"))
)
_HEAD_LOCKED = select(audit_head).where(audit_head.c.id == 1).with_for_update()
_SET_HEAD = (
    update(audit_head).where(audit_head.c.id == 1).values(seq=_P("p_seq"), hash=_P("p_hash"))
)
_INSERT_CLAIM = insert(claims)
_INSERT_DOCUMENT = insert(documents)
_INSERT_OUTCOME = insert(outcomes)
_INSERT_AUDIT = insert(audit_log)
_INSERT_RESPONSE = insert(idempotency)


class SqlRecordsTx(VerificationStatements):
    """One open transaction on a synchronous connection; see server.ports.records.RecordsTx.

    Synchronous on purpose: a whole transaction runs in one go on the writer (a thread for
    SQLite, `run_sync` for PostgreSQL), instead of one event-loop round trip per statement.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _one(self, query: Executable, **params: Any) -> RowMapping | None:
        return self._conn.execute(query, params).mappings().first()

    def _all(self, query: Executable, **params: Any) -> list[RowMapping]:
        return list(self._conn.execute(query, params).mappings())

    def get_claim(self, claim_id: str, *, for_update: bool = False) -> Claim | None:
        row = self._one(_CLAIM_BY_ID_LOCKED if for_update else _CLAIM_BY_ID, claim_id=claim_id)
        return _claim(row) if row else None

    def find_claim_by_booking(self, booking_code: str) -> Claim | None:
        row = self._one(_CLAIM_BY_BOOKING, booking_code=booking_code)
        return _claim(row) if row else None

    def find_claims_by_nik(self, nik: str) -> list[Claim]:
        return [_claim(r) for r in self._all(_CLAIMS_BY_NIK, nik=nik)]

    def add_claim(self, claim: Claim) -> None:
        row = {
            "claim_id": claim.claim_id, "booking_code": claim.booking_code, "kpj": claim.kpj,
            "nik": claim.nik, "branch": claim.branch, "claim_type": str(claim.claim_type),
            "appointment": claim.appointment, "balance_idr": claim.balance_idr,
            "state": str(claim.state), "walk_in": claim.walk_in,
            "created_at": claim.registered_at, "updated_at": claim.registered_at,
        }  # fmt: skip
        try:
            with self._conn.begin_nested():
                self._conn.execute(_INSERT_CLAIM, row)
        except IntegrityError:
            raise ClaimExists(claim.booking_code or claim.claim_id) from None

    def set_claim_state(self, claim_id: str, state: ClaimState) -> None:
        params = {"p_claim_id": claim_id, "p_state": str(state), "p_updated_at": datetime.now(UTC)}
        self._conn.execute(_SET_CLAIM_STATE, params)

    def documents_of(self, claim_id: str) -> list[DocumentRecord]:
        return [_document(r) for r in self._all(_DOCS_OF_CLAIM, claim_id=claim_id)]

    def get_document(self, document_id: str, *, for_update: bool = False) -> DocumentRecord | None:
        query = _DOC_BY_ID_LOCKED if for_update else _DOC_BY_ID
        row = self._one(query, document_id=document_id)
        return _document(row) if row else None

    def add_document(self, document: DocumentRecord) -> None:
        d = document
        row = {
            "document_id": d.document_id, "claim_id": d.claim_id, "kind": d.kind,
            "sha256": d.sha256, "content_type": d.content_type, "size_bytes": d.size_bytes,
            "width": d.width, "height": d.height, "session_id": d.session_id,
            "uploaded_by": d.uploaded_by, "uploaded_at": d.uploaded_at, "verdict": None,
            "verdict_reasons": "[]", "after_session": d.after_session,
        }  # fmt: skip
        self._conn.execute(_INSERT_DOCUMENT, row)

    def set_verdict(
        self, document_id: str, verdict: str, reasons: tuple[str, ...], by: str, at: datetime
    ) -> None:
        params = {
            "p_document_id": document_id, "p_verdict": verdict,
            "p_verdict_reasons": _json(list(reasons)), "p_verdict_by": by, "p_verdict_at": at,
        }  # fmt: skip
        self._conn.execute(_SET_VERDICT, params)

    def set_purged(self, document_id: str, at: datetime) -> None:
        self._conn.execute(_SET_PURGED, {"p_document_id": document_id, "p_purged_at": at})

    def blob_in_use(self, sha256: str) -> bool:
        # Every transaction that adds a document appends to the audit chain, which locks
        # the head row first (PostgreSQL; SQLite writers are serialised by BEGIN IMMEDIATE).
        # Taking that lock before looking means an upload of the same picture either
        # committed before (and is seen here) or commits after this transaction.
        self._one(_HEAD_LOCKED)
        return self._one(_BLOB_IN_USE, sha256=sha256) is not None

    def add_outcome(self, outcome: OutcomeRecord) -> None:
        o = outcome
        row = {
            "outcome_id": o.outcome_id, "claim_id": o.claim_id, "decision": o.decision,
            "reason_codes": _json(list(o.reason_codes)), "note": o.note,
            "decided_by": o.decided_by, "branch": o.branch, "session_id": o.session_id,
            "fingerprints": _json(list(o.fingerprints)), "evidence": _json(list(o.evidence)),
            "decided_at": o.decided_at, "audit_seq": o.audit_seq,
            "verification": None if o.verification is None else _json(o.verification),
            "verification_sha256": o.verification_sha256,
        }  # fmt: skip
        self._conn.execute(_INSERT_OUTCOME, row)

    def stored_response(self, principal: str, key: str, request_hash: str) -> StoredResponse | None:
        row = self._one(_STORED_RESPONSE, principal=principal, key=key)
        if row is None:
            return None
        if row["request_hash"] != request_hash:
            raise IdempotencyConflict(key)
        return StoredResponse(row["status_code"], json.loads(row["response"]), replayed=True)

    def store_response(
        self, principal: str, key: str, request_hash: str, status: int, body: dict[str, Any]
    ) -> None:
        row = {
            "principal": principal, "key": key, "request_hash": request_hash,
            "status_code": status, "response": _json(body), "created_at": datetime.now(UTC),
        }  # fmt: skip
        self._conn.execute(_INSERT_RESPONSE, row)

    def append_audit(self, draft: AuditDraft, at: datetime) -> AuditEntry:
        # Locking the head row serialises appenders (PostgreSQL); SQLite transactions
        # begin IMMEDIATE (see engine.py), which serialises writers the same way.
        head = self._one(_HEAD_LOCKED)
        assert head is not None, "audit_head row missing: run `loket db upgrade`"
        entry = append(
            ChainHead(int(head["seq"]), head["hash"]),
            at=_iso(at), actor=draft.actor, role=draft.role, action=draft.action,
            claim_id=draft.claim_id, decision=draft.decision, reason_codes=draft.reason_codes,
            evidence=draft.evidence, fingerprints=draft.fingerprints, details=draft.details,
        )  # fmt: skip
        row = {
            "seq": entry.seq, "at": entry.at, "actor": entry.actor, "role": entry.role,
            "action": entry.action, "claim_id": entry.claim_id, "decision": entry.decision,
            "reason_codes": _json(list(entry.reason_codes)),
            "evidence": _json(list(entry.evidence)),
            "fingerprints": _json(list(entry.fingerprints)),
            "details": _json(dict(entry.details)), "prev_hash": entry.prev_hash,
            "hash": entry.hash,
        }  # fmt: skip
        self._conn.execute(_INSERT_AUDIT, row)
        self._conn.execute(_SET_HEAD, {"p_seq": entry.seq, "p_hash": entry.hash})
        return entry


T = TypeVar("T")


class Writer(Protocol):
    """Runs a synchronous function inside one committed transaction."""

    async def run(self, fn: Callable[[Connection], T]) -> T: ...

    async def close(self) -> None: ...


class AsyncEngineWriter:
    """PostgreSQL (asyncpg): the transaction runs through `run_sync` on the async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def run(self, fn: Callable[[Connection], T]) -> T:
        async with self._engine.begin() as conn:
            return await conn.run_sync(fn)

    async def close(self) -> None:
        return None


class SqliteThreadWriter:
    """SQLite: one writer thread with its own pysqlite connection, one transaction at a
    time. The statements of a transaction run back to back at driver speed; the event loop
    waits once per transaction, not once per statement (aiosqlite costs ~0.5 ms each)."""

    def __init__(self, url: str) -> None:
        self._engine = make_sync_sqlite_engine(url)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loket-sqlite")

    async def run(self, fn: Callable[[Connection], T]) -> T:
        def in_thread() -> T:
            with self._engine.begin() as conn:
                return fn(conn)

        return await asyncio.get_running_loop().run_in_executor(self._thread, in_thread)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._engine.dispose)
        self._thread.shutdown(wait=False)


def writer_for(engine: AsyncEngine) -> Writer:
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return SqliteThreadWriter(url.set(drivername="sqlite").render_as_string(False))
    return AsyncEngineWriter(engine)


class SqlRecordStore:
    def __init__(self, engine: AsyncEngine, writer: Writer | None = None) -> None:
        self._engine = engine
        self._reader = readonly(engine)
        self._writer = writer or writer_for(engine)

    async def write(self, fn: Callable[[RecordsTx], T]) -> T:
        """Run `fn` in one transaction; committed when this returns, rolled back if it raises."""
        return await self._writer.run(lambda conn: fn(SqlRecordsTx(conn)))

    async def read(self, fn: Callable[[RecordsTx], T]) -> T:
        """Run `fn`'s reads on the reader (one connection, one transaction)."""
        async with self._reader.connect() as conn:
            return await conn.run_sync(lambda c: fn(SqlRecordsTx(c)))

    async def close(self) -> None:
        await self._writer.close()

    async def idempotent(
        self, principal: str, key: str, request_hash: str, work: IdempotentWork
    ) -> StoredResponse:
        def once(tx: RecordsTx) -> StoredResponse:
            assert isinstance(tx, SqlRecordsTx)
            stored = tx.stored_response(principal, key, request_hash)
            if stored is not None:
                return stored
            status, body = work(tx)
            # The response commits with the work: both, or neither.
            tx.store_response(principal, key, request_hash, status, body)
            return StoredResponse(status, body)

        try:
            return await self.write(once)
        except IdempotencyConflict:
            raise
        except Exception:
            # A concurrent request with the same key may have committed first (PostgreSQL:
            # we then fail on the key, or on the claim it already decided): answer as it did.
            stored = await self._stored_response(principal, key, request_hash)
            if stored is None:
                raise
            return stored

    async def _stored_response(
        self, principal: str, key: str, request_hash: str
    ) -> StoredResponse | None:
        async with self._reader.connect() as conn:
            return await conn.run_sync(
                lambda c: SqlRecordsTx(c).stored_response(principal, key, request_hash)
            )

    async def _read(self, query: Select[Any]) -> list[RowMapping]:
        async with self._reader.connect() as conn:
            return list((await conn.execute(query)).mappings())

    async def get_claim(self, claim_id: str) -> Claim | None:
        rows = await self._read(select(claims).where(claims.c.claim_id == claim_id))
        return _claim(rows[0]) if rows else None

    async def find_claim_by_booking(self, booking_code: str) -> Claim | None:
        rows = await self._read(select(claims).where(claims.c.booking_code == booking_code))
        return _claim(rows[0]) if rows else None

    async def find_claims_by_nik(self, nik: str) -> list[Claim]:
        query = select(claims).where(claims.c.nik == nik).order_by(claims.c.created_at)
        return [_claim(r) for r in await self._read(query)]

    async def documents_of(self, claim_id: str) -> list[DocumentRecord]:
        async with self._reader.connect() as conn:
            return await conn.run_sync(lambda c: SqlRecordsTx(c).documents_of(claim_id))

    async def get_document(self, document_id: str) -> DocumentRecord | None:
        async with self._reader.connect() as conn:
            return await conn.run_sync(lambda c: SqlRecordsTx(c).get_document(document_id))

    async def list_outcomes(self, where: OutcomeFilter) -> list[OutcomeRecord]:
        query = select(outcomes)
        if where.branch:
            query = query.where(outcomes.c.branch == where.branch)
        if where.branches is not None:
            query = query.where(outcomes.c.branch.in_(sorted(where.branches)))
        if where.decided_by:
            query = query.where(outcomes.c.decided_by == where.decided_by)
        if where.decision:
            query = query.where(outcomes.c.decision == where.decision)
        if where.since:
            query = query.where(outcomes.c.decided_at >= where.since)
        if where.until:
            query = query.where(outcomes.c.decided_at < where.until)
        query = (
            query.order_by(outcomes.c.decided_at, outcomes.c.outcome_id)
            .limit(where.limit)
            .offset(where.offset)
        )
        return [_outcome(r) for r in await self._read(query)]

    async def audit_entries(self, up_to: int | None = None) -> AsyncIterator[AuditEntry]:
        # Streamed in storage order so verifying a long log needs little memory.
        query = select(audit_log).order_by(audit_log.c.seq)
        if up_to is not None:
            query = query.where(audit_log.c.seq <= up_to)
        async with self._reader.connect() as conn:
            result = await conn.stream(query)
            async for row in result.mappings():
                yield audit_entry(row)

    async def audit_max_seq(self) -> int:
        rows = await self._read(select(func.max(audit_log.c.seq).label("top")))
        return int(rows[0]["top"] or 0)

    async def audit_head(self) -> tuple[int, str]:
        rows = await self._read(select(audit_head).where(audit_head.c.id == 1))
        return int(rows[0]["seq"]), rows[0]["hash"]

    async def documents_older_than(self, cutoff: datetime) -> list[DocumentRecord]:
        query = (
            select(documents)
            .where(and_(documents.c.uploaded_at < cutoff, documents.c.purged_at.is_(None)))
            .order_by(documents.c.uploaded_at)
        )
        return [_document(r) for r in await self._read(query)]

    async def stored_request_hash(self, principal: str, key: str) -> str | None:
        query = select(idempotency.c.request_hash).where(
            and_(idempotency.c.principal == principal, idempotency.c.key == key)
        )
        rows = await self._read(query)
        return str(rows[0]["request_hash"]) if rows else None
