"""The outbox's way to the server over HTTP: capture grants, uploads, undeliverable reports.

A picture larger than one chunk goes as a resumable upload (server/api/uploads.py, after
tus 1.0's core protocol): create it (the Idempotency-Key and grant in the headers, the
length and SHA-256 in the body; the answer says the server's offset), then PATCH chunk
after chunk from that offset, each with its own SHA-256. A connection cut mid-way costs
at most the chunk in flight: the next try creates the upload again, which finds the same
one, and goes on from the server's offset. A smaller picture goes in one POST.

Every body is streamed in small pieces and the pacer (booth_client.pacing) is asked
before each one, so an upload takes only what the call leaves of the uplink; progress is
reported per piece. LOKET_BOOTH_CRASH_POINT (tests only) kills the kiosk at a point of an
upload, to prove a restart delivers the picture exactly once.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import structlog

from booth_client.delivery import Delivery, Progress
from booth_client.outbox import OutboxItem
from booth_client.pacing import Pacer

log = structlog.get_logger("loket.booth.upload")

CHUNK_BYTES = 64 * 1024  # a PATCH: what a cut line may cost again
PIECE_BYTES = 8 * 1024  # what the pacer is asked for at a time
CHUNK_TYPE = "application/offset+octet-stream"
GRANT_HEADER = "Loket-Capture-Grant"
# Tests only: SIGKILL the kiosk at this point of an upload. Unset in production.
CRASH_POINT_ENV = "LOKET_BOOTH_CRASH_POINT"
CRASH_POINTS = ("before_upload", "after_upload", "mid_upload")

# (client, force a fresh one) -> an access token
TokenSource = Callable[[httpx.AsyncClient, bool], Awaitable[str]]


def _crash(point: str) -> None:
    if os.environ.get(CRASH_POINT_ENV, "") == point:
        log.warning("crash_point_reached", point=point)
        os.kill(os.getpid(), signal.SIGKILL)


def _answer(response: httpx.Response) -> Delivery:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.headers.get("Idempotent-Replayed") == "true":
        body = {**body, "replayed": True}
    return Delivery(response.status_code, body)


class HttpTransport:
    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        pacer: Callable[[], Pacer | None] = lambda: None,
        chunk_bytes: int = CHUNK_BYTES,
        piece_bytes: int = PIECE_BYTES,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url
        self._token = token
        self._pacer = pacer
        self.chunk_bytes = chunk_bytes
        self.piece_bytes = min(piece_bytes, chunk_bytes)
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        # One client for the kiosk's life: its connection is kept alive between chunks.
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self._timeout)
        return self._http

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def _headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self._token(self.http, False)}", **extra}

    async def reauthenticate(self) -> None:
        await self._token(self.http, True)

    async def _send(self, method: str, url: str, **kw: Any) -> Delivery:
        try:
            return _answer(await self.http.request(method, url, **kw))
        except httpx.TransportError as exc:
            raise OSError(f"{method} {url}: {exc!r}") from exc

    # --- grants and reports ------------------------------------------------------------

    async def grant(self, item: OutboxItem) -> Delivery:
        body = {"kind": item.kind, "session_id": item.session_id, "capture_id": item.capture_key}
        if item.session_id is None:
            return Delivery(422, {"error": {"code": "no_session", "message": "no session"}})
        headers = await self._headers(**{"Idempotency-Key": f"grant-{item.capture_key}"})
        return await self._send(
            "POST", f"/api/claims/{item.claim_id}/captures", json=body, headers=headers
        )

    async def report(self, item: OutboxItem) -> Delivery:
        refusal = item.refusal
        body = {
            "kind": item.kind,
            "reason": str(refusal.get("reason") or "refused")[:64],
            "status": refusal.get("status"),
            "message": str(refusal.get("message") or "")[:300],
        }
        headers = await self._headers(**{"Idempotency-Key": f"undeliverable-{item.item_id}"})
        if item.grant:
            headers[GRANT_HEADER] = item.grant
        url = f"/api/claims/{item.claim_id}/captures/{item.capture_key}/undeliverable"
        return await self._send("POST", url, json=body, headers=headers)

    # --- uploads ------------------------------------------------------------------------

    async def _paced(
        self, data: bytes, start: int, end: int, total: int, progress: Progress
    ) -> AsyncIterator[bytes]:
        """data[start:end] in pieces, each let through by the pacer first."""
        view = memoryview(data)
        at = start
        while at < end:
            piece = bytes(view[at : min(end, at + self.piece_bytes)])
            pacer = self._pacer()
            if pacer is not None:
                await pacer.pace(len(piece))
            yield piece
            at += len(piece)
            await progress(at, total)

    async def upload(self, item: OutboxItem, data: bytes, progress: Progress) -> Delivery:
        _crash("before_upload")
        await progress(0, len(data))
        if len(data) <= self.chunk_bytes:
            answer = await self._one_shot(item, data, progress)
        else:
            answer = await self._resumable(item, data, progress)
        _crash("after_upload")  # the server has it; we die before noting that
        return answer

    async def _one_shot(self, item: OutboxItem, data: bytes, progress: Progress) -> Delivery:
        headers = await self._headers(
            **{"Content-Type": item.content_type, "Idempotency-Key": item.idempotency_key,
               "Content-Length": str(len(data))}
        )  # fmt: skip
        if item.grant:
            headers[GRANT_HEADER] = item.grant
        return await self._send(
            "POST", f"/api/claims/{item.claim_id}/documents", params={"kind": item.kind},
            content=self._paced(data, 0, len(data), len(data), progress), headers=headers,
        )  # fmt: skip

    async def _create(self, item: OutboxItem, data: bytes) -> Delivery:
        headers = await self._headers(**{"Idempotency-Key": item.idempotency_key})
        if item.grant:
            headers[GRANT_HEADER] = item.grant
        body = {
            "length": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "content_type": item.content_type,
        }
        return await self._send(
            "POST", f"/api/claims/{item.claim_id}/uploads", params={"kind": item.kind},
            json=body, headers=headers,
        )  # fmt: skip

    async def _resumable(self, item: OutboxItem, data: bytes, progress: Progress) -> Delivery:
        created = await self._create(item, data)
        restarts = 0
        while True:
            if not created.delivered or "document_id" in created.body:
                return created  # refused, or stored already (its answer)
            location = str(created.body["location"])
            offset = int(created.body["offset"])
            if offset:
                log.info("upload_resumed", item=item.item_id, offset=offset, total=len(data))
            answer = await self._chunks(item, data, location, offset, progress)
            if answer.status != 404 or restarts >= 2:
                return answer
            restarts += 1  # expired or purged meanwhile: create it again, from 0
            created = await self._create(item, data)

    async def _chunks(
        self, item: OutboxItem, data: bytes, location: str, offset: int, progress: Progress
    ) -> Delivery:
        """PATCH from `offset` to the end; the server's answer to the last one."""
        total, strikes = len(data), 0
        await progress(offset, total)
        while True:
            end = min(total, offset + self.chunk_bytes)
            digest = base64.b64encode(hashlib.sha256(data[offset:end]).digest()).decode()
            headers = await self._headers(
                **{"Upload-Offset": str(offset), "Content-Type": CHUNK_TYPE,
                   "Content-Length": str(end - offset), "Upload-Checksum": f"sha256 {digest}"}
            )  # fmt: skip
            answer = await self._send(
                "PATCH", location, content=self._paced(data, offset, end, total, progress),
                headers=headers,
            )  # fmt: skip
            if answer.status == 204:
                offset, strikes = end, 0
                if offset == self.chunk_bytes:
                    _crash("mid_upload")  # a chunk is on the server, the rest is not
                continue
            if answer.status == 409 and answer.code == "offset_mismatch" and strikes < 3:
                offset, strikes = int(answer.body["error"]["offset"]), strikes + 1
                continue  # the server is elsewhere (a chunk whose answer was lost)
            if answer.status == 460 and strikes < 3:
                strikes += 1
                continue  # damaged on the way: the same chunk again
            return answer
