"""Calling latency (issue 24): a booth becomes free -> the next ticket is shown on the
waiting room's display (in Chromium) and its spoken call starts playing. Goal: p95 <= 1 s.

One real server, the display page in headless Chromium (the chime and the voice are a WAV
the server makes with espeak-ng the first time a phrase is said), a desk that issued the
tickets, and a booth socket that confirms each called ticket and then leaves (its visit is
over: the booth is free). Baseline, in the same run, for the same calls: the moment a bare
websocket subscribed as a display receives the same `display_call` (the server's part
alone, no page, no audio). The ratio is printed only when both sides saw every call.

    uv run --frozen python bench/calling_bench.py [--calls 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signaling.codec import decode_outbound, encode
from signaling.messages import (
    Ack,
    CheckIn,
    ClaimType,
    DisplayCall,
    Hello,
    IssueTicket,
    Leave,
    Ping,
    Role,
    TicketCalled,
    TicketIssued,
    TicketRef,
    WalkInRef,
)
from tests.support.accounts import add_user, booth_token, login
from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.live_server import running_server, server_settings
from tests.support.ws_client import SignalClient


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(q * len(ordered) + 0.5) - 1)]


def stats(values: list[float]) -> dict[str, float]:
    return {"p50": round(pct(values, 0.5), 1), "p95": round(pct(values, 0.95), 1)}


async def run(calls: int) -> dict[str, object]:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        settings = server_settings(Path(tmp), lobby_call_timeout=120.0, log_level="ERROR")
        async with running_server(settings) as server:
            await add_user(server, "desk", role="supervisor", pools=frozenset({"jkt01"}))
            desk = await SignalClient.connect(
                server.ws_url, Role.SUPERVISOR, (await login(server, "desk"))["access_token"]
            )
            for i in range(calls + 1):
                nik = f"31710145019{i + 1:05d}"
                ask = IssueTicket(claim=WalkInRef(nik=nik, kpj="12345678901",
                                                  claim_type=ClaimType.RETIREMENT))  # fmt: skip
                await desk.send(ask)
                await desk.expect(TicketIssued, reply_to=ask.id, timeout=20)
            key = await server.app.state.display.displays.enrol("jkt01", "bench")
            bare = await websockets.connect(f"{server.ws_url}/ws/display")
            await bare.send(encode(Hello(token=key)))
            bare_at: dict[str, float] = {}

            async def listen() -> None:
                async for raw in bare:
                    message = decode_outbound(raw, Role.DISPLAY)
                    if isinstance(message, DisplayCall):
                        bare_at.setdefault(message.call.number, time.time())

            async def keep_alive() -> None:  # a display pings; a silent one is closed
                while True:
                    await asyncio.sleep(5)
                    await bare.send(encode(Ping()))

            listener = asyncio.create_task(listen())
            pinger = asyncio.create_task(keep_alive())
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(chromium_path()), args=CHROMIUM_ARGS
                )
                page = await browser.new_page(viewport={"width": 1920, "height": 1080})
                await page.goto(f"{server.base_url}/display/#key={key}")
                await page.wait_for_function("window.__displayConnected === true")
                booth = await SignalClient.connect(
                    server.ws_url, Role.BOOTH, await booth_token(server, "Bilik 1")
                )
                freed: dict[str, float] = {}
                called = (await booth.expect(TicketCalled, timeout=20)).ticket.number
                await page.wait_for_function(  # a quiet room: the first call has been said
                    f"window.__displayCalls.some(c => c.number === '{called}' && c.ended)",
                    timeout=30_000,
                )
                for _ in range(calls):
                    confirm = CheckIn(claim=TicketRef(number=called))
                    await booth.send(confirm)
                    await booth.expect(Ack, reply_to=confirm.id, timeout=10)
                    await asyncio.sleep(0.3)  # a short visit
                    t0 = time.time()
                    await booth.send(Leave())  # the visit is over: the booth is free
                    called = (await booth.expect(TicketCalled, timeout=20)).ticket.number
                    freed[called] = t0
                    await page.wait_for_function(
                        f"window.__displayCalls.some(c => c.number === '{called}' && c.ended)",
                        timeout=30_000,
                    )
                shown = await page.evaluate("window.__displayCalls")
                await browser.close()
            listener.cancel()
            pinger.cancel()
            await bare.close()
    by_number = {c["number"]: c for c in shown}
    numbers = [n for n in freed if n in by_number and by_number[n]["playing"] and n in bare_at]
    if len(numbers) != calls:
        seen = {n: (by_number.get(n, {}).get("playing"), bare_at.get(n)) for n in freed}
        raise SystemExit(f"only {len(numbers)} of {calls} calls were seen on both sides: {seen}")
    to_shown = [(by_number[n]["shown"] / 1000 - freed[n]) * 1000 for n in numbers]
    to_spoken = [(by_number[n]["playing"] / 1000 - freed[n]) * 1000 for n in numbers]
    to_bare = [(bare_at[n] - freed[n]) * 1000 for n in numbers]
    return {
        "calls": calls,
        "freed_to_shown_ms": stats(to_shown),
        "freed_to_spoken_ms": stats(to_spoken),
        "baseline_bare_socket_ms": stats(to_bare),
        "spoken_p95_vs_baseline": round(pct(to_spoken, 0.95) / max(pct(to_bare, 0.95), 1e-3), 1),
        "goal_p95_ms": 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.calls))))


if __name__ == "__main__":
    main()
