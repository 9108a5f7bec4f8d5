"""Records hardening (issue 10): uploads refused before their body is read, purge that
keeps shared files, a refused check-in that writes nothing, and the /metrics token.

SQLite and PostgreSQL where the records store is involved; real HTTP over real sockets.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from server.adapters.sql import migrate
from server.adapters.sql.wiring import open_records
from server.domain.claims import ClaimState
from server.principal import AccountRole, Principal
from server.records import RecordsError, RecordsService
from signaling.messages import BookingRef, ClaimType, WalkInRef
from signaling.session import SessionState
from tests.support.accounts import user_token
from tests.support.claims import add_claim, add_document, seed_claim
from tests.support.images import jpeg, png
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.sessions import StagedSessions, booth_login

S = SessionState
LIMIT = 256 * 1024


@pytest.fixture
async def server(db_settings):
    await migrate.upgrade(db_settings)
    async with running_server(db_settings.model_copy(update={"max_document_bytes": LIMIT})) as live:
        yield live


@pytest.fixture
def staged(server: LiveServer) -> StagedSessions:
    sessions = StagedSessions()
    server.app.state.records.session_of_claim = sessions
    return sessions


# --- uploads: everything that needs no body is checked before the body is read -------------------


async def _headers_only(
    server: LiveServer, path: str, headers: dict[str, str]
) -> tuple[int, float]:
    """Send a POST's headers, promising a body that never comes; (status, seconds to it)."""
    host, port = server.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]  # fmt: skip
    started = time.monotonic()
    writer.write("\r\n".join(lines).encode())
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), 5)
    except TimeoutError:
        return 0, time.monotonic() - started  # still waiting for the body: read first
    finally:
        writer.close()
    return int(status_line.split()[1]), time.monotonic() - started


async def test_uploads_are_refused_before_their_body_is_read(server, staged) -> None:
    claim = await seed_claim(server, "BK-5001", state=ClaimState.CHECKED_IN)
    booth_id, booth = await booth_login(server, "booth-a")
    other_id, other_booth = await booth_login(server, "booth-b")
    siti = await user_token(server, "siti")
    path = f"/api/claims/{claim.claim_id}/documents?kind=ktp"

    def headers(token: str, length: int, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}", "Content-Type": "image/jpeg",
            "Content-Length": str(length), "Idempotency-Key": str(uuid.uuid4()), **extra,
        }  # fmt: skip

    small, huge = LIMIT // 2, 50 * 1024 * 1024
    # No live session for the claim at all.
    assert (await _headers_only(server, path, headers(booth, small)))[0] == 403
    # Offered to a CSO, not yet accepted.
    staged.put(claim.claim_id, booth=booth_id, cso="siti", state=S.RESERVED)
    assert (await _headers_only(server, path, headers(booth, small)))[0] == 403
    # In a call, but another booth's / a CSO's upload: refused by role or session first.
    staged.move(claim.claim_id, S.FOCUSED)
    assert (await _headers_only(server, path, headers(other_booth, small)))[0] == 403
    assert (await _headers_only(server, path, headers(siti, huge)))[0] == 403
    # The right booth, too large by its Content-Length; no key; an unknown kind.
    assert (await _headers_only(server, path, headers(booth, huge)))[0] == 413
    no_key = headers(booth, small)
    del no_key["Idempotency-Key"]
    assert (await _headers_only(server, path, no_key))[0] == 400
    unknown = f"/api/claims/{claim.claim_id}/documents?kind=selfie"
    assert (await _headers_only(server, unknown, headers(booth, small)))[0] == 422
    # ... and only the right booth in a call gets as far as waiting for the body.
    status, waited = await _headers_only(server, path, headers(booth, small))
    assert status == 0 and waited >= 5
    del other_id


async def test_a_retry_after_the_session_ended_still_gets_its_answer(server, staged) -> None:
    claim = await seed_claim(server, "BK-5002", state=ClaimState.CHECKED_IN)
    booth_id, booth = await booth_login(server, "booth-a")
    staged.put(claim.claim_id, booth=booth_id, cso="siti", state=S.CONNECTING)
    url = f"/api/claims/{claim.claim_id}/documents?kind=ktp"
    headers = {"Authorization": f"Bearer {booth}", "Content-Type": "image/jpeg",
               "Idempotency-Key": "upload-1"}  # fmt: skip
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        first = await http.post(url, content=jpeg(), headers=headers)
        assert first.status_code == 201
        staged.end(claim.claim_id)
        retry = await http.post(url, content=jpeg(), headers=headers)
        assert retry.status_code == 201 and retry.json() == first.json()
        assert retry.headers["idempotent-replayed"] == "true"
        changed = await http.post(url, content=jpeg(seed=9), headers=headers)
        assert changed.status_code == 409
        fresh = await http.post(url, content=jpeg(), headers={**headers, "Idempotency-Key": "2"})
        assert fresh.status_code == 403
    # A fresh key is refused without its body being read.
    fresh_headers = {**headers, "Idempotency-Key": "3", "Content-Length": str(LIMIT // 2)}
    assert (await _headers_only(server, url, fresh_headers))[0] == 403


# --- retention purge: a file is deleted only when no document still uses it -------------------


async def test_purge_keeps_a_file_another_claim_still_uses(db_settings) -> None:
    await migrate.upgrade(db_settings)
    old = datetime.now(UTC) - timedelta(days=400)
    async with open_records(db_settings) as (_, records):
        a = await add_claim(records, "PG-0001")
        b = await add_claim(records, "PG-0002")
        c = await add_claim(records, "PG-0003")
        shared = jpeg(seed=11)  # the same picture in two claims: one file
        old_a = await add_document(records, a.claim_id, shared, uploaded_at=old)
        new_b = await add_document(records, b.claim_id, shared)
        lone_c = await add_document(records, c.claim_id, png(seed=12), uploaded_at=old)
        assert old_a.sha256 == new_b.sha256

        first = await records.purge(365)
        assert {d.document_id for d in first.purged} == {old_a.document_id, lone_c.document_id}
        assert first.deleted == {lone_c.sha256} and first.kept == {old_a.sha256}
        assert records.blobs.exists(new_b.sha256) and not records.blobs.exists(lone_c.sha256)
        purged_a = await records.store.get_document(old_a.document_id)
        assert purged_a is not None and purged_a.purged_at is not None
        assert records.blobs.get(new_b.sha256) == shared  # claim B's picture still reads

        # Once B's document is past retention too, its file goes.
        later = await _purge_at(records, datetime.now(UTC) + timedelta(days=400))
        assert [d.document_id for d in later.purged] == [new_b.document_id]
        assert later.deleted == {new_b.sha256} and not records.blobs.exists(new_b.sha256)

        files = [e.details["file"] async for e in records.store.audit_entries()
                 if e.action == "document.purged"]  # fmt: skip
        assert sorted(files) == ["deleted", "deleted", "kept: used by another document"]
        count, problems = await records.verify_audit()
        assert problems == [] and count == 3


async def _purge_at(records: RecordsService, now: datetime):  # type: ignore[no-untyped-def]
    clock = records._now
    records._now = lambda: now
    try:
        return await records.purge(365)
    finally:
        records._now = clock


async def test_purge_of_two_old_copies_deletes_the_file_once(db_settings) -> None:
    await migrate.upgrade(db_settings)
    old = datetime.now(UTC) - timedelta(days=400)
    async with open_records(db_settings) as (_, records):
        a = await add_claim(records, "PG-0004")
        b = await add_claim(records, "PG-0005")
        picture = jpeg(seed=13)
        first = await add_document(records, a.claim_id, picture, uploaded_at=old)
        await add_document(records, b.claim_id, picture, uploaded_at=old + timedelta(days=1))
        report = await records.purge(365)
        assert len(report.purged) == 2 and report.deleted == {first.sha256}
        assert report.kept == set() and not records.blobs.exists(first.sha256)


async def test_an_upload_whose_file_a_purge_deleted_writes_it_again(server, staged) -> None:
    """An upload of a picture an old document also has: the purge may delete the file
    after the upload found it there and before the upload's record commits."""
    records: RecordsService = server.app.state.records
    claim = await seed_claim(server, "BK-5003", state=ClaimState.CHECKED_IN)
    booth_id, booth = await booth_login(server, "booth-a")
    staged.put(claim.claim_id, booth=booth_id, cso="siti", state=S.FOCUSED)
    picture = jpeg(seed=14)
    put, calls = records.blobs.put, []

    def put_then_lose(data: bytes, known_sha: str | None = None) -> str:
        sha = put(data, known_sha)
        calls.append(sha)
        if len(calls) == 1:
            records.blobs.delete(sha)  # as a purge committing right after this put would
        return sha

    records.blobs.put = put_then_lose  # type: ignore[method-assign]
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            res = await http.post(
                f"/api/claims/{claim.claim_id}/documents", params={"kind": "ktp"},
                content=picture, headers={"Authorization": f"Bearer {booth}",
                                          "Content-Type": "image/jpeg", "Idempotency-Key": "k"},
            )  # fmt: skip
    finally:
        records.blobs.put = put  # type: ignore[method-assign]
    assert res.status_code == 201
    assert records.blobs.get(res.json()["sha256"]) == picture
    assert len(calls) == 2  # written again once the record was committed


async def test_an_upload_whose_file_write_fails_is_not_acknowledged_and_its_retry_stores_it(
    server: LiveServer, staged: StagedSessions
) -> None:
    """The record and the file are written side by side: when the file fails, the answer
    is a 503 (never a 201), and the retry with the same key replays the record and writes
    the file."""
    records: RecordsService = server.app.state.records
    claim = await seed_claim(server, "BK-5004", state=ClaimState.CHECKED_IN)
    booth_id, booth = await booth_login(server, "booth-a")
    staged.put(claim.claim_id, booth=booth_id, cso="siti", state=S.FOCUSED)
    picture = jpeg(seed=15)
    put = records.blobs.put

    def disk_full(data: bytes, known_sha: str | None = None) -> str:
        raise OSError(28, "No space left on device")

    headers = {"Authorization": f"Bearer {booth}", "Content-Type": "image/jpeg",
               "Idempotency-Key": "full-disk"}  # fmt: skip
    url = f"/api/claims/{claim.claim_id}/documents"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        records.blobs.put = disk_full  # type: ignore[method-assign]
        try:
            failed = await http.post(url, params={"kind": "ktp"}, content=picture, headers=headers)
        finally:
            records.blobs.put = put  # type: ignore[method-assign]
        assert failed.status_code == 503
        assert failed.json()["error"]["code"] == "storage_unavailable"
        assert "send it again" in failed.json()["error"]["message"]
        retried = await http.post(url, params={"kind": "ktp"}, content=picture, headers=headers)
    assert retried.status_code == 201
    assert records.blobs.get(retried.json()["sha256"]) == picture


# --- check-in: a refusal writes nothing ---------------------------------------------------------


async def test_a_refused_check_in_writes_no_record_and_no_audit(db_settings) -> None:
    await migrate.upgrade(db_settings)
    booth = Principal("booth-z", AccountRole.BOOTH, "Booth Z", "jkt01")
    async with open_records(db_settings) as (_, records):
        decided = await add_claim(records, "CI-0001", state=ClaimState.APPROVED)
        before = [e.seq async for e in records.store.audit_entries()]
        with pytest.raises(RecordsError) as info:
            await records.check_in(booth, BookingRef(booking_code="CI-0001"))
        assert info.value.code == "claim_refused"
        with pytest.raises(RecordsError):
            await records.check_in(booth, BookingRef(booking_code="CI-NOPE"))
        assert [e.seq async for e in records.store.audit_entries()] == before
        stored = await records.store.get_claim(decided.claim_id)
        assert stored is not None and stored.state is ClaimState.APPROVED

        # An accepted walk-in: its registration, check-in and their audit in one go.
        walk_in = WalkInRef(nik="3171015508900007", kpj="12345678901",
                            claim_type=ClaimType.DEATH)  # fmt: skip
        claim = await records.check_in(booth, walk_in)
        actions = [(e.action, e.claim_id) async for e in records.store.audit_entries()]
        # (member.recorded: what was typed, marked unconfirmed: no directory here)
        assert actions == [("claim.registered", claim.claim_id),
                           ("claim.checked_in", claim.claim_id),
                           ("member.recorded", claim.claim_id)]  # fmt: skip
        # Back again while it is checked in: found, nothing written twice.
        assert (await records.check_in(booth, walk_in)).claim_id == claim.claim_id
        assert len([e async for e in records.store.audit_entries()]) == 3


# --- /metrics behind an optional bearer token -----------------------------------------------------


async def test_metrics_need_the_token_when_one_is_set(tmp_path) -> None:
    settings = server_settings(tmp_path, metrics_token="scrape-" + "k" * 24)
    async with (
        running_server(settings) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthenticated"
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        basic = await http.get("/metrics", headers={"Authorization": "Basic c2NyYXBl"})
        assert basic.status_code == 401
        ok = await http.get("/metrics", headers={"Authorization": "Bearer scrape-" + "k" * 24})
        assert ok.status_code == 200 and "loket_" in ok.text
        assert (await http.get("/healthz")).status_code == 200  # only /metrics


async def test_metrics_stay_open_without_a_token(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LOKET_METRICS_TOKEN", "from-the-environment")
    assert server_settings(tmp_path).metrics_token is not None
    monkeypatch.delenv("LOKET_METRICS_TOKEN")
    async with (
        running_server(server_settings(tmp_path)) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        assert (await http.get("/metrics")).status_code == 200
