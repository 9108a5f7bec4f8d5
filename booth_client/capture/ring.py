"""The last moments of the document camera, at full resolution.

The camera task pushes every frame; a capture request takes the most recent few at once
instead of waiting for new ones. Bounded by count (a 1920x1080 BGR frame is 6 MB) and by
age (a frame older than `max_age` shows where the document was, not where it is).

One producer and one consumer on different threads are safe: every access holds a lock,
and frames are never copied or mutated here, so a consumer may keep the arrays it got
(the producer must hand over arrays it will not write to again, as `av.VideoFrame.
to_ndarray()` does).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    image: np.ndarray  # BGR uint8, H x W x 3
    timestamp: float  # seconds, on the ring's clock (monotonic by default)


class FrameRing:
    def __init__(
        self,
        capacity: int = 8,
        max_age: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or max_age <= 0:
            raise ValueError("capacity must be >= 1 and max_age > 0")
        self.capacity = capacity
        self.max_age = max_age
        self._clock = clock
        self._frames: deque[Frame] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def push(self, image: np.ndarray, timestamp: float | None = None) -> None:
        """Add a frame (not copied); the oldest falls out when the ring is full."""
        frame = Frame(image, self._clock() if timestamp is None else timestamp)
        with self._lock:
            self._frames.append(frame)
            self._expire(frame.timestamp)

    def latest(self, n: int | None = None) -> list[Frame]:
        """Up to `n` (default all) frames younger than `max_age`, oldest first."""
        with self._lock:
            self._expire(self._clock())
            frames = list(self._frames)
        return frames if n is None else frames[-n:] if n > 0 else []

    def clear(self) -> None:
        """Forget every frame (a participant's document must not outlive their visit)."""
        with self._lock:
            self._frames.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    def _expire(self, now: float) -> None:
        while self._frames and now - self._frames[0].timestamp > self.max_age:
            self._frames.popleft()
