"""AccountStore on SQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.adapters.sql.engine import readonly
from server.adapters.sql.tables import booths, refresh_families, refresh_tokens, users
from server.ports.accounts import (
    AccountExists,
    AccountNotFound,
    BoothRecord,
    RefreshGrant,
    Rotation,
    RotationResult,
    UserRecord,
)
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


def _token_values(grant: RefreshGrant) -> dict[str, Any]:
    return {
        "token_hash": grant.token_hash,
        "family_id": grant.family,
        "issued_at": grant.issued_at,
        "expires_at": grant.expires_at,
        "used_at": None,
    }


class SqlAccountStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Lookups take no SQLite write lock (sockets re-check their account often).
        self._reader = readonly(engine)

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
        async with self._reader.connect() as conn:
            row = (
                (await conn.execute(select(users).where(users.c.username == username)))
                .mappings()
                .first()
            )
        return _user(row) if row else None

    async def get_users(self, usernames: list[str]) -> dict[str, UserRecord]:
        found: dict[str, UserRecord] = {}
        async with self._reader.connect() as conn:
            for chunk in _chunks(sorted(set(usernames))):
                rows = await conn.execute(select(users).where(users.c.username.in_(chunk)))
                found.update((r["username"], _user(r)) for r in rows.mappings())
        return found

    async def list_users(self) -> list[UserRecord]:
        async with self._reader.connect() as conn:
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
        async with self._reader.connect() as conn:
            row = (
                (await conn.execute(select(booths).where(booths.c.booth_id == booth_id)))
                .mappings()
                .first()
            )
        return _booth(row) if row else None

    async def get_booths(self, booth_ids: list[str]) -> dict[str, BoothRecord]:
        found: dict[str, BoothRecord] = {}
        async with self._reader.connect() as conn:
            for chunk in _chunks(sorted(set(booth_ids))):
                rows = await conn.execute(select(booths).where(booths.c.booth_id.in_(chunk)))
                found.update((r["booth_id"], _booth(r)) for r in rows.mappings())
        return found

    async def list_booths(self) -> list[BoothRecord]:
        async with self._reader.connect() as conn:
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

    # --- refresh-token families -----------------------------------------------------------

    async def start_refresh_family(self, grant: RefreshGrant) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                refresh_families.insert().values(
                    family_id=grant.family,
                    account=grant.account,
                    created_at=grant.issued_at,
                    expires_at=grant.expires_at,
                    revoked_at=None,
                    revoked_reason=None,
                )
            )
            await conn.execute(refresh_tokens.insert().values(**_token_values(grant)))

    async def rotate_refresh_token(
        self,
        used_hash: str,
        successor: RefreshGrant,
        at: datetime,
        reuse_interval: timedelta = timedelta(0),
    ) -> RotationResult:
        family = successor.family
        async with self._engine.begin() as conn:
            # One conditional UPDATE decides: of two concurrent uses, exactly one finds
            # used_at still NULL (PostgreSQL re-checks the row after the other commits;
            # SQLite writers take turns).
            live_family = exists().where(
                refresh_families.c.family_id == family, refresh_families.c.revoked_at.is_(None)
            )
            used = await conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.token_hash == used_hash,
                    refresh_tokens.c.family_id == family,
                    refresh_tokens.c.used_at.is_(None),
                    live_family,
                )
                .values(used_at=at)
            )
            if used.rowcount == 1:
                await conn.execute(refresh_tokens.insert().values(**_token_values(successor)))
                await conn.execute(
                    update(refresh_families)
                    .where(refresh_families.c.family_id == family)
                    .values(expires_at=successor.expires_at)
                )
                return RotationResult(Rotation.ROTATED, successor)
            # Not ours to rotate. The UPDATE above waited for any rotation of this row in
            # flight (PostgreSQL's row lock; SQLite's writers take turns), so what follows
            # reads its committed result.
            used_at = (
                await conn.execute(
                    select(refresh_tokens.c.used_at).where(
                        refresh_tokens.c.token_hash == used_hash,
                        refresh_tokens.c.family_id == family,
                    )
                )
            ).first()
            if used_at is None:
                return RotationResult(Rotation.UNKNOWN)
            retry = reuse_interval > timedelta(0) and used_at[0] is not None
            if retry and at - used_at[0] <= reuse_interval:
                stored = await self._unused_successor(conn, successor)
                if stored is not None:
                    return RotationResult(Rotation.RETRIED, stored)
            revoked = await conn.execute(
                update(refresh_families)
                .where(
                    refresh_families.c.family_id == family, refresh_families.c.revoked_at.is_(None)
                )
                .values(revoked_at=at, revoked_reason="reuse")
            )
            return RotationResult(Rotation.REUSED if revoked.rowcount == 1 else Rotation.REVOKED)

    async def _unused_successor(
        self, conn: AsyncConnection, successor: RefreshGrant
    ) -> RefreshGrant | None:
        """`successor` as stored, if it is stored, unused and its family not revoked."""
        row = (
            await conn.execute(
                select(refresh_tokens.c.issued_at, refresh_tokens.c.expires_at)
                .join(refresh_families)
                .where(
                    refresh_tokens.c.token_hash == successor.token_hash,
                    refresh_tokens.c.family_id == successor.family,
                    refresh_tokens.c.used_at.is_(None),
                    refresh_families.c.revoked_at.is_(None),
                )
            )
        ).first()
        if row is None:
            return None
        return replace(successor, issued_at=row.issued_at, expires_at=row.expires_at)

    async def revoke_refresh_family(self, family: str, reason: str, at: datetime) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(refresh_families)
                .where(
                    refresh_families.c.family_id == family,
                    refresh_families.c.revoked_at.is_(None),
                )
                .values(revoked_at=at, revoked_reason=reason)
            )
            return bool(result.rowcount == 1)

    async def revoke_refresh_families(self, account: str, reason: str, at: datetime) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(refresh_families)
                .where(
                    refresh_families.c.account == account,
                    refresh_families.c.revoked_at.is_(None),
                )
                .values(revoked_at=at, revoked_reason=reason)
            )
            return int(result.rowcount)

    async def purge_refresh_tokens(self, expired_before: datetime) -> int:
        """Forget tokens (and families) whose JWTs have expired: nobody can present
        them any more, so there is nothing left to detect."""
        async with self._engine.begin() as conn:
            tokens = await conn.execute(
                delete(refresh_tokens).where(refresh_tokens.c.expires_at < expired_before)
            )
            await conn.execute(
                delete(refresh_families).where(refresh_families.c.expires_at < expired_before)
            )
            return int(tokens.rowcount)


def _chunks(keys: list[str], size: int = 500) -> list[list[str]]:
    """IN-lists of a bounded size (SQLite caps bound parameters; plans stay cached)."""
    return [keys[i : i + size] for i in range(0, len(keys), size)]
