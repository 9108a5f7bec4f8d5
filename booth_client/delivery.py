"""Getting the outbox's pictures to the server: by itself, one at a time, until each is
delivered or the server has been told it never will be.

The drainer runs a *pass* over the outbox (oldest first) at start, after every capture,
and on a backoff timer while items remain (1 s doubling to 30 s, ±50 % jitter). Passes are
single-flight: one at a time in this process (a lock; a capture waits for the pass in
progress, then runs its own) and one per outbox directory across processes (a file
lock), so two captures never upload one item at once. In a pass each item goes:

- `reserved` by an earlier process (not this one's `owner`): the capture was cut short (the
  kiosk restarted mid-way): refused, reason `capture_interrupted`;
- `pending`: a grant first if it has none (while its session lives), then the upload. The
  answer is judged (`judge`): delivered: forgotten; 401: a fresh token, then once more;
  network, 408/425/429, 5xx: the pass stops (the rest would fail alike) and the timer
  retries; any other 4xx will not change (the picture refused, the grant expired or
  forged, the claim unknown): refused, with the server's reason;
- `refused`: reported to the server (`POST .../captures/{id}/undeliverable`, with the
  grant), then forgotten, keeping a tombstone. A report the server will never take (no
  grant and no live session, or the claim unknown) is logged at error and forgotten too.

So every picture ends delivered exactly once (the same Idempotency-Key on every try) or
reported undeliverable; none is lost and none is stored twice
(tests/unit/test_delivery_properties.py explores kills at every step).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import structlog

from booth_client.outbox import ItemState, Outbox, OutboxItem

log = structlog.get_logger("loket.booth.delivery")

RETRY_BASE_S = 1.0
RETRY_CAP_S = 30.0


@dataclass(frozen=True)
class Delivery:
    """What the server said about one request."""

    status: int
    body: dict[str, Any]

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str:
        error = self.body.get("error")
        return str(error.get("code", "")) if isinstance(error, dict) else ""

    @property
    def message(self) -> str:
        error = self.body.get("error")
        return str(error.get("message", ""))[:300] if isinstance(error, dict) else ""


class Verdict(StrEnum):
    DELIVERED = "delivered"
    REAUTH = "reauth"  # the token was refused: refresh it and try again
    RETRY = "retry"  # later: the network, the server's load or fault
    REFUSED = "refused"  # for good: report it undeliverable


def judge(answer: Delivery) -> Verdict:
    if answer.delivered:
        return Verdict.DELIVERED
    if answer.status == 401:
        return Verdict.REAUTH
    if answer.status in (408, 425, 429) or answer.status >= 500:
        return Verdict.RETRY
    return Verdict.REFUSED


def backoff(failures: int, rand: float) -> float:
    """Seconds before retry number `failures` (1, 2, ...): doubling, capped, jittered."""
    delay = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** max(0, failures - 1))
    return min(RETRY_CAP_S, delay * (0.5 + rand))


Progress = Callable[[int, int], Awaitable[None]]  # (bytes sent, bytes in all)


class Transport(Protocol):
    """The server, as the drainer needs it (booth_client.upload.HttpTransport). Each call
    raises OSError when the server could not be reached."""

    async def grant(self, item: OutboxItem) -> Delivery: ...

    async def upload(self, item: OutboxItem, data: bytes, progress: Progress) -> Delivery: ...

    async def report(self, item: OutboxItem) -> Delivery: ...

    async def reauthenticate(self) -> None: ...


class EventKind(StrEnum):
    SENDING = "sending"  # bytes going out
    QUEUED = "queued"  # kept; the next try is on the timer
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"


@dataclass(frozen=True)
class DeliveryEvent:
    kind: EventKind
    item: OutboxItem
    sent: int = 0
    total: int = 0
    document_id: str | None = None
    detail: str | None = None
    retry_in: float | None = None


OnEvent = Callable[[DeliveryEvent], Awaitable[None]]


@dataclass
class PassResult:
    delivered: int = 0
    refused: int = 0
    remaining: int = 0  # items still waiting when the pass stopped
    stopped: str | None = None  # why it stopped early (a network or server error)
    waiting: tuple[OutboxItem, ...] = ()  # the pictures among them


class Drainer:
    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        *,
        on_event: OnEvent | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.on_event = on_event
        self._rand = rand
        self._flight = asyncio.Lock()  # one pass at a time
        # Reservations are stamped with it: one made by another (earlier) process and still
        # without its picture was cut short by a restart.
        self.owner = uuid.uuid4().hex
        self._wake = asyncio.Event()  # a kick, or a new retry time
        self._kicked = False
        self._task: asyncio.Task[None] | None = None
        self.failures = 0  # passes in a row that stopped early
        self.next_try_at: float | None = None  # monotonic
        self.last_stop: str | None = None

    # --- running -------------------------------------------------------------------

    def start(self) -> None:
        """Deliver by itself from now on: a pass at once, then on kicks and the timer."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox")
            self.kick()

    def kick(self) -> None:
        self._kicked = True
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            due = self.next_try_at
            if self._kicked or (due is not None and due <= time.monotonic()):
                self._kicked = False
                try:
                    await self.drain()
                except Exception:  # a bug must not end deliveries: log, back off, go on
                    log.exception("outbox_pass_failed")
                    self._schedule(PassResult(remaining=1, stopped="internal error"))
                continue
            # Until kicked, or the retry time (which a capture's own pass may have moved).
            timeout = None if due is None else due - time.monotonic()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
            # that lands as the event is set, and this loop would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def drain(self) -> PassResult:
        """One pass now (after the pass in progress, if any); also schedules the next."""
        async with self._flight:
            with self.outbox.exclusive() as mine:
                if not mine:
                    result = PassResult(remaining=1, stopped="another process is delivering")
                else:
                    result = await self._pass()
        self._schedule(result)
        for kept in result.waiting:
            await self._tell(
                DeliveryEvent(EventKind.QUEUED, kept, total=kept.size, detail=result.stopped,
                              retry_in=self.retry_in)
            )  # fmt: skip
        return result

    def _schedule(self, result: PassResult) -> None:
        self._wake.set()  # the loop looks at the new time
        if result.remaining == 0 or result.stopped is None:
            self.failures, self.next_try_at, self.last_stop = 0, None, None
            return
        self.failures += 1
        delay = backoff(self.failures, self._rand())
        self.next_try_at, self.last_stop = time.monotonic() + delay, result.stopped
        log.info("outbox_retry_scheduled", in_s=round(delay, 1), waiting=result.remaining,
                 reason=result.stopped)  # fmt: skip

    @property
    def retry_in(self) -> float | None:
        return None if self.next_try_at is None else max(0.0, self.next_try_at - time.monotonic())

    # --- one pass ------------------------------------------------------------------

    async def _pass(self) -> PassResult:
        result = PassResult()
        items = await asyncio.to_thread(self.outbox.pending)
        for index, item in enumerate(items):
            try:
                await self._one(item, result)
            except _Stop as stop:
                result.stopped = stop.reason
                result.remaining = len(items) - index
                result.waiting = tuple(i for i in items[index:] if i.state is ItemState.PENDING)
                return result
        return result

    async def _one(self, item: OutboxItem, result: PassResult) -> None:
        if item.state is ItemState.RESERVED:
            if item.owner == self.owner:
                return  # this process is taking the picture right now
            item = await self._refuse(item, "capture_interrupted", None,
                                      "the kiosk stopped before the picture was taken")  # fmt: skip
        if item.state is ItemState.PENDING:
            item = await self._deliver(item, result)
        if item.state is ItemState.REFUSED:
            await self._report(item)
            result.refused += 1

    async def _deliver(self, item: OutboxItem, result: PassResult) -> OutboxItem:
        if item.grant is None:
            item = await self._ensure_grant(item)
        try:
            data = await asyncio.to_thread(self.outbox.picture, item)
        except FileNotFoundError:
            return await self._refuse(item, "picture_lost", None, "the picture file is gone")
        item = await asyncio.to_thread(self.outbox.update, item.item_id, attempts=item.attempts + 1)

        async def progress(sent: int, total: int) -> None:
            await self._tell(DeliveryEvent(EventKind.SENDING, item, sent=sent, total=total))

        answer = await self._call(lambda: self.transport.upload(item, data, progress))
        verdict = judge(answer)
        if verdict is Verdict.DELIVERED:
            await asyncio.to_thread(self.outbox.remove, item)
            result.delivered += 1
            document_id = answer.body.get("document_id")
            log.info("outbox_delivered", item=item.item_id, kind=item.kind,
                     replayed=bool(answer.body.get("replayed")))  # fmt: skip
            await self._tell(
                DeliveryEvent(EventKind.DELIVERED, item, sent=len(data), total=len(data),
                              document_id=str(document_id) if document_id else None)
            )  # fmt: skip
            return item
        if verdict is Verdict.RETRY:
            raise _Stop(f"the server answered {answer.status}")
        return await self._refuse(item, answer.code or f"http_{answer.status}", answer.status,
                                  answer.message)  # fmt: skip

    async def _ensure_grant(self, item: OutboxItem) -> OutboxItem:
        """A picture without a grant (the server was not reachable while it was taken)
        asks for one now: it keeps the picture deliverable past its session."""
        answer = await self._call(lambda: self.transport.grant(item))
        grant = answer.body.get("grant") if answer.delivered else None
        if isinstance(grant, str):
            try:
                return await asyncio.to_thread(self.outbox.update, item.item_id, grant=grant)
            except FileNotFoundError:
                return item  # delivered meanwhile (without it: the session was live)
        if judge(answer) is Verdict.RETRY:
            raise _Stop(f"the server answered {answer.status}")
        return item  # refused (the session is over): the upload decides by the old rule

    async def fetch_grant(self, item: OutboxItem) -> OutboxItem:
        """Ask for the capture's grant now (beside the capture); the item as it stands."""
        try:
            return await self._ensure_grant(item)
        except _Stop as stop:
            log.info("grant_deferred", item=item.item_id, reason=stop.reason)
            return item

    async def _refuse(
        self, item: OutboxItem, reason: str, status: int | None, message: str
    ) -> OutboxItem:
        refusal = {"reason": reason[:64], "status": status, "message": message[:300]}
        log.error("outbox_refused", item=item.item_id, kind=item.kind, **refusal)
        return await asyncio.to_thread(
            self.outbox.update, item.item_id, state=ItemState.REFUSED, refusal=refusal
        )

    async def _report(self, item: OutboxItem) -> None:
        answer = await self._call(lambda: self.transport.report(item))
        verdict = judge(answer)
        if verdict is Verdict.RETRY:
            raise _Stop(f"the server answered {answer.status}")
        reported = verdict is Verdict.DELIVERED
        if not reported:
            log.error("outbox_report_refused", item=item.item_id, status=answer.status,
                      error=answer.code)  # fmt: skip
        await asyncio.to_thread(self.outbox.bury, item, {**item.refusal, "reported": reported})
        await self._tell(
            DeliveryEvent(EventKind.UNDELIVERABLE, item, total=item.size,
                          detail=item.refusal.get("reason"))
        )  # fmt: skip

    async def _call(self, request: Callable[[], Awaitable[Delivery]]) -> Delivery:
        """A request, once more after a fresh token if the server refused the token; the
        network failing stops the pass."""
        for attempt in range(2):
            try:
                answer = await request()
            except OSError as exc:
                raise _Stop(f"the server could not be reached: {exc}") from None
            if judge(answer) is not Verdict.REAUTH:
                return answer
            if attempt == 0:
                try:
                    await self.transport.reauthenticate()
                except Exception as exc:  # refused credential, or no network: later
                    raise _Stop(f"could not log in again: {exc}") from None
        raise _Stop("the server refused the booth's fresh token")

    async def _tell(self, event: DeliveryEvent) -> None:
        if self.on_event is not None:
            try:
                await self.on_event(event)
            except Exception:
                log.exception("delivery_event_failed", kind=str(event.kind))


class _Stop(Exception):
    """The pass stops here; the timer tries again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
