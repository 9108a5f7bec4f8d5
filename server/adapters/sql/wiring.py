"""Open the SQL-backed stores for the app and the CLI."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from server.adapters.sql.accounts import SqlAccountStore
from server.adapters.sql.engine import make_engine
from server.settings import Settings


async def open_accounts(settings: Settings) -> tuple[AsyncEngine, SqlAccountStore]:
    engine = make_engine(settings)
    return engine, SqlAccountStore(engine)
