"""How many connected kiosks one server process carries: its CPU for idle, heartbeating
booth sockets, 1,000 vs 100 (the baseline, same run), embedded or as a cluster node.

Heartbeats run every second here, ten times production's 10 s, so the per-socket cost
is measured well above noise; the estimate divides it back by ten.

    uv run python bench/socket_capacity_bench.py [--sockets 1000] [--cluster]

Prints one JSON line: CPU fraction of one core for each count, CPU per socket at the
production heartbeat, and the sockets one core would carry at 50% load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import websockets
from common import free_port, loket_server, redis_server

from server.auth.tokens import TokenIssuer
from server.principal import AccountRole, Principal
from signaling.codec import encode
from signaling.messages import Hello

SECRET = "bench-secret-" + "y" * 32
HEARTBEAT = 1.0
PRODUCTION_HEARTBEAT = 10.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(port: int) -> int:
    out = subprocess.run(["pgrep", "-f", "--", f"--port {port}"], capture_output=True, text=True)
    return int(out.stdout.split()[0])


async def hold(ws_url: str, token: str, stop: asyncio.Event) -> None:
    async with websockets.connect(f"{ws_url}/ws/booth", compression=None) as ws:
        await ws.send(encode(Hello(token=token)))
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            if '"type":"ping"' in raw:
                ping_id = json.loads(raw)["id"]
                await ws.send(json.dumps({"v": 1, "type": "pong", "reply_to": ping_id}))


async def measure(ws_url: str, pid: int, count: int, issuer: TokenIssuer, seconds: float) -> float:
    stop = asyncio.Event()
    tokens = [
        issuer.issue(
            Principal(f"cap-{count}-{i}", AccountRole.BOOTH, f"cap {i}", "jkt01")
        ).access_token
        for i in range(count)
    ]
    tasks = []
    for token in tokens:
        tasks.append(asyncio.create_task(hold(ws_url, token, stop)))
        if len(tasks) % 50 == 0:
            await asyncio.sleep(0.05)  # don't trip the pre-hello socket cap
    await asyncio.sleep(3.0)  # all welcomed, heartbeats in their rhythm
    before, started = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    used = (cpu_seconds(pid) - before) / (time.monotonic() - started)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return used


async def main(count: int, clustered: bool, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="loket-sockets-") as tmp:
        env = {
            "LOKET_JWT_SECRET": SECRET,
            "LOKET_HEARTBEAT_INTERVAL": str(HEARTBEAT),
            "LOKET_HEARTBEAT_TIMEOUT": str(HEARTBEAT * 5),
            "LOKET_ACCOUNT_CHECK_INTERVAL": "3600",  # minted booths have no account row
            "LOKET_MAX_UNAUTHENTICATED_SOCKETS": "5000",
        }
        with contextlib.ExitStack() as stack:
            if clustered:
                env["LOKET_REDIS_URL"] = stack.enter_context(redis_server(Path(tmp), aof=False))
            port = free_port()
            async with loket_server(Path(tmp), port, **env) as base:
                pid = server_pid(port)
                issuer = TokenIssuer(SECRET, access_ttl=900, refresh_ttl=3600)
                ws_url = base.replace("http://", "ws://")
                idle = await measure(ws_url, pid, 0, issuer, seconds)
                small = await measure(ws_url, pid, count // 10, issuer, seconds)
                large = await measure(ws_url, pid, count, issuer, seconds)
    per_socket = max(large - small, 1e-9) / (count - count // 10)  # at a 1 s heartbeat
    at_production = per_socket * HEARTBEAT / PRODUCTION_HEARTBEAT
    print(
        json.dumps(
            {
                "mode": "cluster" if clustered else "embedded",
                "cpu_idle": round(idle, 3),
                f"cpu_{count // 10}_sockets": round(small, 3),
                f"cpu_{count}_sockets": round(large, 3),
                "ratio_large_vs_small": round(large / max(small, 1e-9), 2),
                "cpu_per_socket_at_10s_heartbeat": f"{at_production:.2e}",
                "sockets_per_core_at_50pct": int(0.5 / at_production),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--cluster", action="store_true", help="as a Redis-backed node")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.sockets, args.cluster, args.seconds))
