"""One websocket, as the server sees it: an outgoing mailbox, a writer, a reader gate.

Everything a peer sends passes `receive()`: size limit, rate limit, `decode_inbound`. The
writer is the only coroutine that writes to the socket, so messages leave in the order
they were delivered and a slow peer never blocks the floor. Its mailbox is bounded; one
that overflows is closed at once with 4429 (never starved silently): what is queued is
dropped, since the peer rebuilds its state from the next `welcome` anyway, and `closing`
is set so the socket's handler ends even if the peer has stopped reading altogether.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.metrics import Metrics
from server.ports.router import Delivery
from server.settings import Settings
from signaling.codec import decode_inbound, encode, error_reply
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import Envelope, Role, type_name

log = structlog.get_logger("loket.ws")


class CloseCode:
    """Application close codes (4000-4999), mirrored from HTTP where one fits."""

    PROTOCOL = 4400
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    TIMEOUT = 4408
    REPLACED = 4409
    OVERLOADED = 4429
    SERVICE_RESTART = 1012  # RFC 6455: reconnect (a cluster process was cut off)


class Closed(Exception):
    """The peer went away (or we closed it); unwind the handler."""


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def take(self, n: float = 1.0) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False


class Connection:
    def __init__(self, ws: WebSocket, role: Role, settings: Settings, metrics: Metrics) -> None:
        self.ws = ws
        self.role = role
        self.id = uuid.uuid4().hex
        self._settings = settings
        self._metrics = metrics
        self._outbox: asyncio.Queue[Delivery | None] = asyncio.Queue(settings.outbox_size)
        self.closing = asyncio.Event()  # set once a close is decided, for the handler
        self._bucket = TokenBucket(
            settings.max_messages_per_second, burst=settings.max_messages_per_second
        )
        # Bytes as well as messages: 200 messages/s of 64 KB each would be 12.8 MB/s of
        # parsing, relaying and (in a cluster) Redis traffic from one peer.
        rate = settings.max_bytes_per_second
        self._bytes = TokenBucket(rate, burst=max(rate, 4 * settings.max_message_bytes))
        self._close: tuple[int, str] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.last_heard = time.monotonic()
        self.last_raw: str | None = None
        self._counters: dict[str, Any] = {}  # message counter per type

    # Mailbox port
    def deliver(self, delivery: Delivery) -> bool:
        if self._close is not None:
            return False
        try:
            self._outbox.put_nowait(delivery)
        except asyncio.QueueFull:
            log.warning("mailbox_overflow", connection=self.id, role=str(self.role))
            self.close(CloseCode.OVERLOADED, "too slow to keep up")
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        """Ask the writer to flush what is queued, then close with code. A full mailbox
        (the peer stopped reading) is dropped so the close goes out next."""
        if self._close is not None:
            return
        self._close = (code, reason)
        self.closing.set()
        try:
            self._outbox.put_nowait(None)
        except asyncio.QueueFull:
            while not self._outbox.empty():
                self._outbox.get_nowait()
            self._outbox.put_nowait(None)

    @property
    def close_code(self) -> int | None:
        return self._close[0] if self._close else None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.id}")

    async def flushed(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait (at most `timeout`) for the writer to send what is queued and the close."""
        if self._writer is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), timeout)

    async def stop(self) -> None:
        if self._writer:
            self.close(1000, "bye")
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._writer, timeout=2.0)

    async def _write_loop(self) -> None:
        try:
            while True:
                delivery = await self._outbox.get()
                if delivery is None:
                    break
                raw = delivery.raw
                if raw is None:
                    assert delivery.message is not None  # a Delivery has one or the other
                    raw = encode(delivery.message)
                await self.ws.send_text(raw)
                if delivery.received_at is not None:
                    self._metrics.relay_latency.observe(time.monotonic() - delivery.received_at)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the reader sees the disconnect and cleans up
        finally:
            code, reason = self._close or (1000, "bye")
            if self.ws.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await self.ws.close(code, reason)

    def send(self, message: Envelope) -> None:
        self.deliver(Delivery(message))

    def reply_error(self, exc: ProtocolError) -> None:
        self._metrics.protocol_errors.labels(code=str(exc.code)).inc()
        self.send(error_reply(exc))

    async def receive(self, timeout: float | None = None) -> Envelope:  # noqa: ASYNC109
        """Next valid message from the peer. Raises ProtocolError for bad input, Closed
        when the socket is gone, TimeoutError when the peer stays silent."""
        if self._close is not None:
            raise Closed
        if timeout is None:
            event = await self.ws.receive()
        else:
            async with asyncio.timeout(timeout):
                event = await self.ws.receive()
        if event["type"] == "websocket.disconnect":
            raise Closed
        self.last_heard = time.monotonic()
        raw: str | bytes | None = event.get("text")
        if raw is None:
            raw = event.get("bytes") or b""
        if not self._bucket.take():
            raise ProtocolError(ErrorCode.RATE_LIMITED, "too many messages; slow down")
        if not self._bytes.take(len(raw)):
            raise ProtocolError(ErrorCode.RATE_LIMITED, "too much data too fast; slow down")
        message = decode_inbound(raw, self.role, max_bytes=self._settings.max_message_bytes)
        # The validated frame itself, so a relay can forward it without encoding again.
        self.last_raw = raw if isinstance(raw, str) else None
        kind = type_name(type(message))
        counter = self._counters.get(kind)
        if counter is None:  # labels() costs more than the increment: keep the child
            counter = self._counters[kind] = self._metrics.messages.labels(
                role=str(self.role), type=kind
            )
        counter.inc()
        return message
