"""Claims, documents and outcomes over HTTP, on SQLite and on a real PostgreSQL 15.

A real server, a booth and a CSO in a live session over real sockets; uploads are real
pictures; everything checked is read back from the database or the API.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import httpx
import pytest
from sqlalchemy import text

from server.adapters.sql import migrate
from server.ports.records import OutcomeFilter
from tests.support.accounts import add_user, login
from tests.support.claims import confirm_identity, seed_claim
from tests.support.images import GPS, jpeg, jpeg_with_gps, png
from tests.support.live_server import LiveServer, running_server
from tests.support.sessions import BOOTH_PRINT, CSO_PRINT, LivePair, live_pair

RESIGNATION_DOCS = ("kpj_card", "ktp", "kk", "buku_tabungan", "paklaring")


@pytest.fixture
async def server(db_settings):
    await migrate.upgrade(db_settings)
    async with running_server(
        db_settings.model_copy(update={"max_document_bytes": 256 * 1024})
    ) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer):
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
async def pair(server: LiveServer):
    await seed_claim(server, "BK-1001")
    live = await live_pair(server, "BK-1001", booth="booth-a", cso="siti")
    yield live
    await live.close()


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def upload(
    http: httpx.AsyncClient, pair: LivePair, kind: str, data: bytes, ctype: str = "image/jpeg"
) -> httpx.Response:
    return await http.post(
        f"/api/claims/{pair.claim_id}/documents",
        params={"kind": kind},
        content=data,
        headers=pair.booth_headers(**key(), **{"Content-Type": ctype}),
    )


async def test_a_claim_is_verified_end_to_end(server, http, pair) -> None:
    docs = {}
    for seed, kind in enumerate(RESIGNATION_DOCS):
        res = await upload(http, pair, kind, png(seed) if kind == "kk" else jpeg(seed))
        assert res.status_code == 201, res.text
        docs[kind] = res.json()
    view = (await http.get(f"/api/claims/{pair.claim_id}", headers=pair.cso_headers())).json()
    assert view["claim"]["nik"].startswith("*") and len(view["claim"]["nik"]) == 16
    assert {i["status"] for i in view["checklist"]["items"]} == {"pending"}
    # Approving before the documents are judged is refused, and names what is missing.
    early = await http.post(
        f"/api/claims/{pair.claim_id}/outcome", json={"decision": "approved"},
        headers=pair.cso_headers(**key()),
    )  # fmt: skip
    assert early.status_code == 422 and early.json()["error"]["code"] == "missing_documents"
    for doc in docs.values():
        res = await http.post(
            f"/api/documents/{doc['document_id']}/verdict", json={"verdict": "accepted"},
            headers=pair.cso_headers(**key()),
        )  # fmt: skip
        assert res.status_code == 200 and res.json()["verdict"] == "accepted"
    # Accepted documents are not enough: their identity fields must be confirmed too.
    unconfirmed = await http.post(
        f"/api/claims/{pair.claim_id}/outcome", json={"decision": "approved"},
        headers=pair.cso_headers(**key()),
    )  # fmt: skip
    assert unconfirmed.json()["error"]["code"] == "identity_unconfirmed", unconfirmed.text
    assert await confirm_identity(http, pair.claim_id, pair.cso_headers()) == 6 + 2 + 2 + 3
    res = await http.post(
        f"/api/claims/{pair.claim_id}/outcome", json={"decision": "approved", "note": "ok"},
        headers=pair.cso_headers(**key()),
    )  # fmt: skip
    assert res.status_code == 201, res.text
    outcome = res.json()
    assert set(outcome["evidence"]) == {d["sha256"] for d in docs.values()}
    assert set(outcome["fingerprints"]) == {CSO_PRINT, BOOTH_PRINT}
    view = (await http.get(f"/api/claims/{pair.claim_id}", headers=pair.cso_headers())).json()
    assert view["claim"]["state"] == "approved" and view["checklist"]["complete"]
    # A decided claim cannot be decided again.
    again = await http.post(
        f"/api/claims/{pair.claim_id}/outcome",
        json={"decision": "rejected", "reason_codes": ["claim_duplicate"]},
        headers=pair.cso_headers(**key()),
    )
    assert again.status_code == 409
    await add_user(server, "auditor-1", role="auditor")
    auditor = (await login(server, "auditor-1"))["access_token"]
    verify = await http.get("/api/audit/verify", headers={"Authorization": f"Bearer {auditor}"})
    assert verify.json()["intact"] is True
    actions = [e.action async for e in server.app.state.records.store.audit_entries()]
    assert actions.count("document.uploaded") == 5 and actions.count("outcome.recorded") == 1
    assert actions.count("field.checked") == 13
    # The chain covers what was compared: evidence edited behind Loket's back is found.
    (recorded,) = await server.app.state.records.store.list_outcomes(OutcomeFilter())
    assert recorded.verification is not None and recorded.verification["identity"]["confirmed"]
    async with server.app.state.records.store._engine.begin() as conn:
        await conn.execute(text("UPDATE outcomes SET verification = replace(verification, "
                                "'\"matches\"', '\"differs\"')"))  # fmt: skip
    verify = await http.get("/api/audit/verify", headers={"Authorization": f"Bearer {auditor}"})
    (problem,) = verify.json()["problems"]
    assert problem["seq"] == recorded.audit_seq and "verification evidence" in problem["message"]


async def test_rejection_and_follow_up_need_catalogue_reasons(server, http, pair) -> None:
    url = f"/api/claims/{pair.claim_id}/outcome"
    for body, code in [
        ({"decision": "rejected"}, "reason_required"),
        ({"decision": "rejected", "reason_codes": ["made_up"]}, "unknown_reason"),
        ({"decision": "rejected", "reason_codes": ["doc_blurry"]}, "reason_not_applicable"),
    ]:
        res = await http.post(url, json=body, headers=pair.cso_headers(**key()))
        assert res.status_code == 422 and res.json()["error"]["code"] == code, res.text
    res = await http.post(
        url, json={"decision": "needs_follow_up", "reason_codes": ["follow_up_missing_document"]},
        headers=pair.cso_headers(**key()),
    )  # fmt: skip
    assert res.status_code == 201
    outcomes = await server.app.state.records.store.list_outcomes(OutcomeFilter())
    assert [o.decision for o in outcomes] == ["needs_follow_up"]


async def test_idempotency_replays_conflicts_and_requires_a_key(server, http, pair) -> None:
    url = f"/api/claims/{pair.claim_id}/outcome"
    body = {"decision": "rejected", "reason_codes": ["claim_not_eligible"]}
    headers = pair.cso_headers(**key())
    first = await http.post(url, json=body, headers=headers)
    again = await http.post(url, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = await http.post(url, json={**body, "note": "changed"}, headers=headers)
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    missing = await http.post(url, json=body, headers=pair.cso_headers())
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "idempotency_key_required"
    outcomes = await server.app.state.records.store.list_outcomes(OutcomeFilter())
    assert len(outcomes) == 1


async def test_concurrent_retries_of_one_outcome_store_it_once(server, http, pair) -> None:
    url = f"/api/claims/{pair.claim_id}/outcome"
    body = {"decision": "rejected", "reason_codes": ["claim_not_eligible"]}
    headers = pair.cso_headers(**key())
    results = await asyncio.gather(*(http.post(url, json=body, headers=headers) for _ in range(10)))
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["outcome_id"] for r in results}) == 1
    assert len(await server.app.state.records.store.list_outcomes(OutcomeFilter())) == 1


@pytest.mark.parametrize(
    ("ctype", "data", "status", "code"),
    [
        ("application/pdf", b"%PDF-1.7 ...", 415, "unsupported_media_type"),
        ("image/jpeg", b"GIF89a" + b"\x00" * 100, 415, "unsupported_type"),
        ("image/jpeg", b"hello, not a picture", 415, "not_an_image"),
        ("image/jpeg", b"", 422, "empty"),
        ("image/jpeg", "TRUNCATED", 422, "corrupt"),
        ("image/png", "HUGE", 413, "too_large"),
    ],
)
async def test_bad_uploads_are_refused_and_nothing_is_stored(
    server, http, pair, ctype, data, status, code
) -> None:
    if data == "TRUNCATED":
        data = jpeg()[:600]
    elif data == "HUGE":
        data = png(width=900, height=600)  # ~over the 256 KiB limit set above
        assert len(data) > 256 * 1024
    res = await upload(http, pair, "ktp", data, ctype)
    assert res.status_code == status, res.text
    assert res.json()["error"]["code"] == code and res.json()["error"]["message"]
    view = (await http.get(f"/api/claims/{pair.claim_id}", headers=pair.cso_headers())).json()
    assert view["documents"] == []
    assert list(server.settings.data_dir.joinpath("documents").rglob("*.tmp")) == []
    assert (await http.get("/healthz")).status_code == 200


async def test_metadata_is_stripped_and_reads_are_audited(server, http, pair) -> None:
    res = await upload(http, pair, "ktp", jpeg_with_gps())
    assert res.status_code == 201
    doc = res.json()
    got = await http.get(f"/api/documents/{doc['document_id']}", headers=pair.cso_headers())
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert GPS not in got.content
    assert hashlib.sha256(got.content).hexdigest() == doc["sha256"]
    # At rest the file is encrypted: neither the picture nor its hash prefix leaks.
    stored = next(server.settings.data_dir.joinpath("documents").rglob(doc["sha256"]))
    assert got.content[100:200] not in stored.read_bytes()
    viewed = [
        e async for e in server.app.state.records.store.audit_entries()
        if e.action == "document.viewed"
    ]  # fmt: skip
    assert [(e.actor, e.evidence) for e in viewed] == [("siti", (doc["sha256"],))]


async def test_walk_in_is_registered_at_check_in_without_a_booking(server, http) -> None:
    from signaling.messages import Ack, CheckIn, ClaimType, Queued, Role, WalkInRef
    from tests.support.accounts import booth_token
    from tests.support.ws_client import SignalClient

    booth = await SignalClient.connect(server.ws_url, Role.BOOTH, await booth_token(server, "w1"))
    nik = "3171015508900007"
    await booth.send(
        CheckIn(claim=WalkInRef(nik=nik, kpj="12345678901", claim_type=ClaimType.DEATH))
    )
    await booth.expect(Ack)
    await booth.expect(Queued)
    claims = await server.app.state.records.store.find_claims_by_nik(nik)
    assert [(c.walk_in, c.state.value, c.claim_type.value) for c in claims] == [
        (True, "checked_in", "death")
    ]
    await booth.close()


async def test_unknown_booking_gets_a_typed_error_pointing_to_walk_in(server) -> None:
    from signaling.messages import BookingRef, CheckIn, Error, Role
    from tests.support.accounts import booth_token
    from tests.support.ws_client import SignalClient

    booth = await SignalClient.connect(server.ws_url, Role.BOOTH, await booth_token(server, "w2"))
    await booth.send(CheckIn(claim=BookingRef(booking_code="BK-NOPE")))
    error = await booth.expect(Error)
    assert error.code == "claim_not_found" and "walk-in" in (error.hint or "")
    await booth.close()


async def test_one_claim_cannot_queue_at_two_booths(server) -> None:
    from signaling.messages import Ack, BookingRef, CheckIn, Error, Role
    from tests.support.accounts import booth_token
    from tests.support.ws_client import SignalClient

    await seed_claim(server, "BK-3001")
    first = await SignalClient.connect(server.ws_url, Role.BOOTH, await booth_token(server, "b1"))
    second = await SignalClient.connect(server.ws_url, Role.BOOTH, await booth_token(server, "b2"))
    await first.send(CheckIn(claim=BookingRef(booking_code="BK-3001")))
    await first.expect(Ack)
    await second.send(CheckIn(claim=BookingRef(booking_code="BK-3001")))
    error = await second.expect(Error)
    assert error.code == "claim_refused" and "already checked in" in error.message
    await first.close()
    await second.close()


async def test_a_retry_after_the_session_ended_gets_its_answer_new_requests_do_not(
    server, http, pair
) -> None:
    from signaling.messages import EndSession, SessionEnded

    headers = pair.booth_headers(**key(), **{"Content-Type": "image/jpeg"})
    url, data = f"/api/claims/{pair.claim_id}/documents?kind=ktp", jpeg()
    first = await http.post(url, content=data, headers=headers)
    assert first.status_code == 201
    await pair.cso.send(EndSession(session_id=pair.assigned.session_id))
    await pair.booth.expect(SessionEnded)
    # The answer to the first upload was lost; the kiosk retries with the same key.
    retry = await http.post(url, content=data, headers=headers)
    assert retry.status_code == 201 and retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    fresh = await http.post(url, content=data, headers={**headers, **key()})
    assert fresh.status_code == 403
