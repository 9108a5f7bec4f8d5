"""The Router port through Redis: a booth's socket on one process, its CSO's on another.

Each process has an **inbox stream** (`<prefix>:inbox:<process id>`) and reads it with a
blocking XREAD, trimming what it has read (the stream holds only what is not yet
delivered, bounded besides by MAXLEN ~); `<prefix>:peers` maps each connected peer's
address (`booth:<id>`, `cso:<id>`, `supervisor:<id>`) to the process and connection
holding its socket. A message for a peer is one Lua call: look the peer up, XADD to that
inbox. When a peer's newer socket lands on another process, the old process is told which
connection was replaced, so it closes that one and never a newer socket of the same peer
that reconnected to it meanwhile.

Why streams and not pub/sub for peers: a process that loses its Redis connection for a
moment (failover, restart) reads on from the last id it saw instead of losing what was
sent meanwhile; the inbox is bounded (MAXLEN ~) so a dead process's inbox cannot grow
without limit; and its length is a visible backlog. The supervisors' floor, by contrast,
goes over pub/sub: every pass ends with a full snapshot, so a lost update heals itself.

**Presence**: every process refreshes its deadline in `<prefix>:procs` (a sorted set) every
third of `presence_ttl`, on Redis's clock (`TIME` inside the script: no host's clock or
skew matters); the floor's leader treats the sockets of a process whose deadline passed
as closed. A process that finds itself already declared gone closes its own sockets so
their peers reconnect (and resume) rather than talk into a floor that forgot them.

Supervisors' floor updates go over pub/sub, one channel per scope of branches
(`<prefix>:topic:floor...`); each process listens to all of them by pattern and hands
each to its own sockets of that scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.adapters.redis.keys import Keys
from server.ports.router import Delivery, Mailbox
from signaling.codec import encode
from signaling.messages import Envelope

log = structlog.get_logger("loket.redis.router")

# Per process. A live process reads (and trims) far faster than this fills; the cap bounds
# a stalled one until the leader's reaper deletes its inbox (presence TTL): at most
# INBOX_MAXLEN frames of at most LOKET_MAX_MESSAGE_BYTES each.
INBOX_MAXLEN = 2_000

# Route one frame to the process holding the peer's socket. 1 = queued, 0 = not connected.
ROUTE_LUA = """
local function route(peers, prefix, maxlen, peer, frame, t)
  local owner = redis.call('HGET', peers, peer)
  if not owner then return 0 end
  local sep = string.find(owner, '|', 1, true)
  local pid = sep and string.sub(owner, 1, sep - 1) or owner
  redis.call('XADD', prefix .. ':inbox:' .. pid, 'MAXLEN', '~', maxlen, '*',
             'p', peer, 'm', frame, 't', t)
  return 1
end
-- To one socket ("<process>/<connection>"): its process delivers it to that socket only.
local function route_to(prefix, maxlen, peer, frame, t, conn)
  local sep = string.find(conn, '/', 1, true)
  if not sep then return 0 end
  redis.call('XADD', prefix .. ':inbox:' .. string.sub(conn, 1, sep - 1), 'MAXLEN', '~',
             maxlen, '*', 'p', peer, 'm', frame, 't', t, 'k', string.sub(conn, sep + 1))
  return 1
end
"""
_SEND = (
    ROUTE_LUA
    + """
if ARGV[6] ~= '' then return route_to(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]) end
return route(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"""
)

# Route one frame to the process holding the peer's socket ("<process>|<connection>").
# Bind a peer to this process's connection; tell the process that held it before which
# of its connections to let go.
# KEYS: peers; ARGV: prefix, address, "<process>|<connection>", maxlen
_ATTACH = """
local old = redis.call('HGET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if old and old ~= ARGV[3] then
  local sep = string.find(old, '|', 1, true)
  local pid = sep and string.sub(old, 1, sep - 1) or old
  local conn = sep and string.sub(old, sep + 1) or ''
  redis.call('XADD', ARGV[1] .. ':inbox:' .. pid, 'MAXLEN', '~', ARGV[4], '*',
             'p', ARGV[2], 'c', 'replaced', 'k', conn)
end
return old
"""
# Unbind, only if this very connection still holds the peer.
_DETACH = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""
# Refresh this process's presence deadline on Redis's clock; 1 if it had been removed.
# KEYS: procs; ARGV: process id, ttl ms
_PRESENT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
"""


async def cancel_in_turn(tasks: Sequence[asyncio.Task[Any]], wait: float = 2.0) -> None:
    """Cancel and await one task at a time, each for at most `wait` seconds: a redis-py
    blocking read was seen to take many seconds to unwind, and shutting down must not."""
    for task in tasks:
        task.cancel()
        await asyncio.wait([task], timeout=wait)
        if task.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()
        else:
            log.warning("task_slow_to_stop", task=task.get_name())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisRouter:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        process_id: str,
        *,
        presence_ttl: float = 6.0,
        on_replaced: Callable[[Mailbox], None] | None = None,
        on_evicted: Callable[[list[Mailbox]], None] | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.process_id = process_id
        self._presence_ttl = presence_ttl
        self._on_replaced = on_replaced
        self._on_evicted = on_evicted
        self._peers: dict[str, Mailbox] = {}
        self._topics: dict[str, set[Mailbox]] = defaultdict(set)
        self._send = redis.register_script(_SEND)
        self._attach = redis.register_script(_ATTACH)
        self._detach = redis.register_script(_DETACH)
        self._present = redis.register_script(_PRESENT)
        self._tasks: list[asyncio.Task[Any]] = []
        self._registered = False

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, topics: tuple[str, ...] = ()) -> None:
        """`topics`: patterns of the topics to listen to (e.g. "floor*")."""
        # A predecessor under the same process id (LOKET_PROCESS_ID fixed, a restart) left
        # frames for sockets that died with it: none is for this process.
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._keys.inbox(self.process_id))
        self._tasks = [
            asyncio.create_task(self._keep_present(), name="redis-presence"),
            asyncio.create_task(self._read_inbox(), name="redis-inbox"),
            *(
                asyncio.create_task(self._listen(topic), name=f"redis-topic-{topic}")
                for topic in topics
            ),
        ]

    async def stop(self) -> None:
        await cancel_in_turn(self._tasks)
        self._tasks = []
        # A clean exit says so at once, rather than letting the leader wait out the TTL.
        with contextlib.suppress(RedisError, OSError):
            k = self._keys
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(k.procs, {self.process_id: 0})
                pipe.delete(k.inbox(self.process_id))
                await pipe.execute()

    # --- the Router port ----------------------------------------------------------------

    def _owner(self, mailbox: Mailbox) -> str:
        return f"{self.process_id}|{mailbox.id}"

    async def attach(self, peer_id: str, mailbox: Mailbox) -> Mailbox | None:
        previous = self._peers.get(peer_id)
        self._peers[peer_id] = mailbox
        k = self._keys
        await self._attach(
            keys=[k.peers], args=[k.prefix, peer_id, self._owner(mailbox), INBOX_MAXLEN]
        )
        return previous if previous is not mailbox else None

    async def detach(self, peer_id: str, mailbox: Mailbox) -> None:
        if self._peers.get(peer_id) is mailbox:
            del self._peers[peer_id]
        # Only if this very connection is still the peer's: a newer socket elsewhere stays.
        await self._detach(keys=[self._keys.peers], args=[peer_id, self._owner(mailbox)])

    async def send(
        self,
        peer_id: str,
        message: Envelope,
        *,
        received_at: float | None = None,
        raw: str | None = None,
        connection: str | None = None,
    ) -> bool:
        # Always through the peers hash, even for a socket attached here: Redis knows at
        # once when another process took the peer over, this process only when the
        # "replaced" notice comes round its inbox, and a send in between went to the old
        # socket and was lost (the port contract test failed 2 runs in 15).
        k = self._keys
        wall = "" if received_at is None else repr(time.time() - (time.monotonic() - received_at))
        frame = raw if raw is not None else encode(message)
        queued = await self._send(
            keys=[k.peers], args=[k.prefix, INBOX_MAXLEN, peer_id, frame, wall, connection or ""]
        )
        return bool(queued)

    async def subscribe(self, topic: str, mailbox: Mailbox) -> None:
        self._topics[topic].add(mailbox)

    async def unsubscribe(self, topic: str, mailbox: Mailbox) -> None:
        self._topics[topic].discard(mailbox)

    async def publish(self, topic: str, message: Envelope) -> int:
        """To every process; returns how many processes listen (not sockets)."""
        return int(await self._redis.publish(self._keys.channel(topic), encode(message)))

    # --- local delivery -----------------------------------------------------------------

    def deliver_local(
        self, peer_id: str, frame: str, wall_received: float | None, connection: str = ""
    ) -> bool:
        mailbox = self._peers.get(peer_id)
        if mailbox is None or (connection and mailbox.id != connection):
            return False  # that socket is gone; a newer one has its state from its welcome
        # Relay latency is measured on this process's monotonic clock.
        received_at = (
            None
            if wall_received is None
            else time.monotonic() - max(0.0, time.time() - wall_received)
        )
        return mailbox.deliver(Delivery(None, received_at, frame))

    def publish_local(self, topic: str, frame: str) -> int:
        delivery = Delivery(None, None, frame)
        return sum(1 for mailbox in list(self._topics[topic]) if mailbox.deliver(delivery))

    # --- background loops ---------------------------------------------------------------

    async def _keep_present(self) -> None:
        period = self._presence_ttl / 3
        while True:
            try:
                added = await self._present(
                    keys=[self._keys.procs],
                    args=[self.process_id, int(self._presence_ttl * 1000)],
                )
                if added and self._registered:
                    self._evicted()
                self._registered = True
            except (RedisError, OSError) as exc:
                log.warning("presence_refresh_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(period)

    def _evicted(self) -> None:
        """The floor declared this process gone (it was silent too long): its sockets
        are closed so their peers reconnect and resume with a floor that knows them."""
        log.error("process_evicted", sockets=len(self._peers))
        self.reset_sockets()

    def reset_sockets(self) -> None:
        """Close every socket of this process (1012): their peers reconnect and resume."""
        mailboxes = list(self._peers.values())
        self._peers.clear()
        if self._on_evicted is not None:
            self._on_evicted(mailboxes)

    async def _read_inbox(self) -> None:
        inbox = self._keys.inbox(self.process_id)
        last = "0-0"
        backoff = 0.1
        while True:
            try:
                reply: Any = await self._redis.xread({inbox: last}, count=500, block=1000)
                backoff = 0.1
            except (RedisError, OSError) as exc:
                log.warning("inbox_read_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    last = _text(entry_id)
                    self._on_inbox(fields)
            if reply:
                # What was read is delivered (or its socket is gone): the stream keeps
                # only what waits, so a burst costs Redis nothing once read.
                ms, seq = last.split("-")
                with contextlib.suppress(RedisError, OSError):
                    await self._redis.xtrim(inbox, minid=f"{ms}-{int(seq) + 1}")

    def _on_inbox(self, fields: dict[bytes, bytes]) -> None:
        peer = _text(fields.get(b"p", b""))
        if b"c" in fields:  # control: another process took this connection over
            mailbox = self._peers.get(peer)
            named = _text(fields.get(b"k", b""))
            if mailbox is None or (named and mailbox.id != named):
                return  # that connection is gone already, or the peer is back here anew
            del self._peers[peer]
            if self._on_replaced is not None:
                self._on_replaced(mailbox)
            return
        t = fields.get(b"t") or b""
        frame, to = _text(fields.get(b"m", b"")), _text(fields.get(b"k", b""))
        self.deliver_local(peer, frame, float(t) if t else None, to)

    async def _listen(self, pattern: str) -> None:
        prefix = self._keys.channel("")
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._keys.channel(pattern))
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "pmessage":
                        topic = _text(message["channel"]).removeprefix(prefix)
                        if self._topics.get(topic):
                            self.publish_local(topic, _text(message["data"]))
            except (RedisError, OSError) as exc:
                log.warning("topic_listen_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
