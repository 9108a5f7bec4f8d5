"""Signaling relay throughput: Loket's server vs a bare websockets echo relay.

Both servers run as their own process on loopback. Through Loket, a CSO sends `candidate`
messages into a live session and the booth receives them: every message is size- and
rate-checked, decoded, validated, authorised against the session and re-encoded. Through
the baseline (bench/bare_relay.py) the same JSON frames are forwarded untouched.

    uv run python bench/relay_bench.py [--messages 20000]

Prints one JSON line: {"loket_msgs_per_s", "bare_msgs_per_s", "ratio"}; target ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
from common import free_port, loket_server, start_process, stop_process

from signaling.codec import decode_outbound, encode
from signaling.messages import (
    Accept,
    Assigned,
    BookingRef,
    BoothAssigned,
    BoothOffered,
    Candidate,
    CheckIn,
    Hello,
    IceCandidate,
    Role,
)

HERE = Path(__file__).resolve().parent
WINDOW = 256  # messages in flight, like a burst of trickled candidates


def candidate(session_id: str, i: int) -> str:
    line = f"candidate:{i} 1 udp 2122260223 192.0.2.10 {40000 + i % 20000} typ host"
    return encode(
        Candidate(
            session_id=session_id,
            candidate=IceCandidate(candidate=line, sdpMid="0", sdpMLineIndex=0),
        )
    )


async def pump(sender, receiver, frames: list[str]) -> float:  # type: ignore[no-untyped-def]
    """Send all frames with at most WINDOW unacknowledged; return messages per second."""
    received = 0
    window = asyncio.Semaphore(WINDOW)

    async def receive() -> None:
        nonlocal received
        while received < len(frames):
            raw = await receiver.recv()
            if '"candidate"' in raw:
                received += 1
                window.release()

    task = asyncio.create_task(receive())
    started = time.perf_counter()
    for frame in frames:
        await window.acquire()
        await sender.send(frame)
    await task
    return len(frames) / (time.perf_counter() - started)


async def bare(n: int) -> float:
    port = free_port()
    proc = await start_process(
        [sys.executable, str(HERE / "bare_relay.py"), str(port)], {**os.environ}
    )
    try:
        assert proc.stdout is not None
        await proc.stdout.readline()
        url = f"ws://127.0.0.1:{port}"
        async with websockets.connect(url) as a, websockets.connect(url) as b:
            await asyncio.sleep(0.1)
            frames = [candidate("s" * 32, i) for i in range(n)]
            await pump(a, b, frames[: n // 10])  # warm-up
            return await pump(a, b, frames)
    finally:
        await stop_process(proc)


async def loket(n: int, data_dir: Path) -> float:
    from server.auth.demo import ensure_demo_accounts
    from server.settings import Settings

    port = free_port()
    settings = Settings(data_dir=data_dir, port=port)
    accounts = await ensure_demo_accounts(settings, booths=1)
    # The per-socket rate limit guards against floods; here we measure raw throughput.
    async with loket_server(data_dir, port, LOKET_MAX_MESSAGES_PER_SECOND="1000000") as base:
        async with httpx.AsyncClient(base_url=base) as http:
            booth_auth = await http.post(
                "/api/auth/booth", json={"credential": accounts.booths[0].credential}
            )
            cso_auth = await http.post(
                "/api/auth/login",
                json={"username": accounts.cso.username, "password": accounts.cso.password},
            )
        ws = f"ws://127.0.0.1:{port}"
        async with (
            websockets.connect(f"{ws}/ws/booth") as booth,
            websockets.connect(f"{ws}/ws/cso") as cso,
        ):
            await booth.send(encode(Hello(token=booth_auth.json()["access_token"])))
            await cso.send(encode(Hello(token=cso_auth.json()["access_token"])))
            await booth.send(encode(CheckIn(claim=BookingRef(booking_code="BENCH-1"))))
            session_id = ""
            while not session_id:
                msg = decode_outbound(await cso.recv(), Role.CSO)
                if isinstance(msg, BoothOffered):
                    await cso.send(encode(Accept(session_id=msg.session_id)))
                elif isinstance(msg, BoothAssigned):
                    session_id = msg.session_id
            while not isinstance(decode_outbound(await booth.recv(), Role.BOOTH), Assigned):
                pass
            frames = [candidate(session_id, i) for i in range(n)]
            await pump(cso, booth, frames[: n // 10])
            return await pump(cso, booth, frames)


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours = await loket(n, Path(tmp))
    theirs = await bare(n)
    print(
        json.dumps(
            {
                "loket_msgs_per_s": round(ours),
                "bare_msgs_per_s": round(theirs),
                "ratio": round(ours / theirs, 2),
                "target": "ratio >= 0.5",
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().messages))
