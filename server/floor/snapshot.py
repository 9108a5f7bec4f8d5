"""The floor core's state as data, for a leader that takes over from another.

A cluster's floor (server/adapters/redis/) keeps the core's state in two parts: a snapshot
every few seconds and, after it, the log of every event the leader applied with the `Now`
it applied it at. Because the core is pure, snapshot + replay rebuilds exactly the state
the previous leader had, down to the session ids it handed out, provided ids come from the
state itself (`SeededIds`), not from a random source.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from server.floor.core import FloorConfig, FloorCore
from server.floor.events import Event, Now

# The shape of the core's state in a snapshot. Bump it whenever a record or part gains,
# loses or renames a field: a process refuses (and will not lead from) a snapshot whose
# format it does not know, rather than load half of one. 1 was the unversioned state of
# the single FloorCore class (before the parts).
SNAPSHOT_FORMAT = 3  # 3: the lobby (front of house) and a booth's visit and ticket ids


class UnknownFormat(Exception):
    """A snapshot (or event) written by a Loket version this process does not know."""


@dataclass
class SeededIds:
    """Session and link ids drawn from (seed, counter): unguessable, yet the same ids on
    replay, since the counter is part of the snapshot."""

    seed: str
    counter: int = 0

    @classmethod
    def fresh(cls) -> SeededIds:
        return cls(secrets.token_hex(16))

    def __call__(self) -> str:
        self.counter += 1
        return hashlib.sha256(f"{self.seed}:{self.counter}".encode()).hexdigest()[:32]


def new_core(config: FloorConfig) -> FloorCore:
    return FloorCore(config, new_id=SeededIds.fresh())


def dump_core(core: FloorCore) -> dict[str, Any]:
    """The core's state with its format (a plain dict, to be pickled and sealed)."""
    if not isinstance(core._new_id, SeededIds):
        raise TypeError("a core whose ids are random cannot be replayed; use new_core()")
    return {"format": SNAPSHOT_FORMAT, "state": core.__getstate__()}


def load_core(dumped: dict[str, Any], config: FloorConfig) -> FloorCore:
    found = dumped.get("format") if isinstance(dumped, dict) else None
    if found != SNAPSHOT_FORMAT:
        raise UnknownFormat(
            f"floor snapshot format {found!r}, this version reads {SNAPSHOT_FORMAT}: "
            "upgrade this process (see the README's upgrade order)"
        )
    core = FloorCore.__new__(FloorCore)
    vars(core).update(dumped["state"])
    core.config = config
    core._step = None
    return core


def replay(core: FloorCore, applied: Iterable[tuple[Event, Now]]) -> int:
    """Apply logged events again; their effects happened already and are dropped."""
    count = 0
    for event, now in applied:
        core.handle(event, now)
        count += 1
    return count
