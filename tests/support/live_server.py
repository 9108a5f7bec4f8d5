"""A real uvicorn server for integration tests, on a free loopback port.

Runs in the test's own event loop, so tests can reach into `app.state` (floor, auth)
when they need to, and every request still crosses a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from server.cli.serve import uvicorn_config
from server.settings import Settings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    app: FastAPI
    settings: Settings
    base_url: str  # http://127.0.0.1:PORT
    ws_url: str  # ws://127.0.0.1:PORT

    @property
    def origin(self) -> str:
        return self.base_url


def server_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test server: fast timers, a fixed JWT secret, plain-text logs."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "port": 0,
        "jwt_secret": "test-secret-" + "x" * 32,
        "log_json": False,
        "log_level": "WARNING",
        # Machine reading and faces cost a core for seconds: on for the tests of them only.
        "reading_workers": 0,
        "face_workers": 0,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_server(settings: Settings) -> AsyncIterator[LiveServer]:
    port = settings.port or free_port(settings.host)
    settings = settings.model_copy(update={"port": port})
    config = uvicorn_config(settings)  # exactly what `loket serve` runs
    app = config.app
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raise the startup failure
                raise RuntimeError("server exited during startup")
            await asyncio.sleep(0.02)
        yield LiveServer(
            app=app,
            settings=settings,
            base_url=f"http://{settings.host}:{port}",
            ws_url=f"ws://{settings.host}:{port}",
        )
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
