"""How the recording's uploads share the branch's uplink: after the call and after the
officer's pictures (booth_client.pacing's `Pacer`).

- While a document picture is being uploaded (the officer is waiting for it) the
  recording sends nothing.
- During a call, it sends at what the line leaves after the call: the same share the
  pictures get (booth_client.uplink.upload_rate), from the ladder's estimate of the line;
  while the line has never been seen full (capacity unknown), at most `during_call_bps`,
  so a recording never fills a line the call has not measured yet.
- With no call it goes as fast as the line takes it.

Unlike a picture's upload it never asks the ladder to make room (the face would step down
for the whole call): it only takes what is left. What it sent is counted (`sent_bytes`),
and the kiosk adds it to what the ladder sees went through the line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from booth_client.uplink import TokenBucket

WAIT_S = 0.25  # how often a paused upload looks again


class RecordingPacer:
    def __init__(
        self,
        *,
        in_call: Callable[[], bool],
        line_rate: Callable[[], float | None],
        document_uploading: Callable[[], bool],
        during_call_bps: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._in_call, self._line_rate = in_call, line_rate
        self._documents = document_uploading
        self._cap = during_call_bps
        self._clock = clock
        self._bucket = TokenBucket()
        self._lock = asyncio.Lock()
        self.sent_bytes = 0
        self.waited_s = 0.0

    def rate(self) -> float | None:
        """Bits a second the recording may send now (None: as fast as the line takes)."""
        if not self._in_call():
            return None
        known = self._line_rate()
        return self._cap if known is None else known

    async def pace(self, nbytes: int) -> None:
        async with self._lock:
            while self._documents():  # the officer waits for a picture: it goes first
                self.waited_s += WAIT_S
                await asyncio.sleep(WAIT_S)
            rate = self.rate()
            if rate is not None:
                wait = self._bucket.delay(nbytes, rate, self._clock())
                if wait > 0:
                    self.waited_s += wait
                    await asyncio.sleep(wait)
            else:
                self._bucket = TokenBucket()  # no debt carried into the next call
            self.sent_bytes += nbytes
