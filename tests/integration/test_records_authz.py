"""Authorisation matrix: every role against every records endpoint.

Personal data (identity documents, full NIKs) goes only to whoever needs it: the booth and
CSO in the claim's live session, supervisors and auditors. Forbidden pairs get 401 (no
token) or 403 (wrong role or not in the session), never the data.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from server.adapters.sql import migrate
from tests.support.accounts import add_user, booth_token, login
from tests.support.claims import seed_claim
from tests.support.images import jpeg
from tests.support.live_server import running_server
from tests.support.sessions import live_pair

OK = "ok"
ROLES = ("anonymous", "booth", "other_booth", "cso", "other_cso", "supervisor", "auditor",
         "operator")  # fmt: skip
#                     anon  booth other_b cso  other_c sup  aud  op
MATRIX = {
    "lookup":        (401, 403, 403, OK, OK, OK, OK, 403),
    "claim":         (401, OK, 403, OK, 403, OK, OK, 403),
    "download":      (401, 403, 403, OK, 403, OK, OK, 403),
    "outcomes":      (401, 403, 403, 403, 403, OK, OK, 403),
    "audit":         (401, 403, 403, 403, 403, OK, OK, 403),
    "reasons":       (401, OK, OK, OK, OK, OK, OK, OK),
    "upload":        (401, OK, 403, 403, 403, 403, 403, 403),
    "verdict":       (401, 403, 403, OK, 403, 403, 403, 403),
    "outcome":       (401, 403, 403, OK, 403, 403, 403, 403),
}  # fmt: skip


async def test_every_role_against_every_endpoint(db_settings) -> None:
    await migrate.upgrade(db_settings)
    async with running_server(db_settings) as server:
        await seed_claim(server, "BK-2001")
        pair = await live_pair(server, "BK-2001", booth="booth-a", cso="siti")
        tokens = {"anonymous": None, "booth": pair.booth_token, "cso": pair.cso_token}
        tokens["other_booth"] = await booth_token(server, "booth-b")
        for name, role in [("other_cso", "cso"), ("supervisor", "supervisor"),
                           ("auditor", "auditor"), ("operator", "operator")]:  # fmt: skip
            await add_user(server, f"u-{name}", role=role)
            tokens[name] = (await login(server, f"u-{name}"))["access_token"]
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            res = await http.post(
                f"/api/claims/{pair.claim_id}/documents", params={"kind": "ktp"},
                content=jpeg(), headers=pair.booth_headers(**{
                    "Content-Type": "image/jpeg", "Idempotency-Key": "seed"}),
            )  # fmt: skip
            assert res.status_code == 201
            doc_id = res.json()["document_id"]

            def request(endpoint: str, token: str | None) -> httpx.Request:
                h = {"Authorization": f"Bearer {token}"} if token else {}
                h["Idempotency-Key"] = str(uuid.uuid4())
                claim = f"/api/claims/{pair.claim_id}"
                match endpoint:
                    case "lookup":
                        return http.build_request(
                            "GET", "/api/claims?booking_code=BK-2001", headers=h
                        )
                    case "claim":
                        return http.build_request("GET", claim, headers=h)
                    case "download":
                        return http.build_request("GET", f"/api/documents/{doc_id}", headers=h)
                    case "outcomes":
                        return http.build_request("GET", "/api/outcomes", headers=h)
                    case "audit":
                        return http.build_request("GET", "/api/audit/verify", headers=h)
                    case "reasons":
                        return http.build_request("GET", "/api/reasons", headers=h)
                    case "upload":
                        return http.build_request(
                            "POST", f"{claim}/documents?kind=kk", content=jpeg(seed=7),
                            headers={**h, "Content-Type": "image/jpeg"},
                        )  # fmt: skip
                    case "verdict":
                        return http.build_request(
                            "POST", f"/api/documents/{doc_id}/verdict",
                            json={"verdict": "accepted"}, headers=h,
                        )  # fmt: skip
                    case _:
                        return http.build_request(
                            "POST", f"{claim}/outcome", headers=h,
                            json={"decision": "rejected", "reason_codes": ["claim_duplicate"]},
                        )  # fmt: skip

            wrong = []
            for endpoint, expected_row in MATRIX.items():
                for role, expected in zip(ROLES, expected_row, strict=True):
                    res = await http.send(request(endpoint, tokens[role]))
                    got = OK if res.status_code < 300 else res.status_code
                    if got != expected:
                        wrong.append(f"{endpoint} as {role}: {res.status_code} {res.text[:120]}")
                    if got != OK:
                        # A refusal carries the uniform error body and never the data.
                        assert "error" in res.json(), (endpoint, role)
        await pair.close()
    assert wrong == []


@pytest.mark.parametrize("role", ["supervisor", "auditor"])
async def test_full_nik_only_for_auditors(tmp_path, role) -> None:
    from tests.support.live_server import server_settings

    async with running_server(server_settings(tmp_path)) as server:
        claim = await seed_claim(server, "BK-2002")
        await add_user(server, "reader", role=role)
        token = (await login(server, "reader"))["access_token"]
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            res = await http.get(
                f"/api/claims/{claim.claim_id}", headers={"Authorization": f"Bearer {token}"}
            )
        nik = res.json()["claim"]["nik"]
        assert (nik == claim.nik) is (role == "auditor")
        assert nik.endswith(claim.nik[-4:])
