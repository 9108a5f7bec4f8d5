"""One contract for each port, run against every adapter: in-process and Redis.

The Router contract is stated for two processes: a peer attached on either is reached by
a send from either. In-process, "two processes" are one LocalRouter (that is the whole of
a one-process deployment); with Redis they are two RedisRouters with their own inboxes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.adapters.local import LocalLiveState, LocalRouter
from server.adapters.redis.keys import Keys
from server.adapters.redis.live_state import RedisLiveState
from server.adapters.redis.router import RedisRouter
from server.ports.live_state import LiveSession, LiveState
from server.ports.router import FLOOR_TOPIC, FLOOR_TOPICS, Delivery, Mailbox, Router
from signaling.codec import encode
from signaling.messages import Ping, Queued
from signaling.session import SessionState


class Inbox:
    """A mailbox that keeps what it is given (frames, as a socket would send them)."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.replaced = False
        self._arrived = asyncio.Event()
        self.id = f"inbox{id(self)}"

    def deliver(self, delivery: Delivery) -> bool:
        frame = delivery.raw
        if frame is None:
            assert delivery.message is not None
            frame = encode(delivery.message)
        self.frames.append(frame)
        self._arrived.set()
        return True

    async def wait(self, count: int, within: float = 5.0) -> list[str]:
        async with asyncio.timeout(within):
            while len(self.frames) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.frames


@pytest.fixture(params=["local", "redis"])
async def routers(request, redis_prefix) -> AsyncIterator[tuple[Router, Router]]:  # type: ignore[no-untyped-def]
    if request.param == "local":
        local = LocalRouter()
        yield local, local
        return
    server = request.getfixturevalue("redis_server")
    redis = Redis.from_url(server.url)
    keys = Keys(redis_prefix)

    def replaced(mailbox: Mailbox) -> None:
        assert isinstance(mailbox, Inbox)
        mailbox.replaced = True

    one = RedisRouter(redis, keys, "p1", presence_ttl=2.0, on_replaced=replaced)
    two = RedisRouter(redis, keys, "p2", presence_ttl=2.0, on_replaced=replaced)
    await one.start(topics=(FLOOR_TOPICS,))
    await two.start(topics=(FLOOR_TOPICS,))
    await asyncio.sleep(0.2)  # subscriptions in place
    try:
        yield one, two
    finally:
        await one.stop()
        await two.stop()
        await redis.aclose()


@pytest.fixture(params=["local", "redis"])
async def live(request, redis_prefix) -> AsyncIterator[LiveState]:  # type: ignore[no-untyped-def]
    if request.param == "local":
        yield LocalLiveState()
        return
    server = request.getfixturevalue("redis_server")
    redis = Redis.from_url(server.url)
    try:
        yield RedisLiveState(redis, Keys(redis_prefix))
    finally:
        await redis.aclose()


# --- Router -------------------------------------------------------------------------------


async def test_a_peer_attached_anywhere_is_reached_from_anywhere(routers) -> None:
    one, two = routers
    booth, cso = Inbox(), Inbox()
    await one.attach("booth-1", booth)
    await two.attach("siti", cso)
    assert await one.send("siti", Queued(position=0, waiting=1))
    assert await two.send("booth-1", Ping(), raw='{"v":1,"type":"ping","id":"x"}')
    assert await one.send("booth-1", Ping(), raw='{"v":1,"type":"ping","id":"y"}')
    assert '"queued"' in (await cso.wait(1))[0]
    assert [f.split('"id":"')[1][0] for f in await booth.wait(2)] == ["x", "y"]  # in order


async def test_a_send_to_nobody_says_so(routers) -> None:
    one, _ = routers
    assert await one.send("nobody", Ping()) is False


async def test_detach_only_unbinds_the_same_mailbox(routers) -> None:
    one, two = routers
    old, new = Inbox(), Inbox()
    await one.attach("siti", old)
    await one.attach("siti", new)
    await one.detach("siti", old)  # a replaced socket going away late
    assert await two.send("siti", Ping())
    await new.wait(1)
    await one.detach("siti", new)
    assert await two.send("siti", Ping()) is False


async def test_a_newer_socket_elsewhere_replaces_the_older(routers) -> None:
    one, two = routers
    old, new = Inbox(), Inbox()
    await one.attach("siti", old)
    previous = await two.attach("siti", new)
    assert await one.send("siti", Ping())
    await new.wait(1)
    if one is two:
        assert previous is old  # in one process the caller closes it
    else:
        async with asyncio.timeout(5):
            while not old.replaced:  # the other process is told to close it
                await asyncio.sleep(0.02)
    assert old.frames == []


async def test_published_floor_reaches_subscribers_on_every_process(routers) -> None:
    one, two = routers
    sup1, sup2, gone = Inbox(), Inbox(), Inbox()
    await one.subscribe(FLOOR_TOPIC, sup1)
    await two.subscribe(FLOOR_TOPIC, sup2)
    await two.subscribe(FLOOR_TOPIC, gone)
    await two.unsubscribe(FLOOR_TOPIC, gone)
    await one.publish(FLOOR_TOPIC, Queued(position=3, waiting=4))
    assert '"position":3' in (await sup1.wait(1))[0]
    assert '"position":3' in (await sup2.wait(1))[0]
    await asyncio.sleep(0.1)
    assert gone.frames == []


# --- LiveState ----------------------------------------------------------------------------


def _session(sid: str, booth: str, cso: str, claim: str | None, at: float) -> LiveSession:
    return LiveSession(sid, booth, cso, SessionState.CONNECTING, at, ("AB:CD",), (), claim)


async def test_sessions_by_id_peer_and_claim(live) -> None:
    first = _session("s1", "booth-1", "siti", "claim-1", 1.0)
    second = _session("s2", "booth-2", "siti", "claim-2", 2.0)
    await live.put(first)
    await live.put(second)
    assert await live.get("s1") == first
    assert [s.session_id for s in await live.of_peer("cso:siti")] == ["s1", "s2"]
    assert [s.session_id for s in await live.of_peer("booth:booth-2")] == ["s2"]
    assert await live.of_claim("claim-2") == second
    assert await live.count() == 2
    moved = first.with_state(SessionState.FOCUSED)
    await live.put(moved)
    assert (await live.get("s1")) == moved
    await live.delete("s1")
    await live.delete("s1")  # twice is fine
    assert await live.get("s1") is None
    assert await live.of_claim("claim-1") is None
    assert [s.session_id for s in await live.of_peer("cso:siti")] == ["s2"]
    assert await live.count() == 1


async def test_a_claims_newer_session_wins_and_an_old_delete_keeps_it(live) -> None:
    await live.put(_session("s1", "booth-1", "siti", "claim-1", 1.0))
    await live.put(_session("s2", "booth-1", "budi", "claim-1", 2.0))  # moved to budi
    assert (await live.of_claim("claim-1")).session_id == "s2"
    await live.delete("s1")
    assert (await live.of_claim("claim-1")).session_id == "s2"


async def test_concurrent_writers_leave_consistent_indexes(live) -> None:
    sessions = [_session(f"s{i}", f"booth-{i}", "siti", f"claim-{i}", float(i)) for i in range(50)]
    await asyncio.gather(*(live.put(s) for s in sessions))
    await asyncio.gather(*(live.delete(s.session_id) for s in sessions[::2]))
    assert await live.count() == 25
    assert {s.session_id for s in await live.of_peer("cso:siti")} == {
        s.session_id for s in sessions[1::2]
    }
    for s in sessions[::2]:
        assert await live.of_claim(s.claim_id or "") is None
