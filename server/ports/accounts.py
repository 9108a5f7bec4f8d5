"""Accounts port: people (CSO, supervisor, operator), enrolled booth kiosks, and the
refresh-token families that let a login stay alive."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from server.principal import AccountRole


class AccountExists(Exception):
    pass


class AccountNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class UserRecord:
    username: str
    role: AccountRole  # cso, supervisor or operator; booths are BoothRecord
    display_name: str
    branch: str
    password_hash: str
    pools: frozenset[str] = field(default_factory=frozenset)  # "*" = every branch
    skills: frozenset[str] = field(default_factory=frozenset)  # e.g. "lang:en"
    capacity: int = 6
    disabled: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BoothRecord:
    booth_id: str
    branch: str
    label: str
    secret_hash: str
    revoked: bool = False
    created_at: datetime | None = None
    last_seen_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """One issued refresh token, as stored: the hash of its id, never the token."""

    token_hash: str  # SHA-256 hex of the token's jti
    family: str  # one per login; revoked as a whole
    account: str  # "user:<username>" or "booth:<booth id>"
    issued_at: datetime
    expires_at: datetime


class Rotation(StrEnum):
    ROTATED = "rotated"  # the token was unused: it is used now, its successor stored
    # Used moments ago (within the reuse interval) and its successor, the one asked for,
    # is stored and still unused: the client lost the answer; it gets that successor.
    RETRIED = "retried"
    REUSED = "reused"  # the token had been used already: its family is revoked now
    REVOKED = "revoked"  # its family was revoked earlier (logout, reuse, disabled)
    UNKNOWN = "unknown"  # never stored (e.g. issued before this version)


@dataclass(frozen=True, slots=True)
class RotationResult:
    outcome: Rotation
    # ROTATED: the successor as given; RETRIED: as stored by the rotation (its times).
    successor: RefreshGrant | None = None


class AccountStore(Protocol):
    async def add_user(self, user: UserRecord) -> None: ...
    async def get_user(self, username: str) -> UserRecord | None: ...
    async def list_users(self) -> list[UserRecord]: ...
    async def set_password(self, username: str, password_hash: str) -> None: ...
    async def set_disabled(self, username: str, disabled: bool) -> None: ...
    async def add_booth(self, booth: BoothRecord) -> None: ...
    async def get_booth(self, booth_id: str) -> BoothRecord | None: ...
    async def get_users(self, usernames: list[str]) -> dict[str, UserRecord]:
        """Many at once (the periodic re-check of every open socket); absent ones left out."""
        ...

    async def get_booths(self, booth_ids: list[str]) -> dict[str, BoothRecord]: ...
    async def list_booths(self) -> list[BoothRecord]: ...
    async def set_booth_secret(self, booth_id: str, secret_hash: str) -> None: ...
    async def revoke_booth(self, booth_id: str) -> None: ...
    async def touch_booth(self, booth_id: str, at: datetime) -> None: ...
    # Refresh-token families. `account` is "user:<name>" or "booth:<id>".
    async def start_refresh_family(self, grant: RefreshGrant) -> None: ...
    async def rotate_refresh_token(
        self,
        used_hash: str,
        successor: RefreshGrant,
        at: datetime,
        reuse_interval: timedelta = timedelta(0),
    ) -> RotationResult:
        """Atomically mark `used_hash` (of successor.family) used and store `successor`.
        A token used at most `reuse_interval` before `at` whose stored successor has
        `successor.token_hash` and is unused: RETRIED with that successor, nothing
        written. Any other used token revokes the family. Safe against concurrent use."""
        ...

    async def revoke_refresh_family(self, family: str, reason: str, at: datetime) -> bool: ...
    async def revoke_refresh_families(self, account: str, reason: str, at: datetime) -> int: ...
    async def purge_refresh_tokens(self, expired_before: datetime) -> int: ...
