"""Shared bench plumbing: free ports, child processes, a Loket server to measure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_process(
    argv: list[str], env: dict[str, str], *, stdin: bool = False
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    await proc.wait()


@contextlib.asynccontextmanager
async def http_process(
    name: str, argv: list[str], env: dict[str, str], port: int
) -> AsyncIterator[str]:
    """A child HTTP server with GET /readyz; yields its base URL once that answers 200."""
    proc = await start_process(argv, env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"{name} did not become ready")
        yield base
    finally:
        await stop_process(proc)


@contextlib.asynccontextmanager
async def loket_server(data_dir: Path, port: int, **env: str) -> AsyncIterator[str]:
    """`loket serve` as its own process on loopback; yields its base URL once ready."""
    environ = {
        **os.environ,
        "LOKET_DATA_DIR": str(data_dir),
        "LOKET_LOG_LEVEL": "WARNING",
        **env,
    }
    argv = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    async with http_process("the Loket server", argv, environ, port) as base:
        yield base


@contextlib.contextmanager
def redis_server(directory: Path, *, aof: bool = True) -> Iterator[str]:
    """A throw-away redis-server (AOF fsync every second, as the README recommends)."""
    port = free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: apt-get install -y redis-server")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--appendonly", "yes" if aof else "no", "--appendfsync", "everysec", "--save", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.3)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait()


async def call_session(port: int, booth_token: str, cso_token: str, booking: str) -> tuple:  # type: ignore[type-arg]
    """A booth checked in for `booking` and an officer who accepted it, over real sockets:
    (booth socket, CSO socket, claim_id). The caller answers pings and closes them."""
    import websockets

    from signaling.codec import decode_outbound, encode
    from signaling.messages import (
        Accept,
        Assigned,
        BookingRef,
        BoothAssigned,
        BoothOffered,
        CheckIn,
        Hello,
        Role,
    )

    ws = f"ws://127.0.0.1:{port}"
    booth = await websockets.connect(f"{ws}/ws/booth")
    cso = await websockets.connect(f"{ws}/ws/cso")
    await booth.send(encode(Hello(token=booth_token)))
    await cso.send(encode(Hello(token=cso_token)))
    await booth.send(encode(CheckIn(claim=BookingRef(booking_code=booking))))
    claim_id = None
    while claim_id is None:
        msg = decode_outbound(await cso.recv(), Role.CSO)
        if isinstance(msg, BoothOffered):
            await cso.send(encode(Accept(session_id=msg.session_id)))
        elif isinstance(msg, BoothAssigned):
            claim_id = msg.claim.claim_id
    while not isinstance(decode_outbound(await booth.recv(), Role.BOOTH), Assigned):
        pass
    return booth, cso, claim_id
