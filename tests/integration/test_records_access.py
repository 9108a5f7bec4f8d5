"""The access policy and the audit of personal data over real HTTP, on SQLite and PostgreSQL.

The claim's live session is staged (`StagedSessions` stands in for the floor's lookup), so
each state of it (offered, accepted, in a call, ended) is reached exactly; everything else
is the real server, real tokens and the real records store.
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx
import pytest

from server.adapters.sql import migrate
from server.domain.audit import AuditEntry
from server.domain.claims import ClaimState
from server.records import RecordsService
from signaling.session import SessionState
from tests.support.accounts import user_token
from tests.support.claims import add_document, seed_claim, valid_nik
from tests.support.images import jpeg
from tests.support.live_server import LiveServer, running_server
from tests.support.sessions import StagedSessions, booth_login

S = SessionState


@pytest.fixture
async def server(db_settings):
    await migrate.upgrade(db_settings)
    async with running_server(db_settings) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer):
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def staged(server: LiveServer) -> StagedSessions:
    sessions = StagedSessions()
    server.app.state.records.session_of_claim = sessions
    return sessions


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def audit(server: LiveServer, action: str) -> list[AuditEntry]:
    records: RecordsService = server.app.state.records
    return [e async for e in records.store.audit_entries() if e.action == action]


async def test_an_offered_cso_gets_nothing_until_it_accepts_and_nothing_after_the_end(
    server, http, staged
) -> None:
    records: RecordsService = server.app.state.records
    claim = await seed_claim(server, "BK-4001", state=ClaimState.CHECKED_IN)
    doc = await add_document(records, claim.claim_id, jpeg(seed=3))
    siti = await user_token(server, "siti")
    booth_id, booth = await booth_login(server, "booth-a")
    staged.put(claim.claim_id, booth=booth_id, cso="siti", state=S.RESERVED)

    async def attempts() -> dict[str, int]:
        cso = bearer(siti)
        got = {
            "claim": await http.get(f"/api/claims/{claim.claim_id}", headers=cso),
            "picture": await http.get(f"/api/documents/{doc.document_id}", headers=cso),
            "verdict": await http.post(
                f"/api/documents/{doc.document_id}/verdict",
                json={"verdict": "accepted"},
                headers=bearer(siti, **key()),
            ),
            "upload": await http.post(
                f"/api/claims/{claim.claim_id}/documents",
                params={"kind": "kk"},
                content=jpeg(seed=4),
                headers=bearer(booth, **key(), **{"Content-Type": "image/jpeg"}),
            ),
        }
        for res in got.values():
            assert res.status_code < 300 or "error" in res.json(), res.text
        return {name: res.status_code for name, res in got.items()}

    async def outcome() -> httpx.Response:
        return await http.post(
            f"/api/claims/{claim.claim_id}/outcome",
            json={"decision": "rejected", "reason_codes": ["claim_not_eligible"]},
            headers=bearer(siti, **key()),
        )

    # Offered only: the masked summary came with the offer; nothing else.
    assert await attempts() == {"claim": 403, "picture": 403, "verdict": 403, "upload": 403}
    refused = await outcome()
    assert refused.status_code == 403 and "accept" in refused.json()["error"]["message"]
    assert await audit(server, "document.viewed") == []
    assert await audit(server, "claim.viewed") == []

    # Accepted (connecting) and on through the call: the claim is theirs to verify.
    for state in (S.CONNECTING, S.ON_HOLD, S.FOCUSED, S.RECONNECTING):
        staged.move(claim.claim_id, state)
        assert await attempts() == {"claim": 200, "picture": 200, "verdict": 200, "upload": 201}

    # Ended (still in live state, or gone from it): refused again.
    staged.move(claim.claim_id, S.ENDED)
    assert await attempts() == {"claim": 403, "picture": 403, "verdict": 403, "upload": 403}
    assert (await outcome()).status_code == 403
    staged.end(claim.claim_id)
    assert await attempts() == {"claim": 403, "picture": 403, "verdict": 403, "upload": 403}
    assert (await outcome()).status_code == 403

    # The outcome, in a call.
    staged.put(claim.claim_id, booth=booth_id, cso="siti", state=S.FOCUSED)
    assert (await outcome()).status_code == 201
    # Another CSO never, whatever the state.
    budi = await user_token(server, "budi")
    for state in S:
        staged.move(claim.claim_id, state)
        res = await http.get(f"/api/claims/{claim.claim_id}", headers=bearer(budi))
        assert res.status_code == 403


async def test_claim_views_are_audited_with_who_and_what(server, http, staged) -> None:
    claim = await seed_claim(server, "BK-4002")
    siti = await user_token(server, "siti2")
    auditor = await user_token(server, "audrey", role="auditor")
    staged.put(claim.claim_id, booth="booth-x", cso="siti2", state=S.CONNECTING)
    as_cso = await http.get(f"/api/claims/{claim.claim_id}", headers=bearer(siti))
    as_auditor = await http.get(f"/api/claims/{claim.claim_id}", headers=bearer(auditor))
    assert as_cso.status_code == as_auditor.status_code == 200
    assert as_cso.json()["claim"]["nik"] != claim.nik
    assert as_auditor.json()["claim"]["nik"] == claim.nik
    viewed = await audit(server, "claim.viewed")
    assert [(e.actor, e.role, e.claim_id, e.details["reach"]) for e in viewed] == [
        ("siti2", "cso", claim.claim_id, "full"),
        ("audrey", "auditor", claim.claim_id, "full_nik"),
    ]
    assert all(e.at for e in viewed)


async def test_lookup_shows_each_role_what_it_needs_and_is_audited(server, http) -> None:
    nik = valid_nik(4242)
    jkt = await seed_claim(server, "BK-4003", nik=nik, branch="jkt01")
    bdg = await seed_claim(server, "BK-4004", nik=nik, branch="bdg01")
    cso = await user_token(server, "siti")
    supervisor = await user_token(server, "budi", role="supervisor", pools=frozenset({"jkt01"}))
    auditor = await user_token(server, "audrey", role="auditor")
    operator = await user_token(server, "ops", role="operator")

    async def lookup(token: str, **params: str) -> httpx.Response:
        return await http.get("/api/claims", params=params, headers=bearer(token))

    # A CSO: found / not found, type, state, masked NIK. No KPJ, balance, booking code.
    found = (await lookup(cso, nik=nik)).json()
    assert [c["claim_id"] for c in found] == [jkt.claim_id, bdg.claim_id]
    for item in found:
        assert set(item) == {"claim_id", "claim_type", "state", "nik"}
        assert item["nik"] == "*" * 12 + nik[-4:]
    assert set((await lookup(cso, booking_code="BK-4003")).json()[0]) == set(found[0])
    # A supervisor: its own branch in full (masked NIK), another branch as a CSO sees it.
    seen = {c["claim_id"]: c for c in (await lookup(supervisor, nik=nik)).json()}
    assert seen[jkt.claim_id]["kpj"] == jkt.kpj and seen[jkt.claim_id]["nik"] != nik
    assert set(seen[bdg.claim_id]) == {"claim_id", "claim_type", "state", "nik"}
    # An auditor: everything.
    full = (await lookup(auditor, nik=nik)).json()
    assert {c["nik"] for c in full} == {nik} and full[0]["booking_code"] == "BK-4003"
    assert (await lookup(operator, nik=nik)).status_code == 403
    nothing = await lookup(cso, nik=valid_nik(4243))
    assert nothing.status_code == 200 and nothing.json() == []

    looked = await audit(server, "claims.looked_up")
    assert [(e.actor, e.details["by"], e.details["claims"]) for e in looked] == [
        ("siti", {"nik": "*" * 12 + nik[-4:]}, [jkt.claim_id, bdg.claim_id]),
        ("siti", {"booking_code": "BK-4003"}, [jkt.claim_id]),
        ("budi", {"nik": "*" * 12 + nik[-4:]}, [jkt.claim_id, bdg.claim_id]),
        ("audrey", {"nik": "*" * 12 + nik[-4:]}, [jkt.claim_id, bdg.claim_id]),
        ("siti", {"nik": "*" * 12 + valid_nik(4243)[-4:]}, []),
    ]
    assert [e.details["reach"] for e in looked[:4]] == [
        ["masked"], ["masked"], ["full", "masked"], ["full_nik"]
    ]  # fmt: skip
    # The audit log itself never holds a full NIK.
    every = [e async for e in server.app.state.records.store.audit_entries()]
    assert nik not in repr([e.details for e in every])


async def _outcome_in(server: LiveServer, staged: StagedSessions, booking: str, branch: str,
                      token: str, http: httpx.AsyncClient) -> str:  # fmt: skip
    claim = await seed_claim(server, booking, branch=branch, state=ClaimState.CHECKED_IN)
    staged.put(claim.claim_id, booth="booth-x", cso="siti", state=S.FOCUSED)
    res = await http.post(
        f"/api/claims/{claim.claim_id}/outcome",
        json={"decision": "rejected", "reason_codes": ["claim_not_eligible"]},
        headers=bearer(token, **key()),
    )
    assert res.status_code == 201, res.text
    return claim.nik


async def test_outcome_lists_and_csv_exports_are_audited_and_scoped(server, http, staged) -> None:
    siti = await user_token(server, "siti")
    jkt_nik = await _outcome_in(server, staged, "BK-4005", "jkt01", siti, http)
    await _outcome_in(server, staged, "BK-4006", "bdg01", siti, http)
    supervisor = await user_token(server, "budi", role="supervisor", pools=frozenset({"jkt01"}))
    auditor = await user_token(server, "audrey", role="auditor")

    async def outcomes(token: str, **params: Any) -> httpx.Response:
        return await http.get("/api/outcomes", params=params, headers=bearer(token))

    listed = await outcomes(supervisor)
    assert [o["branch"] for o in listed.json()] == ["jkt01"]  # its branches only
    assert (await outcomes(supervisor, branch="bdg01")).status_code == 403
    exported = await outcomes(supervisor, format="csv", decision="rejected")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["nik"] for r in rows] == ["*" * 12 + jkt_nik[-4:]]
    full = await outcomes(auditor, format="csv")
    assert {r["branch"] for r in csv.DictReader(io.StringIO(full.text))} == {"jkt01", "bdg01"}
    assert jkt_nik in full.text
    assert (await outcomes(siti)).status_code == 403

    listed_entries = await audit(server, "outcomes.listed")
    assert [(e.actor, e.details["rows"]) for e in listed_entries] == [("budi", 1)]
    exports = await audit(server, "outcomes.exported")
    summary = [(e.actor, e.details["format"], e.details["rows"], e.details["full_nik"])
               for e in exports]  # fmt: skip
    assert summary == [("budi", "csv", 1, False), ("audrey", "csv", 2, True)]
    assert exports[0].details["filters"]["decision"] == "rejected"


async def test_supervisors_read_claims_and_pictures_of_their_branches_only(
    server, http, staged
) -> None:
    records: RecordsService = server.app.state.records
    home = await seed_claim(server, "BK-4007", branch="jkt01")
    away = await seed_claim(server, "BK-4008", branch="bdg01")
    home_doc = await add_document(records, home.claim_id, jpeg(seed=5))
    away_doc = await add_document(records, away.claim_id, jpeg(seed=6))
    budi = bearer(await user_token(server, "budi", role="supervisor", pools=frozenset()))
    assert (await http.get(f"/api/claims/{home.claim_id}", headers=budi)).status_code == 200
    assert (await http.get(f"/api/claims/{away.claim_id}", headers=budi)).status_code == 403
    assert (await http.get(f"/api/documents/{home_doc.document_id}", headers=budi)).is_success
    away_res = await http.get(f"/api/documents/{away_doc.document_id}", headers=budi)
    assert away_res.status_code == 403
    viewed = await audit(server, "document.viewed")
    assert [e.details["document_id"] for e in viewed] == [home_doc.document_id]
