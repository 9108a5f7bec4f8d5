"""`loket claims import` with the member record's columns: each row's record checked and
its problems reported by line and column, files without the columns still importing, and
the imported records filling the membership table the local MemberDirectory reads."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from server.adapters.directory import LocalMemberDirectory
from server.adapters.sql.wiring import open_records
from server.cli import app
from server.domain.members import MemberRecord, MemberSource
from server.settings import Settings

runner = CliRunner(env={"COLUMNS": "200"})
DATA = Path(__file__).resolve().parent.parent / "data"
HEADER = ("booking_code,nik,kpj,claim_type,branch,appointment,balance_idr,full_name,birth_place,"
          "birth_date,sex,address,employer_name,employment_end,bank_name,account_number,"
          "account_holder")  # fmt: skip
APPOINTMENT = "2026-12-01T09:00:00+07:00"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOKET_DATA_DIR", str(tmp_path))
    return tmp_path


def _records(data_dir: Path, nik: str, kpj: str) -> tuple[MemberRecord | None, MemberRecord | None]:
    """(the claim's record, the membership table's) for the claim of `nik`."""

    async def run() -> tuple[MemberRecord | None, MemberRecord | None]:
        async with open_records(Settings(data_dir=data_dir)) as (_, service):
            (claim,) = await service.store.find_claims_by_nik(nik)
            held = await service.store.read(lambda tx: tx.get_claim_member(claim.claim_id))
            return held, await LocalMemberDirectory(service.store).lookup(nik, kpj)

    return asyncio.run(run())


def test_the_sample_with_member_columns_imports_them(data_dir) -> None:
    result = runner.invoke(app, ["claims", "import", str(DATA / "claims_members_sample.csv")])
    assert result.exit_code == 0, result.output
    held, listed = _records(data_dir, "3273011507850202", "12345678922")
    assert held is not None and held.source is MemberSource.IMPORT
    assert held.full_name == "MUH. RIZKY HIDAYAT" and held.birth_date == date(1985, 7, 15)
    assert held.address is None and held.account_number == "012301456789501"
    assert listed is not None and listed.source is MemberSource.DIRECTORY
    assert listed.account_holder == "MUHAMMAD RIZKY HIDAYAT"


def test_each_bad_member_row_is_reported_by_line_and_column(data_dir, tmp_path) -> None:
    good = "SITI AMINAH,JAKARTA,1990-08-12,F,,PT MAJU JAYA,2026-09-30,BANK MANDIRI,1234567,SITI"
    text = "\n".join([
        HEADER,
        f"GOOD-0001,3171015208900001,12345678901,retirement,jkt01,{APPOINTMENT},0,{good}",
        f"BAD-DATE,3171015208900002,12345678902,retirement,jkt01,{APPOINTMENT},0,"
        + good.replace("1990-08-12", "12/08/1990"),
        f"BAD-NIK1,3171015208900003,12345678903,retirement,jkt01,{APPOINTMENT},0,"
        + good.replace("1990-08-12", "1990-08-13"),
        f"BAD-SEX1,3171015208900004,12345678904,retirement,jkt01,{APPOINTMENT},0,"
        + good.replace(",F,", ",M,"),
        f"EARLY-01,3171015208900005,12345678905,resignation,jkt01,{APPOINTMENT},0,"
        + good.replace("2026-09-30", "2026-11-15"),
        f"PART-001,3171015208900006,12345678906,retirement,jkt01,{APPOINTMENT},0,"
        + good.replace("BANK MANDIRI", ""),
        f"NONE-001,3171015208900007,12345678907,retirement,jkt01,{APPOINTMENT},0,,,,,,,,,,",
    ]) + "\n"  # fmt: skip
    path = tmp_path / "members.csv"
    path.write_text(text)
    result = runner.invoke(app, ["claims", "import", str(path)])
    assert result.exit_code == 2, result.output
    assert "imported 2, failed 5" in result.output
    expected = {
        3: "birth_date: '12/08/1990' is not a date; write it YYYY-MM-DD",
        4: "does not agree with the birth date and sex",
        5: "written for a woman",
        6: "from 2026-12-15, after the appointment",
        7: "bank_name: is missing",
    }
    failed = {int(m.group(1)) for m in re.finditer(r"^│ (\d+) +│", result.output, re.M)}
    assert failed == set(expected)
    flat = " ".join(result.output.split())
    for why in expected.values():
        assert why in flat, (why, result.output)
    assert re.search(r"\d{16}", result.output) is None  # NIKs masked in the report
    # A row with empty member cells imports its claim without a record.
    held, listed = _records(data_dir, "3171015208900007", "12345678907")
    assert held is None and listed is None
    assert _records(data_dir, "3171015208900001", "12345678901")[0] is not None


def test_some_member_columns_but_not_all_stop_the_file(data_dir, tmp_path) -> None:
    path = tmp_path / "half.csv"
    header = "booking_code,nik,kpj,claim_type,branch,appointment,balance_idr,full_name"
    path.write_text(
        f"{header}\nX-0001,3171015208900001,12345678901,death,jkt01,{APPOINTMENT},0,SITI\n"
    )
    result = runner.invoke(app, ["claims", "import", str(path)])
    assert result.exit_code == 1
    assert "member column(s) birth_place, birth_date" in " ".join(result.output.split())


def test_json_files_carry_the_member_keys_too(data_dir, tmp_path) -> None:
    path = tmp_path / "one.json"
    path.write_text(
        '[{"booking_code": "J-0001", "nik": "3171015208900001", "kpj": "12345678901", '
        '"claim_type": "death", "branch": "jkt01", "appointment": "' + APPOINTMENT + '", '
        '"balance_idr": 0, "full_name": "SITI AMINAH", "birth_place": "JAKARTA", '
        '"birth_date": "1990-08-12", "sex": "F", "address": null, "employer_name": "PT A", '
        '"employment_end": "2026-01-31", "bank_name": "BNI", "account_number": 1234567890, '
        '"account_holder": "SITI AMINAH"}]'
    )
    result = runner.invoke(app, ["claims", "import", str(path)])
    assert result.exit_code == 0, result.output
    held, _ = _records(data_dir, "3171015208900001", "12345678901")
    assert held is not None and held.account_number == "1234567890" and held.sex == "F"
