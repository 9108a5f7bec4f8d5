"""Booked claims for tests, written through the real records store."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from server.domain.claims import Claim, ClaimState, new_booked_claim
from server.domain.members import MemberRecord, MemberSource, nik_birth
from server.ports.records import DocumentRecord, RecordsTx
from server.records import RecordsService, new_id
from signaling.messages import ClaimType
from tests.support.live_server import LiveServer

_serial = itertools.count(1)


def valid_nik(serial: int) -> str:
    """A structurally valid NIK: Jakarta (31), born 15-08-1990, serial `serial`."""
    return f"317101150890{serial % 10_000 or 1:04d}"


async def seed_claim(
    server: LiveServer,
    booking_code: str,
    *,
    claim_type: ClaimType = ClaimType.RESIGNATION,
    balance_idr: int = 20_000_000,
    branch: str = "jkt01",
    nik: str | None = None,
    state: ClaimState | None = None,
    member: bool = True,
) -> Claim:
    records: RecordsService = server.app.state.records
    return await add_claim(
        records, booking_code, claim_type=claim_type, balance_idr=balance_idr, branch=branch,
        nik=nik, state=state, member=member,
    )  # fmt: skip


async def add_claim(
    records: RecordsService,
    booking_code: str,
    *,
    claim_type: ClaimType = ClaimType.RESIGNATION,
    balance_idr: int = 20_000_000,
    branch: str = "jkt01",
    nik: str | None = None,
    state: ClaimState | None = None,
    member: bool = True,
) -> Claim:
    """A booked claim written straight to the store (optionally already in `state`), with
    an imported member record that agrees with its NIK (`member_for`) unless `member` is
    False."""
    now = datetime.now(UTC)
    claim = new_booked_claim(
        new_id(), booking_code, nik or valid_nik(next(_serial)), "12345678901", claim_type,
        branch, now + timedelta(hours=1), now, balance_idr=balance_idr,
    )  # fmt: skip

    def add(tx: RecordsTx) -> None:
        tx.add_claim(claim)
        if member:
            tx.set_claim_member(claim.claim_id, member_for(claim.nik, now))
        if state is not None:
            tx.set_claim_state(claim.claim_id, state)

    await records.store.write(add)
    return claim if state is None else dataclasses.replace(claim, state=state)


def member_for(nik: str, at: datetime, **changes: Any) -> MemberRecord:
    """A complete imported record whose birth date and sex are the ones `nik` encodes
    (born in the 1900s), employment ended long enough ago for any claim."""
    born = nik_birth(nik)
    values: dict[str, Any] = {
        "full_name": "BUDI SANTOSO" if born.sex == "M" else "SITI AMINAH",
        "birth_place": "JAKARTA", "birth_date": date(1900 + born.year2, born.month, born.day),
        "sex": born.sex, "address": "JL. MAWAR NO. 3", "employer_name": "PT MAJU JAYA",
        "employment_end": date(2026, 1, 31), "bank_name": "BANK MANDIRI",
        "account_number": "1230045678901",
        "account_holder": "BUDI SANTOSO" if born.sex == "M" else "SITI AMINAH",
    }  # fmt: skip
    values.update(changes)
    return MemberRecord(MemberSource.IMPORT, at, **values)


async def confirm_identity(http: httpx.AsyncClient, claim_id: str, headers: dict[str, str]) -> int:
    """As the serving officer would after comparing them: every identity field of every
    document on the claim marked as matching. Returns how many were marked."""
    view = (await http.get(f"/api/claims/{claim_id}/verification", headers=headers)).json()
    marked = 0
    for doc in view["documents"]:
        for row in doc["fields"]:
            res = await http.post(
                f"/api/claims/{claim_id}/fields",
                json={"document_id": doc["document_id"], "field": row["field"], "state": "matches"},
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )  # fmt: skip
            res.raise_for_status()
            marked += 1
    return marked


async def add_document(
    records: RecordsService,
    claim_id: str,
    data: bytes,
    *,
    kind: str = "ktp",
    uploaded_at: datetime | None = None,
    uploaded_by: str = "booth-seed",
) -> DocumentRecord:
    """A document as an upload would leave it (encrypted file and record), at any age."""
    sha = records.blobs.put(data)
    doc = DocumentRecord(
        document_id=new_id(), claim_id=claim_id, kind=kind, sha256=sha,
        content_type="image/jpeg" if data[:2] == b"\xff\xd8" else "image/png",
        size_bytes=len(data), width=320, height=200, session_id=None, uploaded_by=uploaded_by,
        uploaded_at=uploaded_at or datetime.now(UTC),
    )  # fmt: skip

    def add(tx: RecordsTx) -> None:
        tx.add_document(doc)

    await records.store.write(add)
    return doc
