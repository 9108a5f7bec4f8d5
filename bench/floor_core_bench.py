"""Floor core throughput: events per second with 1,000 booths and 200 CSOs.

The same scripted shift runs twice: straight into the pure core (`FloorCore.handle`, no
sockets, no asyncio), and through the asyncio runtime (`FloorRuntime.handle`: the lock,
effect execution against the in-process Router and LiveState adapters, mailboxes that
take every message). The runtime/pure ratio is what the shell costs on top of deciding.

A shift: 200 CSOs (capacity 4) and 1,000 booths connect and check in (so ~200 wait); then
rounds of: every CSO accepts its offers, each new call's media comes up (offer, answer,
candidates, peer_state), the CSO focuses one call, some booths drop and resume, and
calls end and their booths check in again.

    uv run python bench/floor_core_bench.py [--rounds 6]

Prints one JSON line: events/s for each and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable

from server.adapters.local import LocalLiveState, LocalRouter
from server.floor.core import FloorConfig, FloorCore
from server.floor.effects import Effect, ResolveClaim
from server.floor.events import (
    ClaimResolved,
    Event,
    Now,
    PeerClosed,
    PeerOpened,
    Received,
)
from server.floor.runtime import FloorRuntime
from server.logging import configure_logging
from server.metrics import Metrics
from server.ports.router import Delivery
from server.principal import AccountRole, Principal
from signaling.messages import (
    Accept,
    Answer,
    BookingRef,
    Candidate,
    CheckIn,
    EndSession,
    FocusBooth,
    IceCandidate,
    Offer,
    PeerState,
)
from signaling.session import SessionState

BOOTHS, CSOS, CAPACITY = 1000, 200, 4
SDP = "v=0\r\na=fingerprint:sha-256 AB:CD\r\n"
CONFIG = FloorConfig(reservation_timeout=15, grace_period=30, decline_cooldown=60)


class CountingMailbox:
    def __init__(self, name: str) -> None:
        self.count = 0
        self.id = name

    def deliver(self, delivery: Delivery) -> bool:
        self.count += 1
        return True


Submit = Callable[[Event], Awaitable[list[ResolveClaim]]]


async def shift(core: FloorCore, submit: Submit, rounds: int, seed: int = 7) -> int:
    """Drive a shift through `submit`; returns how many events were handled."""
    rng = random.Random(seed)
    events = 0
    conns = itertools.count()
    booths = [
        Principal(f"b{i}", AccountRole.BOOTH, f"Booth {i}", f"br{i % 20}") for i in range(BOOTHS)
    ]
    csos = [
        Principal(f"c{i}", AccountRole.CSO, f"CSO {i}", "br0", frozenset({"*"}), capacity=CAPACITY)
        for i in range(CSOS)
    ]
    conn_of: dict[str, str] = {}
    codes = itertools.count()

    async def go(event: Event) -> list[ResolveClaim]:
        nonlocal events
        events += 1
        return await submit(event)

    async def open_(p: Principal, resume: str | None = None) -> None:
        conn_of[p.subject] = f"k{next(conns)}"
        await go(PeerOpened(p, conn_of[p.subject], resume, f"t{conn_of[p.subject]}"))

    async def check_in(p: Principal) -> None:
        msg = CheckIn(claim=BookingRef(booking_code=f"BK-{next(codes):06d}"))
        for ask in await go(Received(p, conn_of[p.subject], msg)):
            await go(ClaimResolved(p.subject, ask.request, f"claim-{ask.request.id}"))

    for c in csos:
        await open_(c)
    for b in booths:
        await open_(b)
        await check_in(b)
    by_id = {p.subject: p for p in (*booths, *csos)}
    for _ in range(rounds):
        for c in csos:
            for sid, rec in list(core.sessions.items()):
                if rec.live.cso_id == c.subject and rec.live.state is SessionState.RESERVED:
                    await go(Received(c, conn_of[c.subject], Accept(session_id=sid)))
        calls = [r.live for r in core.sessions.values() if r.live.state is SessionState.CONNECTING]
        for live in calls:
            c, b = by_id[live.cso_id], by_id[live.booth_id]
            sid = live.session_id
            await go(Received(c, conn_of[c.subject], Offer(session_id=sid, sdp=SDP)))
            await go(Received(b, conn_of[b.subject], Answer(session_id=sid, sdp=SDP)))
            for i in range(4):
                cand = IceCandidate(
                    candidate=f"candidate:{i} 1 udp 1 192.0.2.10 {4000 + i} typ host"
                )
                await go(Received(c, conn_of[c.subject], Candidate(session_id=sid, candidate=cand)))
                await go(Received(b, conn_of[b.subject], Candidate(session_id=sid, candidate=cand)))
            await go(Received(b, conn_of[b.subject], PeerState(session_id=sid, state="connected")))
            await go(Received(c, conn_of[c.subject], FocusBooth(session_id=sid)))
        live_calls = [
            r.live for r in core.sessions.values() if r.live.state is not SessionState.RESERVED
        ]
        for live in rng.sample(live_calls, k=len(live_calls) // 10):  # signaling blips
            b = by_id[live.booth_id]
            token = core.booths[b.subject].resume_token
            await go(PeerClosed(b, conn_of[b.subject]))
            await open_(b, token)
        for live in rng.sample(live_calls, k=len(live_calls) // 3):  # calls end
            c, b = by_id[live.cso_id], by_id[live.booth_id]
            if live.session_id in core.sessions:
                await go(Received(c, conn_of[c.subject], EndSession(session_id=live.session_id)))
                await check_in(b)
    return events


async def run_pure(rounds: int) -> tuple[int, float]:
    core = FloorCore(CONFIG)
    clock = itertools.count()

    async def submit(event: Event) -> list[ResolveClaim]:
        effects: list[Effect] = core.handle(event, Now(1000.0 + next(clock) * 1e-4, 1.9e9))
        return [e for e in effects if isinstance(e, ResolveClaim)]

    started = time.perf_counter()
    n = await shift(core, submit, rounds)
    return n, time.perf_counter() - started


async def run_runtime(rounds: int) -> tuple[int, float]:
    router, live = LocalRouter(), LocalLiveState()
    runtime = FloorRuntime(CONFIG, router, live, Metrics())
    for i in range(BOOTHS):
        await router.attach(f"booth:b{i}", CountingMailbox(f"b{i}"))
    for i in range(CSOS):
        await router.attach(f"cso:c{i}", CountingMailbox(f"c{i}"))
    asks: list[ResolveClaim] = []
    execute = runtime._execute

    async def capture(effects: list[Effect]) -> None:
        # Claim resolution is I/O in production (a records lookup); here it answers at once,
        # as in the pure run, so both runs see the same event sequence.
        asks.extend(e for e in effects if isinstance(e, ResolveClaim))
        await execute([e for e in effects if not isinstance(e, ResolveClaim)])

    runtime._execute = capture  # type: ignore[method-assign]

    async def submit(event: Event) -> list[ResolveClaim]:
        asks.clear()
        await runtime.handle(event)
        return list(asks)

    started = time.perf_counter()
    n = await shift(runtime.core, submit, rounds)
    return n, time.perf_counter() - started


async def main(rounds: int) -> None:
    configure_logging("WARNING", json=True)  # as `loket serve` runs, minus the info lines
    pure_n, pure_s = await run_pure(rounds)
    rt_n, rt_s = await run_runtime(rounds)
    pure_rate, rt_rate = pure_n / pure_s, rt_n / rt_s
    print(
        json.dumps(
            {
                "booths": BOOTHS,
                "csos": CSOS,
                "events": pure_n,
                "pure_events_per_s": round(pure_rate),
                "runtime_events_per_s": round(rt_rate),
                "ratio_runtime_to_pure": round(rt_rate / pure_rate, 2),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(main(args.rounds))
