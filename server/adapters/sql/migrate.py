"""Schema migrations (Alembic), run in-process on the project's own engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from server.adapters.sql.engine import make_engine
from server.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database is behind (or ahead of) this version of Loket."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection, target: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, target)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(settings: Settings, target: str = "head") -> None:
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, target)
    finally:
        await engine.dispose()


async def current_revision(settings: Settings) -> str | None:
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


async def check_schema_current(settings: Settings) -> None:
    current, head = await current_revision(settings), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the database schema is at {current or 'nothing'}, this Loket needs {head}; "
            "run `loket db upgrade` (with the same LOKET_DATABASE_URL) first"
        )
