"""The floor's outbox: audit entries the core decided, written to the records database after
the decision, in order, retried until they succeed, exactly once.

Where the entries wait depends on where the decision is durable: in one process, in this
process's memory (the floor itself lives there); in a cluster, in a Redis stream the
leader's fenced commit appends to in the same script as the decision
(`server.adapters.redis.leader`). Either way one `OutboxDrainer` writes them: oldest
first, each through the records store's idempotency table under its `effect_id` (a retry
after an answer was lost, or a second leader draining the same stream, finds the entry
already written and moves on). A records database that is down delays the drain, with a
growing backoff; it never drops an entry and never holds up the floor.

An entry the database refuses for good (not a connection problem: it fails the same way
`MAX_ATTEMPTS` times) is set aside with an error log and a metric, so one bad entry cannot
stall every audit of the region behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog

from server.floor.effects import Audit, RecordedEffect

log = structlog.get_logger("loket.floor.outbox")

AuditWriter = Callable[[Audit], Awaitable[None]]
RecordedWriter = Callable[[RecordedEffect], Awaitable[None]]  # audit entries or ticket events
MAX_ATTEMPTS = (
    8  # failures of one entry, with the database answering others, before it is set aside
)
BACKOFF_MAX = 5.0


class OutboxSource(Protocol):
    async def peek(self, limit: int) -> Sequence[tuple[str, RecordedEffect]]:
        """The oldest entries not yet written, with their ids in the source."""
        ...

    async def done(self, ids: Sequence[str]) -> None:
        """These are written: forget them."""
        ...

    async def set_aside(self, entry_id: str, entry: RecordedEffect, error: str) -> None:
        """A poison entry: keep it apart, for an operator."""
        ...


class MemoryOutbox:
    """One process: the entries wait in memory (bounded only by how fast supervisors act:
    a handful per minute; the size is a metric)."""

    def __init__(self) -> None:
        self._entries: deque[tuple[str, RecordedEffect]] = deque()
        self.set_aside_entries: list[tuple[RecordedEffect, str]] = []

    def add(self, entries: Sequence[RecordedEffect]) -> None:
        self._entries.extend((e.effect_id, e) for e in entries)

    def __len__(self) -> int:
        return len(self._entries)

    async def peek(self, limit: int) -> Sequence[tuple[str, RecordedEffect]]:
        return list(self._entries)[:limit]

    async def done(self, ids: Sequence[str]) -> None:
        gone = set(ids)
        while self._entries and self._entries[0][0] in gone:
            self._entries.popleft()

    async def set_aside(self, entry_id: str, entry: RecordedEffect, error: str) -> None:
        self.set_aside_entries.append((entry, error))
        await self.done([entry_id])


class OutboxDrainer:
    def __init__(
        self,
        source: OutboxSource,
        write: RecordedWriter,
        *,
        on_set_aside: Callable[[], None] | None = None,
        pending: Callable[[int], None] | None = None,
    ) -> None:
        self._source = source
        self._write = write
        self._on_set_aside = on_set_aside
        self._pending = pending
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._failures: dict[str, int] = {}
        self.written = 0

    def wake(self) -> None:
        self._wake.set()

    async def drain(self) -> bool:
        """Write what waits, oldest first; True when nothing is left."""
        async with self._lock:
            while True:
                batch = await self._source.peek(64)
                if self._pending is not None:
                    self._pending(len(batch))
                if not batch:
                    return True
                for entry_id, entry in batch:
                    try:
                        await self._write(entry)
                    except Exception as exc:
                        await self._failed(entry_id, entry, exc)
                        return False
                    self._failures.pop(entry_id, None)
                    await self._source.done([entry_id])
                    self.written += 1

    async def _failed(self, entry_id: str, entry: RecordedEffect, exc: Exception) -> None:
        count = self._failures[entry_id] = self._failures.get(entry_id, 0) + 1
        error = f"{type(exc).__name__}: {exc}"
        if count < MAX_ATTEMPTS or _is_connection_problem(exc):
            log.warning("floor_outbox_retry", effect_id=entry_id, attempt=count, error=error)
            return
        what = entry.action if isinstance(entry, Audit) else entry.kind
        log.error("floor_outbox_entry_set_aside", effect_id=entry_id, action=what, error=error)
        self._failures.pop(entry_id, None)
        await self._source.set_aside(entry_id, entry, error)
        if self._on_set_aside is not None:
            self._on_set_aside()

    async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Try to write everything now, for at most `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                return await self.drain()
        return False

    async def run(self) -> None:
        """Drain whenever woken, and retry with a growing backoff while entries wait."""
        backoff = 0.1
        while True:
            try:
                clean = await self.drain()
            except Exception:  # the source itself failed (Redis away): try again later
                log.warning("floor_outbox_source_failed", exc_info=True)
                clean = False
            if clean:
                backoff = 0.1
                self._wake.clear()
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):  # (not wait_for: see runtime.py)
                        await self._wake.wait()
                self._wake.clear()
                backoff = min(backoff * 2, BACKOFF_MAX)


def _is_connection_problem(exc: Exception) -> bool:
    """A database that cannot be reached is retried for ever: the entry is not at fault."""
    name = type(exc).__name__.lower()
    text = str(exc).lower()
    return isinstance(exc, OSError | ConnectionError | TimeoutError) or any(
        word in name or word in text
        for word in ("connection", "timeout", "interfaceerror", "operationalerror", "closed")
    )
