"""Capture grants and resumable uploads over real HTTP, on SQLite and PostgreSQL.

A grant is issued only to the booth in the claim's live session and carries that
authority past the session's end; a chunked upload cut mid-way resumes from the server's
offset and stores the same document once; every bad request gets its typed error and
changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from typing import Any

import httpx
import pytest

from server.adapters.sql import migrate
from server.domain.grants import CaptureGrant, grant_key, sign
from signaling.messages import CaptureStatus, EndSession, FloorSnapshot, Role, SessionEnded
from tests.support.accounts import user_token
from tests.support.claims import seed_claim
from tests.support.images import jpeg
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.sessions import LivePair, booth_login, live_pair
from tests.support.ws_client import SignalClient

CHUNK = 64 * 1024
PICTURE = jpeg(1, width=800, height=500)  # ~240 KB: four chunks


@pytest.fixture(params=["sqlite", "postgresql"])
async def server(request, tmp_path):  # type: ignore[no-untyped-def]
    overrides: dict[str, Any] = {"max_uploads_per_booth": 2, "upload_chunk_min_bytes": 4096}
    if request.param == "postgresql":
        from tests.support.postgres import create_database

        overrides["database_url"] = await create_database(request.getfixturevalue("postgres"))
    settings = server_settings(tmp_path, **overrides)
    await migrate.upgrade(settings)
    async with running_server(settings) as live:
        yield live


@pytest.fixture
async def pair(server: LiveServer):  # type: ignore[no-untyped-def]
    code = f"BK-UP{uuid.uuid4().hex[:6].upper()}"
    await seed_claim(server, code)
    pair = await live_pair(server, code, booth="kiosk-1", cso="siti")
    yield pair
    await pair.close()


def _key() -> str:
    return uuid.uuid4().hex


async def _grant(
    http: httpx.AsyncClient, pair: LivePair, capture_id: str = "cap-1", kind: str = "ktp"
) -> httpx.Response:
    return await http.post(
        f"/api/claims/{pair.claim_id}/captures",
        json={"kind": kind, "session_id": pair.assigned.session_id, "capture_id": capture_id},
        headers=pair.booth_headers(**{"Idempotency-Key": f"grant-{capture_id}"}),
    )


async def _create(
    http: httpx.AsyncClient,
    pair: LivePair,
    key: str,
    data: bytes = PICTURE,
    *,
    grant: str | None = None,
    sha: str | None = None,
    length: int | None = None,
) -> httpx.Response:
    headers = pair.booth_headers(**{"Idempotency-Key": key})
    if grant is not None:
        headers["Loket-Capture-Grant"] = grant
    return await http.post(
        f"/api/claims/{pair.claim_id}/uploads",
        params={"kind": "ktp"},
        json={
            "length": length or len(data),
            "sha256": sha or hashlib.sha256(data).hexdigest(),
            "content_type": "image/jpeg",
        },
        headers=headers,
    )


async def _patch(
    http: httpx.AsyncClient, pair: LivePair, location: str, offset: int, chunk: bytes, **extra: str
) -> httpx.Response:
    return await http.patch(
        location,
        content=chunk,
        headers=pair.booth_headers(
            **{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
            **extra,
        ),
    )


async def _offset(http: httpx.AsyncClient, pair: LivePair, location: str) -> int:
    head = await http.head(location, headers=pair.booth_headers())
    assert head.status_code == 200, head.status_code
    return int(head.headers["Upload-Offset"])


async def _cut_mid_chunk(server: LiveServer, pair: LivePair, location: str, offset: int) -> None:
    """A PATCH whose connection drops half-way through its body (a lossy line)."""
    host, port = server.base_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {pair.booth_token}\r\nUpload-Offset: {offset}\r\n"
        f"Content-Type: application/offset+octet-stream\r\nContent-Length: {CHUNK}\r\n\r\n"
    )
    writer.write(head.encode() + PICTURE[offset : offset + CHUNK // 2])
    await writer.drain()
    writer.transport.abort()
    await asyncio.sleep(0.2)


async def test_a_cut_upload_resumes_from_the_servers_offset_and_stores_one_document(
    server: LiveServer, pair: LivePair
) -> None:
    key = _key()
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        grant = (await _grant(http, pair)).json()["grant"]
        created = await _create(http, pair, key, grant=grant)
        assert created.status_code == 201, created.text
        location = created.headers["Location"]
        assert created.json()["offset"] == 0 and created.json()["length"] == len(PICTURE)
        for offset in (0, CHUNK):
            sent = await _patch(http, pair, location, offset, PICTURE[offset : offset + CHUNK])
            assert sent.status_code == 204 and sent.headers["Upload-Offset"] == str(offset + CHUNK)
        await _cut_mid_chunk(server, pair, location, 2 * CHUNK)
        assert await _offset(http, pair, location) == 2 * CHUNK  # the half chunk left nothing
        # A kiosk that lost everything but the outbox creates it again: same upload, offset.
        again = await _create(http, pair, key, grant=grant)
        assert again.status_code == 200 and again.json()["offset"] == 2 * CHUNK
        answer = await _send_from(http, pair, location, 2 * CHUNK)
        assert answer.status_code == 201, answer.text
        document = answer.json()
        assert document["kind"] == "ktp" and document["after_session"] is False
        # The same picture and key, whole or in chunks, after it was stored: its answer.
        replay = await _create(http, pair, key, grant=grant)
        assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["document_id"] == document["document_id"]
        one_shot = await http.post(
            f"/api/claims/{pair.claim_id}/documents",
            params={"kind": "ktp"},
            content=PICTURE,
            headers=pair.booth_headers(**{"Idempotency-Key": key, "Content-Type": "image/jpeg"}),
        )
        assert one_shot.json()["document_id"] == document["document_id"]
        gone = await http.head(location, headers=pair.booth_headers())
        assert gone.status_code == 404  # the staged chunks went with the stored document
    records = server.app.state.records
    documents = await records.store.documents_of(pair.claim_id)
    assert [d.document_id for d in documents] == [document["document_id"]]
    stored = await asyncio.to_thread(records.blobs.get, documents[0].sha256)
    assert stored == PICTURE
    assert list((server.settings.data_dir / "uploads").iterdir()) == []


async def test_every_bad_chunk_gets_its_typed_error_and_changes_nothing(
    server: LiveServer, pair: LivePair
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        key = _key()
        location = (await _create(http, pair, key)).headers["Location"]
        await _patch(http, pair, location, 0, PICTURE[:CHUNK])

        wrong = await _patch(http, pair, location, 0, PICTURE[:CHUNK])
        assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "offset_mismatch"
        assert wrong.json()["error"]["offset"] == CHUNK and wrong.headers["Upload-Offset"] == str(
            CHUNK
        )
        damaged = await _patch(
            http, pair, location, CHUNK, PICTURE[CHUNK : 2 * CHUNK],
            **{"Upload-Checksum": "sha256 " + base64.b64encode(b"\0" * 32).decode()},
        )  # fmt: skip
        assert damaged.status_code == 460
        assert damaged.json()["error"]["code"] == "chunk_checksum_mismatch"
        small = await _patch(http, pair, location, CHUNK, PICTURE[CHUNK : CHUNK + 100])
        assert small.status_code == 400 and small.json()["error"]["code"] == "chunk_too_small"
        big = await _patch(http, pair, location, CHUNK, PICTURE[CHUNK:] + b"\0" * (300 * 1024))
        assert big.status_code == 413 and big.json()["error"]["code"] == "chunk_too_large"
        past = await _create(http, pair, _key(), data=b"x" * 5000, length=5000)
        past_at = past.headers["Location"]
        over = await _patch(http, pair, past_at, 0, b"x" * 5001)
        assert over.status_code == 413 and over.json()["error"]["code"] == "chunk_past_end"
        assert await _offset(http, pair, location) == CHUNK  # none of them moved it

        oversize = await _create(http, pair, _key(), length=8 * 1024 * 1024 + 1)
        assert oversize.status_code == 413 and oversize.json()["error"]["code"] == "too_large"
        full = await _create(http, pair, _key())  # two in progress already: the bound
        assert full.status_code == 429 and full.json()["error"]["code"] == "too_many_uploads"
        other = await booth_login(server, "kiosk-2")
        theirs = await http.head(location, headers={"Authorization": f"Bearer {other[1]}"})
        assert theirs.status_code == 404  # another booth's upload is not even seen

        # Finished, it frees its place; a picture that is not what was declared is refused
        # after its last chunk, and its upload is gone.
        answer = await _send_from(http, pair, location, CHUNK)
        assert answer.status_code == 201
        liar = (await _create(http, pair, _key(), sha="0" * 64)).headers["Location"]
        answer = await _send_from(http, pair, liar, 0)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "checksum_mismatch"
        assert (await http.head(liar, headers=pair.booth_headers())).status_code == 404
    assert len(await server.app.state.records.store.documents_of(pair.claim_id)) == 1


async def _send_from(
    http: httpx.AsyncClient, pair: LivePair, location: str, offset: int
) -> httpx.Response:
    """Every chunk from `offset` to the end; the last answer."""
    while True:
        answer = await _patch(http, pair, location, offset, PICTURE[offset : offset + CHUNK])
        offset += CHUNK
        if offset >= len(PICTURE) or answer.status_code != 204:
            return answer


async def test_two_patches_racing_for_one_offset_store_one_chunk(
    server: LiveServer, pair: LivePair
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        location = (await _create(http, pair, _key())).headers["Location"]
        answers = await asyncio.gather(
            *(_patch(http, pair, location, 0, PICTURE[:CHUNK]) for _ in range(4))
        )
        assert sorted(a.status_code for a in answers) == [204, 409, 409, 409]
        assert await _offset(http, pair, location) == CHUNK


async def test_a_grant_outlives_its_session_and_nothing_else_does(
    server: LiveServer, pair: LivePair
) -> None:
    secret = server.settings.jwt_secret
    assert secret is not None
    key = grant_key(secret.get_secret_value())
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        # Only the booth in the claim's live session gets one, for that session.
        cso_asks = await http.post(
            f"/api/claims/{pair.claim_id}/captures",
            json={"kind": "ktp", "session_id": pair.assigned.session_id, "capture_id": "c"},
            headers=pair.cso_headers(**{"Idempotency-Key": _key()}),
        )
        assert cso_asks.status_code == 403 and cso_asks.json()["error"]["code"] == "forbidden"
        wrong_session = await http.post(
            f"/api/claims/{pair.claim_id}/captures",
            json={"kind": "ktp", "session_id": "s-other", "capture_id": "c"},
            headers=pair.booth_headers(**{"Idempotency-Key": _key()}),
        )
        assert wrong_session.json()["error"]["code"] == "not_in_session"
        first = await _grant(http, pair, "cap-late")
        assert first.status_code == 201
        again = await _grant(http, pair, "cap-late")  # a retry: the same grant
        assert again.json()["grant"] == first.json()["grant"]
        grant = first.json()["grant"]

        await pair.cso.send(EndSession(session_id=pair.assigned.session_id))
        await pair.booth.expect(SessionEnded)

        async def upload(token: str | None, key: str | None = None) -> httpx.Response:
            headers = pair.booth_headers(
                **{"Idempotency-Key": key or _key(), "Content-Type": "image/jpeg"}
            )
            if token is not None:
                headers["Loket-Capture-Grant"] = token
            return await http.post(
                f"/api/claims/{pair.claim_id}/documents", params={"kind": "ktp"},
                content=PICTURE, headers=headers,
            )  # fmt: skip

        without = await upload(None)
        assert without.status_code == 403 and without.json()["error"]["code"] == "not_in_session"
        now, booth_id = int(time.time()), pair.assigned.booth.booth_id
        forged = sign(
            CaptureGrant(booth_id, pair.claim_id, "ktp", "c", "s", now, now + 60), b"k" * 32
        )

        def expired_for(capture: str) -> str:
            return sign(
                CaptureGrant(booth_id, pair.claim_id, "ktp", capture, "s", now - 90, now - 30),
                key,
            )

        expired = expired_for("c")
        for token, code in [
            (forged, "grant_invalid"),
            (expired, "grant_expired"),
            (grant[:-2] + "AA", "grant_invalid"),
        ]:
            refused = await upload(token)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == code
        kk = await http.post(
            f"/api/claims/{pair.claim_id}/documents", params={"kind": "kk"}, content=PICTURE,
            headers=pair.booth_headers(**{"Idempotency-Key": _key(), "Content-Type": "image/jpeg",
                                          "Loket-Capture-Grant": grant}),
        )  # fmt: skip
        assert kk.status_code == 403 and kk.json()["error"]["code"] == "grant_mismatch"

        late_key = _key()
        late = await upload(grant, key=late_key)
        assert late.status_code == 201, late.text
        assert late.json()["after_session"] is True
        # Its retry (the kiosk never heard the answer) once the grant expired: as stored.
        again = await upload(expired_for("cap-late"), key=late_key)
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["document_id"] == late.json()["document_id"]
        view = await server.app.state.records.store.documents_of(pair.claim_id)
        assert [d.after_session for d in view] == [True]
        assert view[0].session_id == pair.assigned.session_id

        # Given up on: reported with the (even expired) grant, audited once.
        report = {"kind": "ktp", "reason": "image_rejected", "status": 422, "message": "corrupt"}
        headers = pair.booth_headers(**{"Idempotency-Key": "undeliverable-1"})
        bare = await http.post(
            f"/api/claims/{pair.claim_id}/captures/cap-late/undeliverable",
            json=report, headers=headers,
        )  # fmt: skip
        assert bare.status_code == 403  # no grant, no session: not this booth's to report
        headers["Loket-Capture-Grant"] = grant
        for _ in range(2):
            told = await http.post(
                f"/api/claims/{pair.claim_id}/captures/cap-late/undeliverable",
                json=report, headers=headers,
            )  # fmt: skip
            assert told.status_code == 201, told.text
        metrics = await http.get("/metrics")
        assert 'loket_captures_undeliverable_total{reason="image_rejected"} 1.0' in metrics.text
    actions = [
        e.action
        async for e in server.app.state.records.store.audit_entries()
        if e.claim_id == pair.claim_id
    ]
    assert actions.count("capture.requested") == 1
    assert actions.count("capture.undeliverable") == 1
    assert actions.count("document.uploaded") == 1


async def test_an_abandoned_upload_is_purged_after_its_expiry(tmp_path) -> None:
    settings = server_settings(tmp_path, upload_expiry=0.5)
    async with running_server(settings) as server:
        await seed_claim(server, "BK-EXPIRY")
        pair = await live_pair(server, "BK-EXPIRY", booth="kiosk-1", cso="siti")
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            location = (await _create(http, pair, _key())).headers["Location"]
            await _patch(http, pair, location, 0, PICTURE[:CHUNK])
            await asyncio.sleep(0.8)
            gone = await _patch(http, pair, location, CHUNK, PICTURE[CHUNK : 2 * CHUNK])
            assert gone.status_code == 404 and gone.json()["error"]["code"] == "upload_not_found"
        assert list((tmp_path / "uploads").iterdir()) == []
        await pair.close()


async def test_an_undeliverable_picture_reaches_the_officer_and_the_supervisors(
    server: LiveServer, pair: LivePair
) -> None:
    """Issue 21, C12: a picture taken for a claim reaches it, or the officer and the
    supervisors are told it never will (not only the audit log)."""
    token = await user_token(server, "boss", role="supervisor")
    boss = await SignalClient.connect(server.ws_url, Role.SUPERVISOR, token)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        grant = (await _grant(http, pair, "cap-lost")).json()["grant"]
        report = {"kind": "ktp", "reason": "image_rejected", "status": 422, "message": "corrupt"}
        told = await http.post(
            f"/api/claims/{pair.claim_id}/captures/cap-lost/undeliverable", json=report,
            headers=pair.booth_headers(**{"Idempotency-Key": _key(), "Loket-Capture-Grant": grant}),
        )  # fmt: skip
        assert told.status_code == 201, told.text
    failed = await pair.cso.expect(CaptureStatus, capture_id="cap-lost")
    assert failed.stage == "failed" and failed.detail and "image_rejected" in failed.detail
    seen = await boss.expect(FloorSnapshot, timeout=5)
    while not seen.lost_captures:
        seen = await boss.expect(FloorSnapshot, timeout=5)
    (lost,) = seen.lost_captures
    assert (lost.claim_id, lost.capture_id, lost.kind) == (pair.claim_id, "cap-lost", "ktp")
    assert lost.branch == "jkt01"
    await boss.close()
