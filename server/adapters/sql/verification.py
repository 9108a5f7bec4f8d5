"""The verification workbench's statements (member records, analyses, field checks), as a
part of `SqlRecordsTx`: the same connection and transaction as the rest of the records."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import Executable, RowMapping, bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from server.adapters.sql.tables import (
    claim_members,
    document_analyses,
    field_checks,
    members,
    outcomes,
)
from server.domain.audit import canonical_json
from server.domain.documents import DocumentKind
from server.domain.members import MEMBER_FIELDS, MemberRecord, MemberSource
from server.domain.verification import FieldCheck, FieldState
from server.ports.records import AnalysisRecord

_P = bindparam
_DATES = frozenset({"birth_date", "employment_end"})
_MEMBER = select(members).where(members.c.nik == _P("nik"), members.c.kpj == _P("kpj"))
_CLAIM_MEMBER = select(claim_members).where(claim_members.c.claim_id == _P("claim_id"))
_ANALYSES = (
    select(document_analyses)
    .where(document_analyses.c.claim_id == _P("claim_id"))
    .order_by(document_analyses.c.started_at, document_analyses.c.document_id)
)
_ANALYSIS_KEY = (document_analyses.c.document_id == _P("p_document_id")) & (
    document_analyses.c.analysis == _P("p_analysis")
)
_PURGE_ANALYSES = (
    update(document_analyses)
    .where(document_analyses.c.document_id == _P("p_document_id"))
    .values(status="purged", result="{}", reason="the document was purged", finished_at=_P("p_at"))
)
_CHECKS = (
    select(field_checks)
    .where(field_checks.c.claim_id == _P("claim_id"))
    .order_by(field_checks.c.checked_at)
)
_CHECK_KEY = (field_checks.c.document_id == _P("p_document_id")) & (
    field_checks.c.field == _P("p_field")
)
_VERIFICATIONS = select(
    outcomes.c.audit_seq, outcomes.c.verification, outcomes.c.verification_sha256
).order_by(outcomes.c.audit_seq)


def _member_row(record: MemberRecord) -> dict[str, Any]:
    return dict(record.values())


def _record(row: RowMapping, source: MemberSource, at: datetime, note: str | None) -> MemberRecord:
    values: dict[str, Any] = {}
    for name in MEMBER_FIELDS:
        value = row[name]
        values[name] = date.fromisoformat(value) if name in _DATES and value else value
    return MemberRecord(source, at, note=note, **values)


def _json(value: Any) -> str:
    return canonical_json(value).decode()


class VerificationStatements:
    """Mixed into SqlRecordsTx; see server.ports.records.RecordsTx for what each does."""

    _conn: Connection

    def _row(self, query: Executable, **params: Any) -> RowMapping | None:
        return self._conn.execute(query, params).mappings().first()

    def _rows(self, query: Executable, **params: Any) -> list[RowMapping]:
        return list(self._conn.execute(query, params).mappings())

    def _upsert(self, table: Any, key: Any, params: dict[str, Any], row: dict[str, Any]) -> None:
        """Replace the row at `key` (bound by `params`) with `row`, or add it (portable:
        an UPDATE, then an INSERT when it touched nothing)."""
        values = {k: v for k, v in row.items() if not k.startswith("p_")}
        change = update(table).where(key).values(**values)
        if self._conn.execute(change, params).rowcount:
            return
        try:
            with self._conn.begin_nested():
                self._conn.execute(insert(table), values)
        except IntegrityError:  # added meanwhile by another transaction: replace it
            self._conn.execute(change, params)

    def put_member(self, nik: str, kpj: str, record: MemberRecord) -> None:
        key = (members.c.nik == _P("p_nik")) & (members.c.kpj == _P("p_kpj"))
        row = {**_member_row(record), "nik": nik, "kpj": kpj, "updated_at": record.recorded_at}
        self._upsert(members, key, {"p_nik": nik, "p_kpj": kpj}, row)

    def find_member(self, nik: str, kpj: str) -> MemberRecord | None:
        row = self._row(_MEMBER, nik=nik, kpj=kpj)
        if row is None:
            return None
        return _record(row, MemberSource.DIRECTORY, row["updated_at"], None)

    def set_claim_member(self, claim_id: str, record: MemberRecord) -> None:
        row = {
            **_member_row(record), "claim_id": claim_id, "source": str(record.source),
            "recorded_at": record.recorded_at, "note": record.note,
        }  # fmt: skip
        key = claim_members.c.claim_id == _P("p_claim_id")
        self._upsert(claim_members, key, {"p_claim_id": claim_id}, row)

    def get_claim_member(self, claim_id: str) -> MemberRecord | None:
        row = self._row(_CLAIM_MEMBER, claim_id=claim_id)
        if row is None:
            return None
        return _record(row, MemberSource(row["source"]), row["recorded_at"], row["note"])

    def set_analysis(self, analysis: AnalysisRecord) -> None:
        a = analysis
        row = {
            "document_id": a.document_id, "analysis": a.analysis, "claim_id": a.claim_id,
            "status": a.status, "reason": a.reason, "result": _json(a.result),
            "started_at": a.started_at, "finished_at": a.finished_at,
        }  # fmt: skip
        params = {"p_document_id": a.document_id, "p_analysis": a.analysis}
        self._upsert(document_analyses, _ANALYSIS_KEY, params, row)

    def analyses_of(self, claim_id: str) -> list[AnalysisRecord]:
        return [
            AnalysisRecord(
                document_id=r["document_id"],
                analysis=r["analysis"],
                claim_id=r["claim_id"],
                status=r["status"],
                started_at=r["started_at"],
                reason=r["reason"],
                result=json.loads(r["result"]),
                finished_at=r["finished_at"],
            )
            for r in self._rows(_ANALYSES, claim_id=claim_id)
        ]

    def purge_analyses(self, document_id: str, at: datetime) -> None:
        self._conn.execute(_PURGE_ANALYSES, {"p_document_id": document_id, "p_at": at})

    def set_field_check(self, claim_id: str, check: FieldCheck) -> None:
        c = check
        row = {
            "document_id": c.document_id, "field": c.field, "claim_id": claim_id,
            "kind": str(c.kind), "state": str(c.state), "reason_code": c.reason_code,
            "suggested": str(c.suggested) if c.suggested else None,
            "checked_by": c.checked_by, "checked_at": c.checked_at,
        }  # fmt: skip
        params = {"p_document_id": c.document_id, "p_field": c.field}
        self._upsert(field_checks, _CHECK_KEY, params, row)

    def field_checks_of(self, claim_id: str) -> list[FieldCheck]:
        return [
            FieldCheck(
                document_id=r["document_id"],
                kind=DocumentKind(r["kind"]),
                field=r["field"],
                state=FieldState(r["state"]),
                reason_code=r["reason_code"],
                suggested=FieldState(r["suggested"]) if r["suggested"] else None,
                checked_by=r["checked_by"],
                checked_at=r["checked_at"],
            )
            for r in self._rows(_CHECKS, claim_id=claim_id)
        ]

    def outcome_evidence_hashes(self) -> list[tuple[int, str | None, str | None]]:
        # Hashed here, row by row: what is kept in memory is three short values an outcome.
        # The text is the canonical JSON that was hashed when the outcome was recorded.
        return [
            (int(r["audit_seq"]),
             hashlib.sha256(r["verification"].encode()).hexdigest() if r["verification"] else None,
             r["verification_sha256"])
            for r in self._conn.execute(_VERIFICATIONS).mappings()
        ]  # fmt: skip
