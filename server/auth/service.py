"""AuthService: logins, booth credentials, token refresh, and socket authentication."""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from datetime import UTC, datetime

import structlog

from server.auth.errors import AuthError, invalid_credentials
from server.auth.passwords import check_password_policy, hash_secret, needs_rehash, verify_secret
from server.auth.ratelimit import LoginRateLimiter
from server.auth.tokens import TokenIssuer, TokenPair
from server.ports.accounts import AccountStore, BoothRecord, UserRecord
from server.principal import AccountRole, Principal
from server.settings import Settings

log = structlog.get_logger("loket.auth")

CREDENTIAL_PREFIX = "lkb_"
_CREDENTIAL = re.compile(
    r"^lkb_(?P<booth>[a-z0-9][a-z0-9-]{0,63})\.(?P<secret>[A-Za-z0-9_-]{20,})$"
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
PEOPLE = frozenset(
    {AccountRole.CSO, AccountRole.SUPERVISOR, AccountRole.OPERATOR, AccountRole.AUDITOR}
)


def validate_account_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            "use 2-64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def user_principal(user: UserRecord) -> Principal:
    return Principal(
        subject=user.username,
        role=user.role,
        display_name=user.display_name,
        branch=user.branch,
        pools=user.pools or frozenset({user.branch}),
        skills=user.skills,
        capacity=user.capacity,
    )


def booth_principal(booth: BoothRecord) -> Principal:
    return Principal(
        subject=booth.booth_id,
        role=AccountRole.BOOTH,
        display_name=booth.label,
        branch=booth.branch,
    )


class AuthService:
    def __init__(
        self,
        store: AccountStore,
        issuer: TokenIssuer,
        limiter: LoginRateLimiter,
        settings: Settings,
    ) -> None:
        self.store = store
        self._issuer = issuer
        self._limiter = limiter
        self._settings = settings

    # --- HTTP logins --------------------------------------------------------------------

    async def login(
        self, username: str, password: str, client_ip: str
    ) -> tuple[TokenPair, Principal]:
        keys = (f"user:{username.lower()}", f"ip:{client_ip}")
        self._limiter.check(*keys)
        user = await self.store.get_user(username)
        if not verify_secret(user.password_hash if user else None, password) or user is None:
            self._limiter.failed(*keys)
            log.info("login_failed", username=username, client_ip=client_ip)
            raise invalid_credentials()
        if user.disabled:
            raise AuthError(
                "account_disabled", "this account is disabled; ask an operator", status=403
            )
        self._limiter.succeeded(keys[0])
        if needs_rehash(user.password_hash):
            await self.store.set_password(user.username, hash_secret(password))
        principal = user_principal(user)
        log.info("login", username=username, role=str(user.role))
        return self._issuer.issue(principal), principal

    async def booth_login(self, credential: str, client_ip: str) -> tuple[TokenPair, Principal]:
        self._limiter.check(f"ip:{client_ip}")
        match = _CREDENTIAL.match(credential)
        booth = await self.store.get_booth(match["booth"]) if match else None
        secret = match["secret"] if match else credential
        if not verify_secret(booth.secret_hash if booth else None, secret) or booth is None:
            self._limiter.failed(f"ip:{client_ip}")
            log.info("booth_login_failed", client_ip=client_ip)
            raise AuthError(
                "invalid_credentials",
                "the booth credential is not valid; ask an operator to run `loket booth enrol`",
            )
        if booth.revoked:
            raise AuthError(
                "account_disabled", "this booth was revoked; ask an operator to re-enrol it",
                status=403,
            )  # fmt: skip
        await self.store.touch_booth(booth.booth_id, datetime.now(UTC))
        principal = booth_principal(booth)
        log.info("booth_login", booth_id=booth.booth_id)
        return self._issuer.issue(principal), principal

    async def refresh(self, refresh_token: str) -> tuple[TokenPair, Principal]:
        """A fresh pair, re-reading the account so disabling or revoking takes effect."""
        claims = self._issuer.verify_refresh(refresh_token)
        if claims.role is AccountRole.BOOTH:
            booth = await self.store.get_booth(claims.subject)
            if booth is None or booth.revoked:
                raise AuthError("account_disabled", "this booth was revoked", status=403)
            principal = booth_principal(booth)
        else:
            user = await self.store.get_user(claims.subject)
            if user is None or user.disabled:
                raise AuthError("account_disabled", "this account is disabled", status=403)
            principal = user_principal(user)
        return self._issuer.issue(principal), principal

    def authenticate(self, access_token: str) -> Principal:
        """Check an access token (websocket hello, bearer header). No I/O: tokens are
        short-lived, so a disabled account loses access within access_token_ttl."""
        return self._issuer.verify_access(access_token)

    # --- administration -------------------------------------------------------------------

    async def add_user(
        self,
        username: str,
        password: str,
        *,
        role: AccountRole,
        display_name: str,
        branch: str,
        pools: frozenset[str] = frozenset(),
        skills: frozenset[str] = frozenset(),
        capacity: int = 6,
    ) -> UserRecord:
        if role not in PEOPLE:
            raise ValueError("booths are enrolled with `loket booth enrol`, not added as users")
        validate_account_name(username)
        check_password_policy(password)
        if not 1 <= capacity <= 6:
            raise ValueError("capacity must be 1 to 6 booths")
        user = UserRecord(
            username=username,
            role=role,
            display_name=display_name,
            branch=branch,
            password_hash=hash_secret(password),
            pools=pools,
            skills=skills,
            capacity=capacity,
        )
        await self.store.add_user(user)
        return replace(user, password_hash="")

    async def set_password(self, username: str, password: str) -> None:
        check_password_policy(password)
        await self.store.set_password(username, hash_secret(password))

    async def enrol_booth(
        self, branch: str, label: str, booth_id: str | None = None
    ) -> tuple[str, str]:
        """Create a booth (or re-key an existing id). Returns (booth_id, credential); only
        the hash of the credential's secret is stored, so it can be shown once only."""
        booth_id = validate_account_name(booth_id or f"{branch}-{secrets.token_hex(3)}")
        secret = secrets.token_urlsafe(32)
        existing = await self.store.get_booth(booth_id)
        if existing is None:
            await self.store.add_booth(
                BoothRecord(
                    booth_id=booth_id, branch=branch, label=label, secret_hash=hash_secret(secret)
                )
            )
        else:
            await self.store.set_booth_secret(booth_id, hash_secret(secret))
        return booth_id, f"{CREDENTIAL_PREFIX}{booth_id}.{secret}"
