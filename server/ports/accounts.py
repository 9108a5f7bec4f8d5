"""Accounts port: people (CSO, supervisor, operator) and enrolled booth kiosks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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


class AccountStore(Protocol):
    async def add_user(self, user: UserRecord) -> None: ...
    async def get_user(self, username: str) -> UserRecord | None: ...
    async def list_users(self) -> list[UserRecord]: ...
    async def set_password(self, username: str, password_hash: str) -> None: ...
    async def set_disabled(self, username: str, disabled: bool) -> None: ...
    async def add_booth(self, booth: BoothRecord) -> None: ...
    async def get_booth(self, booth_id: str) -> BoothRecord | None: ...
    async def list_booths(self) -> list[BoothRecord]: ...
    async def set_booth_secret(self, booth_id: str, secret_hash: str) -> None: ...
    async def revoke_booth(self, booth_id: str) -> None: ...
    async def touch_booth(self, booth_id: str, at: datetime) -> None: ...
