"""The floor's leader: the one process whose FloorCore decides, and its fenced commits.

Exactly one process leads at a time. It holds `<prefix>:floor:leader` (SET NX PX, renewed
every third of the lease) with a value carrying a **fencing token** (INCR of
`<prefix>:floor:fence`); every write the leader makes is a Lua script that first checks
the key still holds its value, so a leader that stalled past its lease (GC pause, SIGSTOP,
network partition) and was replaced cannot write a single decision afterwards. Reading
the event stream is fenced the same way (server/adapters/redis/floor.py): a deposed leader
cannot even claim an event.

One commit per batch of events, atomically, carrying the decisions' effects by kind
(server/floor/effects.py):
- append the batch (each event with the instant it was applied at, versioned JSON:
  server/floor/wire.py) to the applied log,
- XACK + XDEL the batch's entries from the event stream (and give back their bytes to the
  stream's budget),
- committed effects: route every `Send` to the inbox of the process holding the peer,
  PUBLISH what supervisors see, write the live sessions (LiveState) the batch changed,
- recorded effects: append the audit entries to the floor's outbox stream, which the
  leader drains into the records database after the commit (server/floor/outbox.py).
Requested effects (claim lookups) start, and floor events reach supervisors, only after
the commit succeeded: a decision that never commits has no effect anywhere. Every
`snapshot_interval` the core's state is written with the id of the last applied batch
(and the log trimmed up to it); a new leader loads the snapshot and replays the log.

A poison event (the core raises on it: a bug) is marked in `<prefix>:floor:poison` and the
leader steps down; the next leader rebuilds the core from the snapshot and log (so no
half-applied event survives) and sets the event aside in `<prefix>:floor:quarantine` with
an error log and a metric instead of applying it again: one bad event cannot stall the
region.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from server.adapters.redis.keys import FLOOR_GROUP, Keys
from server.adapters.redis.live_state import SESSION_LUA, session_args
from server.adapters.redis.router import INBOX_MAXLEN, ROUTE_LUA
from server.adapters.redis.sealed import Sealer
from server.floor import views
from server.floor.core import FloorCore
from server.floor.effects import (
    Audit,
    Committed,
    DeleteSession,
    Effect,
    PersistSession,
    Publish,
    RecordedEffect,
    ResolveClaim,
    ResolveTicket,
    Send,
    TicketEvent,
)
from server.floor.events import Event, Now
from server.floor.outbox import OutboxDrainer
from server.floor.runtime import FloorRuntime, FloorStepDown
from server.floor.snapshot import dump_core
from server.floor.wire import dump_applied, dump_audit, load_audit
from server.ports.live_state import LiveSession
from signaling.codec import encode
from signaling.messages import FloorEvent
from signaling.session import SessionState

log = structlog.get_logger("loket.redis.leader")

QUARANTINE_MAXLEN = 1_000


class LeadershipLost(FloorStepDown):
    """The lease is someone else's (or Redis failed mid-commit): stop deciding now."""


FENCE_LUA = """
local function fenced(leader, value)
  if redis.call('GET', leader) ~= value then
    return redis.error_reply('FENCED not the leader')
  end
  return false
end
"""

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

# KEYS: leader, log, events, peers, sessions, claims, last commit, outbox, events' bytes
# ARGV: value, prefix, group, applied blob, inbox maxlen, commit id, acked bytes, then
#   counted lists: acks (id), sends (address, frame, t, connection), publishes (channel, frame),
#   puts (5), deletes, outbox entries (blob)
# The client retries a command whose connection broke; the commit id makes a retry of a
# commit that did run a no-op (a batch applied twice would replay twice).
_COMMIT = (
    FENCE_LUA
    + SESSION_LUA
    + ROUTE_LUA
    + """
local err = fenced(KEYS[1], ARGV[1]); if err then return err end
local last = redis.call('HGET', KEYS[7], 'id')
if last == ARGV[6] then return redis.call('HGET', KEYS[7], 'log') end
local prefix, maxlen = ARGV[2], ARGV[5]
local logid = redis.call('XADD', KEYS[2], '*', 'b', ARGV[4])
local t = redis.call('TIME')
local at = t[1] .. '.' .. string.format('%06d', t[2])
redis.call('HSET', KEYS[7], 'id', ARGV[6], 'log', logid, 'at', at)
local acked = tonumber(ARGV[7])
if acked > 0 then
  if redis.call('DECRBY', KEYS[9], acked) < 0 then redis.call('SET', KEYS[9], 0) end
end
local i = 8
local n = tonumber(ARGV[i]); i = i + 1
if n > 0 then
  redis.call('XACK', KEYS[3], ARGV[3], unpack(ARGV, i, i + n - 1))
  redis.call('XDEL', KEYS[3], unpack(ARGV, i, i + n - 1))
end
i = i + n
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do
  route_to(prefix, maxlen, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]); i = i + 4
end
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do
  put_session(KEYS[5], KEYS[6], prefix, ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4])
  i = i + 5
end
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do delete_session(KEYS[5], KEYS[6], prefix, ARGV[i]); i = i + 1 end
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do redis.call('XADD', KEYS[8], '*', 'a', ARGV[i]); i = i + 1 end
return logid
"""
)

# KEYS: leader, snapshot, log, view, queue, csos
# ARGV: value, snapshot blob, last log id, view json, n queue entries (booth, score)...,
#       n cso entries (cso, json)...
_SNAPSHOT = (
    FENCE_LUA
    + """
local err = fenced(KEYS[1], ARGV[1]); if err then return err end
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
)

# A poison event: counted, fenced (a deposed leader's verdict does not count).
# KEYS: leader, poison; ARGV: value, entry id
_POISON = (
    FENCE_LUA
    + """
local err = fenced(KEYS[1], ARGV[1]); if err then return err end
return redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
"""
)

# Outbox entries written to the records database: forget them (fenced).
# KEYS: leader, outbox; ARGV: value, ids...
_OUTBOX_DONE = (
    FENCE_LUA
    + """
local err = fenced(KEYS[1], ARGV[1]); if err then return err end
return redis.call('XDEL', KEYS[2], unpack(ARGV, 2))
"""
)
# KEYS: leader, outbox, outbox quarantine; ARGV: value, id, blob, error
_OUTBOX_ASIDE = (
    FENCE_LUA
    + """
local err = fenced(KEYS[1], ARGV[1]); if err then return err end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 1000, '*', 'a', ARGV[3], 'error', ARGV[4])
return redis.call('XDEL', KEYS[2], ARGV[2])
"""
)


class Lease:
    """The leader key, from one process's side."""

    def __init__(self, redis: Redis, keys: Keys, process_id: str, lease_s: float) -> None:
        self._redis = redis
        self._keys = keys
        self.process_id = process_id
        self.lease_ms = max(100, int(lease_s * 1000))
        self.value: str | None = None  # "<process id>:<fencing token>" while we hold it
        self.renewed_at = 0.0  # monotonic time the lease was last taken or renewed
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def fence(self) -> int:
        return int(self.value.rsplit(":", 1)[1]) if self.value else 0

    def surely_ours(self) -> bool:
        """Whether the lease cannot have lapsed yet by this process's own clock (a paused
        process wakes to find this false before it reads or writes anything)."""
        elapsed = time.monotonic() - self.renewed_at
        return self.value is not None and elapsed < self.lease_ms / 1000 * 0.8

    async def try_acquire(self) -> bool:
        k = self._keys
        asked = time.monotonic()
        got = await self._acquire(keys=[k.leader, k.fence], args=[self.process_id, self.lease_ms])
        self.value = (got.decode() if isinstance(got, bytes) else got) if got else None
        if self.value is not None:
            self.renewed_at = asked
        return self.value is not None

    async def renew(self) -> bool:
        if self.value is None:
            return False
        asked = time.monotonic()
        ok = await self._renew(keys=[self._keys.leader], args=[self.value, self.lease_ms])
        if ok:
            self.renewed_at = asked
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


class FloorClock:
    """The floor's monotonic clock in a cluster, carried from one leader to the next.

    Deadlines (grace periods, offers) are instants on this clock, and the next leader,
    on another host whose monotonic clock starts elsewhere and whose wall clock may be
    skewed or stepped, must read them the same way. A new leader starts it where the last
    one's decisions left it, plus the time the floor had no leader as Redis's own clock
    measured it (clamped: a step of Redis's clock cannot move a deadline by more than
    `max_gap`), and then runs it on its own monotonic clock."""

    def __init__(self, last: float, gap: float, max_gap: float = 60.0) -> None:
        self._base = last + min(max(gap, 0.0), max_gap)
        self._started = time.monotonic()

    def __call__(self) -> float:
        return self._base + (time.monotonic() - self._started)


@dataclass
class Batch:
    """What one commit carries."""

    acks: list[str] = field(default_factory=list)
    acked_bytes: int = 0
    applied: list[tuple[Event, Now]] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)
    publishes: list[tuple[str, str]] = field(default_factory=list)  # (channel, frame)
    events: list[Publish] = field(default_factory=list)  # floor events, told after commit
    puts: dict[str, LiveSession] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    audits: list[RecordedEffect] = field(default_factory=list)  # and ticket events
    requests: list[ResolveClaim | ResolveTicket] = field(default_factory=list)

    def args(self, sealer: Sealer) -> list[Any]:
        out: list[Any] = [len(self.acks), *self.acks, len(self.sends)]
        for send in self.sends:
            frame = send.raw if send.raw is not None else encode(send.message)
            at = "" if send.received_at is None else repr(send.received_at)
            out += [send.to.address, frame, at, send.connection or ""]
        out.append(len(self.publishes))
        for channel, frame in self.publishes:
            out += [channel, frame]
        out.append(len(self.puts))
        for session in self.puts.values():
            out += session_args(session)
        out += [len(self.deletes), *self.deletes, len(self.audits)]
        out += [sealer.seal(dump_audit(a)) for a in self.audits]
        return out


class RedisOutbox:
    """The leader's outbox source: the audit entries its commits appended."""

    def __init__(self, redis: Redis, keys: Keys, lease: Lease, sealer: Sealer) -> None:
        self._redis = redis
        self._keys = keys
        self._lease = lease
        self._sealer = sealer
        self._done = redis.register_script(_OUTBOX_DONE)
        self._aside = redis.register_script(_OUTBOX_ASIDE)
        self._blobs: dict[str, bytes] = {}

    async def peek(self, limit: int) -> Sequence[tuple[str, RecordedEffect]]:
        entries: Any = await self._redis.xrange(self._keys.outbox, count=limit)
        out = []
        for entry_id, fields in entries:
            eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            blob = fields[b"a"]
            self._blobs[eid] = blob
            out.append((eid, load_audit(self._sealer.unseal(blob))))
        return out

    async def done(self, ids: Sequence[str]) -> None:
        if ids:
            k = self._keys
            await self._done(keys=[k.leader, k.outbox], args=[self._lease.value or "", *ids])
            for eid in ids:
                self._blobs.pop(eid, None)

    async def set_aside(self, entry_id: str, entry: RecordedEffect, error: str) -> None:
        k = self._keys
        blob = self._blobs.pop(entry_id, b"")
        await self._aside(
            keys=[k.leader, k.outbox, k.outbox_quarantine],
            args=[self._lease.value or "", entry_id, blob, error[:500]],
        )


class LeaderRuntime(FloorRuntime):
    """FloorRuntime whose effects are committed to Redis in one fenced script per batch of
    events. Timers, claim lookups and metrics run here as in one process."""

    def __init__(
        self,
        core: FloorCore,
        redis: Redis,
        keys: Keys,
        lease: Lease,
        sealer: Sealer,
        clock: FloorClock,
        *args: Any,
        **kw: Any,
    ) -> None:
        kw["clock"] = clock
        super().__init__(*args, core=core, **kw)
        self._redis = redis
        self._keys = keys
        self._lease = lease
        self._sealer = sealer
        self._commit_script = redis.register_script(_COMMIT)
        self._snapshot_script = redis.register_script(_SNAPSHOT)
        self._poison_script = redis.register_script(_POISON)
        self._batch: Batch | None = None
        self.last_log_id = "0-0"
        self.failed = asyncio.Event()  # set when a commit failed: leadership is over
        self.commits = 0
        # The audit outbox lives in Redis here, committed with each batch.
        self.redis_outbox = RedisOutbox(redis, keys, lease, sealer)
        self._drainer = OutboxDrainer(
            self.redis_outbox,
            self._write_one,
            on_set_aside=self._metrics.floor_outbox_set_aside.inc,
            pending=self._metrics.floor_outbox_pending.set,
        )

    async def start(self) -> None:
        await super().start()
        # Arm the timer for the deadlines the rebuilt core already has, and look up again
        # the claims of check-ins the previous leader was resolving when it went away.
        self._timer_at = self.core.next_deadline()
        self._wake.set()
        for rec in list(self.core.booths.values()):
            if rec.pending is not None and rec.connected:
                self._spawn(self._resolve(ResolveClaim(rec.principal, rec.pending)), "resolve")
        for asked in list(self.core.lobby.pending.values()):  # tickets asked at a desk
            ask = ResolveTicket(asked.issuer, asked.branch, asked.request)
            self._spawn(self._resolve_ticket_claim(ask), "resolve-ticket")
        self._drainer.wake()  # what the last leader decided and did not write yet
        self._dirty.set()

    async def stop(self) -> None:
        self.failed.set()
        await super().stop()

    async def handle(self, event: Event) -> None:
        await self.handle_batch([(None, event)])

    async def handle_batch(
        self, entries: Sequence[tuple[str | None, Event]], acks: Sequence[str] = (),
        acked_bytes: int = 0,
    ) -> None:  # fmt: skip
        async with self._lock:
            if self.failed.is_set():
                raise LeadershipLost("this process no longer leads the floor")
            batch = self._batch = Batch(acks=list(acks), acked_bytes=acked_bytes)
            try:
                for entry_id, event in entries:
                    now = Now(self._clock(), self._wall())
                    try:
                        effects = self.core.handle(event, now)
                    except Exception as exc:
                        await self._poisoned(entry_id, event, exc)
                    batch.applied.append((event, now))
                    await self._execute(effects)
                await self._commit(batch)
            finally:
                self._batch = None
        self._after_commit(batch)

    async def _poisoned(self, entry_id: str | None, event: Event, exc: Exception) -> NoReturn:
        """The core raised: its state may be half-changed, so this core decides no more.
        The event is marked (if it came from the stream) for the next leader to set aside."""
        self.failed.set()
        if entry_id is None:  # (a stream entry is counted when it is set aside)
            self._metrics.floor_quarantined.inc()
        log.error("floor_event_poison", kind=type(event).__name__, entry=entry_id,
                  error=repr(exc), exc_info=exc)  # fmt: skip
        if entry_id is not None:
            try:
                k = self._keys
                await self._poison_script(keys=[k.leader, k.poison],
                                          args=[self._lease.value or "", entry_id])  # fmt: skip
            except (RedisError, OSError) as err:
                log.warning("floor_poison_mark_failed", error=str(err))
        raise LeadershipLost(f"the floor core failed on {type(event).__name__}") from exc

    async def _execute(self, effects: list[Effect]) -> None:
        batch = self._batch
        assert batch is not None, "effects only come from handle_batch"
        for effect in effects:
            match effect:
                case Send():
                    batch.sends.append(effect)
                case Publish() if isinstance(effect.message, FloorEvent):
                    batch.events.append(effect)
                case Publish():
                    frame = encode(effect.message)
                    batch.publishes += [(self._keys.channel(t), frame) for t in effect.topics]
                case PersistSession():
                    batch.puts[effect.session.session_id] = effect.session
                case DeleteSession():
                    batch.puts.pop(effect.session_id, None)
                    batch.deletes.append(effect.session_id)
                case Audit() | TicketEvent():
                    batch.audits.append(effect)
                case ResolveClaim() | ResolveTicket():
                    batch.requests.append(effect)
                case _:
                    assert not isinstance(effect, Committed)
                    self._local(effect)

    def _after_commit(self, batch: Batch) -> None:
        """Only now is what the batch decided true: tell supervisors, start the lookups,
        write the audit entries."""
        for publish in batch.events:
            self._note_event(publish)
        for request in batch.requests:
            self._local(request)
        if batch.audits:
            self._drainer.wake()

    async def _commit(self, batch: Batch) -> None:
        if not batch.applied and not batch.acks:
            return
        k = self._keys
        try:
            log_id = await self._commit_script(
                keys=[
                    k.leader,
                    k.log,
                    k.events,
                    k.peers,
                    k.sessions,
                    k.claims,
                    k.last_commit,
                    k.outbox,
                    k.events_bytes,
                ],
                args=[
                    self._lease.value or "",
                    k.prefix,
                    FLOOR_GROUP,
                    self._sealer.seal(dump_applied(batch.applied)),
                    INBOX_MAXLEN,
                    f"{self._lease.value}:{self.commits}",
                    batch.acked_bytes,
                    *batch.args(self._sealer),
                ],
            )
        except (RedisError, OSError) as exc:
            # The core has moved past what Redis holds: this core must not decide again.
            # The batch stays pending in the stream; the next leader replays and redoes it.
            self.failed.set()
            fenced = "FENCED" in str(exc)
            (log.info if fenced else log.warning)(
                "floor_commit_refused" if fenced else "floor_commit_failed",
                error=str(exc) or type(exc).__name__,
            )
            raise LeadershipLost(str(exc)) from exc
        self.last_log_id = log_id.decode() if isinstance(log_id, bytes) else log_id
        self.commits += 1

    async def write_snapshot(self) -> None:
        """The core's state and the floor projections, fenced; trims the applied log."""
        async with self._lock:
            if self.failed.is_set():
                raise LeadershipLost("this process no longer leads the floor")
            state = {"core": dump_core(self.core), "log_id": self.last_log_id}
            blob = self._sealer.seal(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
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
                (log.info if "FENCED" in str(exc) else log.warning)(
                    "floor_snapshot_refused", error=str(exc) or type(exc).__name__
                )
                raise LeadershipLost(str(exc)) from exc


async def ensure_group(redis: Redis, keys: Keys) -> None:
    try:
        # From the stream's start: events gateways added before any leader existed count.
        await redis.xgroup_create(keys.events, FLOOR_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
