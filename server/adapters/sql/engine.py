"""Engine factory. SQLite gets the pragmas that make an acknowledged write durable."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from server.settings import Settings


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers don't block the writer. synchronous=FULL: a commit is on disk (WAL
    # fsynced) before it returns, so an acknowledged outcome survives power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")  # writers queue; none fails under load
    cursor.close()
    # Let SQLAlchemy's "begin" event, not the driver, open transactions (below).
    dbapi_connection.isolation_level = None


def _begin_immediate(conn: Any) -> None:
    # Take the write lock when the transaction starts, not at its first write: two
    # deferred transactions that both read and then write would otherwise fail with
    # "database is locked" instead of waiting their turn (busy_timeout). Pure reads
    # (an engine from `readonly(engine)`) begin deferred and never wait for writers.
    deferred = conn.get_execution_options().get(READ_ONLY, False)
    conn.exec_driver_sql("BEGIN DEFERRED" if deferred else "BEGIN IMMEDIATE")


READ_ONLY = "loket_read_only"


def readonly(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for transactions that only read (SQLite: no write lock taken)."""
    return engine.execution_options(**{READ_ONLY: True})


def make_sync_sqlite_engine(url: str) -> Engine:
    """A synchronous (pysqlite) engine with the same durability pragmas, for the writer
    thread of the records store."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def make_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    url = url or settings.sqlalchemy_url
    if is_sqlite(url):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    # No pre-ping: it costs a round trip per checkout. A connection the server dropped
    # fails one request, SQLAlchemy then discards the pool, and clients retry (with the
    # same Idempotency-Key, so nothing is written twice).
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_recycle=1800)
