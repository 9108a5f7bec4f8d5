"""Real aiortc booth kiosks (BoothClient) against a live test server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from booth_client.client import BoothClient
from booth_client.config import BoothConfig
from booth_client.cso_standin import CsoStandIn
from tests.support.accounts import PASSWORD, add_user, enrol_booth
from tests.support.live_server import LiveServer

LOOPBACK = ["127.0.0.1"]


def drop_signaling(client: BoothClient | CsoStandIn) -> None:
    """Cut a kiosk's (or the stand-in console's) websocket as a network loss does: the TCP
    connection aborted, no close frame. It reconnects by itself and rebuilds from
    `welcome`; its peer connections are left alone."""
    ws = client._ws
    assert ws is not None, "no socket to drop"
    ws.transport.abort()


@contextlib.asynccontextmanager
async def running_booths(
    server: LiveServer, count: int, **config: object
) -> AsyncIterator[list[BoothClient]]:
    """`count` kiosks with synthetic media, each running until the block ends."""
    clients = []
    for index in range(count):
        _, credential = await enrol_booth(server, f"booth-{index + 1}")
        settings = BoothConfig(
            server_url=server.base_url,
            credential=credential,  # type: ignore[arg-type]
            ice_host_addresses=LOOPBACK,
            width=320,
            height=240,
            **config,  # type: ignore[arg-type]
        )
        clients.append(BoothClient(settings, label=f"booth-{index + 1}"))
    tasks = [asyncio.create_task(c.run()) for c in clients]
    try:
        yield clients
    finally:
        for client in clients:
            await client.stop()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def running_cso(
    server: LiveServer, username: str, capacity: int
) -> AsyncIterator[CsoStandIn]:
    """A CSO account and an aiortc stand-in console logged in as it, accepting booths."""
    await add_user(server, username, capacity=capacity)
    cso = CsoStandIn(server.base_url, username, PASSWORD)
    task = asyncio.create_task(cso.run())
    try:
        await cso.wait_ready(within=10)
        yield cso
    finally:
        await cso.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
