"""Tokens, login throttling and the hashing pool, with injected clocks."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from pathlib import Path

import jwt
import pytest

from server.auth.errors import AuthError
from server.auth.passwords import HashingPool, hash_secret, verify_secret
from server.auth.ratelimit import AccountBackoff, LoginRateLimiter, LoginThrottle
from server.auth.tokens import TokenIssuer
from server.principal import AccountRole, Principal
from tests.support.live_server import server_settings

SECRET = "s" * 40
SITI = Principal(
    subject="siti", role=AccountRole.CSO, display_name="Siti", branch="jkt01",
    pools=frozenset({"*"}), skills=frozenset({"lang:en"}), capacity=4,
)  # fmt: skip


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _issuer(clock: Clock) -> TokenIssuer:
    return TokenIssuer(SECRET, access_ttl=600, refresh_ttl=3600, clock=clock)


def test_access_token_round_trips_the_principal() -> None:
    issuer = _issuer(Clock())
    pair = issuer.issue(SITI)
    assert pair.expires_in == 600
    assert issuer.verify_access(pair.access_token) == SITI
    assert issuer.verify_refresh(pair.refresh_token).subject == "siti"


def test_access_principal_carries_the_token_expiry() -> None:
    clock = Clock()
    issuer = _issuer(clock)
    token = issuer.issue(SITI).access_token
    principal = issuer.verify_access(token)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert principal.expires_at == exp == clock.now + 600
    assert SITI.expires_at is None  # built, not from a token
    assert principal == SITI  # expiry is token metadata, not identity


def test_refresh_tokens_name_their_family_and_id() -> None:
    clock = Clock()
    issuer = _issuer(clock)
    first = issuer.issue(SITI)
    claims = issuer.verify_refresh(first.refresh_token)
    assert (claims.jti, claims.family) == (first.refresh_id, first.family)
    assert first.refresh_expires_at == claims.expires_at == clock.now + 3600
    second = issuer.issue(SITI, family=first.family)
    assert second.family == first.family and second.refresh_id != first.refresh_id
    assert issuer.issue(SITI).family != first.family  # a new login, a new family
    clock.now += 3601
    with pytest.raises(AuthError, match="expired"):
        issuer.verify_refresh(first.refresh_token)
    # Logout accepts an expired token: it still names the family to revoke.
    assert issuer.verify_refresh(first.refresh_token, allow_expired=True).family == first.family


def test_tokens_expire_by_our_clock() -> None:
    clock = Clock()
    issuer = _issuer(clock)
    pair = issuer.issue(SITI)
    clock.now += 601
    with pytest.raises(AuthError) as err:
        issuer.verify_access(pair.access_token)
    assert err.value.code == "token_expired"
    assert issuer.verify_refresh(pair.refresh_token).role is AccountRole.CSO


@pytest.mark.parametrize("kind", ["refresh_as_access", "tampered", "foreign_key", "alg_none"])
def test_bad_tokens_are_refused(kind: str) -> None:
    issuer = _issuer(Clock())
    pair = issuer.issue(SITI)
    claims = jwt.decode(pair.access_token, options={"verify_signature": False})
    head, body, signature = pair.access_token.split(".")
    forged_body = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(body).replace(b'"cso"', b'"supervisor"')
    ).decode()
    token = {
        "refresh_as_access": pair.refresh_token,
        "tampered": f"{head}.{forged_body}.{signature}",
        "foreign_key": jwt.encode({**claims, "role": "supervisor"}, "x" * 40, "HS256"),
        "alg_none": jwt.encode({**claims, "role": "supervisor"}, None, "none"),
    }[kind]  # fmt: skip
    with pytest.raises(AuthError) as err:
        issuer.verify_access(token)
    assert err.value.code == "token_invalid"


def test_short_jwt_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        TokenIssuer("short", access_ttl=60, refresh_ttl=60)


def test_rate_limiter_blocks_after_max_failures_then_forgives() -> None:
    clock = Clock(0.0)
    limiter = LoginRateLimiter(3, window=60, clock=clock)
    for _ in range(3):
        limiter.check("user:siti", "ip:10.0.0.1")
        limiter.failed("user:siti", "ip:10.0.0.1")
    with pytest.raises(AuthError) as err:
        limiter.check("user:siti")
    assert err.value.status == 429 and err.value.retry_after == pytest.approx(60)
    limiter.check("user:budi")  # other accounts are unaffected
    clock.now = 61
    limiter.check("user:siti", "ip:10.0.0.1")  # the window slid past the failures


def test_success_clears_the_account_key() -> None:
    limiter = LoginRateLimiter(2, window=60, clock=Clock(0.0))
    limiter.failed("user:siti")
    limiter.succeeded("user:siti")
    limiter.failed("user:siti")
    limiter.check("user:siti")


def test_account_backoff_doubles_up_to_the_cap_then_forgets() -> None:
    clock = Clock(0.0)
    backoff = AccountBackoff(3, window=600, base=2, cap=10, clock=clock)
    waits = []
    for _ in range(7):
        backoff.check("user:siti")
        backoff.failed("user:siti")
        waits.append(backoff.retry_after("user:siti"))
        clock.now += waits[-1] or 0.0  # wait out each lock, then fail again
    assert waits == [None, None, 2, 4, 8, 10, 10]
    backoff.failed("user:siti")
    with pytest.raises(AuthError) as err:
        backoff.check("user:siti")
    assert err.value.status == 429 and err.value.retry_after == 10
    backoff.check("user:budi")  # another name is not slowed
    clock.now += 600 + 10  # quiet for the window: the streak is forgotten
    backoff.failed("user:siti")
    assert backoff.retry_after("user:siti") is None


def test_account_backoff_is_cleared_by_a_good_login() -> None:
    backoff = AccountBackoff(2, window=600, clock=Clock(0.0))
    backoff.failed("user:siti")
    backoff.succeeded("user:siti")
    backoff.failed("user:siti")
    backoff.check("user:siti")


def test_throttle_keeps_people_accounts_and_booths_apart(tmp_path: Path) -> None:
    clock = Clock(0.0)
    settings = server_settings(
        tmp_path,
        login_max_failures=5,
        login_address_max_failures=12,
        booth_login_address_max_failures=4,
    )
    throttle = LoginThrottle.from_settings(settings, clock)
    for _ in range(5):  # one name hammered from the branch's address
        throttle.check_person("ghost", "10.0.0.1")
        throttle.person_failed("ghost", "10.0.0.1")
    with pytest.raises(AuthError, match="account"):
        throttle.check_person("ghost", "10.0.0.1")
    throttle.check_person("siti", "10.0.0.1")  # a colleague at the same address
    throttle.check_booth("10.0.0.1")  # and the kiosks
    for i in range(7):  # the address limit is much higher, and does trip
        throttle.check_person(f"name{i}", "10.0.0.1")
        throttle.person_failed(f"name{i}", "10.0.0.1")
    with pytest.raises(AuthError, match="address"):
        throttle.check_person("siti", "10.0.0.1")
    throttle.check_person("siti", "10.0.0.2")
    throttle.check_booth("10.0.0.1")  # booths are counted apart
    for _ in range(4):
        throttle.check_booth("10.0.0.3")
        throttle.booth_failed("10.0.0.3")
    with pytest.raises(AuthError):
        throttle.check_booth("10.0.0.3")
    throttle.check_person("siti", "10.0.0.3")


async def test_hashing_pool_bounds_concurrency_and_refuses_past_its_queue() -> None:
    pool = HashingPool(concurrency=2, queue=1)
    release = threading.Event()
    running, peak = 0, 0
    lock = threading.Lock()

    def work(_: str | None) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1
        return "done"

    try:
        tasks = [asyncio.create_task(pool._run(work, None)) for _ in range(3)]
        await asyncio.sleep(0.1)  # two run, one waits in the queue
        with pytest.raises(AuthError) as err:
            await pool._run(work, None)
        assert err.value.status == 503 and err.value.retry_after
        release.set()
        assert await asyncio.gather(*tasks) == ["done"] * 3
        assert peak == 2
        assert await pool._run(work, None) == "done"  # room again
    finally:
        release.set()
        pool.close()


async def test_unknown_accounts_cost_the_same_as_wrong_passwords() -> None:
    pool = HashingPool(concurrency=1, queue=8)
    stored = hash_secret("correct horse battery")

    async def timed(stored_hash: str | None) -> float:
        start = time.perf_counter()
        assert not await pool.verify(stored_hash, "wrong guess")
        return time.perf_counter() - start

    try:
        known = statistics.median([await timed(stored) for _ in range(3)])
        unknown = statistics.median([await timed(None) for _ in range(3)])
    finally:
        pool.close()
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_password_hashes_are_argon2_and_verify() -> None:
    hashed = hash_secret("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert verify_secret(hashed, "correct horse battery")
    assert not verify_secret(hashed, "wrong")
    assert not verify_secret(None, "anything")  # unknown user: same work, still False
