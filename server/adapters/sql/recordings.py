"""Recordings on SQL (migration 0008): the recordings, their segments, legal holds.

Every change that the audit log must show (a recording opened with its consent, closed
with its manifest's hash, purged; a legal hold placed or released) appends its audit
entry in the same transaction (`RecordingTx.append_audit`, the records store's own
statement), so the change and its entry commit together or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from server.adapters.sql.engine import readonly
from server.adapters.sql.records import SqlRecordsTx, Writer, audit_entry, writer_for
from server.adapters.sql.tables import UtcDateTime, audit_log, claims, metadata, users
from server.domain.audit import AuditEntry
from server.domain.claims import Claim
from server.domain.recording import Gap, Mark, Segment
from server.ports.records import AuditDraft

recordings = Table(
    "recordings",
    metadata,
    Column("recording_id", String(32), primary_key=True),
    Column("session_id", String(64), nullable=False, unique=True),
    Column("claim_id", String(32), nullable=False, index=True),
    Column("booth_id", String(64), nullable=False),
    Column("branch", String(32), nullable=False, index=True),
    Column("officer_id", String(64), nullable=False, index=True),
    Column("officer_name", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("consent", String(16), nullable=False),
    Column("consent_json", Text, nullable=False),
    Column("media_json", Text, nullable=False),
    Column("started_at", Float, nullable=False),  # unix: the recording's clock 0 (kiosk)
    Column("opened_at", UtcDateTime(), nullable=False, index=True),
    Column("clock_offset_s", Float, nullable=False),
    Column("clock_rtt_s", Float, nullable=True),
    Column("segments", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("recorded_s", Float, nullable=False),
    Column("pending_bytes", BigInteger, nullable=False),  # the kiosk's backlog, as it said
    Column("last_upload_at", UtcDateTime(), nullable=True),
    Column("closed_at", UtcDateTime(), nullable=True),
    Column("manifest", Text, nullable=True),
    Column("manifest_sha256", String(64), nullable=True),
    Column("audit_seq", Integer, nullable=True),
    Column("purged_at", UtcDateTime(), nullable=True),
)

recording_segments = Table(
    "recording_segments",
    metadata,
    Column("recording_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("start_s", Float, nullable=False),
    Column("end_s", Float, nullable=False),
    Column("frames", Integer, nullable=False),
    Column("marks", Text, nullable=False),
    Column("gap_before", Text, nullable=True),
    Column("stored_at", UtcDateTime(), nullable=False),
)

legal_holds = Table(
    "legal_holds",
    metadata,
    Column("claim_id", String(32), primary_key=True),
    Column("reason", String(300), nullable=False),
    Column("placed_by", String(64), nullable=False),
    Column("placed_at", UtcDateTime(), nullable=False),
)

Index("ix_recordings_state_opened", recordings.c.state, recordings.c.opened_at)


@dataclass(frozen=True, slots=True)
class RecordingRecord:
    recording_id: str
    session_id: str
    claim_id: str
    booth_id: str
    branch: str
    officer_id: str
    officer_name: str
    state: str
    consent: str
    consent_json: dict[str, Any]
    media: dict[str, Any]
    started_at: float
    opened_at: datetime
    clock_offset_s: float
    clock_rtt_s: float | None
    segments: int = 0
    bytes: int = 0
    recorded_s: float = 0.0
    pending_bytes: int = 0
    last_upload_at: datetime | None = None
    closed_at: datetime | None = None
    manifest: dict[str, Any] | None = None
    manifest_sha256: str | None = None
    audit_seq: int | None = None
    purged_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        values = {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]
        values["consent_json"] = json.dumps(self.consent_json)
        values["media_json"] = json.dumps(values.pop("media"))
        values["manifest"] = None if self.manifest is None else json.dumps(self.manifest)
        return values


def _record(row: RowMapping) -> RecordingRecord:
    values = dict(row)
    values["consent_json"] = json.loads(values["consent_json"])
    values["media"] = json.loads(values.pop("media_json"))
    values["manifest"] = json.loads(values["manifest"]) if values["manifest"] else None
    return RecordingRecord(**values)


def _segment(row: RowMapping) -> Segment:
    marks = tuple(Mark(m["at_s"], m["kind"], m.get("detail", "")) for m in json.loads(row["marks"]))
    gap = json.loads(row["gap_before"]) if row["gap_before"] else None
    return Segment(
        seq=row["seq"],
        sha256=row["sha256"],
        size=row["size"],
        start_s=row["start_s"],
        end_s=row["end_s"],
        frames=row["frames"],
        marks=marks,
        gap_before=Gap(gap["start_s"], gap["end_s"], gap["reason"], gap.get("detail", ""))
        if gap
        else None,
    )


@dataclass(frozen=True, slots=True)
class Hold:
    claim_id: str
    reason: str
    placed_by: str
    placed_at: datetime


@dataclass(frozen=True, slots=True)
class RecordingFilter:
    claim_id: str | None = None
    booking_code: str | None = None
    nik: str | None = None
    officer_id: str | None = None
    branch: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    branches: frozenset[str] | None = None  # the reader's scope (None: all)
    limit: int = 100
    offset: int = 0


class RecordingTx:
    """The statements of one transaction over the recordings' tables and the audit log."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._records = SqlRecordsTx(conn)

    def append_audit(self, draft: AuditDraft, at: datetime) -> AuditEntry:
        return self._records.append_audit(draft, at)

    def claim(self, claim_id: str) -> Claim | None:
        return self._records.get_claim(claim_id)

    def officer_name(self, cso_id: str) -> str | None:
        query = select(users.c.display_name).where(users.c.username == cso_id)
        return self.conn.execute(query).scalar()

    def audit_of_claim(self, claim_id: str) -> list[AuditEntry]:
        query = select(audit_log).where(audit_log.c.claim_id == claim_id).order_by(audit_log.c.seq)
        return [audit_entry(r) for r in self.conn.execute(query).mappings()]

    def get(self, recording_id: str, *, for_update: bool = False) -> RecordingRecord | None:
        query = select(recordings).where(recordings.c.recording_id == recording_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).mappings().first()
        return _record(row) if row else None

    def by_session(self, session_id: str) -> RecordingRecord | None:
        query = select(recordings).where(recordings.c.session_id == session_id)
        row = self.conn.execute(query).mappings().first()
        return _record(row) if row else None

    def insert(self, record: RecordingRecord) -> None:
        self.conn.execute(insert(recordings), record.row())

    def update(self, recording_id: str, **values: Any) -> None:
        if "manifest" in values and values["manifest"] is not None:
            values["manifest"] = json.dumps(values["manifest"])
        where = recordings.c.recording_id == recording_id
        self.conn.execute(update(recordings).where(where).values(**values))

    def segments(self, recording_id: str) -> dict[int, Segment]:
        query = select(recording_segments).where(recording_segments.c.recording_id == recording_id)
        return {r["seq"]: _segment(r) for r in self.conn.execute(query).mappings()}

    def add_segment(self, recording_id: str, seg: Segment, at: datetime) -> None:
        row = {
            "recording_id": recording_id,
            "seq": seg.seq,
            "sha256": seg.sha256,
            "size": seg.size,
            "start_s": seg.start_s,
            "end_s": seg.end_s,
            "frames": seg.frames,
            "marks": json.dumps([m.to_json() for m in seg.marks]),
            "gap_before": json.dumps(seg.gap_before.to_json()) if seg.gap_before else None,
            "stored_at": at,
        }
        self.conn.execute(insert(recording_segments), row)

    def hold_of(self, claim_id: str) -> Hold | None:
        query = select(legal_holds).where(legal_holds.c.claim_id == claim_id)
        row = self.conn.execute(query).mappings().first()
        return Hold(**dict(row)) if row else None

    def put_hold(self, hold: Hold) -> None:
        self.conn.execute(delete(legal_holds).where(legal_holds.c.claim_id == hold.claim_id))
        row = {
            "claim_id": hold.claim_id,
            "reason": hold.reason,
            "placed_by": hold.placed_by,
            "placed_at": hold.placed_at,
        }
        self.conn.execute(insert(legal_holds), row)

    def drop_hold(self, claim_id: str) -> None:
        self.conn.execute(delete(legal_holds).where(legal_holds.c.claim_id == claim_id))


T = TypeVar("T")


class SqlRecordingStore:
    def __init__(self, engine: AsyncEngine, writer: Writer | None = None) -> None:
        self._engine = engine
        self._reader = readonly(engine)
        self._writer = writer or writer_for(engine)

    async def close(self) -> None:
        await self._writer.close()

    async def write(self, fn: Callable[[RecordingTx], T]) -> T:
        """Run `fn` in one transaction: committed when this returns, rolled back if it raises."""
        return await self._writer.run(lambda conn: fn(RecordingTx(conn)))

    async def read(self, fn: Callable[[RecordingTx], T]) -> T:
        async with self._reader.connect() as conn:
            return await conn.run_sync(lambda c: fn(RecordingTx(c)))

    async def get(self, recording_id: str) -> RecordingRecord | None:
        return await self.read(lambda tx: tx.get(recording_id))

    async def by_session(self, session_id: str) -> RecordingRecord | None:
        return await self.read(lambda tx: tx.by_session(session_id))

    async def segments(self, recording_id: str) -> dict[int, Segment]:
        return await self.read(lambda tx: tx.segments(recording_id))

    async def search(self, where: RecordingFilter) -> list[RecordingRecord]:
        query = select(recordings)
        if where.booking_code or where.nik:
            query = query.join(claims, claims.c.claim_id == recordings.c.claim_id)
            if where.booking_code:
                query = query.where(claims.c.booking_code == where.booking_code)
            if where.nik:
                query = query.where(claims.c.nik == where.nik)
        for column, value in (
            (recordings.c.claim_id, where.claim_id),
            (recordings.c.officer_id, where.officer_id),
            (recordings.c.branch, where.branch),
        ):
            if value:
                query = query.where(column == value)
        if where.branches is not None:
            query = query.where(recordings.c.branch.in_(sorted(where.branches)))
        if where.since is not None:
            query = query.where(recordings.c.opened_at >= where.since)
        if where.until is not None:
            query = query.where(recordings.c.opened_at < where.until)
        query = query.order_by(recordings.c.opened_at.desc(), recordings.c.recording_id)
        query = query.limit(where.limit).offset(where.offset)
        async with self._reader.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_record(r) for r in rows]

    async def older_than(self, cutoff: datetime) -> list[RecordingRecord]:
        """Recordings opened before `cutoff` and not purged (held ones too: the caller
        skips them, inside each purge's transaction)."""
        query = (
            select(recordings)
            .where(and_(recordings.c.opened_at < cutoff, recordings.c.purged_at.is_(None)))
            .order_by(recordings.c.opened_at)
        )
        async with self._reader.connect() as conn:
            return [_record(r) for r in (await conn.execute(query)).mappings().all()]

    async def holds(self) -> list[Hold]:
        async with self._reader.connect() as conn:
            rows = await conn.execute(select(legal_holds).order_by(legal_holds.c.placed_at))
            return [Hold(**dict(r)) for r in rows.mappings().all()]

    async def held_claims(self) -> frozenset[str]:
        return frozenset(h.claim_id for h in await self.holds())

    async def in_progress(self) -> tuple[int, int]:
        """(recordings open, bytes their kiosks said they still had to send)."""
        query = select(func.count(), func.coalesce(func.sum(recordings.c.pending_bytes), 0))
        query = query.where(recordings.c.state == "open")
        async with self._reader.connect() as conn:
            count, pending = (await conn.execute(query)).one()
        return int(count), int(pending)

    async def claims_of(self, claim_ids: Sequence[str]) -> dict[str, Claim]:
        if not claim_ids:
            return {}
        return await self.read(
            lambda tx: {c: claim for c in claim_ids if (claim := tx.claim(c)) is not None}
        )
