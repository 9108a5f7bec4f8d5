"""Shared CLI plumbing: settings from flags, friendly failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from server.settings import Settings

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
