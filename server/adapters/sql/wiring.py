"""Open the SQL-backed stores for the app and the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from server.adapters.sql.accounts import SqlAccountStore
from server.adapters.sql.engine import make_engine
from server.settings import Settings

if TYPE_CHECKING:
    from server.records import RecordsService


async def open_accounts(settings: Settings) -> tuple[AsyncEngine, SqlAccountStore]:
    engine = make_engine(settings)
    return engine, SqlAccountStore(engine)


async def _no_session(_: str) -> None:
    return None


@asynccontextmanager
async def open_records(settings: Settings) -> AsyncIterator[tuple[AsyncEngine, RecordsService]]:
    """The records service without a live floor (CLI, batch jobs): nobody is 'serving'
    a claim here, so only operator and reader actions succeed. Closed on exit."""
    from server.adapters.blobs import BlobStore
    from server.adapters.sql.records import SqlRecordStore
    from server.records import RecordsService, documents_key

    engine = make_engine(settings)
    blobs = BlobStore(settings.data_dir / "documents", documents_key(settings))
    store = SqlRecordStore(engine)
    try:
        yield engine, RecordsService(settings, store, blobs, session_of_claim=_no_session)
    finally:
        await store.close()
        await engine.dispose()
