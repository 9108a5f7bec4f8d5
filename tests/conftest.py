"""Suite-wide rules: media and browser tests run only inside a private network namespace.

`scripts/test` (and so CI) runs pytest under `scripts/netns-run`, which sets
LOKET_TEST_NETNS=1. Outside it, those tests skip with the reason, rather than risk
sending a packet off this machine.
"""

from __future__ import annotations

import os

# Imported now, not by its pytest plugin at the end of a run that never used it: CPython
# 3.11.7 then raised "AST constructor recursion depth mismatch" while pytest rewrote it
# (gh-106905), failing a run whose tests had all passed.
import hypothesis  # noqa: F401
import pytest

IN_NETNS = os.environ.get("LOKET_TEST_NETNS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_NETNS:
        return
    skip = pytest.mark.skip(reason="carries media: run via scripts/test (private netns)")
    for item in items:
        if "media" in item.keywords or "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres():  # type: ignore[no-untyped-def]
    """One PostgreSQL 15 cluster for the whole run; tests make their own databases."""
    from tests.support.postgres import postgres_cluster

    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql", "redis+postgresql"])
async def db_settings(request, tmp_path):  # type: ignore[no-untyped-def]
    """Settings for an empty database of each kind: the records suites run on the
    embedded default, on PostgreSQL, and as a cluster node (Redis + PostgreSQL)."""
    from tests.support.live_server import server_settings

    if request.param == "sqlite":
        return server_settings(tmp_path)
    from tests.support.postgres import create_database

    cluster = request.getfixturevalue("postgres")
    extra = {}
    if request.param == "redis+postgresql":
        extra = cluster_overrides(request)
    return server_settings(tmp_path, database_url=await create_database(cluster), **extra)


def cluster_overrides(request: pytest.FixtureRequest) -> dict[str, object]:
    """Settings that make a test server a cluster node on the session's redis-server,
    under a key prefix of the test's own."""
    redis = request.getfixturevalue("redis_server")
    return {
        "redis_url": redis.url,
        "redis_prefix": request.getfixturevalue("redis_prefix"),
        "leader_lease": 2.0,
        "presence_ttl": 2.0,
        "snapshot_interval": 0.5,
    }


@pytest.fixture(scope="session")
def redis_server():  # type: ignore[no-untyped-def]
    """One redis-server for the run; tests keep apart by key prefix (see redis_settings)."""
    from tests.support.redis import redis_server as start

    with start() as server:
        yield server


@pytest.fixture
def redis_prefix() -> str:
    import uuid

    return f"t{uuid.uuid4().hex[:12]}"


BACKENDS = ["embedded", "redis+postgresql"]


async def node_settings(request: pytest.FixtureRequest, tmp_path, **overrides):  # type: ignore[no-untyped-def]
    """Test-server settings for the backend `request.param` names: the embedded default,
    or a cluster node (Redis + a fresh, migrated PostgreSQL database)."""
    from server.adapters.sql import migrate
    from tests.support.live_server import server_settings

    if request.param == "redis+postgresql":
        from tests.support.postgres import create_database

        overrides |= cluster_overrides(request)
        overrides["database_url"] = await create_database(request.getfixturevalue("postgres"))
    settings = server_settings(tmp_path, **overrides)
    if settings.database_url:
        await migrate.upgrade(settings)
    return settings


@pytest.fixture(autouse=True)
def _ice_host_addresses_restored():  # type: ignore[no-untyped-def]
    """An in-process kiosk narrows aioice's host candidates process-wide (booth_client.ice):
    put aioice's own choice back after each test, so a later test's peers are not left
    offering only loopback (a branch namespace's kiosk could not reach them)."""
    import aioice.ice

    before = aioice.ice.get_host_addresses
    yield
    aioice.ice.get_host_addresses = before
