"""Open the SQL-backed stores for the app and the CLI."""

from __future__ import annotations

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


async def open_records(settings: Settings) -> tuple[AsyncEngine, RecordsService]:
    """The records service without a live floor (CLI, batch jobs): nobody is 'serving'
    a claim here, so only operator and reader actions succeed."""
    from server.adapters.blobs import BlobStore
    from server.adapters.sql.records import SqlRecordStore
    from server.records import RecordsService, SessionFinder, documents_key

    engine = make_engine(settings)
    blobs = BlobStore(settings.data_dir / "documents", documents_key(settings))
    service = RecordsService(
        settings, SqlRecordStore(engine), blobs, SessionFinder(_no_session, _no_session)
    )
    return engine, service
