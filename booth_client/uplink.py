"""Uploads that yield to the call: the kiosk's `Pacer` (booth_client.pacing).

The uploader asks `pace(nbytes)` before each piece of a picture it sends. The pacer lets
pieces through a token bucket whose rate is what the uplink has left after the call:
`UPLOAD_UTILISATION` of the ladder's estimate of the line's capacity, less what the call
sends now (booth_client.degrade), and never less than `floor_bps`, so an upload always
progresses. While the line's capacity is unknown (it has never been full: a good link),
or no call runs, pieces go at once.

An upload is running from its first piece until no piece came for `idle_s`; the ladder
sees it (`usage`) and steps the face camera down for its duration, so that the upload's
share is there to take (`on_start` asks it to decide at once rather than at its next
sample). Bytes let through are counted for the ladder's estimate: what went through a
full line is its capacity.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

UPLOAD_UTILISATION = 0.92  # of the capacity, for call + upload together
FLOOR_BPS = 48_000
BURST_BYTES = 4_096  # a piece of this size may go at once


def upload_rate(capacity_bps: float | None, call_bps: float, floor_bps: float) -> float | None:
    """Bits a second an upload may send beside the call; None: unpaced."""
    if capacity_bps is None:
        return None
    return max(floor_bps, capacity_bps * UPLOAD_UTILISATION - call_bps)


@dataclass
class TokenBucket:
    """Bytes at `rate` a second, at most `burst` saved up. A piece larger than what is
    saved waits until the bucket has it (a piece larger than `burst` leaves it in debt)."""

    burst: float = BURST_BYTES
    tokens: float = BURST_BYTES
    at: float | None = None

    def delay(self, nbytes: int, rate_bps: float, now: float) -> float:
        """Take `nbytes`; the seconds to wait before sending them."""
        rate = rate_bps / 8
        if self.at is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * rate)
        self.at = now
        self.tokens -= nbytes
        return 0.0 if self.tokens >= 0 else -self.tokens / rate


class UplinkPacer:
    """The kiosk's Pacer: see the module's docstring. `rate()` says what an upload may
    send now (upload_rate), None for unpaced."""

    def __init__(
        self,
        rate: Callable[[], float | None],
        *,
        on_start: Callable[[], None] | None = None,
        idle_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._on_start = on_start
        self._idle_s = idle_s
        self._clock = clock
        self._bucket = TokenBucket()
        self._lock = asyncio.Lock()  # pieces of two uploads take turns
        self.sent_bytes = 0
        self.waited_s = 0.0  # time pieces spent waiting for the line, for the log
        self._last_piece: float | None = None

    @property
    def uploading(self) -> bool:
        last = self._last_piece
        return last is not None and self._clock() - last < self._idle_s

    def usage(self) -> tuple[int, bool]:
        """(bytes let through so far, whether an upload is running): for the ladder."""
        return self.sent_bytes, self.uploading

    async def pace(self, nbytes: int) -> None:
        began = not self.uploading
        self._last_piece = self._clock()
        if began:
            self._bucket = TokenBucket()
            if self._on_start is not None:
                self._on_start()
        async with self._lock:
            rate = self._rate()
            if rate is not None:
                wait = self._bucket.delay(nbytes, rate, self._clock())
                if wait > 0:
                    self.waited_s += wait
                    await asyncio.sleep(wait)
            self.sent_bytes += nbytes
            self._last_piece = self._clock()
