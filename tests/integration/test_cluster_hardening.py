"""The cluster's safety by construction (issue 21, B4 B6 B7 B8, A2), each against a real
redis-server: a deposed leader can neither read nor reap, presence and the floor clock do
not depend on any host's clock, a replaced notice closes only the connection it names,
formats and seals are versioned and refused with a metric, inboxes hold only what is not
yet read, and a gateway that cannot hand on its events resets instead of growing Redis."""

from __future__ import annotations

import asyncio
import json
import pickle
import time
import uuid
from typing import Any
from unittest import mock

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from server.adapters.redis import floor as floor_mod
from server.adapters.redis.floor import _CLAIM, _READ, _REAP, ClusterFloor
from server.adapters.redis.keys import FLOOR_GROUP, Keys
from server.adapters.redis.leader import FloorClock, Lease, ensure_group
from server.adapters.redis.live_state import RedisLiveState
from server.adapters.redis.router import RedisRouter
from server.adapters.redis.sealed import SealBroken, Sealer
from server.floor.core import FloorConfig, FloorCore
from server.floor.events import PeerOpened, Received
from server.floor.snapshot import SNAPSHOT_FORMAT, UnknownFormat, dump_core, load_core, new_core
from server.floor.wire import dump_event, load_event
from server.metrics import Metrics
from server.ports.router import Delivery
from server.principal import AccountRole, Principal
from signaling.messages import Candidate, IceCandidate, Ping

CONFIG = FloorConfig()


@pytest.fixture
async def redis(redis_server):  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def keys() -> Keys:
    return Keys(f"h{uuid.uuid4().hex[:10]}")


async def _deposed(redis: Redis, keys: Keys) -> tuple[Lease, Lease]:
    """`old` held the lease, paused past it; `new` took over."""
    old = Lease(redis, keys, "old", 0.2)
    assert await old.try_acquire()
    await asyncio.sleep(0.3)  # the lease lapses while `old` is "paused"
    new = Lease(redis, keys, "new", 5.0)
    assert await new.try_acquire()
    return old, new


async def test_a_deposed_leader_cannot_read_claim_or_reap(redis: Redis, keys: Keys) -> None:
    await ensure_group(redis, keys)
    await redis.xadd(keys.events, {"e": b"x", "n": 1})
    old, new = await _deposed(redis, keys)
    assert not old.surely_ours()  # its own clock says so before it even asks Redis
    read, claim, reap = (redis.register_script(s) for s in (_READ, _CLAIM, _REAP))
    with pytest.raises(ResponseError, match="FENCED"):
        await read(keys=[keys.leader, keys.events], args=[old.value, "old", 10, FLOOR_GROUP, ">"])
    with pytest.raises(ResponseError, match="FENCED"):
        await claim(keys=[keys.leader, keys.events],
                    args=[old.value, FLOOR_GROUP, "old", 0, "0-0", 10])  # fmt: skip
    await redis.zadd(keys.procs, {"gone": 1})
    with pytest.raises(ResponseError, match="FENCED"):
        await reap(keys=[keys.leader, keys.procs], args=[old.value, keys.prefix])
    # Nothing was handed to the deposed leader, and the lapsed process is still listed
    # for the real leader to deal with.
    pending: Any = await redis.xpending(keys.events, FLOOR_GROUP)
    assert pending["pending"] == 0
    assert await redis.zscore(keys.procs, "gone") == 1
    got, _last = await read(keys=[keys.leader, keys.events],
                            args=[new.value, "new", 10, FLOOR_GROUP, ">"])  # fmt: skip
    assert len(got[0][1]) == 1
    alive, lapsed = await reap(keys=[keys.leader, keys.procs], args=[new.value, keys.prefix])
    assert alive == [] and lapsed == [b"gone"]
    assert await redis.zscore(keys.procs, "gone") is None


async def test_presence_deadlines_are_on_redis_clock_not_the_hosts(
    redis: Redis, keys: Keys
) -> None:
    """A server whose clock runs an hour ahead used to write a deadline an hour away: it
    was never counted as gone. (And one running behind flapped.)"""
    router = RedisRouter(redis, keys, "skewed", presence_ttl=1.5)
    with mock.patch("time.time", lambda: 1.9e9 + 3600):
        await router.start()
        await asyncio.sleep(0.2)
    seconds, micros = await redis.time()
    deadline = await redis.zscore(keys.procs, "skewed")
    assert deadline is not None
    assert 0 < deadline / 1000 - (seconds + micros / 1e6) <= 1.5 + 0.2
    await router.stop()


def test_the_floor_clock_goes_on_from_the_last_decision() -> None:
    """Deadlines are instants on the floor's clock: a new leader on another host starts it
    where the decisions left it, plus the leaderless gap as Redis measured it (clamped)."""
    clock = FloorClock(last=5000.0, gap=2.5)
    assert 5002.5 <= clock() < 5002.6
    stepped = FloorClock(last=5000.0, gap=86_400.0, max_gap=60.0)  # Redis's clock stepped
    assert 5060.0 <= stepped() < 5060.1
    backwards = FloorClock(last=5000.0, gap=-30.0)
    assert 5000.0 <= backwards() < 5000.1


class _Inbox:
    def __init__(self, name: str) -> None:
        self.id = name
        self.frames: list[str] = []
        self.closed = False

    def deliver(self, delivery: Delivery) -> bool:
        self.frames.append(delivery.raw or "")
        return True


async def test_a_replaced_notice_closes_only_the_connection_it_names(
    redis: Redis, keys: Keys
) -> None:
    """The peer moved to p2, then came back to p1 before p1 read the notice: p1 must close
    its first socket's mailbox, never the newer one."""
    closed: list[str] = []

    def replaced(mailbox: Any) -> None:
        closed.append(mailbox.id)

    p1 = RedisRouter(redis, keys, "p1", on_replaced=replaced)  # its reader not started
    p2 = RedisRouter(redis, keys, "p2", on_replaced=replaced)
    first, second, third = _Inbox("conn-1"), _Inbox("conn-2"), _Inbox("conn-3")
    await p1.attach("cso:siti", first)
    await p2.attach("cso:siti", second)  # the notice for conn-1 waits in p1's inbox
    await p1.attach("cso:siti", third)  # and the peer is back on p1 before it is read
    for _entry_id, fields in await redis.xrange(keys.inbox("p1")):
        p1._on_inbox(fields)
    assert closed == []  # conn-1 was already let go when conn-3 took its place
    assert p1._peers["cso:siti"] is third
    assert await p1.send("cso:siti", _ping()) and await p2.send("cso:siti", _ping())


def _ping() -> Ping:
    return Ping()


async def test_inboxes_keep_only_what_is_not_yet_read(redis: Redis, keys: Keys) -> None:
    router = RedisRouter(redis, keys, "reader")
    box = _Inbox("c1")
    await router.attach("booth:b1", box)
    await router.start()
    try:
        for _ in range(300):
            await router.send("booth:b1", _ping())
        for _ in range(100):
            if len(box.frames) == 300 and await redis.xlen(keys.inbox("reader")) == 0:
                break
            await asyncio.sleep(0.05)
        assert len(box.frames) == 300
        assert await redis.xlen(keys.inbox("reader")) == 0
    finally:
        await router.stop()


def test_formats_are_versioned_and_a_newer_one_is_refused() -> None:
    core = new_core(CONFIG)
    dumped = dump_core(core)
    assert dumped["format"] == SNAPSHOT_FORMAT
    assert load_core(pickle.loads(pickle.dumps(dumped)), CONFIG).ids_handed_out == 0
    with pytest.raises(UnknownFormat, match="upgrade"):
        load_core({"format": SNAPSHOT_FORMAT + 1, "state": {}}, CONFIG)
    who = Principal("b1", AccountRole.BOOTH, "Booth", "jkt01")
    event = PeerOpened(who, "p/c", None, "t")
    assert load_event(dump_event(event)) == event
    newer = dump_event(event).replace(b'{"v":1', b'{"v":99', 1)
    with pytest.raises(UnknownFormat):
        load_event(newer)


def test_sealed_blobs_are_encrypted_and_readable_across_a_rotation() -> None:
    nik = b"3171011508900001"
    old = Sealer("old-secret")
    blob = old.seal(b'{"nik":"' + nik + b'"}')
    assert nik not in blob
    rotated = Sealer("new-secret", previous=["old-secret"])
    assert nik in rotated.unseal(blob)
    with pytest.raises(SealBroken, match="PREVIOUS"):
        Sealer("new-secret").unseal(blob)
    with pytest.raises(SealBroken, match="older Loket"):
        Sealer("x").unseal(b"\x00" * 64)  # the format before (HMAC + pickle)


def _cluster_floor(redis: Redis, keys: Keys, name: str, secret: str, metrics: Metrics,
                   **kw: Any) -> ClusterFloor:  # fmt: skip
    router = RedisRouter(redis, keys, name)
    return ClusterFloor(
        CONFIG, redis, keys, Sealer(secret), router, RedisLiveState(redis, keys), metrics,
        process_id=name, lease_s=kw.pop("lease_s", 0.6), presence_ttl=1.0,
        snapshot_interval=0.3, events_budget=kw.pop("events_budget", 1 << 24), runtime_kw={},
    )  # fmt: skip


async def test_a_process_that_cannot_read_the_floor_does_not_lead(
    redis: Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rotated secret (or a newer version's snapshot): that process says so, counts it,
    and leaves the floor to one that reads it, instead of every takeover raising."""
    monkeypatch.setattr(floor_mod, "REFUSED_BACKOFF", 60.0)
    metrics_good, metrics_bad = Metrics(), Metrics()
    good = _cluster_floor(redis, keys, "good", "the-secret", metrics_good)
    await good.start()
    try:
        for _ in range(100):
            if good.runtime is not None and await redis.exists(keys.snapshot):
                break
            await asyncio.sleep(0.05)
        assert good.runtime is not None
    finally:
        await good.stop()
    bad = _cluster_floor(redis, keys, "bad", "another-secret", metrics_bad)
    await bad.start()
    try:
        for _ in range(100):
            if metrics_bad.floor_format_refused._value.get() >= 1:
                break
            await asyncio.sleep(0.05)
        assert metrics_bad.floor_format_refused._value.get() == 1
        assert bad.runtime is None and await redis.get(keys.leader) is None
    finally:
        await bad.stop()


async def test_a_gateway_over_the_event_budget_resets_instead_of_growing_redis(
    redis: Redis, keys: Keys
) -> None:
    """No leader drains the stream (it is all gateways here): past the budget a gateway
    hands on one reset entry, closes its sockets, and the stream stops growing."""
    metrics = Metrics()
    gateway = _cluster_floor(redis, keys, "gw", "s", metrics, events_budget=1 << 20)
    gateway._campaign = _never  # type: ignore[method-assign]
    resets: list[float] = []
    gateway.on_reset = lambda: resets.append(time.monotonic())
    await gateway.start()
    try:
        who = Principal("b1", AccountRole.BOOTH, "Booth", "jkt01")
        candidate = Candidate(session_id="s" * 32, candidate=IceCandidate(candidate="c" * 900))
        for _ in range(3000):
            await gateway._forward(Received(who, "gw/c", candidate, 0.0, None))
        for _ in range(100):
            if resets and gateway._queue.empty():
                break
            await asyncio.sleep(0.05)
        assert resets and metrics.floor_gateway_resets._value.get() >= 1
        used = int(await redis.get(keys.events_bytes) or 0)
        assert used <= 1 << 20
        entries = await redis.xrange(keys.events)
        assert any(b"c" in fields for _, fields in entries)  # the reset entry got through
    finally:
        await gateway.stop()


async def _never() -> None:
    await asyncio.Event().wait()


async def test_floor_status_and_reset_for_operators(
    redis: Redis, keys: Keys, redis_server, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from server.cli import app

    await redis.xadd(keys.events, {"e": b"x", "n": 1})
    await redis.set(keys.events_bytes, 1)
    for name, value in {"LOKET_REDIS_URL": redis_server.url, "LOKET_REDIS_PREFIX": keys.prefix,
                        "LOKET_DATA_DIR": str(tmp_path)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    status = await asyncio.to_thread(runner.invoke, app, ["floor", "status"])
    assert status.exit_code == 0, status.output
    shown = json.loads(status.output)
    assert shown["events_waiting"] == 1 and shown["events_bytes"] == 1 and shown["leader"] is None
    refused = await asyncio.to_thread(runner.invoke, app, ["floor", "reset"])
    assert refused.exit_code == 1 and "--yes" in refused.output
    done = await asyncio.to_thread(runner.invoke, app, ["floor", "reset", "--yes"])
    assert done.exit_code == 0 and "2 keys deleted" in done.output
    assert await redis.exists(keys.events, keys.events_bytes) == 0


async def test_a_poison_event_is_set_aside_and_the_region_goes_on(
    redis: Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21, B5: the leader's core raises on one event, half-way through it. The next
    leader (here the same process, re-elected) rebuilds from the snapshot and log without
    a half-applied event, sets the event aside with an error and a metric, and goes on;
    every later event is applied. (Before, every leader replayed it and failed again.)"""
    original = FloorCore.handle

    def handle(self: FloorCore, event: Any, now: Any) -> Any:
        if isinstance(event, PeerOpened) and event.principal.subject == "poison":
            self._booths.records.clear()  # half a change...
            raise RuntimeError("a bug")  # ...then the failure
        return original(self, event, now)

    monkeypatch.setattr(FloorCore, "handle", handle)
    metrics = Metrics()
    floor = _cluster_floor(redis, keys, "solo", "s", metrics)
    await floor.start()
    try:
        for _ in range(100):
            if floor.runtime is not None:
                break
            await asyncio.sleep(0.05)

        def kiosk(name: str) -> Principal:
            return Principal(name, AccountRole.BOOTH, name, "jkt01")

        await floor.opened(kiosk("b1"), "c1", None)
        await floor.opened(kiosk("poison"), "c2", None)
        await floor.opened(kiosk("b2"), "c3", None)
        for _ in range(200):
            core = floor.core
            if core is not None and {"b1", "b2"} <= set(core.booths):
                break
            await asyncio.sleep(0.05)
        core = floor.core
        assert core is not None and set(core.booths) == {"b1", "b2"}
        assert await redis.xlen(keys.quarantine) == 1
        assert metrics.floor_quarantined._value.get() == 1
        pending: Any = await redis.xpending(keys.events, FLOOR_GROUP)
        assert pending["pending"] == 0
    finally:
        await floor.stop()
