"""AccountStore on SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.adapters.sql.tables import booths, users
from server.ports.accounts import AccountExists, AccountNotFound, BoothRecord, UserRecord
from server.principal import AccountRole


def _csv(values: frozenset[str]) -> str:
    return ",".join(sorted(values))


def _set(text: str) -> frozenset[str]:
    return frozenset(v for v in text.split(",") if v)


def _user(row: RowMapping) -> UserRecord:
    return UserRecord(
        username=row["username"],
        role=AccountRole(row["role"]),
        display_name=row["display_name"],
        branch=row["branch"],
        password_hash=row["password_hash"],
        pools=_set(row["pools"]),
        skills=_set(row["skills"]),
        capacity=row["capacity"],
        disabled=row["disabled"],
        created_at=row["created_at"],
    )


def _booth(row: RowMapping) -> BoothRecord:
    return BoothRecord(
        booth_id=row["booth_id"],
        branch=row["branch"],
        label=row["label"],
        secret_hash=row["secret_hash"],
        revoked=row["revoked"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
    )


class SqlAccountStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add_user(self, user: UserRecord) -> None:
        now = datetime.now(UTC)
        values = {
            "username": user.username,
            "role": str(user.role),
            "display_name": user.display_name,
            "branch": user.branch,
            "password_hash": user.password_hash,
            "pools": _csv(user.pools),
            "skills": _csv(user.skills),
            "capacity": user.capacity,
            "disabled": user.disabled,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(users.insert().values(**values))
        except IntegrityError:
            raise AccountExists(user.username) from None

    async def get_user(self, username: str) -> UserRecord | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(select(users).where(users.c.username == username)))
                .mappings()
                .first()
            )
        return _user(row) if row else None

    async def list_users(self) -> list[UserRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).mappings()
            return [_user(r) for r in rows]

    async def _update_user(self, username: str, **values: Any) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(users)
                .where(users.c.username == username)
                .values(**values, updated_at=datetime.now(UTC))
            )
            if result.rowcount == 0:
                raise AccountNotFound(username)

    async def set_password(self, username: str, password_hash: str) -> None:
        await self._update_user(username, password_hash=password_hash)

    async def set_disabled(self, username: str, disabled: bool) -> None:
        await self._update_user(username, disabled=disabled)

    async def add_booth(self, booth: BoothRecord) -> None:
        values = {
            "booth_id": booth.booth_id,
            "branch": booth.branch,
            "label": booth.label,
            "secret_hash": booth.secret_hash,
            "revoked": booth.revoked,
            "created_at": datetime.now(UTC),
            "last_seen_at": None,
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(booths.insert().values(**values))
        except IntegrityError:
            raise AccountExists(booth.booth_id) from None

    async def get_booth(self, booth_id: str) -> BoothRecord | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(select(booths).where(booths.c.booth_id == booth_id)))
                .mappings()
                .first()
            )
        return _booth(row) if row else None

    async def list_booths(self) -> list[BoothRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(booths).order_by(booths.c.booth_id))).mappings()
            return [_booth(r) for r in rows]

    async def _update_booth(self, booth_id: str, **values: Any) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(booths).where(booths.c.booth_id == booth_id).values(**values)
            )
            if result.rowcount == 0:
                raise AccountNotFound(booth_id)

    async def set_booth_secret(self, booth_id: str, secret_hash: str) -> None:
        await self._update_booth(booth_id, secret_hash=secret_hash, revoked=False)

    async def revoke_booth(self, booth_id: str) -> None:
        await self._update_booth(booth_id, revoked=True)

    async def touch_booth(self, booth_id: str, at: datetime) -> None:
        await self._update_booth(booth_id, last_seen_at=at)
