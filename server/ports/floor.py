"""The floor as the socket layer and the records API see it, on any process.

One process: FloorRuntime (server.floor.runtime) decides in place. A cluster:
ClusterFloor (server.adapters.redis.floor) hands events to the leader through Redis.
"""

from __future__ import annotations

from typing import Any, Protocol

from server.ports.live_state import LiveSession
from server.principal import Principal
from signaling.messages import Envelope


class Floor(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def opened(self, principal: Principal, connection: str, resume: str | None) -> None: ...

    async def closed(self, principal: Principal, connection: str) -> None: ...

    async def received(
        self,
        principal: Principal,
        connection: str,
        message: Envelope,
        received_at: float,
        raw: str | None = None,
    ) -> None: ...

    async def document_stored(self, document: dict[str, Any]) -> None: ...

    async def verification_ready(self, claim_id: str, document_id: str, what: str) -> None:
        """Machine advice on a document is stored: tell the officer serving the claim."""
        ...

    async def capture_undeliverable(self, report: dict[str, Any]) -> None:
        """A picture its booth can never deliver: tell the officer and supervisors."""
        ...

    async def display_opened(self, branch: str) -> None:
        """A waiting room's display connected: publish its branch's state (front of house)."""
        ...

    async def session_of_claim(self, claim_id: str) -> LiveSession | None: ...
