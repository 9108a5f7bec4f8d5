"""Tampering with the stored audit log, on SQLite and PostgreSQL, is detected and located."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, text, update

from server.adapters.sql import migrate
from server.adapters.sql.tables import audit_log
from server.adapters.sql.wiring import open_records
from server.ports.records import AuditDraft, RecordsTx

SHA = "ab" * 32
EDITS = {
    "actor": "'mallory'",
    "action": "'outcome.deleted'",
    "decision": "'approved'",
    "reason_codes": """'["claim_duplicate"]'""",
    "evidence": f"""'["{"cd" * 32}"]'""",
    "fingerprints": """'["sha-256 00:11"]'""",
    "details": """'{"note":"edited"}'""",
    "at": "'2020-01-01T00:00:00.000000+00:00'",
    "claim_id": "'someone-else'",
}


@contextlib.asynccontextmanager
async def _log_of_six(settings):  # type: ignore[no-untyped-def]
    """Six chained audit entries, verified intact; yields (engine, service) to tamper with."""
    await migrate.upgrade(settings)
    start = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)

    def six_entries(tx: RecordsTx) -> None:
        for i in range(6):
            draft = AuditDraft(
                "siti", "cso", "document.verdict", claim_id=f"c{i}", decision="accepted",
                reason_codes=(), evidence=(SHA,), fingerprints=("sha-256 AA:BB",),
                details={"i": i},
            )  # fmt: skip
            tx.append_audit(draft, start + timedelta(seconds=i))

    async with open_records(settings) as (engine, service):
        await service.store.write(six_entries)
        assert (await service.verify_audit()) == (6, [])
        yield engine, service


@pytest.mark.parametrize("column", sorted(EDITS))
async def test_an_edited_field_is_found_at_its_row(db_settings, column) -> None:
    async with _log_of_six(db_settings) as (engine, service):
        async with engine.begin() as conn:
            edit = f"UPDATE audit_log SET {column} = {EDITS[column]} WHERE seq = 3"
            await conn.execute(text(edit))
        count, problems = await service.verify_audit()
        assert count == 6
        assert [(p.seq, str(p.kind)) for p in problems] == [(3, "edited")]
        assert "3" in problems[0].message


@pytest.mark.parametrize("tamper", ["delete_middle", "delete_last", "swap", "rehash_forgery"])
async def test_removed_reordered_or_forged_rows_are_found(db_settings, tamper) -> None:
    async with _log_of_six(db_settings) as (engine, service):
        async with engine.begin() as conn:
            if tamper == "delete_middle":
                await conn.execute(delete(audit_log).where(audit_log.c.seq == 4))
            elif tamper == "delete_last":
                await conn.execute(delete(audit_log).where(audit_log.c.seq == 6))
            elif tamper == "swap":
                # Renumber rows 2 and 3 so they read in the other order.
                await conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(seq=-2))
                await conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(seq=2))
                await conn.execute(update(audit_log).where(audit_log.c.seq == -2).values(seq=3))
            else:
                # Rewrite row 2 and recompute its own hash: the next row's link breaks.
                from server.adapters.sql.records import audit_entry
                from server.domain.audit import entry_fields, entry_hash

                row = (
                    (await conn.execute(audit_log.select().where(audit_log.c.seq == 2)))
                    .mappings()
                    .one()
                )
                forged = entry_fields(audit_entry(row)) | {"actor": "mallory"}
                await conn.execute(
                    update(audit_log).where(audit_log.c.seq == 2)
                    .values(actor="mallory", hash=entry_hash(forged))
                )  # fmt: skip
        _, problems = await service.verify_audit()
        assert problems, tamper
        found = {p.seq for p in problems}
        expected = {"delete_middle": 5, "delete_last": 5, "swap": 2, "rehash_forgery": 3}[tamper]
        assert expected in found or expected + 1 in found, (tamper, problems)


async def test_rows_added_past_the_head_are_found(db_settings) -> None:
    async with _log_of_six(db_settings) as (engine, service):
        async with engine.begin() as conn:
            row = (
                (await conn.execute(audit_log.select().where(audit_log.c.seq == 6)))
                .mappings()
                .one()
            )
            await conn.execute(
                audit_log.insert().values({**row, "seq": 7, "prev_hash": row["hash"]})
            )
        _, problems = await service.verify_audit()
        assert [(p.seq, str(p.kind)) for p in problems] == [(7, "head_mismatch")]


async def test_verify_while_writing_reports_nothing(db_settings) -> None:
    async with _log_of_six(db_settings) as (_, service):
        draft = AuditDraft("siti", "cso", "document.viewed", claim_id="c1", evidence=(SHA,))

        async def writer() -> None:
            for _ in range(40):
                now = datetime.now(UTC)
                await service.store.write(lambda tx, at=now: tx.append_audit(draft, at))

        async def verifier() -> list[object]:
            found: list[object] = []
            for _ in range(10):
                found += (await service.verify_audit())[1]
            return found

        _, problems = await asyncio.gather(writer(), verifier())
        assert problems == []
        assert (await service.verify_audit()) == (46, [])
