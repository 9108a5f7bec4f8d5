"""ClusterFloor: the floor as every process of a cluster sees it.

Every process is a **gateway**: its sockets' events (opened, closed, each message) go, in
order, to the `<prefix>:floor:events` stream; what the floor decides for its peers comes
back through its inbox (router.py). One process at a time is also the **leader**
(leader.py): it consumes the stream with a consumer group, decides with the one FloorCore,
and commits. Any process can become leader: on taking the lease it loads the snapshot,
replays the applied log, claims what the previous leader left unacknowledged (XAUTOCLAIM)
and goes on; meanwhile gateways keep queueing events, so nothing a peer said is lost.

The leader also notices processes that died: their presence deadline passed (router.py),
so it closes their peers' sockets in the core, and those peers' grace periods start.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.adapters.redis.keys import FLOOR_GROUP, Keys
from server.adapters.redis.leader import LeaderRuntime, LeadershipLost, Lease, ensure_group
from server.adapters.redis.live_state import RedisLiveState
from server.adapters.redis.router import RedisRouter, cancel_in_turn
from server.adapters.redis.sealed import SealBroken, Sealer
from server.floor.core import FloorConfig, FloorCore
from server.floor.events import Event, PeerClosed, PeerOpened, Received, document_stored
from server.floor.snapshot import load_core, new_core, replay
from server.metrics import Metrics
from server.ports.live_state import LiveSession
from server.principal import AccountRole, Principal
from signaling.messages import Envelope

log = structlog.get_logger("loket.redis.floor")

MAX_EVENTS_PER_COMMIT = 200
FORWARD_QUEUE = 50_000  # events a gateway holds while Redis is away


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ClusterFloor:
    def __init__(
        self,
        config: FloorConfig,
        redis: Redis,
        keys: Keys,
        sealer: Sealer,
        router: RedisRouter,
        live: RedisLiveState,
        metrics: Metrics,
        *,
        process_id: str,
        lease_s: float,
        presence_ttl: float,
        snapshot_interval: float,
        runtime_kw: dict[str, Any],
    ) -> None:
        self._config = config
        self._redis = redis
        self._keys = keys
        self._sealer = sealer
        self._router = router
        self._live = live
        self._metrics = metrics
        self.process_id = process_id
        self._lease = Lease(redis, keys, process_id, lease_s)
        self._lease_s = lease_s
        self._presence_ttl = presence_ttl
        self._snapshot_interval = snapshot_interval
        self._runtime_kw = runtime_kw
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(FORWARD_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []
        self.runtime: LeaderRuntime | None = None  # while this process leads

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._forward_loop(), name="floor-forward"),
            asyncio.create_task(self._campaign(), name="floor-campaign"),
        ]

    async def stop(self) -> None:
        # Hand what this process's sockets said to the stream before leaving.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), 2.0)
        await cancel_in_turn(self._tasks)
        self._tasks = []
        with contextlib.suppress(RedisError, OSError):
            await self._lease.release()  # the next leader need not wait out the lease

    async def _drain(self) -> None:
        await self._queue.join()

    # --- the socket layer's calls (every process) ---------------------------------------

    def _connection(self, connection: str) -> str:
        # Connection ids name their process, so the leader can close a dead one's sockets.
        return f"{self.process_id}/{connection}"

    async def opened(self, principal: Principal, connection: str, resume: str | None) -> None:
        await self._forward(
            PeerOpened(principal, self._connection(connection), resume, secrets.token_urlsafe(24))
        )

    async def closed(self, principal: Principal, connection: str) -> None:
        await self._forward(PeerClosed(principal, self._connection(connection)))

    async def received(
        self,
        principal: Principal,
        connection: str,
        message: Envelope,
        received_at: float,
        raw: str | None = None,
    ) -> None:
        # Monotonic clocks differ between processes: carry the arrival as wall time.
        wall = time.time() - (time.monotonic() - received_at)
        await self._forward(Received(principal, self._connection(connection), message, wall, raw))

    async def document_stored(self, document: dict[str, Any]) -> None:
        await self._forward(document_stored(document))

    async def session_of_claim(self, claim_id: str) -> LiveSession | None:
        return await self._live.of_claim(claim_id)

    @property
    def core(self) -> FloorCore | None:
        return self.runtime.core if self.runtime is not None else None

    async def _forward(self, event: Event) -> None:
        # Queued, not sent inline: one socket's events keep their order, a Redis blip
        # delays them instead of failing the socket, and bursts go out in pipelines.
        await self._queue.put(self._sealer.seal(event))

    async def _forward_loop(self) -> None:
        backoff = 0.05
        pending: list[bytes] = []
        while True:
            if not pending:
                pending.append(await self._queue.get())
                while not self._queue.empty() and len(pending) < 500:
                    pending.append(self._queue.get_nowait())
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for blob in pending:
                        pipe.xadd(self._keys.events, {"e": blob})
                    await pipe.execute()
                for _ in pending:
                    self._queue.task_done()
                pending = []
                backoff = 0.05
            except (RedisError, OSError) as exc:
                # Kept and retried in order. (A reply lost after Redis applied the batch
                # means it is added twice: the core refuses or ignores a repeated event.)
                log.warning("floor_forward_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    # --- leadership ---------------------------------------------------------------------

    async def _campaign(self) -> None:
        period = self._lease_s / 3
        while True:
            try:
                if await self._lease.try_acquire():
                    await self._lead()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, LeadershipLost) as exc:
                log.warning("floor_leadership_ended", error=str(exc) or type(exc).__name__)
            except Exception:
                log.exception("floor_leader_failed")
            await asyncio.sleep(period * (0.5 + secrets.randbelow(1000) / 1000))

    async def _lead(self) -> None:
        log.info("floor_leader_elected", fence=self._lease.fence)
        runtime = await self._recover()
        self.runtime = runtime
        tasks = [
            asyncio.create_task(self._keep_lease(runtime), name="floor-lease"),
            asyncio.create_task(self._consume(runtime), name="floor-consume"),
            asyncio.create_task(self._snapshots(runtime), name="floor-snapshots"),
            asyncio.create_task(self._reap(runtime), name="floor-reap"),
            asyncio.create_task(runtime.failed.wait(), name="floor-failed"),
        ]
        try:
            await runtime.start()
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            runtime.failed.set()  # whatever ended this, the core decides no more
            await cancel_in_turn(tasks)
            await runtime.stop()
            self.runtime = None
            with contextlib.suppress(RedisError, OSError):
                await self._lease.release()
            log.warning("floor_leader_stepped_down", fence=self._lease.fence)

    async def _recover(self) -> LeaderRuntime:
        """The core as the last leader left it: snapshot, then the applied log after it."""
        k = self._keys
        blob: Any = await self._redis.get(k.snapshot)  # bytes (decode_responses off)
        if blob is None:
            core, log_id = new_core(self._config), "0-0"
        else:
            state = self._sealer.unseal(blob)
            core, log_id = load_core(state["core"], self._config), state["log_id"]
        replayed = 0
        cursor = log_id
        while True:
            entries: Any = await self._redis.xrange(k.log, min=f"({cursor}", count=500)
            if not entries:
                break
            for entry_id, fields in entries:
                replayed += replay(core, self._sealer.unseal(fields[b"b"]))
                cursor = _text(entry_id)
        runtime = LeaderRuntime(
            core,
            self._redis,
            k,
            self._lease,
            self._sealer,
            self._config,
            self._router,
            self._live,
            self._metrics,
            **self._runtime_kw,
        )
        runtime.last_log_id = cursor
        # A fresh snapshot at once: the ids this core hands out (and its seed) are durable
        # before the first decision, and the log replayed above can go.
        await runtime.write_snapshot()
        await ensure_group(self._redis, k)
        log.info(
            "floor_recovered",
            booths=len(core.booths),
            csos=len(core.csos),
            sessions=len(core.sessions),
            replayed_events=replayed,
        )
        return runtime

    async def _keep_lease(self, runtime: LeaderRuntime) -> None:
        period = self._lease_s / 3
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(period)
            try:
                if not await self._lease.renew():
                    raise LeadershipLost("the lease was taken over")
                last_ok = time.monotonic()
            except (RedisError, OSError) as exc:
                # Another process may take over once the lease lapses: stop before that.
                if time.monotonic() - last_ok > self._lease_s * 0.8:
                    raise LeadershipLost(f"could not renew the lease: {exc}") from exc

    async def _consume(self, runtime: LeaderRuntime) -> None:
        k = self._keys
        # What a previous leader read and never committed is ours now, oldest first.
        start = "0-0"
        while True:
            claimed: Any = await self._redis.xautoclaim(
                k.events, FLOOR_GROUP, self.process_id, min_idle_time=0, start_id=start, count=500
            )
            start = claimed[0]
            if _text(start) == "0-0":
                break
        position = "0"  # this consumer's pending entries first, then new ones (">")
        while True:
            reply: Any = await self._redis.xreadgroup(
                FLOOR_GROUP,
                self.process_id,
                {k.events: position},
                count=MAX_EVENTS_PER_COMMIT,
                block=1000,
            )
            entries = reply[0][1] if reply else []
            if position != ">":
                if not entries:
                    position = ">"
                    continue
                position = _text(entries[-1][0])
            if not entries:
                continue
            events: list[Event] = []
            for _entry_id, fields in entries:
                try:
                    events.append(self._sealer.unseal(fields[b"e"]))
                except (SealBroken, KeyError):
                    log.error("floor_event_unreadable", entry=_text(_entry_id))
            await runtime.handle_batch(events, [_text(e[0]) for e in entries])

    async def _snapshots(self, runtime: LeaderRuntime) -> None:
        while True:
            await asyncio.sleep(self._snapshot_interval)
            await runtime.write_snapshot()

    async def _reap(self, runtime: LeaderRuntime) -> None:
        """Close, in the core, the sockets of processes whose presence lapsed (or that
        Redis no longer knows at all)."""
        k = self._keys
        # A new leader first waits a full presence period: a process that was merely cut
        # off from Redis while it changed hands gets the chance to refresh.
        await asyncio.sleep(self._presence_ttl)
        while True:
            now_ms = int(time.time() * 1000)
            present: Any = await self._redis.zrangebyscore(k.procs, now_ms, "+inf")
            alive = {_text(p) for p in present}
            alive.add(self.process_id)
            closes = closes_for_gone(runtime.core, alive)
            if closes:
                log.warning("process_sockets_gone", sockets=len(closes))
                await runtime.handle_batch(closes, ())
            lapsed: Any = await self._redis.zrangebyscore(k.procs, "-inf", now_ms)
            for pid in [_text(p) for p in lapsed]:
                log.warning("process_gone", process=pid)
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zrem(k.procs, pid)
                    pipe.delete(k.inbox(pid))
                    await pipe.execute()
                await self._forget_peers_of(pid)
            await asyncio.sleep(self._presence_ttl / 3)

    async def _forget_peers_of(self, pid: str) -> None:
        k = self._keys
        stale = [
            peer async for peer, owner in self._redis.hscan_iter(k.peers) if _text(owner) == pid
        ]
        if stale:
            await self._redis.hdel(k.peers, *stale)


def process_of(connection: str) -> str:
    return connection.split("/", 1)[0]


def closes_for_gone(core: FloorCore, alive: set[str]) -> list[Event]:
    """PeerClosed for every socket the core holds on a process that is not alive."""
    events: list[Event] = []
    for booth in core.booths.values():
        if booth.connection and process_of(booth.connection) not in alive:
            events.append(PeerClosed(booth.principal, booth.connection))
    for cso in core.csos.values():
        if cso.connection and process_of(cso.connection) not in alive:
            events.append(PeerClosed(cso.principal, cso.connection))
    for supervisor_id, connection in core.supervisors.items():
        if process_of(connection) not in alive:
            who = Principal(supervisor_id, AccountRole.SUPERVISOR, supervisor_id, "")
            events.append(PeerClosed(who, connection))
    return events
