"""The floor's leader: the one process whose FloorCore decides, and its fenced commits.

Exactly one process leads at a time. It holds `<prefix>:floor:leader` (SET NX PX, renewed
every third of the lease) with a value carrying a **fencing token** (INCR of
`<prefix>:floor:fence`); every write the leader makes is a Lua script that first checks
the key still holds its value, so a leader that stalled past its lease (GC pause, network
partition) and was replaced cannot write a single decision afterwards.

One commit per batch of events, atomically:
- append the batch (each event with the `Now` it was applied at) to the applied log,
- XACK + XDEL the batch's entries from the event stream,
- route every `Send` to the inbox of the process holding the peer,
- PUBLISH what supervisors see,
- write the live sessions (LiveState) the batch changed.
So a decision is durable before anyone hears of it, and a check-in a leader took but never
committed is still pending in the stream for the next leader (XAUTOCLAIM). Every
`snapshot_interval` the core's state is written with the id of the last applied batch
(and the log trimmed up to it); a new leader loads the snapshot and replays the log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from server.adapters.redis.keys import FLOOR_GROUP, Keys
from server.adapters.redis.live_state import SESSION_LUA, session_args
from server.adapters.redis.router import INBOX_MAXLEN, ROUTE_LUA
from server.adapters.redis.sealed import Sealer
from server.floor import views
from server.floor.core import FloorCore
from server.floor.events import (
    DeleteSession,
    Effect,
    Event,
    Now,
    PersistSession,
    Publish,
    ResolveClaim,
    Send,
)
from server.floor.runtime import FloorRuntime
from server.floor.snapshot import dump_core
from server.ports.live_state import LiveSession
from server.ports.router import FLOOR_TOPIC
from signaling.codec import encode
from signaling.messages import FloorEvent
from signaling.session import SessionState

log = structlog.get_logger("loket.redis.leader")


class LeadershipLost(Exception):
    """The lease is someone else's (or Redis failed mid-commit): stop deciding now."""


_ACQUIRE = """
local token = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. ':' .. token
if redis.call('SET', KEYS[1], value, 'NX', 'PX', ARGV[2]) then return value end
return false
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: leader, log, events, peers, sessions, claims, last commit
# ARGV: value, prefix, group, applied blob, inbox maxlen, floor channel, commit id, then
#   counted lists: acks (id), sends (peer, frame, t), publishes (frame), puts (5), deletes
# The client retries a command whose connection broke; the commit id makes a retry of a
# commit that did run a no-op (a batch applied twice would replay twice).
_COMMIT = (
    SESSION_LUA
    + ROUTE_LUA
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED not the leader') end
local last = redis.call('HGET', KEYS[7], 'id')
if last == ARGV[7] then return redis.call('HGET', KEYS[7], 'log') end
local prefix, maxlen, channel = ARGV[2], ARGV[5], ARGV[6]
local logid = redis.call('XADD', KEYS[2], '*', 'b', ARGV[4])
redis.call('HSET', KEYS[7], 'id', ARGV[7], 'log', logid)
local i = 8
local n = tonumber(ARGV[i]); i = i + 1
if n > 0 then
  redis.call('XACK', KEYS[3], ARGV[3], unpack(ARGV, i, i + n - 1))
  redis.call('XDEL', KEYS[3], unpack(ARGV, i, i + n - 1))
end
i = i + n
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do
  route(KEYS[4], prefix, maxlen, ARGV[i], ARGV[i + 1], ARGV[i + 2]); i = i + 3
end
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do redis.call('PUBLISH', channel, ARGV[i]); i = i + 1 end
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do
  put_session(KEYS[5], KEYS[6], prefix, ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4])
  i = i + 5
end
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do delete_session(KEYS[5], KEYS[6], prefix, ARGV[i]); i = i + 1 end
return logid
"""
)

# KEYS: leader, snapshot, log, view, queue, csos
# ARGV: value, snapshot blob, last log id, view json, n queue entries (booth, score)...,
#       n cso entries (cso, json)...
_SNAPSHOT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED not the leader') end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] ~= '0-0' then redis.call('XTRIM', KEYS[3], 'MINID', ARGV[3]) end
redis.call('SET', KEYS[4], ARGV[4])
redis.call('DEL', KEYS[5], KEYS[6])
local i = 5
local n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do redis.call('ZADD', KEYS[5], ARGV[i + 1], ARGV[i]); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1]); i = i + 2 end
return 1
"""


class Lease:
    """The leader key, from one process's side."""

    def __init__(self, redis: Redis, keys: Keys, process_id: str, lease_s: float) -> None:
        self._redis = redis
        self._keys = keys
        self.process_id = process_id
        self.lease_ms = max(100, int(lease_s * 1000))
        self.value: str | None = None  # "<process id>:<fencing token>" while we hold it
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def fence(self) -> int:
        return int(self.value.rsplit(":", 1)[1]) if self.value else 0

    async def try_acquire(self) -> bool:
        k = self._keys
        got = await self._acquire(keys=[k.leader, k.fence], args=[self.process_id, self.lease_ms])
        self.value = (got.decode() if isinstance(got, bytes) else got) if got else None
        return self.value is not None

    async def renew(self) -> bool:
        if self.value is None:
            return False
        ok = await self._renew(keys=[self._keys.leader], args=[self.value, self.lease_ms])
        return bool(ok)

    async def release(self) -> None:
        if self.value is not None:
            await self._release(keys=[self._keys.leader], args=[self.value])
        self.value = None


async def current_leader(redis: Redis, keys: Keys) -> str | None:
    """The process id holding the lease now (tests, `loket` tools)."""
    value = await redis.get(keys.leader)
    if value is None:
        return None
    return (value.decode() if isinstance(value, bytes) else value).rsplit(":", 1)[0]


@dataclass
class Batch:
    """What one commit carries."""

    acks: list[str] = field(default_factory=list)
    applied: list[tuple[Event, Now]] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)
    publishes: list[str] = field(default_factory=list)
    puts: dict[str, LiveSession] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)

    def args(self) -> list[Any]:
        out: list[Any] = [len(self.acks), *self.acks, len(self.sends)]
        for send in self.sends:
            frame = send.raw if send.raw is not None else encode(send.message)
            out += [send.peer_id, frame, "" if send.received_at is None else repr(send.received_at)]
        out += [len(self.publishes), *self.publishes, len(self.puts)]
        for session in self.puts.values():
            out += session_args(session)
        out += [len(self.deletes), *self.deletes]
        return out


class LeaderRuntime(FloorRuntime):
    """FloorRuntime whose outward effects are committed to Redis in one fenced script per
    batch of events. Timers, claim lookups, audits and metrics run here as in one process.

    Its clock is wall time for both `Now` fields: deadlines must mean the same instant to
    the next leader, on another machine (whose monotonic clock starts elsewhere)."""

    def __init__(
        self,
        core: FloorCore,
        redis: Redis,
        keys: Keys,
        lease: Lease,
        sealer: Sealer,
        *args: Any,
        **kw: Any,
    ) -> None:
        kw.setdefault("clock", time.time)
        super().__init__(*args, core=core, **kw)
        self._redis = redis
        self._keys = keys
        self._lease = lease
        self._sealer = sealer
        self._commit_script = redis.register_script(_COMMIT)
        self._snapshot_script = redis.register_script(_SNAPSHOT)
        self._batch: Batch | None = None
        self.last_log_id = "0-0"
        self.failed = asyncio.Event()  # set when a commit failed: leadership is over
        self.commits = 0

    async def start(self) -> None:
        await super().start()
        # Arm the timer for the deadlines the rebuilt core already has, and look up again
        # the claims of check-ins the previous leader was resolving when it went away.
        self._timer_at = self.core.next_deadline()
        self._wake.set()
        for rec in list(self.core.booths.values()):
            if rec.pending is not None and rec.connected:
                self._spawn(self._resolve(ResolveClaim(rec.principal, rec.pending)), "resolve")
        self._dirty.set()

    async def handle(self, event: Event) -> None:
        await self.handle_batch([event], ())

    async def handle_batch(self, events: Sequence[Event], acks: Sequence[str]) -> None:
        async with self._lock:
            if self.failed.is_set():
                raise LeadershipLost("this process no longer leads the floor")
            batch = self._batch = Batch(acks=list(acks))
            try:
                for event in events:
                    now = Now(self._clock(), self._wall())
                    batch.applied.append((event, now))
                    await self._execute(self.core.handle(event, now))
                await self._commit(batch)
            finally:
                self._batch = None

    async def _execute(self, effects: list[Effect]) -> None:
        batch = self._batch
        assert batch is not None, "effects only come from handle_batch"
        local: list[Effect] = []
        for effect in effects:
            match effect:
                case Send():
                    batch.sends.append(effect)
                case Publish() if not isinstance(effect.message, FloorEvent):
                    batch.publishes.append(encode(effect.message))
                case PersistSession():
                    batch.puts[effect.session.session_id] = effect.session
                case DeleteSession():
                    batch.puts.pop(effect.session_id, None)
                    batch.deletes.append(effect.session_id)
                case _:
                    local.append(effect)
        if local:
            await super()._execute(local)

    async def _commit(self, batch: Batch) -> None:
        if not batch.applied and not batch.acks:
            return
        k = self._keys
        try:
            log_id = await self._commit_script(
                keys=[k.leader, k.log, k.events, k.peers, k.sessions, k.claims, k.last_commit],
                args=[
                    self._lease.value or "",
                    k.prefix,
                    FLOOR_GROUP,
                    self._sealer.seal(batch.applied),
                    INBOX_MAXLEN,
                    k.channel(FLOOR_TOPIC),
                    f"{self._lease.value}:{self.commits}",
                    *batch.args(),
                ],
            )
        except (RedisError, OSError) as exc:
            # The core has moved past what Redis holds: this core must not decide again.
            # The batch stays pending in the stream; the next leader replays and redoes it.
            self.failed.set()
            log.error("floor_commit_failed", error=str(exc) or type(exc).__name__)
            raise LeadershipLost(str(exc)) from exc
        self.last_log_id = log_id.decode() if isinstance(log_id, bytes) else log_id
        self.commits += 1

    async def write_snapshot(self) -> None:
        """The core's state and the floor projections, fenced; trims the applied log."""
        async with self._lock:
            if self.failed.is_set():
                raise LeadershipLost("this process no longer leads the floor")
            blob = self._sealer.seal({"core": dump_core(self.core), "log_id": self.last_log_id})
            view = views.floor_view(self.core)
            queue: list[Any] = []
            for rec in self.core.booths.values():
                if rec.state is SessionState.QUEUED:
                    queue += [rec.booth_id, repr(rec.checked_in_at)]
            csos: list[Any] = []
            for cso in view.csos:
                csos += [cso.cso_id, cso.model_dump_json()]
            k = self._keys
            try:
                await self._snapshot_script(
                    keys=[k.leader, k.snapshot, k.log, k.view, k.queue, k.csos],
                    args=[
                        self._lease.value or "",
                        blob,
                        self.last_log_id,
                        view.model_dump_json(),
                        len(queue) // 2,
                        *queue,
                        len(csos) // 2,
                        *csos,
                    ],
                )
            except (RedisError, OSError) as exc:
                self.failed.set()
                log.error("floor_snapshot_failed", error=str(exc) or type(exc).__name__)
                raise LeadershipLost(str(exc)) from exc


async def ensure_group(redis: Redis, keys: Keys) -> None:
    try:
        # From the stream's start: events gateways added before any leader existed count.
        await redis.xgroup_create(keys.events, FLOOR_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
