"""The waiting-queue index: one global order plus per-eligibility-key buckets.

Queue order is `QueueKey` order: (tier, -priority, checked_in_at, seq). Tier 0 is the
"requeued" front tier for booths whose CSO vanished mid-session; inside it priority is
ignored (stored as 0) so they come back in their original check-in order.

Waiting booths are bucketed by their eligibility key `(branch, needs)`. Whether a CSO can
serve a booth depends only on that key (plus rare per-booth cooldown exclusions), and the
number of distinct keys is small (branches x skill combos), so a CSO finds its next booth
by looking at bucket heads instead of scanning the queue. The global list exists only
for `position()`. All mutations are O(log n).

Buckets are never dropped once created: the key space is bounded by the deployment's
branches and skill combos, and keeping them lets CSOs cache which buckets they serve.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from sortedcontainers import SortedList

FRONT_TIER = 0
NORMAL_TIER = 1

BucketKey = tuple[str, frozenset[str]]


class QueueKey(NamedTuple):
    """Sort key of a waiting booth. `seq` is unique, so `booth_id` never decides order."""

    tier: int
    neg_priority: int
    checked_in_at: float
    seq: int
    booth_id: str


def normal_key(booth_id: str, priority: int, checked_in_at: float, seq: int) -> QueueKey:
    return QueueKey(NORMAL_TIER, -priority, checked_in_at, seq, booth_id)


def front_key(key: QueueKey) -> QueueKey:
    """The key a booth gets when requeued: ahead of everything normal, by check-in order."""
    return QueueKey(FRONT_TIER, 0, key.checked_in_at, key.seq, key.booth_id)


class WaitingQueue:
    """Waiting booths, ordered globally and per eligibility bucket."""

    __slots__ = ("_all", "_buckets", "version")

    def __init__(self) -> None:
        self._all = SortedList()
        self._buckets: dict[BucketKey, SortedList] = {}
        # Bumped when a bucket is created, so per-CSO bucket caches know to refresh.
        self.version = 0

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, key: QueueKey) -> bool:
        return key in self._all

    def add(self, key: QueueKey, bucket: BucketKey) -> None:
        sl = self._buckets.get(bucket)
        if sl is None:
            sl = self._buckets[bucket] = SortedList()
            self.version += 1
        sl.add(key)
        self._all.add(key)

    def remove(self, key: QueueKey, bucket: BucketKey) -> None:
        self._buckets[bucket].remove(key)
        self._all.remove(key)

    def position(self, key: QueueKey) -> int:
        """0-based place of a waiting key in global order, O(log n)."""
        return int(self._all.bisect_left(key))

    def buckets(self) -> Iterator[tuple[BucketKey, SortedList]]:
        return iter(self._buckets.items())

    def __iter__(self) -> Iterator[QueueKey]:
        return iter(self._all)
