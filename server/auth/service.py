"""AuthService: logins, booth credentials, token refresh, and socket authentication."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import structlog

from server.auth.errors import AuthError, invalid_credentials
from server.auth.passwords import HashingPool, check_password_policy, needs_rehash
from server.auth.ratelimit import LoginRateLimiter, LoginThrottle
from server.auth.tokens import TokenIssuer, TokenPair
from server.ports.accounts import AccountStore, BoothRecord, RefreshGrant, Rotation, UserRecord
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
PURGE_INTERVAL = 3600.0  # seconds between sweeps of expired refresh tokens


def token_hash(token_id: str) -> str:
    """What the database keeps of a refresh token: the SHA-256 of its id."""
    return hashlib.sha256(token_id.encode()).hexdigest()


def account_key(role: AccountRole, subject: str) -> str:
    """The owner of a refresh family. Users and booths are separate tables and may
    share a name, hence the prefix."""
    return f"booth:{subject}" if role is AccountRole.BOOTH else f"user:{subject}"


def _refresh_refused() -> AuthError:
    return AuthError("token_revoked", "this refresh token is no longer valid; log in again")


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
        limiter: LoginThrottle | LoginRateLimiter | None,
        settings: Settings,
        *,
        hashing: HashingPool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._issuer = issuer
        # A bare LoginRateLimiter is the older wiring: the limits now come from settings.
        self._throttle = (
            limiter if isinstance(limiter, LoginThrottle) else LoginThrottle.from_settings(settings)
        )
        self._settings = settings
        self._hashing = hashing or HashingPool(
            settings.password_hash_concurrency, settings.password_hash_queue
        )
        self._clock = clock
        self._next_purge = 0.0

    def close(self) -> None:
        self._hashing.close()

    # --- HTTP logins --------------------------------------------------------------------

    async def login(
        self, username: str, password: str, client_ip: str
    ) -> tuple[TokenPair, Principal]:
        self._throttle.check_person(username, client_ip)
        user = await self.store.get_user(username)
        # Unknown names verify against a dummy hash in the same pool: same time, same queue.
        ok = await self._hashing.verify(user.password_hash if user else None, password)
        if not ok or user is None:
            self._throttle.person_failed(username, client_ip)
            log.info("login_failed", username=username, client_ip=client_ip)
            raise invalid_credentials()
        if user.disabled:
            raise AuthError(
                "account_disabled", "this account is disabled; ask an operator", status=403
            )
        self._throttle.person_succeeded(username)
        if needs_rehash(user.password_hash):
            await self.store.set_password(user.username, await self._hashing.hash(password))
        principal = user_principal(user)
        log.info("login", username=username, role=str(user.role))
        return await self._start_family(principal), principal

    async def booth_login(self, credential: str, client_ip: str) -> tuple[TokenPair, Principal]:
        self._throttle.check_booth(client_ip)
        match = _CREDENTIAL.match(credential)
        booth = await self.store.get_booth(match["booth"]) if match else None
        secret = match["secret"] if match else credential
        if not await self._hashing.verify(booth.secret_hash if booth else None, secret) or (
            booth is None
        ):
            self._throttle.booth_failed(client_ip)
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
        return await self._start_family(principal), principal

    async def refresh(self, refresh_token: str) -> tuple[TokenPair, Principal]:
        """Trade a refresh token, once, for a fresh pair in the same family. Re-reads the
        account so disabling or revoking takes effect. A token presented a second time
        means two parties hold it (one of them a thief): the family is revoked, so
        neither the thief's nor the owner's newest token works any more.

        Except a retry: within `refresh_reuse_interval` seconds of the first use, while
        the successor is unused, the same token gets that same successor again (the
        client lost the answer; a thief replaying it forks nothing). The successor's id
        is derived from its parent's, so nothing secret is stored for this."""
        claims = self._issuer.verify_refresh(refresh_token)
        principal = await self._current_principal(claims.role, claims.subject)
        if principal is None:
            if claims.role is AccountRole.BOOTH:
                raise AuthError("account_disabled", "this booth was revoked", status=403)
            raise AuthError("account_disabled", "this account is disabled", status=403)
        if claims.family is None:
            raise _refresh_refused()  # from before rotation existed: log in once more
        successor_id = self._issuer.successor_id(claims.jti)
        pair = self._issuer.issue(principal, family=claims.family, refresh_id=successor_id)
        result = await self.store.rotate_refresh_token(
            token_hash(claims.jti),
            self._grant(principal, pair),
            datetime.fromtimestamp(self._clock(), UTC),
            timedelta(seconds=self._settings.refresh_reuse_interval),
        )
        account = account_key(principal.role, principal.subject)
        if result.outcome is Rotation.ROTATED:
            return pair, principal
        if result.outcome is Rotation.RETRIED and result.successor is not None:
            stored = result.successor
            times = (int(stored.issued_at.timestamp()), int(stored.expires_at.timestamp()))
            log.info("refresh_retried", account=account, family=claims.family)
            resent = self._issuer.issue(
                principal, family=claims.family, refresh_id=successor_id, refresh_times=times
            )
            return resent, principal
        if result.outcome is Rotation.REUSED:
            log.warning("refresh_token_reused", account=account, family=claims.family)
        else:
            log.info(
                "refresh_refused", account=account, family=claims.family, why=str(result.outcome)
            )
        raise _refresh_refused()

    async def logout(self, refresh_token: str) -> None:
        """Revoke the refresh token's family (this login on this device). Idempotent:
        an expired, used or already revoked token is fine."""
        claims = self._issuer.verify_refresh(refresh_token, allow_expired=True)
        if claims.family is None:
            return
        revoked = await self.store.revoke_refresh_family(claims.family, "logout", datetime.now(UTC))
        if revoked:
            log.info(
                "logout", account=account_key(claims.role, claims.subject), family=claims.family
            )

    def authenticate(self, access_token: str) -> Principal:
        """Check an access token (websocket hello, bearer header). No I/O: tokens are
        short-lived; the principal's `expires_at` is the token's `exp`, and long-lived
        sockets are re-checked in batches with `inactive`."""
        return self._issuer.verify_access(access_token)

    async def is_active(self, principal: Principal) -> bool:
        """Whether the account behind `principal` may still act: the user exists, is not
        disabled and keeps its role, or the booth exists and is not revoked. One primary
        key lookup; database errors propagate (the caller decides what an outage means)."""
        return await self._current_principal(principal.role, principal.subject) is not None

    async def inactive(self, principals: list[Principal]) -> set[tuple[AccountRole, str]]:
        """Which of these accounts may no longer act (same rule as `is_active`), read in a
        few batched queries: one process re-checks thousands of sockets per interval."""
        booth_ids = [p.subject for p in principals if p.role is AccountRole.BOOTH]
        usernames = [p.subject for p in principals if p.role is not AccountRole.BOOTH]
        kiosks = await self.store.get_booths(booth_ids) if booth_ids else {}
        people = await self.store.get_users(usernames) if usernames else {}
        gone: set[tuple[AccountRole, str]] = set()
        for p in principals:
            if p.role is AccountRole.BOOTH:
                booth = kiosks.get(p.subject)
                if booth is None or booth.revoked:
                    gone.add((p.role, p.subject))
            else:
                user = people.get(p.subject)
                if user is None or user.disabled or user.role is not p.role:
                    gone.add((p.role, p.subject))
        return gone

    async def _current_principal(self, role: AccountRole, subject: str) -> Principal | None:
        if role is AccountRole.BOOTH:
            booth = await self.store.get_booth(subject)
            return None if booth is None or booth.revoked else booth_principal(booth)
        user = await self.store.get_user(subject)
        if user is None or user.disabled or user.role is not role:
            return None
        return user_principal(user)

    async def _start_family(self, principal: Principal) -> TokenPair:
        pair = self._issuer.issue(principal)
        await self._purge_now_and_then()
        await self.store.start_refresh_family(self._grant(principal, pair))
        return pair

    def _grant(self, principal: Principal, pair: TokenPair) -> RefreshGrant:
        # The token's own `iat`, so that a retry can re-issue it exactly.
        issued = datetime.fromtimestamp(pair.refresh_issued_at, UTC)
        return RefreshGrant(
            token_hash=token_hash(pair.refresh_id),
            family=pair.family,
            account=account_key(principal.role, principal.subject),
            issued_at=issued,
            expires_at=datetime.fromtimestamp(pair.refresh_expires_at, UTC),
        )

    async def _purge_now_and_then(self) -> None:
        now = self._clock()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        # A minute of slack for clocks: only tokens no verifier would still accept.
        await self.store.purge_refresh_tokens(datetime.fromtimestamp(now - 60, UTC))

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
        if await self.store.get_booth(username) is not None:
            # One name, one peer: a user named like a booth would share its address in
            # logs and audit trails (the floor keys peers by role, but people read names).
            raise ValueError(f"{username!r} is an enrolled booth's id; choose another username")
        user = UserRecord(
            username=username,
            role=role,
            display_name=display_name,
            branch=branch,
            password_hash=await self._hashing.hash(password),
            pools=pools,
            skills=skills,
            capacity=capacity,
        )
        await self.store.add_user(user)
        return replace(user, password_hash="")

    async def set_password(self, username: str, password: str) -> None:
        check_password_policy(password)
        await self.store.set_password(username, await self._hashing.hash(password))

    async def set_disabled(self, username: str, disabled: bool) -> int:
        """Disable (or re-enable) a person. Disabling ends every login of theirs: all
        refresh families are revoked (returns how many); sockets notice via `inactive`."""
        await self.store.set_disabled(username, disabled)
        if not disabled:
            return 0
        revoked = await self.store.revoke_refresh_families(
            f"user:{username}", "disabled", datetime.now(UTC)
        )
        log.info("account_disabled", username=username, families_revoked=revoked)
        return revoked

    async def revoke_booth(self, booth_id: str) -> int:
        """Revoke a booth's credential and every refresh family it holds."""
        await self.store.revoke_booth(booth_id)
        revoked = await self.store.revoke_refresh_families(
            f"booth:{booth_id}", "booth_revoked", datetime.now(UTC)
        )
        log.info("booth_revoked", booth_id=booth_id, families_revoked=revoked)
        return revoked

    async def enrol_booth(
        self, branch: str, label: str, booth_id: str | None = None
    ) -> tuple[str, str]:
        """Create a booth (or re-key an existing id). Returns (booth_id, credential); only
        the hash of the credential's secret is stored, so it can be shown once only."""
        booth_id = validate_account_name(booth_id or f"{branch}-{secrets.token_hex(3)}")
        secret = secrets.token_urlsafe(32)
        secret_hash = await self._hashing.hash(secret)
        if await self.store.get_user(booth_id) is not None:
            raise ValueError(f"{booth_id!r} is a user's name; choose another booth id")
        existing = await self.store.get_booth(booth_id)
        if existing is None:
            await self.store.add_booth(
                BoothRecord(booth_id=booth_id, branch=branch, label=label, secret_hash=secret_hash)
            )
        else:
            await self.store.set_booth_secret(booth_id, secret_hash)
        return booth_id, f"{CREDENTIAL_PREFIX}{booth_id}.{secret}"
