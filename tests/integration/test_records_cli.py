"""`loket claims|outcomes|audit|retention ...` as an operator types them (real SQLite on disk)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner, Result

from server.adapters.sql.wiring import open_records
from server.cli import app
from server.domain.claims import Claim, new_booked_claim
from server.ports.records import (
    AuditDraft,
    DocumentRecord,
    OutcomeRecord,
    RecordsTx,
)
from server.records import RecordsService
from server.settings import Settings
from signaling.messages import ClaimType

runner = CliRunner(env={"COLUMNS": "200"})  # rich tables: no wrapping
DATA = Path(__file__).resolve().parent.parent / "data"
T = TypeVar("T")
HEADER = "booking_code,nik,kpj,claim_type,branch,appointment,balance_idr"
FULL_NIK = re.compile(r"(?<!\d)\d{16}(?!\d)")
NIK = "3171011508900001"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOKET_DATA_DIR", str(tmp_path))
    return tmp_path


def _run(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def _ok(*args: str, input: str | None = None) -> Result:
    result = _run(*args, input=input)
    assert result.exit_code == 0, result.output
    return result


def _with_service(data_dir: Path, work: Callable[[RecordsService], Awaitable[T]]) -> T:
    """Reach into the same database and document store the CLI uses."""

    async def run() -> T:
        async with open_records(Settings(data_dir=data_dir)) as (_, service):
            return await work(service)

    return asyncio.run(run())


def _claims_by_booking(data_dir: Path, codes: list[str]) -> dict[str, Claim | None]:
    async def work(service: RecordsService) -> dict[str, Claim | None]:
        return {code: await service.store.find_claim_by_booking(code) for code in codes}

    return _with_service(data_dir, work)


def _audit_actions(data_dir: Path) -> list[str]:
    async def work(service: RecordsService) -> list[str]:
        return [e.action async for e in service.store.audit_entries()]

    return _with_service(data_dir, work)


# --- claims import ------------------------------------------------------------------------------


def test_import_csv_sample_then_again_reports_existing(data_dir) -> None:
    sample = DATA / "claims_sample.csv"
    codes = [row["booking_code"] for row in csv.DictReader(sample.open())]
    assert len(codes) >= 3

    result = _ok("claims", "import", str(sample))
    assert f"imported {len(codes)}, failed 0" in result.stdout
    claims = _claims_by_booking(data_dir, codes)
    assert all(claims[code] is not None for code in codes)
    first = claims[codes[0]]
    assert first is not None and first.nik == NIK and first.kpj == "12345678901"
    assert first.claim_type is ClaimType.RESIGNATION

    again = _run("claims", "import", str(sample))
    assert again.exit_code == 2, again.output
    assert f"imported 0, failed {len(codes)}" in again.stdout
    for line, code in enumerate(codes, start=2):
        assert re.search(rf"│ {line} +│ {code} +│ booking {code} exists already", again.stdout)
    # Nothing duplicated: the same claims, and one "imported" audit entry per claim.
    assert _claims_by_booking(data_dir, codes) == claims
    assert _audit_actions(data_dir).count("claim.imported") == len(codes)


def test_import_csv_mixed_rows_reports_each_bad_one_by_line(data_dir, tmp_path) -> None:
    bad_nik = "3171013208900002"  # day 32: not a birth day
    text = "\n".join([
        HEADER,
        f"GOOD-0001,{NIK},12345678901,resignation,jkt01,2026-12-01T09:00:00+07:00,1000000",
        f"BAD-NIK1,{bad_nik},12345678902,resignation,jkt01,2026-12-01T09:00:00+07:00,0",
        "BAD-TYPE,3171011508900003,12345678903,holiday,jkt01,2026-12-01T09:00:00+07:00,0",
        "",  # a blank line still counts when a person looks for line numbers
        "BAD-APPT,3171011508900004,12345678904,death,jkt01,next tuesday,0",
        "BAD-BAL1,3171011508900005,12345678905,death,jkt01,2026-12-01T09:00:00+07:00,lots",
        "BAD-NAIVE,3171011508900006,12345678906,death,jkt01,2026-12-01T09:00:00,0",
        "GOOD-0001,3171011508900007,12345678907,retirement,jkt01,2026-12-01T10:00:00+07:00,5",
        "GOOD-0002,3171011508900008,12345678908,termination,bdg01,2026-12-02T10:00:00+07:00,7",
    ]) + "\n"  # fmt: skip
    path = tmp_path / "mixed.csv"
    path.write_text(text)

    result = _run("claims", "import", str(path))
    assert result.exit_code == 2, result.output
    out = result.output
    assert "imported 2, failed 6" in out
    expected = {
        3: ("BAD-NIK1", "birth day"),
        4: ("BAD-TYPE", "holiday"),
        6: ("BAD-APPT", "next tuesday"),
        7: ("BAD-BAL1", "lots"),
        8: ("BAD-NAIVE", "time zone"),
        9: ("GOOD-0001", "exists already"),
    }
    failed_lines = {int(m.group(1)) for m in re.finditer(r"^│ (\d+) +│", out, re.MULTILINE)}
    assert failed_lines == set(expected)
    for line, (code, why) in expected.items():
        row = next(r for r in out.splitlines() if r.startswith(f"│ {line} "))
        assert code in row and why in row, row
    assert not FULL_NIK.search(out), "a full NIK leaked into the output"
    assert "*" * 12 + bad_nik[-4:] in out

    claims = _claims_by_booking(data_dir, ["GOOD-0001", "GOOD-0002", "BAD-TYPE"])
    winner = claims["GOOD-0001"]
    assert winner is not None and winner.nik == NIK  # the first row with that code won
    assert claims["GOOD-0002"] is not None and claims["BAD-TYPE"] is None


def test_import_json_sample(data_dir) -> None:
    sample = DATA / "claims_sample.json"
    items = json.loads(sample.read_text())
    result = _ok("claims", "import", str(sample))
    assert f"imported {len(items)}, failed 0" in result.stdout
    codes = [item["booking_code"] for item in items]
    claims = _claims_by_booking(data_dir, codes)
    balances = [c.balance_idr if c else None for c in (claims[code] for code in codes)]
    assert balances == [int(item["balance_idr"]) for item in items]


def test_import_json_bad_items_are_numbered_from_one(data_dir, tmp_path) -> None:
    good = {"booking_code": "JS-0001", "nik": NIK, "kpj": "12345678901",
            "claim_type": "death", "branch": "jkt01",
            "appointment": "2026-12-01T09:00:00+07:00", "balance_idr": 10}  # fmt: skip
    bad = {**good, "booking_code": "JS-0002", "kpj": "123"}
    path = tmp_path / "claims.txt"
    path.write_text(json.dumps([good, bad]))
    result = _run("claims", "import", str(path), "--format", "json")
    assert result.exit_code == 2, result.output
    assert re.search(r"│ 2 +│ JS-0002 +│ .*KPJ", result.output)


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("missing.csv", HEADER.replace(",kpj", "") + f"\nX-0001,{NIK},resignation,jkt01,"
         "2026-12-01T09:00:00+07:00,0\n", "kpj"),
        ("missing.json", json.dumps([{"booking_code": "X-0001", "nik": NIK, "kpj": "12345678901",
         "claim_type": "death", "branch": "jkt01", "appointment": "2026-12-01T09:00:00+07:00"}]),
         "balance_idr"),
        ("broken.json", '[{"booking_code": "X-0001",', "not valid JSON"),
        ("empty.csv", "", "empty"),
        ("claims.xlsx", "whatever", "--format"),
    ],
)  # fmt: skip
def test_unusable_file_imports_nothing(data_dir, tmp_path, name, content, says) -> None:
    _ok("db", "upgrade")
    path = tmp_path / name
    path.write_text(content)
    result = _run("claims", "import", str(path))
    assert result.exit_code == 1, result.output
    assert "error:" in result.stderr and says in result.stderr
    assert "X-0001" not in result.stdout
    assert _claims_by_booking(data_dir, ["X-0001"]) == {"X-0001": None}


def test_import_of_a_file_that_is_not_there(data_dir, tmp_path) -> None:
    result = _run("claims", "import", str(tmp_path / "nope.csv"))
    assert result.exit_code == 1
    assert "error: cannot read" in result.stderr


# --- outcomes export ----------------------------------------------------------------------------


def _add_outcome(
    data_dir: Path, booking: str, nik: str, decision: str, *, decided_at: datetime
) -> str:
    async def work(service: RecordsService) -> str:
        claim = new_booked_claim(
            uuid.uuid4().hex, booking, nik, "12345678901", ClaimType.RESIGNATION, "jkt01",
            decided_at, decided_at, balance_idr=1_000_000,
        )  # fmt: skip
        outcome_id = uuid.uuid4().hex

        def add_outcome_record(tx: RecordsTx) -> None:
            tx.add_claim(claim)
            entry = tx.append_audit(
                AuditDraft(actor="siti", role="cso", action="outcome.recorded",
                           claim_id=claim.claim_id, decision=decision),
                decided_at,
            )  # fmt: skip
            tx.add_outcome(
                OutcomeRecord(
                    outcome_id=outcome_id, claim_id=claim.claim_id, decision=decision,
                    reason_codes=("docs_complete",), note="ok", decided_by="siti",
                    branch="jkt01", session_id="s1", fingerprints=("ab:cd",), evidence=(),
                    decided_at=decided_at, audit_seq=entry.seq,
                )
            )  # fmt: skip

        await service.store.write(add_outcome_record)
        return outcome_id

    return _with_service(data_dir, work)


@pytest.fixture
def outcomes(data_dir) -> dict[str, str]:  # type: ignore[no-untyped-def]
    _ok("db", "upgrade")
    day = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    return {
        "approved": _add_outcome(data_dir, "EX-0001", NIK, "approved", decided_at=day),
        "rejected": _add_outcome(
            data_dir, "EX-0002", "3273014507850002", "rejected", decided_at=day + timedelta(1)
        ),
    }


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_csv_masks_nik_unless_full_nik(outcomes) -> None:
    from server.record_views import EXPORT_FIELDS

    result = _ok("outcomes", "export")
    assert result.stdout.splitlines()[0] == ",".join(EXPORT_FIELDS)
    rows = _csv_rows(result.stdout)  # stdout is only the data: it parses as a whole
    assert [r["outcome_id"] for r in rows] == [outcomes["approved"], outcomes["rejected"]]
    assert [r["nik"] for r in rows] == ["*" * 12 + "0001", "*" * 12 + "0002"]
    assert rows[0]["booking_code"] == "EX-0001" and rows[0]["decision"] == "approved"
    # No cell is a whole NIK, and neither NIK appears anywhere (a 16-digit run may occur
    # by chance inside a hex id or hash: about one export in twenty had one).
    assert not any(FULL_NIK.fullmatch(cell) for row in rows for cell in row.values())
    assert NIK not in result.stdout and "3273014507850002" not in result.stdout
    assert "exported 2" in result.stderr and "exported" not in result.stdout

    full = _ok("outcomes", "export", "--full-nik")
    assert [r["nik"] for r in _csv_rows(full.stdout)] == [NIK, "3273014507850002"]


def test_export_filters_and_json(outcomes, tmp_path) -> None:
    rejected = _csv_rows(_ok("outcomes", "export", "--decision", "rejected").stdout)
    assert [r["outcome_id"] for r in rejected] == [outcomes["rejected"]]
    assert _csv_rows(_ok("outcomes", "export", "--branch", "bdg01").stdout) == []
    first_day = _ok("outcomes", "export", "--since", "2026-03-02", "--until", "2026-03-02")
    assert [r["outcome_id"] for r in _csv_rows(first_day.stdout)] == [outcomes["approved"]]

    data = json.loads(_ok("outcomes", "export", "--format", "json").stdout)
    assert [d["outcome_id"] for d in data] == [outcomes["approved"], outcomes["rejected"]]
    assert data[1]["nik"] == "*" * 12 + "0002" and data[1]["decision"] == "rejected"

    target = tmp_path / "out" / "outcomes.json"
    target.parent.mkdir()
    done = _ok("outcomes", "export", "--format", "json", "--cso", "siti", "--output", str(target))
    assert "exported 2" in done.stdout
    assert len(json.loads(target.read_text())) == 2
    assert list(target.parent.iterdir()) == [target]  # no temp file left behind

    bad = _run("outcomes", "export", "--since", "last week")
    assert bad.exit_code == 1 and "error: --since" in bad.stderr


def test_every_export_is_audited_full_nik_ones_as_such(outcomes, data_dir) -> None:
    _ok("outcomes", "export", "--decision", "approved")
    _ok("outcomes", "export", "--full-nik", "--format", "json")

    async def work(service: RecordsService) -> list[Mapping[str, Any]]:
        return [e.details async for e in service.store.audit_entries()
                if e.action == "outcomes.exported"]  # fmt: skip

    exports = _with_service(data_dir, work)
    assert [(d["full_nik"], d["rows"], d["format"]) for d in exports] == [
        (False, 1, "csv"), (True, 2, "json"),
    ]  # fmt: skip
    assert exports[0]["filters"]["decision"] == "approved"  # type: ignore[index]
    assert "intact" in _ok("audit", "verify").stdout


def test_export_pages_through_more_than_one_page(data_dir, monkeypatch) -> None:
    import server.cli.records as records_cli

    monkeypatch.setattr(records_cli, "PAGE", 2)
    _ok("db", "upgrade")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [
        _add_outcome(data_dir, f"PG-000{i}", NIK, "approved", decided_at=start + timedelta(i))
        for i in range(5)
    ]
    rows = _csv_rows(_ok("outcomes", "export").stdout)
    assert [r["outcome_id"] for r in rows] == ids


# --- audit verify -------------------------------------------------------------------------------


def test_audit_verify_catches_an_edit_and_a_deleted_tail(data_dir) -> None:
    _ok("claims", "import", str(DATA / "claims_sample.csv"))
    intact = _ok("audit", "verify")
    assert "audit log intact: 3 entries" in intact.stdout

    db = data_dir / "loket.db"
    assert db.exists()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_log SET actor='mallory' WHERE seq=2")
    edited = _run("audit", "verify")
    assert edited.exit_code == 1, edited.output
    assert "entry 2: edited:" in edited.stdout
    assert "1 problem(s)" in edited.stderr and "backup" in edited.stderr

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_log SET actor='cli' WHERE seq=2")  # put it back
    assert _run("audit", "verify").exit_code == 0
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq=3")
    truncated = _run("audit", "verify")
    assert truncated.exit_code == 1, truncated.output
    assert "entry 2: head_mismatch:" in truncated.stdout and "deleted" in truncated.stdout


# --- retention purge ----------------------------------------------------------------------------


def _png() -> bytes:
    image = np.zeros((100, 100, 3), np.uint8)
    image[20:80, 20:80] = (40, 160, 220)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return bytes(buf)


def _add_document(data_dir: Path, uploaded_at: datetime) -> tuple[str, str]:
    png = _png()

    async def work(service: RecordsService) -> tuple[str, str]:
        sha = service.blobs.put(png)
        now = datetime.now(UTC)
        claim = new_booked_claim(
            uuid.uuid4().hex, "DOC-0001", NIK, "12345678901", ClaimType.RESIGNATION, "jkt01",
            now, now,
        )  # fmt: skip
        doc = DocumentRecord(
            document_id=uuid.uuid4().hex, claim_id=claim.claim_id, kind="ktp", sha256=sha,
            content_type="image/png", size_bytes=len(png), width=100, height=100,
            session_id=None, uploaded_by="booth-1", uploaded_at=uploaded_at,
        )  # fmt: skip

        def add_old_document(tx: RecordsTx) -> None:
            tx.add_claim(claim)
            tx.add_document(doc)
            tx.append_audit(
                AuditDraft(actor="booth-1", role="booth", action="document.uploaded",
                           claim_id=claim.claim_id, evidence=(sha,)),
                uploaded_at,
            )  # fmt: skip

        await service.store.write(add_old_document)
        return doc.document_id, sha

    return _with_service(data_dir, work)


def _document_state(data_dir: Path, document_id: str, sha: str) -> tuple[bool, datetime | None]:
    async def work(service: RecordsService) -> tuple[bool, datetime | None]:
        doc = await service.store.get_document(document_id)
        assert doc is not None
        return service.blobs.exists(sha), doc.purged_at

    return _with_service(data_dir, work)


def test_retention_purge_dry_run_then_yes(data_dir) -> None:
    _ok("db", "upgrade")
    document_id, sha = _add_document(data_dir, datetime.now(UTC) - timedelta(days=40))
    assert _document_state(data_dir, document_id, sha) == (True, None)

    young = _ok("retention", "purge", "--older-than", "60", "--yes")
    assert "nothing to purge" in young.stdout

    dry = _ok("retention", "purge", "--older-than", "30", "--dry-run")
    assert document_id in dry.stdout and "nothing was deleted" in dry.stdout
    assert _document_state(data_dir, document_id, sha) == (True, None)

    declined = _run("retention", "purge", "--older-than", "30", input="n\n")
    assert declined.exit_code == 1 and "1 document(s)" in declined.output
    assert _document_state(data_dir, document_id, sha) == (True, None)

    done = _ok("retention", "purge", "--older-than", "30", "--yes")
    assert "purged 1 document(s)" in done.stdout and "deleted 1 file(s)" in done.stdout
    assert "hash" in done.stdout
    exists, purged_at = _document_state(data_dir, document_id, sha)
    assert not exists and purged_at is not None

    verify = _ok("audit", "verify")
    assert "audit log intact" in verify.stdout
    assert _audit_actions(data_dir)[-1] == "document.purged"
    assert "nothing to purge" in _ok("retention", "purge", "--older-than", "30", "--yes").stdout


def test_retention_purge_asks_and_refuses_zero_days(data_dir) -> None:
    _ok("db", "upgrade")
    document_id, sha = _add_document(data_dir, datetime.now(UTC) - timedelta(days=3))
    assert _run("retention", "purge", "--older-than", "0", "--yes").exit_code == 2
    confirmed = _ok("retention", "purge", "--older-than", "2", input="y\n")
    assert "purged 1 document(s)" in confirmed.stdout
    assert _document_state(data_dir, document_id, sha)[0] is False


# --- help ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["claims"], ["claims", "import"], ["outcomes"], ["outcomes", "export"], ["audit"],
     ["audit", "verify"], ["retention"], ["retention", "purge"]],
)  # fmt: skip
def test_every_records_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_import_help_documents_exit_codes() -> None:
    out = runner.invoke(app, ["claims", "import", "--help"]).output
    assert "Exit codes" in out and "2 some rows failed" in " ".join(out.split())
