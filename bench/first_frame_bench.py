"""Booth check-in to first decoded frame at the CSO: six booths through Loket vs a bare pair.

Loket: `loket serve` in its own process, six synthetic kiosks in another (bench/
booth_swarm.py) that check in at the same moment, and an aiortc CSO stand-in here that
accepts them, negotiates through the server and decodes. The clock runs from the
server's check-in time to the first decoded video frame at the CSO.

Baseline: a bare aiortc pair in this process (the same synthetic 640x480@15 VP8 track,
loopback only), from createOffer to the first decoded frame.

    uv run python bench/first_frame_bench.py [--rounds 3] [--bare-runs 12]

Prints one JSON line with p50/p95 for both and the p95 ratio; target: Loket p95 <= 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiortc import RTCConfiguration, RTCPeerConnection
from common import free_port, loket_server, start_process, stop_process

from booth_client.cso_standin import CsoStandIn, percentile
from booth_client.ice import use_host_addresses
from booth_client.sources.synthetic import SyntheticVideoTrack

HERE = Path(__file__).resolve().parent
BOOTHS = 6


async def bare_pair_ms() -> float:
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    first = asyncio.get_running_loop().create_future()
    readers: list[asyncio.Task[None]] = []

    @receiver.on("track")
    def on_track(track) -> None:  # type: ignore[no-untyped-def]
        async def read() -> None:
            await track.recv()
            if not first.done():
                first.set_result(time.perf_counter())

        readers.append(asyncio.create_task(read()))

    started = time.perf_counter()
    sender.addTrack(SyntheticVideoTrack("bare", 640, 480, 15))
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    done = await asyncio.wait_for(first, 30)
    await sender.close()
    await receiver.close()
    for reader in readers:
        reader.cancel()
    return (done - started) * 1000


async def loket_round(base_url: str, cso: CsoStandIn, credentials: list[str]) -> None:
    env = {**os.environ, "SWARM_CREDENTIALS": json.dumps(credentials)}
    swarm = await start_process(
        [sys.executable, str(HERE / "booth_swarm.py"), base_url], env, stdin=True
    )
    assert swarm.stdin is not None and swarm.stdout is not None
    await swarm.stdout.readline()  # "ready"
    already = cso.connected()
    swarm.stdin.write(b"go\n")
    await swarm.stdin.drain()
    try:
        await cso.wait_connected(already + len(credentials), within=60)
        await asyncio.sleep(1.0)
        for session_id in cso.live_sessions():
            await cso.end(session_id)
        await asyncio.sleep(1.0)
    finally:
        swarm.stdin.close()
        await stop_process(swarm)


async def loket(rounds: int, data_dir: Path) -> tuple[list[float], list[float]]:
    """First-frame times, and the part of each spent before the CSO heard of the booth."""
    from server.auth.demo import ensure_demo_accounts
    from server.settings import Settings

    port = free_port()
    accounts = await ensure_demo_accounts(Settings(data_dir=data_dir, port=port), booths=BOOTHS)
    credentials = [b.credential for b in accounts.booths]
    async with loket_server(data_dir, port) as base_url:
        cso = CsoStandIn(base_url, accounts.cso.username, accounts.cso.password)
        cso_task = asyncio.create_task(cso.run())
        try:
            await cso.wait_ready(within=20)
            for _ in range(rounds):
                await loket_round(base_url, cso, credentials)
        finally:
            await cso.stop()
            cso_task.cancel()
        done = [s for s in cso.stats() if s.first_frame_at is not None]
        return (
            [s.first_frame_ms or 0.0 for s in done],
            [(s.assigned_at - s.checked_in_at) * 1000 for s in done],
        )


def summary(values: list[float]) -> dict[str, float | int | None]:
    p95 = percentile(values, 95)
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 1),
        "p95": None if p95 is None else round(p95, 1),
    }


async def main(rounds: int, bare_runs: int) -> None:
    use_host_addresses(["127.0.0.1"])
    bare = [await bare_pair_ms() for _ in range(bare_runs)]
    with tempfile.TemporaryDirectory() as tmp:
        ours, dispatch = await loket(rounds, Path(tmp))
    loket_stats, bare_stats = summary(ours), summary(bare)
    ratio = float(loket_stats["p95"] or 0) / float(bare_stats["p95"] or 1)
    print(
        json.dumps(
            {
                "loket_six_at_once_ms": loket_stats,
                "of_which_check_in_to_assigned_ms": summary(dispatch),
                "bare_pair_ms": bare_stats,
                "p95_ratio": round(ratio, 2),
                "target": "loket p95 <= 500 ms",
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="six-booth joins to measure")
    parser.add_argument("--bare-runs", type=int, default=12, help="bare pairs to measure")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.bare_runs))
