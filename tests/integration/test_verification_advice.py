"""Machine advice wired into the server: a KTP picture stored by the booth is read by the
server's ReadingPool (real worker processes, real OCR models), compared with the member
record, and the officer's console is told (`verification_updated`, no personal data) and
reads the workbench; a face still is compared with the KTP's photo by the FaceRunner;
past the pool's bound a reading is "unavailable" at once, never a slow console.

The pictures are what the synthetic kiosk takes: the member's own KTP (drawn from the
NIK and KPJ, a real public-domain portrait on it) on a desk, through the capture pipeline,
and the portrait as the face camera sees it."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import cv2
import httpx
import pytest

from booth_client.capture import CapturePipeline, encode_jpeg
from booth_client.capture_agent import SyntheticDocumentCamera
from booth_client.sources.documents import ParticipantDocuments, face_frame
from booth_client.sources.id_cards import Person, person_for
from server.domain.members import MemberRecord, MemberSource
from signaling.messages import VerificationUpdated
from tests.support.claims import seed_claim
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.sessions import LivePair, live_pair

NIK = "3171015208900001"  # a woman born 12-08-1990
KPJ = "12345678901"  # seed_claim's
PORTRAIT = Path(__file__).resolve().parents[1] / "support" / "faces_photos" / "hopper.jpg"


def record_of(p: Person) -> MemberRecord:
    from datetime import UTC, date, datetime

    return MemberRecord(
        MemberSource.IMPORT, datetime.now(UTC), full_name=p.name, birth_place=p.birth_place,
        birth_date=p.birth_date, sex=p.sex, address=p.address, employer_name="PT MAJU JAYA",
        employment_end=date(2026, 1, 31), bank_name=p.bank, account_number=p.account_number,
        account_holder=p.name,
    )  # fmt: skip


async def captured(kind: str) -> bytes:
    """The participant's `kind` as the synthetic kiosk captures it (rectified JPEG)."""
    documents = ParticipantDocuments(lambda: (NIK, KPJ), cv2.imread(str(PORTRAIT)))
    frames = await SyntheticDocumentCamera(5, documents=documents).burst(kind, 5, 1)
    result = CapturePipeline().run(frames, kind)
    assert result.accepted and result.jpeg is not None, result
    return result.jpeg


async def upload(server: LiveServer, pair: LivePair, kind: str, data: bytes) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        res = await http.post(
            f"/api/claims/{pair.claim_id}/documents", params={"kind": kind}, content=data,
            headers=pair.booth_headers(**{"Content-Type": "image/jpeg",
                                          "Idempotency-Key": uuid.uuid4().hex}),
        )  # fmt: skip
    assert res.status_code == 201, res.text
    return dict(res.json())


async def workbench(server: LiveServer, pair: LivePair) -> dict:  # type: ignore[type-arg]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        res = await http.get(f"/api/claims/{pair.claim_id}/verification",
                             headers=pair.cso_headers())  # fmt: skip
    assert res.status_code == 200, res.text
    return dict(res.json())


async def setup(server: LiveServer, code: str) -> LivePair:
    claim = await seed_claim(server, code, nik=NIK, member=False)
    member = record_of(person_for(NIK, KPJ))
    await server.app.state.records.store.write(
        lambda tx: tx.set_claim_member(claim.claim_id, member)
    )
    return await live_pair(server, code, booth="booth-a", cso="siti")


@pytest.mark.timeout(180)
async def test_a_stored_ktp_is_read_compared_and_pushed_and_a_still_compared(tmp_path) -> None:
    # A generous timeout: on this shared 2-core box a first reading waits for its worker
    # to load the models; the bound itself is tested below.
    settings = server_settings(tmp_path, reading_workers=1, face_workers=1, reading_timeout=120)
    ktp, still = await captured("ktp"), encode_jpeg(face_frame(cv2.imread(str(PORTRAIT)),
                                                                (1280, 720), 1), 92)  # fmt: skip
    async with running_server(settings) as server:
        pair = await setup(server, "BK-READ-1")
        stored = time.monotonic()
        doc = await upload(server, pair, "ktp", ktp)
        told = await pair.cso.expect(VerificationUpdated, timeout=120, what="reading")
        took = time.monotonic() - stored
        assert told.document_id == doc["document_id"] and told.claim_id == pair.claim_id
        assert "SITI" not in told.model_dump_json() and NIK not in told.model_dump_json()
        bench = await workbench(server, pair)
        (row,) = [d for d in bench["documents"] if d["document_id"] == doc["document_id"]]
        assert row["reading"]["status"] == "done", row["reading"]
        fields = {f["field"]: f for f in row["fields"]}
        for name in ("nik", "name", "birth_place", "birth_date", "sex"):
            assert fields[name]["suggested"] == "matches", (name, fields[name])
            assert fields[name]["confidence"] >= 0.8 and fields[name]["state"] is None
        assert fields["nik"]["record"] == NIK == fields["nik"]["read"]  # in full, to its officer
        # The face still, compared with this KTP's photo.
        await upload(server, pair, "face_still", still)
        await pair.cso.expect(VerificationUpdated, timeout=60, what="face")
        bench = await workbench(server, pair)
        face = bench["face"]
        assert face["status"] == "done" and face["ktp_document_id"] == doc["document_id"]
        assert face["band"] == "likely_same" and face["similarity"] >= 0.48, face
        (card,) = [d for d in bench["documents"] if d["document_id"] == doc["document_id"]]
        photo = next(f for f in card["fields"] if f["field"] == "photo")
        assert photo["suggested"] == "matches" and "likely the same person" in photo["read"]
        # Every piece of advice is on the audit chain, with the models that gave it.
        entries = [e async for e in server.app.state.records.store.audit_entries()]
        analysed = [e.details for e in entries if e.action == "document.analysed"]
        assert {d["analysis"] for d in analysed} == {"reading", "face"}
        assert all(d["models"] for d in analysed if d["status"] == "done")
        print(f"\nKTP stored -> reading in the console: {took:.1f} s")
        await pair.close()


@pytest.mark.timeout(120)
async def test_past_the_pools_bound_a_reading_is_unavailable_at_once(tmp_path) -> None:
    settings = server_settings(tmp_path, reading_workers=1, reading_queue=0)
    kpj = await captured("kpj_card")
    async with running_server(settings) as server:
        pair = await setup(server, "BK-BUSY-1")
        first, second = await asyncio.gather(
            upload(server, pair, "kpj_card", kpj), upload(server, pair, "kpj_card", kpj)
        )
        told = await pair.cso.expect(VerificationUpdated, timeout=10, what="reading")
        bench = await workbench(server, pair)
        status = {d["document_id"]: d["reading"] for d in bench["documents"]}
        busy = status[told.document_id]
        assert busy["status"] == "unavailable" and busy["reason"].startswith("busy"), busy
        assert {first["document_id"], second["document_id"]} >= {told.document_id}
        await pair.close()
