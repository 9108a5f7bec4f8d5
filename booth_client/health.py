"""The kiosk's local health endpoint: `GET /healthz` -> JSON, for the branch's monitoring.

    {"connected": true, "state": "on_hold", "session": "s-..", "last_error": null,
     "outbox_depth": 0, "media_up": true, "peer": "connected", ...}

200 while the kiosk holds an authenticated socket to the server, 503 otherwise. It is a
few lines of HTTP/1.1 on asyncio.start_server (stdlib): one short GET a scrape, no
keep-alive, nothing else is served. Bind it to loopback (or the branch's management
network): it tells which session a booth is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("loket.booth.health")

Snapshot = Callable[[], dict[str, Any]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def render(status: int, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + payload


def respond(request_line: bytes, snapshot: Snapshot) -> bytes:
    """The answer to one request line (`GET /healthz HTTP/1.1`)."""
    parts = request_line.decode("latin-1").split()
    if len(parts) < 2:
        return render(405, {"error": "send GET /healthz"})
    method, target = parts[0], parts[1].split("?", 1)[0]
    if target != "/healthz":
        return render(404, {"error": "only /healthz is served here"})
    if method not in ("GET", "HEAD"):
        return render(405, {"error": "send GET /healthz"})
    body = snapshot()
    answer = render(200 if body.get("connected") else 503, body)
    return answer.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" if method == "HEAD" else answer


class HealthServer:
    def __init__(self, host: str, port: int, snapshot: Snapshot) -> None:
        self.host, self.port = host, port
        self._snapshot = snapshot
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; OSError (address in use, not ours) is the caller's to report."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]  # port 0: the one chosen
        log.info("health_listening", host=self.host, port=self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request_line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: nothing in them changes the answer
                writer.write(respond(request_line, self._snapshot))
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass  # a slow or broken scraper: drop it
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
