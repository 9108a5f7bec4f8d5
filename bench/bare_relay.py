"""Baseline for relay_bench: a bare `websockets` server that forwards every text frame
from the first connected client to the second, untouched. No parsing, no auth, no checks.

    python bench/bare_relay.py PORT
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve

peers: list[ServerConnection] = []


async def handler(ws: ServerConnection) -> None:
    peers.append(ws)
    try:
        async for frame in ws:
            if len(peers) > 1:
                other = peers[1] if ws is peers[0] else peers[0]
                await other.send(frame)
    finally:
        peers.remove(ws)


async def main(port: int) -> None:
    # No compression, as Loket serves signaling (see server/cli/serve.py): like for like.
    async with serve(
        handler, "127.0.0.1", port, max_size=2**20, ping_interval=None, compression=None
    ):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
