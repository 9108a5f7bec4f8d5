"""Bench helper: N synthetic booth kiosks in one process that check in together on cue.

    python bench/booth_swarm.py SERVER_URL   (credentials: JSON list in $SWARM_CREDENTIALS)

Prints "ready" once every client is built, starts them all when a line arrives on
stdin, and stops them when stdin closes. One process keeps import time out of the
measurement, so the booths really do join at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys

from booth_client.client import BoothClient
from booth_client.config import BoothConfig


async def main(server_url: str) -> None:
    loop = asyncio.get_running_loop()
    credentials = json.loads(os.environ["SWARM_CREDENTIALS"])
    clients = [
        BoothClient(
            BoothConfig(
                server_url=server_url,
                credential=credential,
                ice_host_addresses=["127.0.0.1"],
                rejoin_after_session=False,
            ),
            label=f"bench-{index}",
        )
        for index, credential in enumerate(credentials, start=1)
    ]
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    tasks = [asyncio.create_task(client.run()) for client in clients]
    await loop.run_in_executor(None, sys.stdin.read)  # until the bench closes stdin
    for client in clients:
        await client.stop()
    for task in tasks:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
