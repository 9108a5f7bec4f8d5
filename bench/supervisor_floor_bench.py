"""Supervisor dashboard under a large floor: 1,000 queued booths and 200 officers.

    uv run python bench/supervisor_floor_bench.py [--booths 1000] [--csos 200]

A real server (in this process) and lightweight websocket clients: 200 officers (paused,
so every booth stays queued) and 1,000 booths checked in as walk-ins across five
branches. Then:

1. Event -> dashboard updated: the dashboard runs in headless Chromium; a probe booth
   checks in and leaves, again and again; each time we note when the message left and
   when the page drew a floor whose queue holds it (`loketDashboard.renders`, stamped in
   the page with the same wall clock). p50/p95 with the default broadcast interval.
2. Supervisor socket bytes/s under churn (50 booths leaving and checking in again as fast
   as the server answers), with the default coalescing (LOKET_BROADCAST_INTERVAL=0.2) and
   with a tiny interval (0.005), counted on a raw supervisor socket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dataclasses

from server.auth.service import booth_principal, user_principal
from server.ports.accounts import BoothRecord
from server.principal import AccountRole
from signaling.codec import encode
from signaling.messages import (
    CheckIn,
    ClaimType,
    Hello,
    Leave,
    SetAvailability,
    WalkInRef,
)
from tests.support.live_server import running_server, server_settings

BRANCHES = ["jkt01", "jkt02", "bdg01", "sby01", "mdn01"]
PASSWORD = "bench password 1"


class Peer:
    """One socket: says hello, answers pings, counts what it receives."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.ws: Any = None
        self.bytes = 0
        self.messages = 0
        self.acked: dict[str, asyncio.Future[bool]] = {}
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await websockets.connect(self.url, max_size=2**24, compression=None)
        await self.ws.send(encode(Hello(token=self.token)))
        await self.ws.recv()  # welcome
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                self.bytes += len(raw)
                self.messages += 1
                if '"type":"ping"' in raw:
                    await self.ws.send(json.dumps({"type": "pong", "v": 1}))
                elif '"reply_to"' in raw:
                    msg = json.loads(raw)
                    fut = self.acked.pop(msg.get("reply_to") or "", None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg["type"] == "ack")

    async def request(self, message: Any) -> bool:
        fut = asyncio.get_running_loop().create_future()
        self.acked[message.id] = fut
        await self.ws.send(encode(message))
        return await asyncio.wait_for(fut, 30)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()


def walk_in(n: int) -> CheckIn:
    """A valid walk-in, different for each n < 280,000 (NIK: region, birth date, serial)."""
    day, serial = 1 + (n // 10_000) % 28, n % 9_999 + 1
    return CheckIn(
        claim=WalkInRef(
            nik=f"317101{day:02d}0570{serial:04d}",
            kpj=f"{10000000000 + n:011d}",
            claim_type=ClaimType.RETIREMENT,
        )
    )


async def floor(server: Any, booths: int, csos: int) -> tuple[list[Peer], list[Peer], Any]:
    auth = server.app.state.auth
    issuer = auth._issuer
    ws = server.ws_url
    one = await auth.add_user("sup", PASSWORD, role=AccountRole.SUPERVISOR,
                              display_name="Budi", branch="jkt01")  # fmt: skip
    cso_peers = []
    for i in range(csos):
        rec = dataclasses.replace(one, username=f"cso{i:03d}", display_name=f"Officer {i:03d}",
                                  role=AccountRole.CSO, branch=BRANCHES[i % 5],
                                  pools=frozenset({"*"}))  # fmt: skip
        await auth.store.add_user(rec)
        token = issuer.issue(user_principal(rec)).access_token
        cso_peers.append(Peer(f"{ws}/ws/cso", token))
    for chunk in range(0, csos, 100):
        await asyncio.gather(*(p.open() for p in cso_peers[chunk : chunk + 100]))
    await asyncio.gather(*(p.request(SetAvailability(available=False)) for p in cso_peers))
    booth_peers = []
    for i in range(booths + 51):
        record = BoothRecord(booth_id=f"b{i:04d}", branch=BRANCHES[i % 5], label=f"Booth {i}",
                             secret_hash="unused")  # fmt: skip
        await auth.store.add_booth(record)
        token = issuer.issue(booth_principal(record)).access_token
        booth_peers.append(Peer(f"{ws}/ws/booth", token))
    for chunk in range(0, len(booth_peers), 200):
        await asyncio.gather(*(p.open() for p in booth_peers[chunk : chunk + 200]))
    await asyncio.gather(*(p.request(walk_in(i)) for i, p in enumerate(booth_peers[:booths])))
    sup_token = issuer.issue(user_principal(one)).access_token
    return cso_peers, booth_peers, sup_token


async def churn(peers: list[Peer], base: int, stop: asyncio.Event) -> int:
    cycles = 0

    async def one(i: int, peer: Peer) -> None:
        nonlocal cycles
        n = base + i
        while not stop.is_set():
            await peer.request(walk_in(n))
            await peer.request(Leave())
            cycles += 1

    await asyncio.gather(*(one(i, p) for i, p in enumerate(peers)))
    return cycles


async def bytes_per_second(server: Any, sup_token: str, churners: list[Peer], seconds: float,
                           base: int) -> tuple[float, float, int]:  # fmt: skip
    sup = Peer(f"{server.ws_url}/ws/supervisor", sup_token)
    await sup.open()
    stop = asyncio.Event()
    task = asyncio.create_task(churn(churners, base, stop))
    await asyncio.sleep(seconds)
    stop.set()
    cycles = await task
    await sup.close()
    return sup.bytes / seconds, sup.messages / seconds, cycles


async def latency(server: Any, probe: Peer, rounds: int, booths: int) -> list[float]:
    from playwright.async_api import async_playwright

    from tests.support.browser import CHROMIUM_ARGS, chromium_path

    out = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium_path()),
                                           args=CHROMIUM_ARGS)  # fmt: skip
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await page.goto(f"{server.base_url}/supervisor/")
        await page.fill("input[name=username]", "sup")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("#login button[type=submit]")
        want = (
            f"() => (window.loketDashboard.floor() || {{queue: {{}}}}).queue.waiting === {booths}"
        )
        try:
            await page.wait_for_function(want, timeout=60_000)
        except Exception as exc:
            shown = await page.evaluate("() => document.querySelector('#status').textContent")
            core = server.app.state.floor.core.dispatcher.waiting_count()
            raise RuntimeError(f"page never showed {booths} waiting: {shown}, core {core}") from exc
        for r in range(rounds):
            for message, waiting in ((walk_in(90_000 + r), booths + 1), (Leave(), booths)):
                sent = time.time() * 1000
                await probe.ws.send(encode(message))
                at = await page.wait_for_function(
                    f"""() => {{ const r = window.loketDashboard.renders.find(
                        x => x.at >= {sent} && x.waiting === {waiting}); return r && r.at; }}""",
                    timeout=30_000,
                )
                out.append(await at.json_value() - sent)
                await asyncio.sleep(0.3)
        await browser.close()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def run(interval: float, booths: int, csos: int, measure_latency: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = server_settings(Path(tmp), broadcast_interval=interval, log_level="ERROR",
                                   max_unauthenticated_sockets=2048)  # fmt: skip
        async with running_server(settings) as server:
            cso_peers, booth_peers, sup_token = await floor(server, booths, csos)
            result: dict[str, Any] = {"broadcast_interval": interval}
            churners, probe = booth_peers[booths : booths + 50], booth_peers[-1]
            if measure_latency:
                lat = await latency(server, probe, 15, booths)
                result["event_to_dashboard_ms"] = {
                    "p50": round(statistics.median(lat), 1), "p95": round(pct(lat, 95), 1),
                    "n": len(lat),
                }  # fmt: skip
            bps, mps, cycles = await bytes_per_second(server, sup_token, churners, 10.0, 50_000)
            result["supervisor_bytes_per_s"] = round(bps)
            result["supervisor_messages_per_s"] = round(mps, 1)
            result["churn_events_per_s"] = round(cycles * 2 / 10.0, 1)
            result["supervisor_bytes_per_churn_event"] = round(bps * 10.0 / max(1, cycles * 2))
            for p in [*cso_peers, *booth_peers]:
                await p.close()
            return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--booths", type=int, default=1000)
    parser.add_argument("--csos", type=int, default=200)
    args = parser.parse_args()
    coalesced = await run(0.2, args.booths, args.csos, True)
    tiny = await run(0.005, args.booths, args.csos, False)
    print(json.dumps({
        "booths_queued": args.booths, "csos": args.csos, "coalesced": coalesced,
        "uncoalesced": tiny,
        "bytes_ratio_uncoalesced_vs_coalesced": round(
            tiny["supervisor_bytes_per_s"] / max(1, coalesced["supervisor_bytes_per_s"]), 2),
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
