"""Tokens and login rate limiting, with injected clocks."""

from __future__ import annotations

import jwt
import pytest

from server.auth.errors import AuthError
from server.auth.passwords import hash_secret, verify_secret
from server.auth.ratelimit import LoginRateLimiter
from server.auth.tokens import TokenIssuer
from server.principal import AccountRole, Principal

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


def test_password_hashes_are_argon2_and_verify() -> None:
    hashed = hash_secret("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert verify_secret(hashed, "correct horse battery")
    assert not verify_secret(hashed, "wrong")
    assert not verify_secret(None, "anything")  # unknown user: same work, still False
