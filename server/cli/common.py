"""Shared CLI plumbing: settings from flags, friendly failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from server.settings import Settings

T = TypeVar("T")

DATA_DIR_OPTION = typer.Option(
    None,
    "--data-dir",
    envvar="LOKET_DATA_DIR",
    help="Directory for all on-disk state (database, keys, documents).",
)


def load_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, with CLI flags on top; exit 1 with the reason."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return Settings(**values)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            typer.secho(f"error: {where}: {err['msg']}", fg="red", err=True)
        typer.secho("Fix the LOKET_* environment variables or flags above.", err=True)
        raise typer.Exit(1) from None


def fail(message: str) -> typer.Exit:
    """Print `error: message` in red on stderr; raise the returned Exit (code 1)."""
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(1)


def run_database_job(settings: Settings, job: Callable[[], Awaitable[T]]) -> T:
    """Run `job` after bringing an embedded database up to date (or checking a shared
    one's schema), turning database failures into one clear line and exit code 1."""
    # Imported here, not at the top: `loket booth` on a kiosk should start fast.
    from sqlalchemy.exc import DBAPIError

    from server.adapters.sql import migrate
    from server.domain.privacy import mask_niks_in

    async def run() -> T:
        if settings.database_url is None:
            await migrate.upgrade(settings)
        else:
            await migrate.check_schema_current(settings)
        return await job()

    try:
        return asyncio.run(run())
    except migrate.SchemaOutOfDate as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(
            f"cannot reach the database or the data directory ({exc}); "
            "check LOKET_DATABASE_URL and LOKET_DATA_DIR"
        ) from None
    except DBAPIError as exc:  # the driver's own message only: never the SQL's parameters
        raise fail(
            f"the database refused the request ({mask_niks_in(str(exc.orig))}); "
            "check LOKET_DATABASE_URL, then `loket db current`"
        ) from None
