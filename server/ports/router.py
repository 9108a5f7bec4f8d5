"""Router port: delivers messages to connected peers, wherever they are connected.

In-process (`server.adapters.local`), or through Redis (`server.adapters.redis.router`)
so that a booth on one server process talks to a CSO on another. Delivery is best-effort
and returns whether a live connection took the message; durable things never travel only
this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from server.domain.access import FLOOR_TOPIC_ALL
from signaling.messages import Envelope

# The whole region's floor; a scope's topic is server.domain.access.floor_topic.
FLOOR_TOPIC = FLOOR_TOPIC_ALL
FLOOR_TOPICS = "floor*"  # the pattern every scope's topic matches


@dataclass(frozen=True, slots=True)
class Delivery:
    message: Envelope | None  # None: `raw` is the whole frame (from another process)
    # monotonic time the message that caused this one arrived, for relay latency
    received_at: float | None = None
    # A relayed message's own frame, as the sender sent it (validated): forwarded as-is
    # rather than encoded again.
    raw: str | None = None


class Mailbox(Protocol):
    """A connection's outgoing queue, as the router sees it."""

    @property
    def id(self) -> str:
        """The connection's id, unique per socket."""
        ...

    def deliver(self, delivery: Delivery) -> bool: ...


class Router(Protocol):
    async def attach(self, peer_id: str, mailbox: Mailbox) -> Mailbox | None:
        """Bind a peer's address (`booth:<id>`, `cso:<id>`, `supervisor:<id>`) to mailbox;
        returns the mailbox it replaced, if any."""
        ...

    async def detach(self, peer_id: str, mailbox: Mailbox) -> None:
        """Unbind, only if peer_id is still bound to this mailbox."""
        ...

    async def send(
        self,
        peer_id: str,
        message: Envelope,
        *,
        received_at: float | None = None,
        raw: str | None = None,
        connection: str | None = None,
    ) -> bool:
        """Deliver to the peer's socket; with `connection` (the floor's name for one
        socket), only if that socket is still the peer's: never to a newer one."""
        ...

    async def subscribe(self, topic: str, mailbox: Mailbox) -> None: ...

    async def unsubscribe(self, topic: str, mailbox: Mailbox) -> None: ...

    async def publish(self, topic: str, message: Envelope) -> int:
        """Deliver to every subscriber of topic; returns how many took it."""
        ...
