"""RecordStore on SQL (SQLite or PostgreSQL through SQLAlchemy 2 async Core)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, Select, and_, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.adapters.sql.engine import readonly
from server.adapters.sql.tables import (
    audit_head,
    audit_log,
    claims,
    documents,
    idempotency,
    outcomes,
)
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
    StoredResponse,
)
from signaling.messages import ClaimType


def _json(values: Any) -> str:
    return canonical_json(values).decode()


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _claim(row: RowMapping) -> Claim:
    registered = _aware(row["created_at"])
    assert registered is not None
    return Claim(
        claim_id=row["claim_id"],
        booking_code=row["booking_code"],
        kpj=row["kpj"],
        nik=row["nik"],
        branch=row["branch"],
        claim_type=ClaimType(row["claim_type"]),
        appointment=_aware(row["appointment"]),
        balance_idr=int(row["balance_idr"]),
        state=ClaimState(row["state"]),
        walk_in=bool(row["walk_in"]),
        registered_at=registered,
    )


def _document(row: RowMapping) -> DocumentRecord:
    uploaded = _aware(row["uploaded_at"])
    assert uploaded is not None
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
        uploaded_at=uploaded,
        verdict=row["verdict"],
        verdict_reasons=tuple(json.loads(row["verdict_reasons"])),
        verdict_by=row["verdict_by"],
        verdict_at=_aware(row["verdict_at"]),
        purged_at=_aware(row["purged_at"]),
    )


def _outcome(row: RowMapping) -> OutcomeRecord:
    decided = _aware(row["decided_at"])
    assert decided is not None
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
        decided_at=decided,
        audit_seq=int(row["audit_seq"]),
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


class SqlRecordsTx:
    """One open transaction; see server.ports.records.RecordsTx."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def _one(self, query: Select[Any]) -> RowMapping | None:
        return (await self._conn.execute(query)).mappings().first()

    async def get_claim(self, claim_id: str, *, for_update: bool = False) -> Claim | None:
        query = select(claims).where(claims.c.claim_id == claim_id)
        row = await self._one(query.with_for_update() if for_update else query)
        return _claim(row) if row else None

    async def find_claim_by_booking(self, booking_code: str) -> Claim | None:
        query = select(claims).where(claims.c.booking_code == booking_code)
        row = await self._one(query.with_for_update())
        return _claim(row) if row else None

    async def find_claims_by_nik(self, nik: str) -> list[Claim]:
        query = select(claims).where(claims.c.nik == nik).order_by(claims.c.created_at)
        return [_claim(r) for r in (await self._conn.execute(query)).mappings()]

    async def add_claim(self, claim: Claim) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(claims).values(
                        claim_id=claim.claim_id,
                        booking_code=claim.booking_code,
                        kpj=claim.kpj,
                        nik=claim.nik,
                        branch=claim.branch,
                        claim_type=str(claim.claim_type),
                        appointment=claim.appointment,
                        balance_idr=claim.balance_idr,
                        state=str(claim.state),
                        walk_in=claim.walk_in,
                        created_at=claim.registered_at,
                        updated_at=claim.registered_at,
                    )
                )
        except IntegrityError:
            raise ClaimExists(claim.booking_code or claim.claim_id) from None

    async def set_claim_state(self, claim_id: str, state: ClaimState) -> None:
        await self._conn.execute(
            update(claims)
            .where(claims.c.claim_id == claim_id)
            .values(state=str(state), updated_at=datetime.now(UTC))
        )

    async def documents_of(self, claim_id: str) -> list[DocumentRecord]:
        query = (
            select(documents)
            .where(documents.c.claim_id == claim_id)
            .order_by(documents.c.uploaded_at, documents.c.document_id)
        )
        return [_document(r) for r in (await self._conn.execute(query)).mappings()]

    async def get_document(
        self, document_id: str, *, for_update: bool = False
    ) -> DocumentRecord | None:
        query = select(documents).where(documents.c.document_id == document_id)
        row = await self._one(query.with_for_update() if for_update else query)
        return _document(row) if row else None

    async def add_document(self, document: DocumentRecord) -> None:
        d = document
        await self._conn.execute(
            insert(documents).values(
                document_id=d.document_id,
                claim_id=d.claim_id,
                kind=d.kind,
                sha256=d.sha256,
                content_type=d.content_type,
                size_bytes=d.size_bytes,
                width=d.width,
                height=d.height,
                session_id=d.session_id,
                uploaded_by=d.uploaded_by,
                uploaded_at=d.uploaded_at,
                verdict=None,
                verdict_reasons="[]",
            )
        )

    async def set_verdict(
        self, document_id: str, verdict: str, reasons: tuple[str, ...], by: str, at: datetime
    ) -> None:
        await self._conn.execute(
            update(documents)
            .where(documents.c.document_id == document_id)
            .values(
                verdict=verdict, verdict_reasons=_json(list(reasons)), verdict_by=by, verdict_at=at
            )
        )

    async def set_purged(self, document_id: str, at: datetime) -> None:
        await self._conn.execute(
            update(documents).where(documents.c.document_id == document_id).values(purged_at=at)
        )

    async def add_outcome(self, outcome: OutcomeRecord) -> None:
        o = outcome
        await self._conn.execute(
            insert(outcomes).values(
                outcome_id=o.outcome_id,
                claim_id=o.claim_id,
                decision=o.decision,
                reason_codes=_json(list(o.reason_codes)),
                note=o.note,
                decided_by=o.decided_by,
                branch=o.branch,
                session_id=o.session_id,
                fingerprints=_json(list(o.fingerprints)),
                evidence=_json(list(o.evidence)),
                decided_at=o.decided_at,
                audit_seq=o.audit_seq,
            )
        )

    async def append_audit(self, draft: AuditDraft, at: datetime) -> AuditEntry:
        # Locking the head row serialises appenders (PostgreSQL); SQLite transactions
        # begin IMMEDIATE (see engine.py), which serialises writers the same way.
        head = await self._one(select(audit_head).where(audit_head.c.id == 1).with_for_update())
        assert head is not None, "audit_head row missing: run `loket db upgrade`"
        entry = append(
            ChainHead(int(head["seq"]), head["hash"]),
            at=_iso(at),
            actor=draft.actor,
            role=draft.role,
            action=draft.action,
            claim_id=draft.claim_id,
            decision=draft.decision,
            reason_codes=draft.reason_codes,
            evidence=draft.evidence,
            fingerprints=draft.fingerprints,
            details=draft.details,
        )
        await self._conn.execute(
            insert(audit_log).values(
                seq=entry.seq,
                at=entry.at,
                actor=entry.actor,
                role=entry.role,
                action=entry.action,
                claim_id=entry.claim_id,
                decision=entry.decision,
                reason_codes=_json(list(entry.reason_codes)),
                evidence=_json(list(entry.evidence)),
                fingerprints=_json(list(entry.fingerprints)),
                details=_json(dict(entry.details)),
                prev_hash=entry.prev_hash,
                hash=entry.hash,
            )
        )
        await self._conn.execute(
            update(audit_head).where(audit_head.c.id == 1).values(seq=entry.seq, hash=entry.hash)
        )
        return entry


class SqlRecordStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = readonly(engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlRecordsTx]:
        async with self._engine.begin() as conn:
            yield SqlRecordsTx(conn)

    async def idempotent(
        self, principal: str, key: str, request_hash: str, work: IdempotentWork
    ) -> StoredResponse:
        stored = await self._stored_response(principal, key, request_hash)
        if stored is not None:
            return stored
        try:
            async with self._engine.begin() as conn:
                # Claim the key first, in this transaction. A concurrent request with the
                # same key blocks on the primary key (PostgreSQL) or on the write lock
                # (SQLite) until we commit, then finds our answer instead of redoing work.
                stored = await self._stored_in(conn, principal, key, request_hash)
                if stored is not None:
                    return stored
                await conn.execute(
                    insert(idempotency).values(
                        principal=principal,
                        key=key,
                        request_hash=request_hash,
                        status_code=0,
                        response="{}",
                        created_at=datetime.now(UTC),
                    )
                )
                status, body = await work(SqlRecordsTx(conn))
                # The response commits with the work: both, or neither.
                await conn.execute(
                    update(idempotency)
                    .where(and_(idempotency.c.principal == principal, idempotency.c.key == key))
                    .values(status_code=status, response=_json(body))
                )
        except IntegrityError:
            stored = await self._stored_response(principal, key, request_hash)
            if stored is None:
                raise
            return stored
        return StoredResponse(status, body)

    async def _stored_in(
        self, conn: AsyncConnection, principal: str, key: str, request_hash: str
    ) -> StoredResponse | None:
        query = select(idempotency).where(
            and_(idempotency.c.principal == principal, idempotency.c.key == key)
        )
        row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        if row["request_hash"] != request_hash:
            raise IdempotencyConflict(key)
        return StoredResponse(row["status_code"], json.loads(row["response"]), replayed=True)

    async def _stored_response(
        self, principal: str, key: str, request_hash: str
    ) -> StoredResponse | None:
        async with self._reader.connect() as conn:
            return await self._stored_in(conn, principal, key, request_hash)

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
            return await SqlRecordsTx(conn).documents_of(claim_id)

    async def get_document(self, document_id: str) -> DocumentRecord | None:
        async with self._reader.connect() as conn:
            return await SqlRecordsTx(conn).get_document(document_id)

    async def list_outcomes(self, where: OutcomeFilter) -> list[OutcomeRecord]:
        query = select(outcomes)
        if where.branch:
            query = query.where(outcomes.c.branch == where.branch)
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

    async def audit_entries(self) -> AsyncIterator[AuditEntry]:
        # Streamed in storage order so verifying a long log needs little memory.
        async with self._reader.connect() as conn:
            result = await conn.stream(select(audit_log).order_by(audit_log.c.seq))
            async for row in result.mappings():
                yield audit_entry(row)

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

    async def mark_purged(self, document_id: str, at: datetime, audit: AuditDraft) -> None:
        async with self.transaction() as tx:
            await tx._conn.execute(
                update(documents).where(documents.c.document_id == document_id).values(purged_at=at)
            )
            await tx.append_audit(audit, at)
