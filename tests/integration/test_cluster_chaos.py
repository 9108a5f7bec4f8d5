"""Chaos (issue 21): three real `loket serve` processes, a real redis-server and a real
PostgreSQL, under a steady load of check-ins, calls with relayed candidates and a
supervisor opening and closing monitor links, while the floor's leader is paused past its
lease and resumed (SIGSTOP/SIGCONT), then killed and restarted (SIGKILL), Redis is
restarted, and PostgreSQL is stopped for a few seconds.

Afterwards: every booth was served exactly once; no event is pending in the floor's
stream and no audit entry in its outbox; no peer the floor thinks connected is gone; the
audit chain verifies, and each monitor link is audited exactly once however many leaders
and retries its entry went through."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.adapters.redis.keys import FLOOR_GROUP
from server.adapters.sql import migrate
from server.adapters.sql.wiring import open_records
from server.principal import AccountRole
from signaling.messages import (
    Accept,
    Assigned,
    BoothAssigned,
    BoothOffered,
    Candidate,
    CheckIn,
    ClaimType,
    CloseLink,
    EndSession,
    Envelope,
    IceCandidate,
    LinkOpened,
    OpenLink,
    PeerState,
    Role,
    SessionEnded,
    WalkInRef,
    Welcome,
)
from signaling.session import SessionState
from tests.support.claims import valid_nik
from tests.support.cluster import Cluster, Node, booth_token, running_cluster, user_token
from tests.support.live_server import server_settings
from tests.support.postgres import create_database, postgres_cluster
from tests.support.ws_client import SignalClient

LEASE, PRESENCE, GRACE = 1.5, 1.5, 30.0
history: list[str] = []
BOOTHS = 10


class Peer:
    """A socket that comes back: on any loss it reconnects (to the next node that answers)
    with its resume token, and hands the new `welcome` to its owner."""

    def __init__(self, role: Role, nodes: list[Node], login: Callable[[Node], Awaitable[str]],
                 first: int) -> None:  # fmt: skip
        self.role, self.nodes, self.login, self.index = role, nodes, login, first
        self.client: SignalClient | None = None
        self.reconnects = 0

    async def connect(self) -> Welcome:
        resume = self.client.welcome.resume_token if self.client and self.client.welcome else None
        while True:
            node = self.nodes[self.index % len(self.nodes)]
            try:
                self.client = await SignalClient.connect(
                    node.ws_url, self.role, await self.login(node), resume=resume
                )
                assert self.client.welcome is not None
                return self.client.welcome
            except (OSError, ConnectionClosed, InvalidStatus, TimeoutError, AssertionError,
                    Exception):  # fmt: skip
                self.index += 1
                await asyncio.sleep(0.2)

    async def send(self, message: Envelope) -> None:
        assert self.client is not None
        with contextlib.suppress(ConnectionClosed, OSError):
            await self.client.send(message)

    async def recv(self) -> Envelope:
        """The next message; a `Welcome` after a reconnect."""
        assert self.client is not None
        try:
            return await self.client.recv(timeout=30)
        except (ConnectionClosed, OSError, TimeoutError):
            self.reconnects += 1
            return await self.connect()


async def _booth(peer: Peer, serial: int, served: dict[str, int], stop: asyncio.Event) -> None:
    walk_in = WalkInRef(nik=valid_nik(500 + serial), kpj=f"{500 + serial:011d}",
                        claim_type=ClaimType.RESIGNATION)  # fmt: skip
    welcome = await peer.connect()
    booth_id = welcome.peer_id
    message: Envelope = welcome
    while not stop.is_set():
        match message:
            case Welcome() if message.booth is not None:
                ended = message.booth.last_ended  # a session that ended while it was away
                if ended is not None and ended.reason in ("cso_ended", "completed"):
                    served[booth_id] = served.get(booth_id, 0) + 1
                    return
                if message.booth.state is SessionState.IDLE and booth_id not in served:
                    await peer.send(CheckIn(claim=walk_in))
                elif message.booth.session_id and message.booth.state is SessionState.CONNECTING:
                    await peer.send(
                        PeerState(session_id=message.booth.session_id, state="connected")
                    )
            case Assigned():
                await peer.send(PeerState(session_id=message.session_id, state="connected"))
            case Candidate():
                await peer.send(
                    Candidate(session_id=message.session_id, candidate=message.candidate)
                )
            case Welcome() | Assigned() | SessionEnded():
                pass
        if isinstance(message, Welcome) and message.booth is not None:
            b = message.booth
            note = f"{b.state} {str(b.session_id)[:6]} resumed={message.resumed} {b.last_ended}"
            history.append(f"{booth_id} welcome {note}")
        elif isinstance(message, SessionEnded):
            history.append(f"{booth_id} ended {message.session_id[:6]} {message.reason}")
        match message:
            case SessionEnded() if message.reason in ("cso_ended", "completed"):
                served[booth_id] = served.get(booth_id, 0) + 1
                return
        message = await peer.recv()


async def _officer(peer: Peer, assigned: list[str], stop: asyncio.Event) -> None:
    async def serve(session_id: str) -> None:
        for i in range(3):  # relay load: candidates the booth echoes back
            await peer.send(Candidate(session_id=session_id,
                                      candidate=IceCandidate(candidate=f"c{i}")))  # fmt: skip
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        await peer.send(EndSession(session_id=session_id))

    calls: set[asyncio.Task[None]] = set()
    message: Envelope | None = await peer.connect()
    try:
        while not stop.is_set():
            match message:
                case Welcome() if message.cso is not None:
                    for offer in message.cso.offers:
                        await peer.send(Accept(session_id=offer.session_id))
                    for session in message.cso.sessions:  # its end may have been lost
                        calls.add(asyncio.create_task(serve(session.session_id)))
                case BoothOffered():
                    await peer.send(Accept(session_id=message.session_id))
                case BoothAssigned():
                    assigned.append(message.booth.booth_id)
                    history.append(f"{message.booth.booth_id} assigned {message.session_id[:6]}")
                    calls.add(asyncio.create_task(serve(message.session_id)))
            message = await peer.recv()
    finally:
        for call in calls:
            call.cancel()


async def _supervisor(peer: Peer, opened: set[str], stop: asyncio.Event) -> None:
    """Closes each monitor link it gets a little after it opened."""
    await peer.connect()
    while not stop.is_set():
        message = await peer.recv()
        if isinstance(message, LinkOpened):
            opened.add(message.link_id)
            await asyncio.sleep(0.3)
            await peer.send(CloseLink(link_id=message.link_id))


async def _monitor_sessions(c: Cluster, peer: Peer, stop: asyncio.Event) -> None:
    """Every second, ask to monitor a live session (from the floor's projection)."""
    while not stop.is_set():
        await asyncio.sleep(1.0)
        with contextlib.suppress(Exception):
            raw = await c.redis.get(c.keys.view)
            view = json.loads(raw) if raw else {"csos": []}
            live = [s["session_id"] for o in view["csos"] for s in o["sessions"]
                    if s["state"] in ("on_hold", "focused") and s["booth_connected"]]  # fmt: skip
            if live:
                await peer.send(OpenLink(kind="monitor", session_id=live[0]))


async def _until(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_chaos_leaves_every_booth_served_once_and_nothing_pending(
    tmp_path, redis_server
) -> None:
    with postgres_cluster() as pg:  # its own, so stopping it stops no other test
        settings = server_settings(
            tmp_path / "data",
            database_url=await create_database(pg),
            redis_url=redis_server.url,
            redis_prefix=f"x{uuid.uuid4().hex[:10]}",
            leader_lease=LEASE,
            presence_ttl=PRESENCE,
            snapshot_interval=0.5,
            grace_period=GRACE,
            reservation_timeout=10.0,
        )
        await migrate.upgrade(settings)
        async with running_cluster(settings, redis_server, tmp_path, ("a", "b", "c")) as c:
            credentials = await c.add_booths(BOOTHS, "chaos")
            for name in ("ana", "budi"):
                await c.add_user(name, AccountRole.CSO, 6)
            await c.add_user("sri", AccountRole.SUPERVISOR)
            nodes = list(c.nodes.values())

            def user(name: str) -> Callable[[Node], Awaitable[str]]:
                return lambda node: user_token(node, name)

            def kiosk(credential: str) -> Callable[[Node], Awaitable[str]]:
                return lambda node: booth_token(node, credential)

            stop = asyncio.Event()
            served: dict[str, int] = {}
            assigned: list[str] = []
            opened: set[str] = set()
            officers = [Peer(Role.CSO, nodes, user(n), i) for i, n in enumerate(("ana", "budi"))]
            sup = Peer(Role.SUPERVISOR, nodes, user("sri"), 2)
            tasks = [asyncio.create_task(_officer(p, assigned, stop)) for p in officers]
            tasks.append(asyncio.create_task(_supervisor(sup, opened, stop)))
            tasks.append(asyncio.create_task(_monitor_sessions(c, sup, stop)))
            booths: list[asyncio.Task[None]] = []

            async def arrive() -> None:  # a steady trickle of participants
                for i, credential in enumerate(credentials):
                    peer = Peer(Role.BOOTH, nodes, kiosk(credential), i)
                    booths.append(asyncio.create_task(_booth(peer, i, served, stop)))
                    await asyncio.sleep(0.6)

            arrivals = asyncio.create_task(arrive())
            try:
                await asyncio.sleep(2.0)
                # 1. The leader pauses past its lease, then wakes (it must step down).
                _, paused = c.node_named(await c.leader())
                assert paused.process is not None
                os.kill(paused.process.pid, signal.SIGSTOP)
                await asyncio.sleep(LEASE * 1.5)
                os.kill(paused.process.pid, signal.SIGCONT)
                await asyncio.sleep(1.5)
                # 2. The leader dies, and comes back.
                _, dead = c.node_named(await c.leader())
                dead.kill()
                await asyncio.sleep(1.0)
                await dead.stop()
                await dead.start()
                # 3. Redis restarts.
                await asyncio.to_thread(redis_server.restart, 1.0)
                await asyncio.sleep(1.5)
                # 4. The records database is away for a few seconds.
                await asyncio.to_thread(pg.stop)
                await asyncio.sleep(3.0)
                await asyncio.to_thread(pg.start)
                await arrivals

                async def all_served() -> bool:
                    return len(served) == BOOTHS

                await _until(all_served, 60, f"all {BOOTHS} booths served (got {served})")
            finally:
                stop.set()
                for task in [*tasks, *booths, arrivals]:
                    task.cancel()
                await asyncio.gather(*tasks, *booths, arrivals, return_exceptions=True)
            assert all(n == 1 for n in served.values()), served
            counts = Counter(assigned)
            twice = [b for b, n in counts.items() if n > 1]
            story = [h for h in history if any(h.startswith(b + " ") for b in twice)]
            assert set(counts) == set(served) and not twice, (counts, story)

            # Nothing pending in the floor's stream, nothing left in its outbox.
            async def drained() -> bool:
                pending: Any = await c.redis.xpending(c.keys.events, FLOOR_GROUP)
                outbox = await c.redis.xlen(c.keys.outbox)
                return pending["pending"] == 0 and outbox == 0

            await _until(drained, 20, "the floor's stream and outbox drained")
            assert await c.redis.xlen(c.keys.quarantine) == 0  # nothing was poison

            # No ghost: once every socket is closed, the floor knows every peer is gone.
            for peer in [*officers, sup]:
                if peer.client is not None:
                    await peer.client.close()

            async def no_ghosts() -> bool:
                raw = await c.redis.get(c.keys.view)
                view = json.loads(raw) if raw else {"csos": []}
                return all(o["state"] == "lost" for o in view["csos"]) and not any(
                    s["booth_connected"] for o in view["csos"] for s in o["sessions"]
                )

            await _until(no_ghosts, 20, "no peer left connected in the floor's view")
        # The audit chain verifies, and each monitor link is audited once.
        async with open_records(settings) as (_, records):
            count, problems = await records.verify_audit()
            assert problems == [] and count > 0
            started: Counter[str] = Counter()
            async for entry in records.store.audit_entries():
                if entry.action == "monitor.started":
                    started[str(entry.details.get("link_id"))] += 1
            assert started and set(started.values()) == {1}, started
            assert opened <= set(started), (opened, started)
