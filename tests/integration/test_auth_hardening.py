"""Auth hardening over real HTTP (issue 10): refresh tokens rotate and a reused one kills
its login, logout revokes, failed logins slow the name tried without locking out a branch,
argon2 stays off the event loop, disabled accounts and revoked booths stop at once.

Tests that touch stored tokens run on SQLite and on a throw-away PostgreSQL 15.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import select
from structlog.testing import capture_logs
from typer.testing import CliRunner

from server.adapters.sql import migrate
from server.adapters.sql.tables import refresh_families, refresh_tokens
from server.adapters.sql.wiring import open_accounts
from server.auth.passwords import hash_secret, verify_secret
from server.auth.service import AuthService
from server.cli import app as cli_app
from server.principal import AccountRole
from server.settings import Settings
from tests.support.accounts import PASSWORD, add_user, enrol_booth
from tests.support.live_server import LiveServer, running_server, server_settings


@pytest.fixture
async def db_server(db_settings: Settings) -> AsyncIterator[LiveServer]:
    """A live server on each database (SQLite, PostgreSQL)."""
    await migrate.upgrade(db_settings)
    async with running_server(db_settings) as live:
        yield live


@pytest.fixture
async def http(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    server: LiveServer = request.getfixturevalue(
        "db_server" if "db_server" in request.fixturenames else "server"
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


def _auth(server: LiveServer) -> AuthService:
    auth: AuthService = server.app.state.auth
    return auth


async def _login(
    http: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    return await http.post("/api/auth/login", json={"username": username, "password": password})


async def _refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/api/auth/refresh", json={"refresh_token": token})


def _error(res: httpx.Response, status: int, code: str) -> None:
    assert res.status_code == status, res.text
    assert res.json()["error"]["code"] == code, res.text


# --- refresh-token rotation, reuse detection, logout -------------------------------------


async def test_refresh_rotates_and_stores_only_a_hash(
    db_server: LiveServer, http: httpx.AsyncClient
) -> None:
    await add_user(db_server, "siti")
    first = (await _login(http, "siti")).json()
    second = await _refresh(http, first["refresh_token"])
    assert second.status_code == 200, second.text
    third = await _refresh(http, second.json()["refresh_token"])
    assert third.status_code == 200, third.text
    assert len({first["refresh_token"], second.json()["refresh_token"]}) == 2
    # The spent token is refused.
    _error(await _refresh(http, first["refresh_token"]), 401, "token_revoked")

    jti = jwt.decode(third.json()["refresh_token"], options={"verify_signature": False})["jti"]
    engine, _ = await open_accounts(db_server.settings)
    try:
        async with engine.connect() as conn:
            tokens = (await conn.execute(select(refresh_tokens))).mappings().all()
            families = (await conn.execute(select(refresh_families))).mappings().all()
    finally:
        await engine.dispose()
    assert hashlib.sha256(jti.encode()).hexdigest() in {t["token_hash"] for t in tokens}
    stored = repr([dict(r) for r in [*tokens, *families]])
    for token in (first, second.json(), third.json()):
        claims = jwt.decode(token["refresh_token"], options={"verify_signature": False})
        assert claims["jti"] not in stored and token["refresh_token"] not in stored
    assert [f["account"] for f in families] == ["user:siti"]


async def test_reusing_a_spent_refresh_token_revokes_its_family(
    db_server: LiveServer, http: httpx.AsyncClient
) -> None:
    await add_user(db_server, "siti")
    stolen = (await _login(http, "siti")).json()["refresh_token"]
    other_device = (await _login(http, "siti")).json()["refresh_token"]
    # The owner refreshes (twice); later the thief replays the copy it took.
    newest = (await _refresh(http, stolen)).json()["refresh_token"]
    newest = (await _refresh(http, newest)).json()["refresh_token"]
    with capture_logs() as logs:
        _error(await _refresh(http, stolen), 401, "token_revoked")
    assert [e for e in logs if e["event"] == "refresh_token_reused"], logs
    # The whole login is gone: the owner's newest token fails too...
    _error(await _refresh(http, newest), 401, "token_revoked")
    # ...but another login of the same person (another family) is untouched.
    assert (await _refresh(http, other_device)).status_code == 200


async def test_logout_revokes_the_login_and_is_idempotent(
    db_server: LiveServer, http: httpx.AsyncClient
) -> None:
    await add_user(db_server, "siti")
    tokens = (await _login(http, "siti")).json()
    spent = tokens["refresh_token"]
    current = (await _refresh(http, spent)).json()
    bearer = {"Authorization": f"Bearer {current['access_token']}"}
    res = await http.post(
        "/api/auth/logout", json={"refresh_token": current["refresh_token"]}, headers=bearer
    )
    assert res.status_code == 204 and res.content == b""
    _error(await _refresh(http, current["refresh_token"]), 401, "token_revoked")
    # Again, with the spent token, without a Bearer: still 204, nothing new happens.
    for token in (current["refresh_token"], spent):
        res = await http.post("/api/auth/logout", json={"refresh_token": token})
        assert res.status_code == 204
    _error(
        await http.post("/api/auth/logout", json={"refresh_token": "forged"}), 401, "token_invalid"
    )
    # A booth logs out the same way.
    _, credential = await enrol_booth(db_server, "lobby-1")
    booth = (await http.post("/api/auth/booth", json={"credential": credential})).json()
    res = await http.post("/api/auth/logout", json={"refresh_token": booth["refresh_token"]})
    assert res.status_code == 204
    _error(await _refresh(http, booth["refresh_token"]), 401, "token_revoked")


async def test_a_retry_of_a_lost_refresh_answer_gets_the_same_successor(
    db_server: LiveServer, http: httpx.AsyncClient
) -> None:
    """The answer to a refresh is lost (network, proxy); the client sends the same token
    again at once and gets the very successor it missed: not a second one, and nobody is
    logged out. A token two generations back is still reuse."""
    await add_user(db_server, "siti")
    first = (await _login(http, "siti")).json()["refresh_token"]
    lost = await _refresh(http, first)  # the server rotated; the client never saw this
    assert lost.status_code == 200, lost.text
    with capture_logs() as logs:
        retry = await _refresh(http, first)
        again = await _refresh(http, first)
    assert retry.status_code == again.status_code == 200, retry.text
    successor = lost.json()["refresh_token"]
    assert retry.json()["refresh_token"] == again.json()["refresh_token"] == successor
    assert _auth(db_server).authenticate(retry.json()["access_token"]).subject == "siti"
    assert not [e for e in logs if e["event"] == "refresh_token_reused"], logs
    # The family lives on from the one successor.
    newest = await _refresh(http, successor)
    assert newest.status_code == 200, newest.text
    # `first` is two generations back now: reuse, within the interval or not.
    with capture_logs() as logs:
        _error(await _refresh(http, first), 401, "token_revoked")
    assert [e for e in logs if e["event"] == "refresh_token_reused"], logs
    _error(await _refresh(http, newest.json()["refresh_token"]), 401, "token_revoked")


async def test_concurrent_uses_of_one_refresh_token_all_get_one_successor(
    db_server: LiveServer, http: httpx.AsyncClient
) -> None:
    """Two tabs, or a retry racing the original: each gets the same successor (a row lock
    decides who rotates; the others read what it stored)."""
    await add_user(db_server, "siti")
    first = (await _login(http, "siti")).json()["refresh_token"]
    answers = await asyncio.gather(*(_refresh(http, first) for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    successors = {a.json()["refresh_token"] for a in answers}
    assert len(successors) == 1
    assert (await _refresh(http, successors.pop())).status_code == 200
    engine, _ = await open_accounts(db_server.settings)
    try:
        async with engine.connect() as conn:
            tokens = (await conn.execute(select(refresh_tokens))).mappings().all()
    finally:
        await engine.dispose()
    assert len(tokens) == 3  # the login's, its one successor, and that one's


def _cli(settings: Settings, *args: str) -> str:
    """Run `loket ...` as an operator would, against the server's database."""
    env = {"LOKET_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}
    if settings.database_url:
        env["LOKET_DATABASE_URL"] = settings.database_url
    result = CliRunner().invoke(cli_app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


async def test_disabled_user_and_revoked_booth_are_inactive_and_cannot_refresh(
    db_server: LiveServer, http: httpx.AsyncClient
) -> None:
    auth = _auth(db_server)
    await add_user(db_server, "siti")
    tokens = (await _login(http, "siti")).json()
    principal = auth.authenticate(tokens["access_token"])
    exp = jwt.decode(tokens["access_token"], options={"verify_signature": False})["exp"]
    assert principal.expires_at == exp > time.time()
    assert await auth.is_active(principal) is True

    # The operator's command (its own process would do the same), in a thread: it runs
    # its own event loop.
    out = await asyncio.to_thread(_cli, db_server.settings, "user", "disable", "siti")
    assert "1 login(s) ended" in out
    assert await auth.is_active(principal) is False
    _error(await _refresh(http, tokens["refresh_token"]), 403, "account_disabled")
    await asyncio.to_thread(_cli, db_server.settings, "user", "disable", "siti", "--enable")
    assert await auth.is_active(principal) is True
    # Re-enabling does not revive the logins that disabling ended.
    _error(await _refresh(http, tokens["refresh_token"]), 401, "token_revoked")
    assert (await _login(http, "siti")).status_code == 200

    booth_id, credential = await enrol_booth(db_server, "lobby-1")
    booth = (await http.post("/api/auth/booth", json={"credential": credential})).json()
    kiosk = auth.authenticate(booth["access_token"])
    assert await auth.is_active(kiosk) is True
    out = await asyncio.to_thread(_cli, db_server.settings, "booth", "revoke", booth_id)
    assert "1 login(s) ended" in out
    assert await auth.is_active(kiosk) is False
    _error(await _refresh(http, booth["refresh_token"]), 403, "account_disabled")
    _, fresh = await auth.enrol_booth("jkt01", "lobby-1", booth_id=booth_id)  # re-enrolled
    assert await auth.is_active(kiosk) is True
    _error(await _refresh(http, booth["refresh_token"]), 401, "token_revoked")
    assert (await http.post("/api/auth/booth", json={"credential": fresh})).status_code == 200

    # An account that never existed is not active either.
    assert await auth.is_active(replace(principal, subject="ghost")) is False
    # The batched check the sockets use agrees, and tells role apart from name.
    ghost = replace(principal, subject="ghost")
    as_supervisor = replace(principal, role=AccountRole.SUPERVISOR)
    assert await auth.inactive([principal, kiosk, ghost, as_supervisor]) == {
        (AccountRole.CSO, "ghost"),
        (AccountRole.SUPERVISOR, "siti"),
    }
    await asyncio.to_thread(_cli, db_server.settings, "user", "disable", "siti")
    assert (AccountRole.CSO, "siti") in await auth.inactive([principal])


# --- throttling that cannot lock out a branch ---------------------------------------------


@pytest.fixture
async def server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[LiveServer]:
    overrides = getattr(request, "param", {})
    async with running_server(server_settings(tmp_path, **overrides)) as live:
        yield live


async def test_failed_logins_for_one_name_do_not_block_the_branch(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    """Every test request comes from 127.0.0.1: one branch behind one NAT address."""
    assert server.settings.login_max_failures == 5  # the defaults
    await add_user(server, "siti")
    await add_user(server, "budi")
    _, credential = await enrol_booth(server, "lobby-1")
    for name in ["ghost"] * 6 + ["budi"] * 6:
        res = await _login(http, name, "wrong password")
        assert res.status_code in (401, 429), res.text
    assert (await _login(http, "budi")).status_code == 429  # the attacked name waits
    assert (await _login(http, "siti")).status_code == 200  # a colleague does not
    res = await http.post("/api/auth/booth", json={"credential": credential})
    assert res.status_code == 200, res.text  # nor do the kiosks


@pytest.mark.parametrize(
    "server", [{"login_max_failures": 2, "login_backoff_base": 1, "login_backoff_max": 2}],
    indirect=True,
)  # fmt: skip
async def test_an_attacked_account_backs_off_exponentially_up_to_the_cap(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    await add_user(server, "siti")
    await add_user(server, "budi")
    retry_after = []
    for wait in (0.0, 1.05, 2.05):
        await asyncio.sleep(wait)  # wait out the previous lock, then fail again
        while (res := await _login(http, "siti", "wrong password")).status_code != 429:
            _error(res, 401, "invalid_credentials")
        # Locked now: even the right password waits.
        res = await _login(http, "siti")
        _error(res, 429, "rate_limited")
        retry_after.append(int(res.headers["retry-after"]))
    assert retry_after == [1, 2, 2]  # 1 s, doubled, capped at 2 s
    assert (await _login(http, "budi")).status_code == 200
    await asyncio.sleep(2.05)
    assert (await _login(http, "siti")).status_code == 200
    # A good login ends the streak: the next mistake is just a mistake.
    _error(await _login(http, "siti", "wrong password"), 401, "invalid_credentials")
    _error(await _login(http, "siti", "wrong password"), 401, "invalid_credentials")


@pytest.mark.parametrize(
    "server",
    [{"login_max_failures": 3, "login_address_max_failures": 8,
      "booth_login_address_max_failures": 3}],
    indirect=True,
)  # fmt: skip
async def test_address_limits_trip_at_their_own_higher_thresholds(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    await add_user(server, "siti")
    _, credential = await enrol_booth(server, "lobby-1")
    # Bad booth credentials count against booths only.
    for _ in range(3):
        res = await http.post("/api/auth/booth", json={"credential": "lkb_lobby.bad"})
        _error(res, 401, "invalid_credentials")
    res = await http.post("/api/auth/booth", json={"credential": credential})
    _error(res, 429, "rate_limited")
    assert int(res.headers["retry-after"]) >= 1
    assert (await _login(http, "siti")).status_code == 200
    # Eight failures spread over names that never reach their own limit of 3...
    for i in range(8):
        _error(await _login(http, f"name{i % 4}", "wrong password"), 401, "invalid_credentials")
    # ...and the address stops people: a guesser cannot cycle names forever.
    res = await _login(http, "siti")
    _error(res, 429, "rate_limited")
    assert "address" in res.json()["error"]["message"]


async def test_retries_across_cluster_processes_get_one_successor(
    tmp_path: Path,
    postgres,
    redis_server,  # type: ignore[no-untyped-def]
) -> None:
    """Two `loket serve` processes on one PostgreSQL: a refresh and its retry, racing on
    both, or the retry sent to the other process (a load balancer's choice), get the
    same successor."""
    from tests.support import cluster as support
    from tests.support.postgres import create_database

    settings = server_settings(
        tmp_path / "data", database_url=await create_database(postgres),
        redis_url=redis_server.url, redis_prefix=f"r{uuid.uuid4().hex[:10]}",
    )  # fmt: skip
    await migrate.upgrade(settings)
    async with support.running_cluster(settings, redis_server, tmp_path, ("a", "b")) as c:
        await c.add_user("siti", AccountRole.CSO)
        a, b = c.nodes["a"], c.nodes["b"]
        async with httpx.AsyncClient(timeout=30) as http:
            login = {"username": "siti", "password": support.PASSWORD}
            first = (await http.post(f"{a.base_url}/api/auth/login", json=login)).json()
            token = first["refresh_token"]
            answers = await asyncio.gather(
                *(_refresh_at(http, node.base_url, token) for node in (a, b, a, b))
            )
            assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
            successors = {r.json()["refresh_token"] for r in answers}
            assert len(successors) == 1
            successor = successors.pop()
            # One rotation more on `b`, its answer lost; the retry goes to `a`.
            lost = await _refresh_at(http, b.base_url, successor)
            retry = await _refresh_at(http, a.base_url, successor)
            assert lost.status_code == retry.status_code == 200, retry.text
            assert retry.json()["refresh_token"] == lost.json()["refresh_token"]


async def _refresh_at(http: httpx.AsyncClient, base_url: str, token: str) -> httpx.Response:
    return await http.post(f"{base_url}/api/auth/refresh", json={"refresh_token": token})


@pytest.mark.parametrize(
    ("server", "wait"),
    [({"refresh_reuse_interval": 0.3}, 0.5), ({"refresh_reuse_interval": 0}, 0.0)],
    indirect=["server"],
)
async def test_a_retry_past_the_reuse_interval_is_reuse(
    server: LiveServer, http: httpx.AsyncClient, wait: float
) -> None:
    """Past the interval (or with none: 0), the same token again revokes the login."""
    await add_user(server, "siti")
    first = (await _login(http, "siti")).json()["refresh_token"]
    successor = (await _refresh(http, first)).json()["refresh_token"]
    await asyncio.sleep(wait)
    with capture_logs() as logs:
        _error(await _refresh(http, first), 401, "token_revoked")
    assert [e for e in logs if e["event"] == "refresh_token_reused"], logs
    _error(await _refresh(http, successor), 401, "token_revoked")


# --- argon2 off the event loop ------------------------------------------------------------


def _hash_seconds() -> float:
    stored = hash_secret(PASSWORD)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        verify_secret(stored, PASSWORD)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def test_password_hashing_does_not_stall_the_event_loop(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    await add_user(server, "siti")
    one_hash = _hash_seconds()
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    results = await asyncio.gather(
        _login(http, "siti"), _login(http, "siti"),
        _login(http, "siti", "wrong password"), _login(http, "nobody", "wrong password"),
    )  # fmt: skip
    done.set()
    await tick
    assert [r.status_code for r in results] == [200, 200, 401, 401]
    # The server runs in this loop: had it hashed there, each of the four hashes would be a
    # gap spanning a whole hash. One long gap is allowed: on a loaded two-core box the
    # whole process is sometimes descheduled for that long (seen: 0.29 s once).
    long = [round(g, 3) for g in gaps if g >= 0.8 * one_hash]
    assert len(long) <= 1, (long, one_hash)


@pytest.mark.parametrize(
    "server", [{"password_hash_concurrency": 1, "password_hash_queue": 1}], indirect=True
)
async def test_logins_beyond_the_hashing_queue_are_refused_not_piled_up(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    await add_user(server, "siti")
    results = await asyncio.gather(*(_login(http, "siti") for _ in range(6)))
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) == {200, 503} and statuses.count(200) >= 2, statuses
    busy = next(r for r in results if r.status_code == 503)
    assert busy.json()["error"]["code"] == "server_busy"
    assert int(busy.headers["retry-after"]) >= 1
    # Being turned away is not a failed login: the account is not slowed down.
    assert (await _login(http, "siti")).status_code == 200
