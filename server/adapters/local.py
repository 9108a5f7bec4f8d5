"""In-process adapters for the Router and LiveState ports (single-node default)."""

from __future__ import annotations

from collections import defaultdict

from server.ports.live_state import LiveSession
from server.ports.router import Delivery, Mailbox
from signaling.messages import Envelope


class LocalRouter:
    def __init__(self) -> None:
        self._peers: dict[str, Mailbox] = {}
        self._topics: dict[str, set[Mailbox]] = defaultdict(set)

    async def attach(self, peer_id: str, mailbox: Mailbox) -> Mailbox | None:
        previous = self._peers.get(peer_id)
        self._peers[peer_id] = mailbox
        return previous if previous is not mailbox else None

    async def detach(self, peer_id: str, mailbox: Mailbox) -> None:
        if self._peers.get(peer_id) is mailbox:
            del self._peers[peer_id]

    async def send(
        self,
        peer_id: str,
        message: Envelope,
        *,
        received_at: float | None = None,
        raw: str | None = None,
        connection: str | None = None,
    ) -> bool:
        mailbox = self._peers.get(peer_id)
        if mailbox is None or (connection is not None and mailbox.id != connection):
            return False
        return mailbox.deliver(Delivery(message, received_at, raw))

    async def subscribe(self, topic: str, mailbox: Mailbox) -> None:
        self._topics[topic].add(mailbox)

    async def unsubscribe(self, topic: str, mailbox: Mailbox) -> None:
        self._topics[topic].discard(mailbox)

    async def publish(self, topic: str, message: Envelope) -> int:
        delivery = Delivery(message)
        return sum(1 for mailbox in list(self._topics[topic]) if mailbox.deliver(delivery))


class LocalLiveState:
    def __init__(self) -> None:
        self._sessions: dict[str, LiveSession] = {}
        self._by_peer: dict[str, set[str]] = defaultdict(set)
        self._by_claim: dict[str, str] = {}  # claim id -> the session last put for it

    async def put(self, session: LiveSession) -> None:
        self._sessions[session.session_id] = session
        for address in session.addresses:
            self._by_peer[address].add(session.session_id)
        if session.claim_id:
            self._by_claim[session.claim_id] = session.session_id

    async def get(self, session_id: str) -> LiveSession | None:
        return self._sessions.get(session_id)

    async def delete(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session:
            if session.claim_id and self._by_claim.get(session.claim_id) == session_id:
                del self._by_claim[session.claim_id]
            for address in session.addresses:
                self._by_peer[address].discard(session_id)
                if not self._by_peer[address]:
                    del self._by_peer[address]

    async def of_peer(self, address: str) -> list[LiveSession]:
        return [self._sessions[s] for s in sorted(self._by_peer.get(address, ()))]

    async def count(self) -> int:
        return len(self._sessions)

    async def of_claim(self, claim_id: str) -> LiveSession | None:
        session_id = self._by_claim.get(claim_id)
        return self._sessions.get(session_id) if session_id else None
