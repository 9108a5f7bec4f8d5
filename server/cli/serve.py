"""`loket serve`."""

from __future__ import annotations

from pathlib import Path

import typer
import uvicorn

from server.cli.common import DATA_DIR_OPTION, load_settings
from server.logging import configure_logging
from server.settings import Settings


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    from server.app import create_app

    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        # Frames above our own limit still reach us (up to 16x), so an oversized message
        # gets a typed `too_large` error instead of a bare protocol close.
        ws_max_size=settings.max_message_bytes * 16,
        ws_ping_interval=None,  # heartbeats are in the protocol, visible to both sides
        # Signaling messages are small and latency-bound; compressing each one cost more
        # CPU than the relay itself (measured with bench/relay_bench.py).
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        lifespan="on",
    )


def serve(
    host: str = typer.Option(None, help="Address to bind (default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port to bind (default 8000)."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    settings = load_settings(data_dir, host=host, port=port)
    configure_logging(settings.log_level, json=settings.log_json)
    server = uvicorn.Server(uvicorn_config(settings))
    server.run()
    if not server.started:
        typer.secho(
            f"error: the server did not start on {settings.host}:{settings.port}; "
            "is the port in use or the database unreachable? See the log above.",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)
