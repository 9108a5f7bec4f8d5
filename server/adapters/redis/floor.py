"""ClusterFloor: the floor as every process of a cluster sees it.

Every process is a **gateway**: its sockets' events (opened, closed, each message) go, in
order, to the `<prefix>:floor:events` stream; what the floor decides for its peers comes
back through its inbox (router.py). One process at a time is also the **leader**
(leader.py): it consumes the stream with a consumer group, decides with the one FloorCore,
and commits. Any process can become leader: on taking the lease it loads the snapshot,
replays the applied log, claims what the previous leader left unacknowledged (XAUTOCLAIM)
and goes on; meanwhile gateways keep queueing events, so nothing a peer said is lost.

Safe by construction, not by timing:
- every read of the stream that hands an entry to a consumer (XREADGROUP, XAUTOCLAIM) is a
  Lua script that first checks the lease is this process's, and the read loop also checks
  its own clock (`Lease.surely_ours`) before each read: a leader paused past its lease
  wakes, finds it has lost, and reads nothing; what it read before, the next leader
  claims at once and again every `lease` seconds while it leads;
- the reaper of dead processes decides who is alive and removes the lapsed in one fenced
  script, on Redis's clock (`TIME`), never a gateway's or the leader's;
- the stream has a budget in bytes (`LOKET_FLOOR_EVENTS_BUDGET`): while no leader drains
  it, a gateway that cannot add its sockets' events does not grow it without bound; it
  resets instead (closes its sockets, 1012, after telling the floor they are gone), and
  its peers reconnect and resume from `welcome` once the floor moves again.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import secrets
import time
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.adapters.redis.keys import FLOOR_GROUP, Keys
from server.adapters.redis.leader import (
    FENCE_LUA,
    QUARANTINE_MAXLEN,
    FloorClock,
    LeaderRuntime,
    LeadershipLost,
    Lease,
    ensure_group,
)
from server.adapters.redis.live_state import RedisLiveState
from server.adapters.redis.router import RedisRouter, cancel_in_turn
from server.adapters.redis.sealed import SealBroken, Sealer
from server.floor.core import FloorConfig, FloorCore
from server.floor.events import (
    DisplayOpened,
    Event,
    PeerClosed,
    PeerOpened,
    Received,
    VerificationReady,
    capture_undeliverable,
    document_stored,
)
from server.floor.snapshot import UnknownFormat, load_core, new_core, replay
from server.floor.wire import dump_event, load_applied, load_event
from server.metrics import Metrics
from server.ports.live_state import LiveSession
from server.principal import Principal
from signaling.messages import Envelope

log = structlog.get_logger("loket.redis.floor")

MAX_EVENTS_PER_COMMIT = 200
FORWARD_BUDGET = 64 * 1024 * 1024  # bytes a gateway holds while Redis is away
REFUSED_BACKOFF = 30.0  # seconds a process that cannot read the floor waits to campaign

# Add a gateway's events to the stream within its byte budget; a control entry (`reset`)
# is always taken. Returns how many were added, in order (the rest are refused).
# KEYS: events, events' bytes; ARGV: budget, then (blob, n) pairs
_FORWARD = """
local budget = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local added = 0
for i = 2, #ARGV, 2 do
  local n = tonumber(ARGV[i + 1])
  if n > 0 and used + n > budget then break end
  if n > 0 then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i], 'n', n)
    used = used + n
  else
    redis.call('XADD', KEYS[1], '*', 'c', ARGV[i])
  end
  added = added + 1
end
redis.call('SET', KEYS[2], used)
return added
"""

# Hand entries to the leader, fenced. KEYS: leader, events; ARGV: value, consumer, count,
# position ("0": this consumer's own pending entries; ">": new ones). Also returns the
# stream's last id, to wait for what comes after it without claiming anything.
_READ = (
    FENCE_LUA
    + """
local err = fenced(KEYS[1], ARGV[1]); if err then return err end
local got = redis.call('XREADGROUP', 'GROUP', ARGV[4], ARGV[2], 'COUNT', ARGV[3],
                       'STREAMS', KEYS[2], ARGV[5])
local info = redis.call('XINFO', 'STREAM', KEYS[2])
local last = '0-0'
for i = 1, #info, 2 do if info[i] == 'last-generated-id' then last = info[i + 1] end end
return {got, last}
"""
)
# Claim entries another consumer (a leader before us) read and never committed, fenced.
# KEYS: leader, events; ARGV: value, group, consumer, min idle ms, start, count
_CLAIM = (
    FENCE_LUA
    + """
local err = fenced(KEYS[1], ARGV[1]); if err then return err end
return redis.call('XAUTOCLAIM', KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5], 'COUNT', ARGV[6])
"""
)
# Set an entry aside, fenced. KEYS: leader, events, quarantine, events' bytes, poison
# ARGV: value, group, id, fields as (name, value)... , bytes, reason
_QUARANTINE = (
    FENCE_LUA
    + """
local err = fenced(KEYS[1], ARGV[1]); if err then return err end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'id', ARGV[3], 'e', ARGV[5],
           'why', ARGV[7])
redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
redis.call('HDEL', KEYS[5], ARGV[3])
if redis.call('DECRBY', KEYS[4], tonumber(ARGV[6])) < 0 then redis.call('SET', KEYS[4], 0) end
return 1
"""
)
# Who is alive, on Redis's clock, and forget the lapsed in the same breath, fenced.
# KEYS: leader, procs; ARGV: value, prefix
_REAP = (
    FENCE_LUA
    + """
local err = fenced(KEYS[1], ARGV[1]); if err then return err end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
for _, pid in ipairs(lapsed) do
  redis.call('ZREM', KEYS[2], pid)
  redis.call('DEL', ARGV[2] .. ':inbox:' .. pid)
end
return {alive, lapsed}
"""
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(flat: Any) -> dict[bytes, bytes]:
    """A stream entry's fields as a script returns them (a flat list) or redis-py does."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))


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
        events_budget: int,
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
        self._events_budget = events_budget
        self._runtime_kw = runtime_kw
        self._queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
        self._queued_bytes = 0
        self._forward_script = redis.register_script(_FORWARD)
        self._read_script = redis.register_script(_READ)
        self._claim_script = redis.register_script(_CLAIM)
        self._quarantine_script = redis.register_script(_QUARANTINE)
        self._reap_script = redis.register_script(_REAP)
        self._tasks: list[asyncio.Task[None]] = []
        self._campaign_after = 0.0  # monotonic: no campaigning before (unreadable floor)
        self.runtime: LeaderRuntime | None = None  # while this process leads
        self.on_reset: Callable[[], None] | None = None  # closes this process's sockets

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._forward_loop(), name="floor-forward"),
            asyncio.create_task(self._campaign(), name="floor-campaign"),
        ]

    async def stop(self) -> None:
        # Hand what this process's sockets said to the stream before leaving.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), 2.0)
        await cancel_in_turn(self._tasks)
        self._tasks = []
        with contextlib.suppress(RedisError, OSError):
            await self._lease.release()  # the next leader need not wait out the lease

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

    async def capture_undeliverable(self, report: dict[str, Any]) -> None:
        await self._forward(capture_undeliverable(report))

    async def verification_ready(self, claim_id: str, document_id: str, what: str) -> None:
        await self._forward(VerificationReady(claim_id, document_id, what))

    async def display_opened(self, branch: str) -> None:
        await self._forward(DisplayOpened(branch))

    async def session_of_claim(self, claim_id: str) -> LiveSession | None:
        return await self._live.of_claim(claim_id)

    @property
    def core(self) -> FloorCore | None:
        return self.runtime.core if self.runtime is not None else None

    async def _forward(self, event: Event) -> None:
        # Queued, not sent inline: one socket's events keep their order, a Redis blip
        # delays them instead of failing the socket, and bursts go out in pipelines.
        blob = self._sealer.seal(dump_event(event))
        if self._queued_bytes + len(blob) > FORWARD_BUDGET:
            self._reset("this process holds too much its sockets said while Redis is away")
            return
        self._queued_bytes += len(blob)
        self._queue.put_nowait((blob, len(blob)))

    def _reset(self, why: str) -> None:
        """This gateway cannot hand its sockets' events on: forget what waits, tell the
        floor all its sockets are gone (a control entry, always taken) and close them, so
        their peers reconnect and resume from a floor that knows where they are."""
        log.error("floor_gateway_reset", reason=why)
        self._metrics.floor_gateway_resets.inc()
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
        self._queued_bytes = 0
        self._queue.put_nowait((b"reset:" + self.process_id.encode(), 0))
        if self.on_reset is not None:
            self.on_reset()

    async def _forward_loop(self) -> None:
        backoff = 0.05
        pending: list[tuple[bytes, int]] = []
        k = self._keys
        while True:
            if not pending:
                pending.append(await self._queue.get())
                while not self._queue.empty() and len(pending) < 500:
                    pending.append(self._queue.get_nowait())
            try:
                args: list[Any] = [self._events_budget]
                for blob, n in pending:
                    args += [blob, n]
                added = int(await self._forward_script(keys=[k.events, k.events_bytes], args=args))
            except (RedisError, OSError) as exc:
                # Kept and retried in order. (A reply lost after Redis applied the batch
                # means it is added twice: the core refuses or ignores a repeated event.)
                log.warning("floor_forward_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            for _, n in pending[:added]:
                self._queued_bytes -= n
                self._queue.task_done()
            refused = len(pending) - added
            for _ in range(refused):
                self._queue.task_done()
            pending = []
            if refused:
                self._reset("the floor's event stream is over its budget (no leader for long?)")

    # --- leadership ---------------------------------------------------------------------

    async def _campaign(self) -> None:
        period = self._lease_s / 3
        while True:
            try:
                if time.monotonic() >= self._campaign_after and await self._lease.try_acquire():
                    await self._lead()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, LeadershipLost) as exc:
                log.warning("floor_leadership_ended", error=str(exc) or type(exc).__name__)
            except (UnknownFormat, SealBroken) as exc:
                # Written by a newer version (or with a secret this process lacks): leave
                # the floor to a process that reads it.
                self._metrics.floor_format_refused.inc()
                log.error("floor_unreadable_not_leading", error=str(exc))
                self._campaign_after = time.monotonic() + REFUSED_BACKOFF
                with contextlib.suppress(RedisError, OSError):
                    await self._lease.release()
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
            try:
                await runtime.stop()
            except Exception:
                log.exception("floor_runtime_stop_failed")
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
            state = pickle.loads(self._sealer.unseal(blob))  # authenticated above
            core, log_id = load_core(state["core"], self._config), state["log_id"]
        replayed = 0
        cursor = log_id
        while True:
            entries: Any = await self._redis.xrange(k.log, min=f"({cursor}", count=500)
            if not entries:
                break
            for entry_id, fields in entries:
                replayed += replay(core, load_applied(self._sealer.unseal(fields[b"b"])))
                cursor = _text(entry_id)
        last: Any = await self._redis.hget(k.last_commit, "at")
        now_s, now_us = await self._redis.time()
        gap = (now_s + now_us / 1e6) - float(last) if last else 0.0
        runtime = LeaderRuntime(
            core,
            self._redis,
            k,
            self._lease,
            self._sealer,
            FloorClock(core.now.mono, gap),
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
            leaderless_s=round(gap, 3),
        )
        return runtime

    async def _keep_lease(self, runtime: LeaderRuntime) -> None:
        period = self._lease_s / 3
        while True:
            await asyncio.sleep(period)
            try:
                if not await self._lease.renew():
                    raise LeadershipLost("the lease was taken over")
            except (RedisError, OSError) as exc:
                # Another process may take over once the lease lapses: stop before that.
                if not self._lease.surely_ours():
                    raise LeadershipLost(f"could not renew the lease: {exc}") from exc

    def _check_lease(self) -> None:
        if not self._lease.surely_ours():
            raise LeadershipLost("the lease may have lapsed (this process was paused?)")

    async def _claim_idle(self, min_idle_ms: int) -> int:
        """Take over entries others read and never committed (fenced)."""
        k = self._keys
        start, claimed = "0-0", 0
        while True:
            self._check_lease()
            reply: Any = await self._claim_script(
                keys=[k.leader, k.events],
                args=[
                    self._lease.value or "",
                    FLOOR_GROUP,
                    self.process_id,
                    min_idle_ms,
                    start,
                    500,
                ],
            )
            start = _text(reply[0])
            claimed += len(reply[1])
            if start == "0-0":
                return claimed

    async def _consume(self, runtime: LeaderRuntime) -> None:
        k = self._keys
        # What a previous leader read and never committed is ours now, oldest first.
        await self._claim_idle(0)
        poison = {_text(e) for e in await self._redis.hkeys(k.poison)}
        position = "0"  # this consumer's pending entries first, then new ones (">")
        next_claim = time.monotonic() + self._lease_s
        while True:
            self._check_lease()
            reply: Any = await self._read_script(
                keys=[k.leader, k.events],
                args=[
                    self._lease.value or "",
                    self.process_id,
                    MAX_EVENTS_PER_COMMIT,
                    FLOOR_GROUP,
                    position,
                ],
            )
            got, last = reply
            entries = got[0][1] if got else []
            if position == "0" and not entries:
                position = ">"
                continue
            if not entries:
                if time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + self._lease_s
                    if await self._claim_idle(int(self._lease_s * 2000)):
                        position = "0"
                        continue
                # Wait for what comes after the stream's last id, claiming nothing.
                await self._redis.xread({k.events: _text(last)}, count=1, block=1000)
                continue
            await self._apply_entries(runtime, entries, poison)

    async def _apply_entries(
        self, runtime: LeaderRuntime, entries: list[Any], poison: set[str]
    ) -> None:
        batch: list[tuple[str | None, Event]] = []
        acks: list[str] = []
        acked_bytes = 0
        for raw_id, flat in entries:
            entry_id = _text(raw_id)
            if flat is None:  # deleted while pending: nothing to apply
                acks.append(entry_id)
                continue
            fields = _fields(flat)
            n = int(fields.get(b"n", b"0") or 0)
            if b"c" in fields:  # control: a gateway reset; all its sockets are gone
                pid = _text(fields[b"c"]).removeprefix("reset:")
                batch += [(None, e) for e in closes_for_gone(runtime.core, None, pid)]
                acks.append(entry_id)
                continue
            if entry_id in poison:
                await self._quarantine(entry_id, fields, n, "the floor core failed on it")
                continue
            try:
                event = load_event(self._sealer.unseal(fields[b"e"]))
            except UnknownFormat:
                raise  # a newer version wrote it: leave the floor to one that reads it
            except (SealBroken, KeyError, ValueError) as exc:
                await self._quarantine(entry_id, fields, n, f"unreadable: {exc}")
                continue
            batch.append((entry_id, event))
            acks.append(entry_id)
            acked_bytes += n
        if batch or acks:
            await runtime.handle_batch(batch, acks, acked_bytes)

    async def _quarantine(
        self, entry_id: str, fields: dict[bytes, bytes], n: int, why: str
    ) -> None:
        k = self._keys
        self._metrics.floor_quarantined.inc()
        log.error("floor_event_quarantined", entry=entry_id, reason=why)
        await self._quarantine_script(
            keys=[k.leader, k.events, k.quarantine, k.events_bytes, k.poison],
            args=[
                self._lease.value or "",
                FLOOR_GROUP,
                entry_id,
                QUARANTINE_MAXLEN,
                fields.get(b"e", b""),
                n,
                why,
            ],
        )

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
            self._check_lease()
            alive_raw, lapsed_raw = await self._reap_script(
                keys=[k.leader, k.procs], args=[self._lease.value or "", k.prefix]
            )
            alive = {_text(p) for p in alive_raw} | {self.process_id}
            closes = closes_for_gone(runtime.core, alive)
            if closes:
                log.warning("process_sockets_gone", sockets=len(closes))
                await runtime.handle_batch([(None, e) for e in closes])
            for pid in (_text(p) for p in lapsed_raw):
                log.warning("process_gone", process=pid)
                await self._forget_peers_of(pid)
            await asyncio.sleep(self._presence_ttl / 3)

    async def _forget_peers_of(self, pid: str) -> None:
        k = self._keys
        stale = [
            peer
            async for peer, owner in self._redis.hscan_iter(k.peers)
            if _text(owner).split("|", 1)[0] == pid
        ]
        if stale:
            await self._redis.hdel(k.peers, *stale)


def process_of(connection: str) -> str:
    return connection.split("/", 1)[0]


def closes_for_gone(
    core: FloorCore, alive: set[str] | None, gone: str | None = None
) -> list[Event]:
    """PeerClosed for every socket the core holds on a process that is not alive (or, with
    `gone`, on that one process)."""

    def dead(connection: str) -> bool:
        pid = process_of(connection)
        return pid == gone if gone is not None else alive is not None and pid not in alive

    events: list[Event] = []
    for booth in core.booths.values():
        if booth.connection and dead(booth.connection):
            events.append(PeerClosed(booth.principal, booth.connection))
    for cso in core.csos.values():
        if cso.connection and dead(cso.connection):
            events.append(PeerClosed(cso.principal, cso.connection))
    for sup in core.supervisors.values():
        if dead(sup.connection):
            events.append(PeerClosed(sup.principal, sup.connection))
    return events
