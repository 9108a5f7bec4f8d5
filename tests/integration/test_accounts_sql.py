"""The accounts store and migrations, on SQLite and on a real PostgreSQL 15."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from server.adapters.sql import migrate
from server.adapters.sql.accounts import SqlAccountStore
from server.adapters.sql.wiring import open_accounts
from server.ports.accounts import (
    AccountExists,
    AccountNotFound,
    BoothRecord,
    RefreshGrant,
    Rotation,
    UserRecord,
)
from server.principal import AccountRole


def _user(name: str = "siti", **extra: object) -> UserRecord:
    values: dict[str, object] = {
        "username": name, "role": AccountRole.CSO, "display_name": "Siti Rahma",
        "branch": "jkt01", "password_hash": "$argon2id$fake", "capacity": 5,
        "pools": frozenset({"jkt01", "bdg01"}), "skills": frozenset({"lang:en"}),
    }  # fmt: skip
    values.update(extra)
    return UserRecord(**values)  # type: ignore[arg-type]


async def test_schema_is_checked_then_upgraded(db_settings) -> None:
    with pytest.raises(migrate.SchemaOutOfDate, match="loket db upgrade"):
        await migrate.check_schema_current(db_settings)
    await migrate.upgrade(db_settings)
    await migrate.check_schema_current(db_settings)
    assert await migrate.current_revision(db_settings) == migrate.head_revision()
    await migrate.upgrade(db_settings)  # idempotent


async def test_users_round_trip_and_refuse_duplicates(db_settings) -> None:
    await migrate.upgrade(db_settings)
    engine, store = await open_accounts(db_settings)
    try:
        await store.add_user(_user())
        with pytest.raises(AccountExists):
            await store.add_user(_user(display_name="Another Siti"))
        got = await store.get_user("siti")
        assert got is not None
        assert (got.role, got.pools, got.skills, got.capacity) == (
            AccountRole.CSO, frozenset({"jkt01", "bdg01"}), frozenset({"lang:en"}), 5,
        )  # fmt: skip
        assert got.created_at is not None and not got.disabled
        await store.set_password("siti", "$argon2id$new")
        await store.set_disabled("siti", True)
        got = await store.get_user("siti")
        assert got is not None and got.password_hash == "$argon2id$new" and got.disabled
        await store.add_user(_user("ahmad", role=AccountRole.SUPERVISOR))
        assert [u.username for u in await store.list_users()] == ["ahmad", "siti"]
        assert await store.get_user("nobody") is None
        with pytest.raises(AccountNotFound):
            await store.set_disabled("nobody", True)
        with pytest.raises(AccountNotFound):
            await store.set_password("nobody", "x")
    finally:
        await engine.dispose()


async def test_booths_enrol_touch_revoke(db_settings) -> None:
    await migrate.upgrade(db_settings)
    engine, store = await open_accounts(db_settings)
    try:
        await store.add_booth(BoothRecord("jkt01-b1", "jkt01", "Lobby 1", "$argon2id$b"))
        with pytest.raises(AccountExists):
            await store.add_booth(BoothRecord("jkt01-b1", "jkt01", "again", "$argon2id$b"))
        seen = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
        await store.touch_booth("jkt01-b1", seen)
        await store.set_booth_secret("jkt01-b1", "$argon2id$rotated")
        booth = await store.get_booth("jkt01-b1")
        assert booth is not None
        assert booth.secret_hash == "$argon2id$rotated"
        assert booth.last_seen_at is not None
        assert booth.last_seen_at.replace(tzinfo=booth.last_seen_at.tzinfo or UTC) == seen
        await store.revoke_booth("jkt01-b1")
        booth = await store.get_booth("jkt01-b1")
        assert booth is not None and booth.revoked
        assert [b.booth_id for b in await store.list_booths()] == ["jkt01-b1"]
        with pytest.raises(AccountNotFound):
            await store.revoke_booth("nope")
    finally:
        await engine.dispose()


async def test_times_keep_their_instant_across_zones(db_settings) -> None:
    from datetime import timedelta, timezone

    from server.adapters.sql.wiring import open_records
    from server.domain.claims import new_booked_claim
    from signaling.messages import ClaimType

    await migrate.upgrade(db_settings)
    jakarta = timezone(timedelta(hours=7))
    appointment = datetime(2026, 12, 1, 9, 0, tzinfo=jakarta)  # 02:00 UTC
    now = datetime.now(UTC)
    claim = new_booked_claim(
        "c-tz", "BK-TZ01", "3171011508900001", "12345678901", ClaimType.RETIREMENT, "jkt01",
        appointment, now,
    )  # fmt: skip
    async with open_records(db_settings) as (_, service):
        await service.store.write(lambda tx: tx.add_claim(claim))
        stored = await service.store.get_claim("c-tz")
    assert stored is not None and stored.appointment is not None
    assert stored.appointment == appointment and stored.appointment.utcoffset() == timedelta(0)


T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _grant(
    token: str, family: str = "fam-1", account: str = "user:siti", **at: int
) -> RefreshGrant:
    issued = T0 + timedelta(minutes=at.get("minute", 0))
    return RefreshGrant(
        f"hash-{token}", family, account, issued, issued + timedelta(hours=at.get("ttl_h", 12))
    )


async def _rotate(
    store: SqlAccountStore,
    used: str,
    successor: RefreshGrant,
    at: datetime,
    interval: timedelta = timedelta(0),
) -> Rotation:
    return (await store.rotate_refresh_token(used, successor, at, interval)).outcome


async def test_refresh_migration_matches_the_tables(db_settings) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from server.adapters.sql.tables import metadata

    await migrate.upgrade(db_settings)
    engine, _ = await open_accounts(db_settings)

    def diff(conn):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if "refresh_" in repr(d)]

    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_refresh_tokens_rotate_once_and_reuse_revokes_the_family(db_settings) -> None:
    await migrate.upgrade(db_settings)
    engine, store = await open_accounts(db_settings)
    try:
        await store.start_refresh_family(_grant("a"))
        assert await _rotate(store, "hash-a", _grant("b", minute=1), T0) == (Rotation.ROTATED)
        assert await _rotate(store, "hash-b", _grant("c", minute=2), T0) == (Rotation.ROTATED)
        # "a" again: somebody replays a spent token. The family dies, newest token too.
        assert await _rotate(store, "hash-a", _grant("x", minute=3), T0) == (Rotation.REUSED)
        assert await _rotate(store, "hash-c", _grant("d", minute=3), T0) == (Rotation.REVOKED)
        assert await _rotate(store, "hash-a", _grant("y", minute=3), T0) == (
            Rotation.REVOKED
        )  # reported once
        assert await _rotate(store, "hash-zz", _grant("z"), T0) == Rotation.UNKNOWN
        # A token is only good within its own family.
        await store.start_refresh_family(_grant("p", family="fam-2"))
        assert await _rotate(store, "hash-p", _grant("q", family="fam-1"), T0) == (Rotation.UNKNOWN)
        assert await _rotate(store, "hash-p", _grant("q", family="fam-2"), T0) == (Rotation.ROTATED)
    finally:
        await engine.dispose()


async def test_concurrent_uses_of_one_refresh_token_rotate_exactly_once(db_settings) -> None:
    await migrate.upgrade(db_settings)
    engine, store = await open_accounts(db_settings)
    try:
        await store.start_refresh_family(_grant("a"))
        outcomes = await asyncio.gather(
            *(_rotate(store, "hash-a", _grant(f"n{i}"), T0) for i in range(8))
        )
        # One winner; the first loser is a reuse and revokes the family; the rest find
        # it revoked.
        assert sorted(outcomes) == sorted(
            [Rotation.ROTATED, Rotation.REUSED] + [Rotation.REVOKED] * 6
        ), outcomes
    finally:
        await engine.dispose()


async def test_a_retry_within_the_interval_gets_the_stored_successor(db_settings) -> None:
    await migrate.upgrade(db_settings)
    engine, store = await open_accounts(db_settings)
    grace = timedelta(seconds=5)
    try:
        await store.start_refresh_family(_grant("a"))
        b = _grant("b", minute=1)
        # Eight uses at once, all asking for the same successor: one rotates, the others
        # wait for it and are given what it stored.
        results = await asyncio.gather(
            *(store.rotate_refresh_token("hash-a", b, T0, grace) for _ in range(8))
        )
        assert sorted(r.outcome for r in results) == sorted(
            [Rotation.ROTATED] + [Rotation.RETRIED] * 7
        )
        assert {r.successor for r in results} == {b}  # its times as stored
        later = T0 + timedelta(seconds=4)
        assert await _rotate(store, "hash-a", b, later, grace) == Rotation.RETRIED
        # A successor other than the stored one is not a retry: reuse.
        assert await _rotate(store, "hash-a", _grant("x"), later, grace) == Rotation.REUSED
        assert await _rotate(store, "hash-a", b, later, grace) == Rotation.REVOKED

        await store.start_refresh_family(_grant("p", family="fam-2"))
        q = _grant("q", family="fam-2")
        assert await _rotate(store, "hash-p", q, T0, grace) == Rotation.ROTATED
        # Past the interval: reuse.
        assert await _rotate(store, "hash-p", q, T0 + grace * 2, grace) == Rotation.REUSED

        await store.start_refresh_family(_grant("k", family="fam-3"))
        m, n = _grant("m", family="fam-3"), _grant("n", family="fam-3")
        assert await _rotate(store, "hash-k", m, T0, grace) == Rotation.ROTATED
        assert await _rotate(store, "hash-m", n, T0, grace) == Rotation.ROTATED
        # Two generations back, within the interval: its successor is used, so reuse.
        assert await _rotate(store, "hash-k", m, T0, grace) == Rotation.REUSED
    finally:
        await engine.dispose()


async def test_refresh_families_revoke_by_account_and_purge(db_settings) -> None:
    from sqlalchemy import func, select

    from server.adapters.sql.tables import refresh_families, refresh_tokens

    await migrate.upgrade(db_settings)
    engine, store = await open_accounts(db_settings)
    try:
        for i in range(3):
            await store.start_refresh_family(_grant(f"s{i}", family=f"siti-{i}"))
        # A booth may share a user's name; its families are its own.
        await store.start_refresh_family(_grant("b", family="booth-1", account="booth:siti"))
        assert await store.revoke_refresh_family("siti-0", "logout", T0) is True
        assert await store.revoke_refresh_family("siti-0", "logout", T0) is False  # idempotent
        assert await store.revoke_refresh_families("user:siti", "disabled", T0) == 2
        for i in range(3):
            assert (
                await _rotate(store, f"hash-s{i}", _grant("n", family=f"siti-{i}"), T0)
                == Rotation.REVOKED
            )
        assert await _rotate(store, "hash-b", _grant("b2", family="booth-1"), T0) == (
            Rotation.ROTATED
        )
        await store.start_refresh_family(_grant("old", family="old", ttl_h=1))
        assert await store.purge_refresh_tokens(T0 + timedelta(hours=2)) == 1
        async with engine.connect() as conn:
            families = await conn.scalar(select(func.count()).select_from(refresh_families))
            tokens = await conn.scalar(select(func.count()).select_from(refresh_tokens))
        assert (families, tokens) == (4, 5)
    finally:
        await engine.dispose()


async def test_batched_reads_find_many_accounts_past_one_in_list(db_settings) -> None:
    """The periodic re-check of every open socket reads accounts in chunks of 500."""
    await migrate.upgrade(db_settings)
    engine, store = await open_accounts(db_settings)
    try:
        names = [f"cso{i:04d}" for i in range(620)]
        for name in names:
            await store.add_user(_user(name))
        await store.add_booth(BoothRecord("jkt01-b1", "jkt01", "Booth 1", "$argon2id$fake"))
        await store.set_disabled("cso0007", True)
        found = await store.get_users([*names, "nobody", names[0]])
        assert sorted(found) == names  # absent ones left out, duplicates once
        assert found["cso0007"].disabled and not found["cso0600"].disabled
        booths = await store.get_booths(["jkt01-b1", "gone"])
        assert list(booths) == ["jkt01-b1"]
        assert await store.get_users([]) == {} and await store.get_booths([]) == {}
    finally:
        await engine.dispose()
