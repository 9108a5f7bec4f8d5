"""The auth HTTP API over a real socket: logins, refresh, limits, uniform errors."""

from __future__ import annotations

import httpx
import pytest

from server.principal import AccountRole
from tests.support.accounts import PASSWORD, add_user, enrol_booth
from tests.support.live_server import LiveServer, running_server, server_settings


@pytest.fixture
async def server(tmp_path):
    # A long first backoff: the lock must still hold when the next request arrives.
    settings = server_settings(tmp_path, login_max_failures=3, login_backoff_base=60)
    async with running_server(settings) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer):
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        yield client


def _assert_error(res: httpx.Response, status: int, code: str) -> dict:  # type: ignore[type-arg]
    assert res.status_code == status, res.text
    error = res.json()["error"]
    assert error["code"] == code and error["message"]
    return error  # type: ignore[no-any-return]


async def test_login_then_me_with_bearer(server: LiveServer, http: httpx.AsyncClient) -> None:
    await add_user(server, "siti", capacity=4)
    res = await http.post("/api/auth/login", json={"username": "siti", "password": PASSWORD})
    assert res.status_code == 200
    body = res.json()
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 900
    me = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["subject"] == "siti" and me.json()["capacity"] == 4


async def test_wrong_password_and_unknown_user_look_the_same(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    await add_user(server, "siti")
    wrong = await http.post("/api/auth/login", json={"username": "siti", "password": "nope"})
    unknown = await http.post("/api/auth/login", json={"username": "ghost", "password": "nope"})
    assert _assert_error(wrong, 401, "invalid_credentials") == _assert_error(
        unknown, 401, "invalid_credentials"
    )


async def test_repeated_failures_are_rate_limited_with_retry_after(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    await add_user(server, "siti")
    for _ in range(3):
        await http.post("/api/auth/login", json={"username": "siti", "password": "nope"})
    # Even the right password waits now: the limit protects the account.
    res = await http.post("/api/auth/login", json={"username": "siti", "password": PASSWORD})
    _assert_error(res, 429, "rate_limited")
    assert 1 <= int(res.headers["retry-after"]) <= 60


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"username": "siti"}', b'{"username": "", "password": "x"}',
     b'{"username": "siti", "password": "x", "admin": true}'],
)  # fmt: skip
async def test_malformed_login_bodies_get_422(http: httpx.AsyncClient, body: bytes) -> None:
    res = await http.post(
        "/api/auth/login", content=body, headers={"content-type": "application/json"}
    )
    error = _assert_error(res, 422, "invalid_request")
    assert error["details"]


async def test_refresh_rereads_the_account(server: LiveServer, http: httpx.AsyncClient) -> None:
    await add_user(server, "siti")
    tokens = (
        await http.post("/api/auth/login", json={"username": "siti", "password": PASSWORD})
    ).json()
    res = await http.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert res.status_code == 200 and res.json()["access_token"] != tokens["access_token"]
    # An access token is not a refresh token.
    bad = await http.post("/api/auth/refresh", json={"refresh_token": tokens["access_token"]})
    _assert_error(bad, 401, "token_invalid")
    await server.app.state.auth.store.set_disabled("siti", True)
    newest = res.json()["refresh_token"]  # the first one is spent: rotation
    res = await http.post("/api/auth/refresh", json={"refresh_token": newest})
    _assert_error(res, 403, "account_disabled")
    res = await http.post("/api/auth/login", json={"username": "siti", "password": PASSWORD})
    _assert_error(res, 403, "account_disabled")


async def test_booth_credential_login_and_revocation(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    booth_id, credential = await enrol_booth(server, "lobby-1")
    res = await http.post("/api/auth/booth", json={"credential": credential})
    assert res.status_code == 200 and res.json()["role"] == str(AccountRole.BOOTH)
    refresh_token = res.json()["refresh_token"]
    forged = credential[:-3] + ("abc" if not credential.endswith("abc") else "xyz")
    _assert_error(
        await http.post("/api/auth/booth", json={"credential": forged}), 401, "invalid_credentials"
    )
    await server.app.state.auth.store.revoke_booth(booth_id)
    _assert_error(
        await http.post("/api/auth/booth", json={"credential": credential}), 403, "account_disabled"
    )
    _assert_error(
        await http.post("/api/auth/refresh", json={"refresh_token": refresh_token}),
        403,
        "account_disabled",
    )


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic c2l0aTpwdw=="])
async def test_me_needs_a_valid_bearer_token(http: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    res = await http.get("/api/auth/me", headers=headers)
    assert res.status_code == 401
    assert res.json()["error"]["message"]
