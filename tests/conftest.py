"""Suite-wide rules: media and browser tests run only inside a private network namespace.

`scripts/test` (and so CI) runs pytest under `scripts/netns-run`, which sets
LOKET_TEST_NETNS=1. Outside it, those tests skip with the reason, rather than risk
sending a packet off this machine.
"""

from __future__ import annotations

import os

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


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_settings(request, tmp_path):  # type: ignore[no-untyped-def]
    """Settings for an empty database of each kind: the records suites run on both."""
    from tests.support.live_server import server_settings

    if request.param == "sqlite":
        return server_settings(tmp_path)
    from tests.support.postgres import create_database

    cluster = request.getfixturevalue("postgres")
    return server_settings(tmp_path, database_url=await create_database(cluster))
