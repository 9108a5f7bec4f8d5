"""Login throttling that slows guessing without letting one name lock out a branch.

Three independent counters (see LoginThrottle):
- per account: exponential backoff after a few failures, so guessing one password is slow;
- per address for people: a sliding window at a far higher threshold, since a branch's
  staff share one NAT address and one mistyping colleague must not block the rest;
- per address for booths: counted apart, so failed staff logins never stop kiosks.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from server.auth.errors import AuthError
from server.settings import Settings

MAX_TRACKED_KEYS = 100_000


def rate_limited(retry_after: float, what: str) -> AuthError:
    retry = max(1.0, retry_after)
    return AuthError(
        "rate_limited",
        f"too many failed logins {what}; wait {retry:.0f} s and try again",
        status=429,
        retry_after=retry,
    )


class LoginRateLimiter:
    """Failures per key in a sliding window; `check` refuses a key with max_failures."""

    def __init__(
        self,
        max_failures: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        what: str = "from this address",
    ) -> None:
        self._max = max_failures
        self._window = window
        self._clock = clock
        self._what = what
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
                raise rate_limited(times[0] + self._window - now, self._what)

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
        # Still full (a spray of fresh keys): forget the oldest rather than grow unbounded.
        while len(self._failures) > MAX_TRACKED_KEYS:
            del self._failures[next(iter(self._failures))]


@dataclass(slots=True)
class _Streak:
    failures: int
    last_failure: float
    locked_until: float


class AccountBackoff:
    """Per-account exponential backoff. After `max_failures` failures the account waits
    `base` seconds, doubling with each further failure up to `cap`. A streak is forgotten
    `window` seconds after its last failure (or lock), and at once on a good login."""

    def __init__(
        self,
        max_failures: int,
        window: float,
        *,
        base: float = 1.0,
        cap: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._window = window
        self._base = base
        self._cap = cap
        self._clock = clock
        self._streaks: OrderedDict[str, _Streak] = OrderedDict()  # oldest first

    def _current(self, key: str, now: float) -> _Streak | None:
        streak = self._streaks.get(key)
        if streak is not None and now >= max(
            streak.last_failure + self._window, streak.locked_until
        ):
            del self._streaks[key]
            return None
        return streak

    def retry_after(self, key: str) -> float | None:
        """Seconds this account must still wait, or None if it may try now."""
        now = self._clock()
        streak = self._current(key, now)
        if streak is None or now >= streak.locked_until:
            return None
        return streak.locked_until - now

    def check(self, key: str) -> None:
        wait = self.retry_after(key)
        if wait is not None:
            raise rate_limited(wait, "for this account")

    def failed(self, key: str) -> None:
        now = self._clock()
        streak = self._current(key, now)
        if streak is None:
            streak = _Streak(0, now, now)
        else:
            self._streaks.move_to_end(key)
        streak.failures += 1
        streak.last_failure = now
        if streak.failures >= self._max:
            # 2**n overflows to inf for absurd n; min() then gives the cap.
            delay = self._base * 2.0 ** min(streak.failures - self._max, 64)
            streak.locked_until = now + min(self._cap, delay)
        self._streaks[key] = streak
        if len(self._streaks) > MAX_TRACKED_KEYS:
            self._prune(now)

    def succeeded(self, key: str) -> None:
        self._streaks.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in list(self._streaks):
            self._current(key, now)
        while len(self._streaks) > MAX_TRACKED_KEYS:
            self._streaks.popitem(last=False)


class LoginThrottle:
    """The login limits of one server process (the counters are in memory)."""

    def __init__(
        self,
        accounts: AccountBackoff,
        people_addresses: LoginRateLimiter,
        booth_addresses: LoginRateLimiter,
    ) -> None:
        self.accounts = accounts
        self.people_addresses = people_addresses
        self.booth_addresses = booth_addresses

    @classmethod
    def from_settings(
        cls, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> LoginThrottle:
        return cls(
            AccountBackoff(
                settings.login_max_failures,
                settings.login_window,
                base=settings.login_backoff_base,
                cap=settings.login_backoff_max,
                clock=clock,
            ),
            LoginRateLimiter(settings.login_address_max_failures, settings.login_window, clock),
            LoginRateLimiter(
                settings.booth_login_address_max_failures,
                settings.login_window,
                clock,
                what="for booths at this address",
            ),
        )

    # People: the account key is the lower-cased name, whether or not it exists (an
    # unknown name must not be told apart by how it is throttled).

    def check_person(self, username: str, address: str) -> None:
        self.people_addresses.check(address)
        self.accounts.check(f"user:{username.lower()}")

    def person_failed(self, username: str, address: str) -> None:
        self.people_addresses.failed(address)
        self.accounts.failed(f"user:{username.lower()}")

    def person_succeeded(self, username: str) -> None:
        # The address count stays: one good login must not wipe an attacker's tally.
        self.accounts.succeeded(f"user:{username.lower()}")

    # Booths: their credential is 256 random bits, so per-booth backoff would add no
    # safety, only a way to lock a kiosk out by sending bad credentials in its name.

    def check_booth(self, address: str) -> None:
        self.booth_addresses.check(address)

    def booth_failed(self, address: str) -> None:
        self.booth_addresses.failed(address)
