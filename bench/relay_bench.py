"""Signaling relay throughput: Loket's server vs a bare websockets echo relay.

Both servers run as their own process on loopback. Through Loket, a CSO sends `candidate`
messages into a live session and the booth receives them: every message is size- and
rate-checked, decoded, validated, authorised against the session and re-encoded. Through
the baseline (bench/bare_relay.py) the same JSON frames are forwarded untouched.

    uv run python bench/relay_bench.py [--messages 20000]

Loket and the baseline run in alternating rounds (medians reported), so a noisy moment
on this machine hits both alike. Neither side compresses frames (Loket serves signaling
without permessage-deflate).

Prints one JSON line: {"loket_msgs_per_s", "bare_msgs_per_s", "ratio"}; target ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets
from common import free_port, loket_server, start_process, stop_process

from signaling.codec import decode_outbound, encode
from signaling.messages import (
    Accept,
    Assigned,
    BoothAssigned,
    BoothOffered,
    Candidate,
    CheckIn,
    ClaimType,
    Hello,
    IceCandidate,
    Pong,
    Role,
    WalkInRef,
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
            elif '"type":"ping"' in raw:
                # Stay alive: Loket drops a peer that stops answering heartbeats.
                await receiver.send(encode(Pong(reply_to=json.loads(raw)["id"])))

    task = asyncio.create_task(receive())
    started = time.perf_counter()
    for frame in frames:
        await window.acquire()
        await sender.send(frame)
    await task
    return len(frames) / (time.perf_counter() - started)


Pair = tuple[Any, Any, str]  # sender, receiver, session id


@contextlib.asynccontextmanager
async def bare_pair() -> AsyncIterator[Pair]:
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
            yield a, b, "s" * 32
    finally:
        await stop_process(proc)


@contextlib.asynccontextmanager
async def loket_pair(data_dir: Path) -> AsyncIterator[Pair]:
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
            websockets.connect(f"{ws}/ws/booth", compression=None) as booth,
            websockets.connect(f"{ws}/ws/cso", compression=None) as cso,
        ):
            await booth.send(encode(Hello(token=booth_auth.json()["access_token"])))
            await cso.send(encode(Hello(token=cso_auth.json()["access_token"])))
            walk_in = WalkInRef(
                nik="3171011508900001", kpj="12345678901", claim_type=ClaimType.RESIGNATION
            )
            await booth.send(encode(CheckIn(claim=walk_in)))
            session_id = ""
            while not session_id:
                msg = decode_outbound(await cso.recv(), Role.CSO)
                if isinstance(msg, BoothOffered):
                    await cso.send(encode(Accept(session_id=msg.session_id)))
                elif isinstance(msg, BoothAssigned):
                    session_id = msg.session_id
            while not isinstance(decode_outbound(await booth.recv(), Role.BOOTH), Assigned):
                pass
            yield cso, booth, session_id


async def main(n: int, rounds: int) -> None:
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with loket_pair(Path(tmp)) as loket, bare_pair() as bare:
            for sender, receiver, session_id in (loket, bare):  # warm-up
                frames = [candidate(session_id, i) for i in range(n // 10)]
                await pump(sender, receiver, frames)
            # Alternate, so that a noisy moment on this machine hits both alike.
            for _ in range(rounds):
                for (sender, receiver, session_id), out in ((loket, ours), (bare, theirs)):
                    frames = [candidate(session_id, i) for i in range(n)]
                    out.append(await pump(sender, receiver, frames))
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    print(
        json.dumps(
            {
                "loket_msgs_per_s": round(ours_median),
                "bare_msgs_per_s": round(theirs_median),
                "ratio": round(ours_median / theirs_median, 2),
                "rounds": rounds,
                "target": "ratio >= 0.5",
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.rounds))
