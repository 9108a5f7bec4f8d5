"""Service-time estimator behind `estimated_wait`.

Wait model: the active CSOs together have `capacity` parallel slots, and each slot frees
on average once per `mean` seconds, so slots free at a rate of `capacity / mean`. A booth
with `ahead` booths in front of it needs `ahead + 1` slots to free before its turn:

    wait = (ahead + 1) * mean / capacity

It ignores eligibility (a booth only some CSOs can serve waits longer) and the work
already in progress; it is a display hint for the kiosk, not a promise.
"""

from __future__ import annotations

import math
from collections import deque

MIN_SAMPLE_S = 1.0


class ServiceTimes:
    """Mean of the last `window` service times, with a default until the first one."""

    __slots__ = ("_default", "_samples", "_total")

    def __init__(self, window: int, default: float) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self._default = default
        self._total = 0.0

    def record(self, seconds: float) -> None:
        # No real service takes under a second; a zero sample (accepted and ended at once,
        # or a clock hiccup) would tell waiting booths they are served instantly.
        self._samples.append(max(MIN_SAMPLE_S, seconds))
        # fsum over the (small) window on each record: exact, and no running-sum drift.
        self._total = math.fsum(self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    def mean(self) -> float:
        if not self._samples:
            return self._default
        return self._total / len(self._samples)

    def estimate_wait(self, ahead: int, capacity: int) -> float:
        """Seconds until a booth with `ahead` booths before it is likely served.

        Returns math.inf when no CSO capacity is active: there is no honest number.
        """
        if capacity <= 0:
            return math.inf
        return (ahead + 1) * self.mean() / capacity
