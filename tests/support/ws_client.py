"""A small protocol client for tests: real websockets, messages via signaling.codec."""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection

from signaling.codec import decode_outbound, encode
from signaling.messages import Envelope, Hello, Ping, Pong, Role, Welcome

M = TypeVar("M", bound=Envelope)


class SignalClient:
    """One socket. `expect(Type)` returns the next message of that type, answering pings
    and keeping everything else in `seen` so tests can look back."""

    def __init__(self, conn: ClientConnection, role: Role) -> None:
        self.conn = conn
        self.role = role
        self.seen: list[Envelope] = []
        self.welcome: Welcome | None = None

    @classmethod
    async def connect(
        cls,
        ws_url: str,
        role: Role,
        token: str | None = None,
        *,
        origin: str | None = None,
        resume: str | None = None,
    ) -> SignalClient:
        headers = {"Origin": origin} if origin else None
        conn = await websockets.connect(
            f"{ws_url}/ws/{role}", additional_headers=headers, max_size=2**22
        )
        client = cls(conn, role)
        if token is not None:
            await client.send(Hello(token=token, resume=resume))
            client.welcome = await client.expect(Welcome)
        return client

    async def send(self, message: Envelope) -> None:
        await self.conn.send(encode(message))

    async def send_raw(self, raw: str | bytes | dict[str, Any]) -> None:
        await self.conn.send(json.dumps(raw) if isinstance(raw, dict) else raw)

    async def recv(self, timeout: float = 10.0) -> Envelope:
        raw = await asyncio.wait_for(self.conn.recv(), timeout)
        message = decode_outbound(raw, self.role)
        if isinstance(message, Ping):
            await self.send(Pong(reply_to=message.id))
        return message

    async def expect(self, kind: type[M], timeout: float = 10.0, **match: Any) -> M:
        """Next message of `kind` whose fields equal `match`; fails after `timeout`."""
        for seen in self.seen:
            if isinstance(seen, kind) and _matches(seen, match):
                self.seen.remove(seen)
                return seen
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {kind.__name__} {match or ''}; saw {self.seen[-5:]}")
            message = await self.recv(left)
            if isinstance(message, kind) and _matches(message, match):
                return message
            self.seen.append(message)

    async def close(self) -> None:
        await self.conn.close()


def _matches(message: Envelope, match: dict[str, Any]) -> bool:
    return all(getattr(message, k) == v for k, v in match.items())
