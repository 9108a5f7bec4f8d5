"""Login rate limiting: failures per key (username, client address) in a sliding window."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from server.auth.errors import AuthError

MAX_TRACKED_KEYS = 100_000


class LoginRateLimiter:
    def __init__(
        self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_failures
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def check(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self._max:
                retry = max(1.0, times[0] + self._window - now)
                raise AuthError(
                    "rate_limited",
                    f"too many failed logins; wait {retry:.0f} s and try again",
                    status=429,
                    retry_after=retry,
                )

    def failed(self, *keys: str) -> None:
        now = self._clock()
        if len(self._failures) > MAX_TRACKED_KEYS:
            self._prune(now)
        for key in keys:
            self._failures.setdefault(key, deque(maxlen=self._max)).append(now)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
