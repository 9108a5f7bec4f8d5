"""Short-lived HS256 access tokens (carry the whole Principal) and refresh tokens.

A refresh token names its family (one per login) and its own id (`jti`); the server
keeps a hash of each id so that a token is good for one refresh only (see AuthService).
A successor's id is derived from its parent's (`successor_id`, an HMAC under the signing
key), so a retried refresh can be answered with the same successor without storing it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from server.auth.errors import AuthError
from server.principal import AccountRole, Principal

ISSUER = "loket"
AUDIENCE = "loket"
ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds until the access token expires
    token_type: str = "bearer"
    refresh_id: str = ""  # the refresh token's jti: its hash is stored, never the token
    family: str = ""
    refresh_expires_at: float = 0.0  # unix time
    refresh_issued_at: float = 0.0  # unix time, whole seconds (the token's `iat`)


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    subject: str
    role: AccountRole
    jti: str
    family: str | None  # None: issued before refresh families existed
    expires_at: float


class TokenIssuer:
    def __init__(
        self,
        secret: str,
        *,
        access_ttl: int,
        refresh_ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the JWT secret must be at least 32 characters")
        self._secret = secret
        self._access_ttl = access_ttl
        self._refresh_ttl = refresh_ttl
        self._clock = clock

    def successor_id(self, parent_id: str) -> str:
        """The id of the refresh token that succeeds `parent_id`: always the same, and
        unguessable without the signing key."""
        mac = hmac.new(self._secret.encode(), b"loket refresh successor\0", hashlib.sha256)
        mac.update(parent_id.encode())
        return mac.hexdigest()[:32]

    def issue(
        self,
        principal: Principal,
        family: str | None = None,
        *,
        refresh_id: str | None = None,
        refresh_times: tuple[int, int] | None = None,
    ) -> TokenPair:
        """A fresh pair; the refresh token joins `family` (a new one if None), with id
        `refresh_id` (random if None). `refresh_times` (iat, exp) re-issues a refresh
        token exactly as it was first issued; the access token is always new."""
        now = int(self._clock())
        family = family or uuid.uuid4().hex
        refresh_id = refresh_id or uuid.uuid4().hex
        refresh_iat, refresh_exp = refresh_times or (now, now + self._refresh_ttl)
        base = {"iss": ISSUER, "aud": AUDIENCE, "sub": principal.subject, "iat": now}
        access = {
            **base,
            "typ": "access",
            "exp": now + self._access_ttl,
            "jti": uuid.uuid4().hex,
            "role": str(principal.role),
            "name": principal.display_name,
            "branch": principal.branch,
            "pools": sorted(principal.pools),
            "skills": sorted(principal.skills),
            "capacity": principal.capacity,
        }
        refresh = {
            **base,
            "iat": refresh_iat,
            "typ": "refresh",
            "exp": refresh_exp,
            "jti": refresh_id,
            "fam": family,
            "role": str(principal.role),
        }
        return TokenPair(
            access_token=jwt.encode(access, self._secret, ALGORITHM),
            refresh_token=jwt.encode(refresh, self._secret, ALGORITHM),
            expires_in=self._access_ttl,
            refresh_id=refresh_id,
            family=family,
            refresh_expires_at=float(refresh_exp),
            refresh_issued_at=float(refresh_iat),
        )

    def _decode(self, token: str, typ: str, *, allow_expired: bool = False) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],  # never trust the token's own `alg`
                audience=AUDIENCE,
                issuer=ISSUER,
                # Time claims are checked below against our clock (injectable in tests),
                # not pyjwt's; the signature, audience and issuer are checked here.
                options={
                    "require": ["exp", "iat", "sub", "typ", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            raise AuthError("token_invalid", "the token is not valid; log in again") from None
        if claims.get("typ") != typ:
            raise AuthError("token_invalid", f"a {typ} token is needed here")
        if not isinstance(claims["exp"], int | float):
            raise AuthError("token_invalid", "the token is not valid; log in again")
        if claims["exp"] <= self._clock() and not allow_expired:
            raise AuthError("token_expired", "the token has expired; log in again")
        return claims

    def verify_access(self, token: str) -> Principal:
        claims = self._decode(token, "access")
        try:
            return Principal(
                subject=claims["sub"],
                role=AccountRole(claims["role"]),
                display_name=claims["name"],
                branch=claims["branch"],
                pools=frozenset(claims.get("pools", ())),
                skills=frozenset(claims.get("skills", ())),
                capacity=int(claims.get("capacity", 6)),
                expires_at=float(claims["exp"]),
            )
        except (KeyError, ValueError, TypeError):
            raise AuthError("token_invalid", "the token is not valid; log in again") from None

    def verify_refresh(self, token: str, *, allow_expired: bool = False) -> RefreshClaims:
        """`allow_expired` is for logout: an expired token may still name its family."""
        claims = self._decode(token, "refresh", allow_expired=allow_expired)
        try:
            family = claims.get("fam")
            return RefreshClaims(
                claims["sub"],
                AccountRole(claims["role"]),
                str(claims["jti"]),
                family if isinstance(family, str) and family else None,
                float(claims["exp"]),
            )
        except (KeyError, ValueError, TypeError):
            raise AuthError("token_invalid", "the token is not valid; log in again") from None
