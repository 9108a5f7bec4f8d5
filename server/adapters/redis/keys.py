"""Every Redis key Loket uses, under one prefix (`LOKET_REDIS_PREFIX`)."""

from __future__ import annotations

from dataclasses import dataclass

# The leader's consumer group on the event stream.
FLOOR_GROUP = "floor"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "loket"

    def _k(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    # The floor: gateways -> leader events, the leader's applied log and snapshot, the lease.
    @property
    def events(self) -> str:
        return self._k("floor:events")

    @property
    def log(self) -> str:
        return self._k("floor:log")

    @property
    def last_commit(self) -> str:
        return self._k("floor:last_commit")

    @property
    def snapshot(self) -> str:
        return self._k("floor:snapshot")

    @property
    def events_bytes(self) -> str:
        return self._k("floor:events:bytes")  # bytes waiting in the event stream (budget)

    @property
    def poison(self) -> str:
        return self._k("floor:poison")  # hash: stream entry id -> times the core failed on it

    @property
    def quarantine(self) -> str:
        return self._k("floor:quarantine")  # events set aside (poison, unreadable)

    @property
    def outbox(self) -> str:
        return self._k("floor:outbox")  # audit entries decided, not yet in the records

    @property
    def outbox_quarantine(self) -> str:
        return self._k("floor:outbox:quarantine")

    @property
    def leader(self) -> str:
        return self._k("floor:leader")

    @property
    def fence(self) -> str:
        return self._k("floor:fence")

    # Projections the leader keeps for people and tools (never read back by the floor).
    @property
    def view(self) -> str:
        return self._k("floor:view")

    @property
    def queue(self) -> str:
        return self._k("floor:queue")

    @property
    def csos(self) -> str:
        return self._k("floor:csos")

    # Delivery between processes.
    @property
    def procs(self) -> str:
        return self._k("procs")  # sorted set: process id -> presence deadline (unix ms)

    @property
    def peers(self) -> str:
        return self._k("peers")  # hash: peer id -> process id holding its socket

    def inbox(self, process_id: str) -> str:
        return self._k(f"inbox:{process_id}")

    def channel(self, topic: str) -> str:
        return self._k(f"topic:{topic}")

    # Live sessions (the LiveState port).
    @property
    def sessions(self) -> str:
        return self._k("sessions")

    @property
    def claims(self) -> str:
        return self._k("session_of_claim")

    def peer_sessions(self, address: str) -> str:
        return self._k(f"peer_sessions:{address}")
