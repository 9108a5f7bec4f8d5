"""What the cluster costs and buys: Loket on one embedded process vs processes sharing
the floor through Redis, all measured in one run on this machine.

1. Relay latency, one booth -> CSO pair, one message in flight: p50/p99 of the one-way
   time (sender and receiver are this process, so one clock) for
   - embedded: one `loket serve`, no Redis (the baseline),
   - cluster, same process: both sockets on one node of a Redis cluster,
   - cluster, across processes: the booth on one node, the CSO on another.
2. Signaling throughput: PAIRS pairs relaying candidates with a window in flight each,
   on 1 node vs 3 nodes (pairs spread over them), plus the embedded baseline.
3. Dispatch: BOOTHS booths check in at once, CSOS officers accept every offer; decisions
   (assignments) per second, on 1 node vs 3 nodes, plus embedded.

Every node is a real `loket serve` process; records are SQLite in a shared data dir (the
check-ins write a little; PostgreSQL would not change what is measured here) and Redis is
a real redis-server with AOF (appendfsync everysec, as the README recommends).

    uv run python bench/cluster_bench.py [--pairs 12] [--booths 60]

Prints one JSON line per measurement and a summary line with the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets
from common import free_port, loket_server, redis_server
from pydantic import SecretStr

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
    Ping,
    Pong,
    Role,
    WalkInRef,
)

PASSWORD = "bench-password-123"
SECRET = "bench-secret-" + "x" * 32


async def make_accounts(data_dir: Path, booths: int, csos: int) -> list[str]:
    """Booth credentials; CSOs are cso-0..cso-N with PASSWORD."""
    from server.adapters.sql import migrate
    from server.adapters.sql.wiring import open_accounts
    from server.auth.demo import auth_service
    from server.principal import AccountRole
    from server.settings import Settings

    settings = Settings(data_dir=data_dir, jwt_secret=SecretStr(SECRET))
    await migrate.upgrade(settings)
    engine, store = await open_accounts(settings)
    try:
        auth = auth_service(settings, store)
        credentials = []
        for i in range(booths):
            _, credential = await auth.enrol_booth("jkt01", f"b{i}", booth_id=f"b{i}")
            credentials.append(credential)
        for i in range(csos):
            await auth.add_user(
                f"cso-{i}", PASSWORD, role=AccountRole.CSO, display_name=f"CSO {i}",
                branch="jkt01", pools=frozenset({"*"}), capacity=6,
            )  # fmt: skip
        return credentials
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def nodes(data_dir: Path, count: int, redis_url: str | None) -> AsyncIterator[list[str]]:
    """`count` loket serve processes (count=1 and no Redis: the embedded default)."""
    env = {"LOKET_JWT_SECRET": SECRET, "LOKET_MAX_MESSAGES_PER_SECOND": "1000000",
           "LOKET_BROADCAST_INTERVAL": "0.5"}  # fmt: skip
    if redis_url:
        env |= {"LOKET_REDIS_URL": redis_url, "LOKET_REDIS_PREFIX": f"b{time.time_ns()}"}
    async with contextlib.AsyncExitStack() as stack:
        bases = []
        for i in range(count):
            port = free_port()
            bases.append(
                await stack.enter_async_context(
                    loket_server(data_dir, port, LOKET_PROCESS_ID=f"node{i}", **env)
                )
            )
        yield [b.replace("http://", "ws://") for b in bases]


async def token(ws_base: str, *, booth: str | None = None, user: str | None = None) -> str:
    async with httpx.AsyncClient(base_url=ws_base.replace("ws://", "http://"), timeout=30) as h:
        if booth:
            reply = await h.post("/api/auth/booth", json={"credential": booth})
        else:
            reply = await h.post("/api/auth/login", json={"username": user, "password": PASSWORD})
        reply.raise_for_status()
        return str(reply.json()["access_token"])


class Peer:
    def __init__(self, ws: Any, role: Role) -> None:
        self.ws, self.role = ws, role

    @classmethod
    async def open(cls, ws_base: str, role: Role, tok: str) -> Peer:
        ws = await websockets.connect(f"{ws_base}/ws/{role}", compression=None, max_size=2**22)
        await ws.send(encode(Hello(token=tok)))
        await ws.recv()  # welcome
        return cls(ws, role)

    async def next(self) -> Any:
        while True:
            msg = decode_outbound(await self.ws.recv(), self.role)
            if isinstance(msg, Ping):
                await self.ws.send(encode(Pong(reply_to=msg.id)))
                continue
            return msg


def walk_in(i: int) -> CheckIn:
    nik = f"317101150890{i % 10_000 or 1:04d}"
    return CheckIn(claim=WalkInRef(nik=nik, kpj=f"{i:011d}", claim_type=ClaimType.RESIGNATION))


async def pair(
    booth_base: str, cso_base: str, credential: str, user: str, i: int
) -> tuple[Peer, Peer, str]:
    booth = await Peer.open(booth_base, Role.BOOTH, await token(booth_base, booth=credential))
    cso = await Peer.open(cso_base, Role.CSO, await token(cso_base, user=user))
    await booth.ws.send(encode(walk_in(i)))
    session = ""
    while not session:
        msg = await cso.next()
        if isinstance(msg, BoothOffered):
            await cso.ws.send(encode(Accept(session_id=msg.session_id)))
        elif isinstance(msg, BoothAssigned):
            session = msg.session_id
    while not isinstance(await booth.next(), Assigned):
        pass
    return booth, cso, session


def frame(session: str, stamp: int) -> str:
    line = f"candidate:{stamp} 1 udp 2122260223 192.0.2.10 40000 typ host"
    cand = IceCandidate(candidate=line, sdpMid="0", sdpMLineIndex=0)
    return encode(Candidate(session_id=session, candidate=cand))


async def latency(booth: Peer, cso: Peer, session: str, n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        await booth.ws.send(frame(session, time.perf_counter_ns()))
        while True:
            msg = await cso.next()
            if isinstance(msg, Candidate) and msg.candidate is not None:
                sent = int(msg.candidate.candidate.split()[0].split(":")[1])
                samples.append((time.perf_counter_ns() - sent) / 1e6)
                break
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[int(len(samples) * 0.99) - 1]}


async def throughput(pairs: list[tuple[Peer, Peer, str]], seconds: float) -> float:
    """Messages per second delivered booth -> CSO over all pairs, 64 in flight each."""
    stop = time.perf_counter() + seconds
    delivered = 0

    async def run(booth: Peer, cso: Peer, session: str) -> None:
        nonlocal delivered
        window = asyncio.Semaphore(64)
        sent = received = 0
        finished = asyncio.Event()

        async def receive() -> None:
            nonlocal delivered, received
            while not (finished.is_set() and received == sent):
                msg = await cso.next()
                if isinstance(msg, Candidate):
                    delivered += 1
                    received += 1
                    window.release()

        reader = asyncio.create_task(receive())
        data = frame(session, 1)
        while time.perf_counter() < stop:
            await window.acquire()
            await booth.ws.send(data)
            sent += 1
        finished.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, 5)

    started = time.perf_counter()
    await asyncio.gather(*(run(*p) for p in pairs))
    return delivered / (time.perf_counter() - started)


async def dispatch(bases: list[str], credentials: list[str], csos: int) -> float:
    """Assignments per second: every booth checks in at once, officers accept all."""
    officers = [
        await Peer.open(
            bases[i % len(bases)], Role.CSO, await token(bases[i % len(bases)], user=f"cso-{i}")
        )
        for i in range(csos)
    ]
    booths = [
        await Peer.open(
            bases[i % len(bases)], Role.BOOTH, await token(bases[i % len(bases)], booth=c)
        )
        for i, c in enumerate(credentials)
    ]
    assigned = 0
    everyone = asyncio.Event()

    async def officer(peer: Peer) -> None:
        nonlocal assigned
        while True:
            msg = await peer.next()
            if isinstance(msg, BoothOffered):
                await peer.ws.send(encode(Accept(session_id=msg.session_id)))
            elif isinstance(msg, BoothAssigned):
                assigned += 1
                if assigned == len(booths):
                    everyone.set()

    tasks = [asyncio.create_task(officer(o)) for o in officers]
    started = time.perf_counter()
    await asyncio.gather(*(b.ws.send(encode(walk_in(1000 + i))) for i, b in enumerate(booths)))
    await asyncio.wait_for(everyone.wait(), 120)
    rate = len(booths) / (time.perf_counter() - started)
    for task in tasks:
        task.cancel()
    for peer in [*officers, *booths]:
        await peer.ws.close()
    return rate


async def main(pairs_n: int, booths_n: int, seconds: float) -> None:
    csos_n = max(pairs_n, -(-booths_n // 6))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="loket-cluster-bench-") as tmp:
        root = Path(tmp)
        for label, count, clustered in (("embedded", 1, False), ("cluster1", 1, True),
                                        ("cluster3", 3, True)):  # fmt: skip
            data = root / label
            data.mkdir()
            credentials = await make_accounts(data, pairs_n + booths_n, csos_n + pairs_n)
            redis_dir = root / f"redis-{label}"
            redis_dir.mkdir()
            with redis_server(redis_dir) as url:
                async with nodes(data, count, url if clustered else None) as bases:
                    # 1. latency: across processes when there are several
                    b0, c0, s0 = await pair(bases[0], bases[-1], credentials[0], f"cso-{csos_n}", 1)
                    lat = await latency(b0, c0, s0, 1000)
                    if label == "cluster1":
                        results["latency_cluster_same_process"] = lat
                    elif label == "cluster3":
                        results["latency_cluster_across"] = lat
                    else:
                        results["latency_embedded"] = lat
                    # 2. throughput over PAIRS pairs (booth on node i, CSO on node i+1)
                    pairs = [(b0, c0, s0)]
                    for i in range(1, pairs_n):
                        pairs.append(
                            await pair(
                                bases[i % count],
                                bases[(i + 1) % count],
                                credentials[i],
                                f"cso-{csos_n + i}",
                                10 + i,
                            )
                        )
                    results[f"throughput_{label}"] = await throughput(pairs, seconds)
                    for booth, cso, _ in pairs:
                        await booth.ws.close()
                        await cso.ws.close()
                    # 3. dispatch decisions
                    results[f"dispatch_{label}"] = await dispatch(
                        bases, credentials[pairs_n:], csos_n
                    )
            mine = {k: v for k, v in results.items() if k.endswith(label)}
            print(json.dumps({label: mine}))
    emb, across = results["latency_embedded"], results["latency_cluster_across"]
    summary = {
        "relay_p50_ms": {
            "embedded": round(emb["p50_ms"], 3),
            "cluster_same_process": round(results["latency_cluster_same_process"]["p50_ms"], 3),
            "cluster_across": round(across["p50_ms"], 3),
        },
        "relay_p99_ms": {
            "embedded": round(emb["p99_ms"], 3),
            "cluster_across": round(across["p99_ms"], 3),
        },
        "relay_p50_ratio_across_vs_embedded": round(across["p50_ms"] / emb["p50_ms"], 2),
        "throughput_msgs_per_s": {
            k: round(results[f"throughput_{k}"]) for k in ("embedded", "cluster1", "cluster3")
        },
        "throughput_ratio_3_vs_1": round(
            results["throughput_cluster3"] / results["throughput_cluster1"], 2
        ),
        "dispatch_per_s": {
            k: round(results[f"dispatch_{k}"], 1) for k in ("embedded", "cluster1", "cluster3")
        },
        "dispatch_ratio_3_vs_1": round(
            results["dispatch_cluster3"] / results["dispatch_cluster1"], 2
        ),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=12, help="booth-CSO pairs for throughput")
    parser.add_argument("--booths", type=int, default=60, help="booths for the dispatch burst")
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput run length")
    args = parser.parse_args()
    asyncio.run(main(args.pairs, args.booths, args.seconds))
