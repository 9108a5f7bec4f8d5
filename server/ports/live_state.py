"""LiveState port: the live sessions (which booth is paired with which CSO, and how far).

The floor core decides and writes it; the records service reads it on every request to
authorise a CSO by the session's state, on whichever process the request lands. In-process
(server.adapters.local), or in Redis (server.adapters.redis), where every process reads
what the floor's leader wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from signaling.session import SessionState


@dataclass(frozen=True, slots=True)
class LiveSession:
    session_id: str
    booth_id: str
    cso_id: str
    state: SessionState
    created_at: float  # unix time
    booth_fingerprints: tuple[str, ...] = field(default=())
    cso_fingerprints: tuple[str, ...] = field(default=())
    claim_id: str | None = None  # the claim being verified in this session

    @property
    def addresses(self) -> tuple[str, str]:
        """Its two ends as peers are addressed (role and id: a user may share a booth's id)."""
        return f"booth:{self.booth_id}", f"cso:{self.cso_id}"

    def with_state(self, state: SessionState) -> LiveSession:
        return replace(self, state=state)


class LiveState(Protocol):
    async def put(self, session: LiveSession) -> None: ...

    async def get(self, session_id: str) -> LiveSession | None: ...

    async def delete(self, session_id: str) -> None: ...

    async def of_peer(self, address: str) -> list[LiveSession]:
        """The sessions of a peer, by its address (`booth:<id>`, `cso:<id>`)."""
        ...

    async def count(self) -> int: ...

    async def of_claim(self, claim_id: str) -> LiveSession | None:
        """The live session in which this claim is being verified, if any."""
        ...
