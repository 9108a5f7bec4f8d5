"""The waiting room's calling display: its socket and its spoken calls.

A display is a screen in the waiting room (a kiosk browser at `/display/`), enrolled once
with `loket display enrol --branch jkt01` (a display key, kept hashed; revocable). It
listens only: `/ws/display` takes `hello` with its key (never in a URL) and from then on
gets its branch's `display_state` (last calls, how many wait, the estimated wait) and each
`display_call` as it happens (the floor publishes them on the branch's display topic).
The spoken call (`GET /api/display/speech.wav?t=...&s=...`) is made offline by espeak-ng
(server/adapters/speech.py) for texts the floor signed, so nobody can make the server
synthesise anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac

import structlog
from fastapi import APIRouter, HTTPException, Query, Request, WebSocket
from fastapi.responses import FileResponse

from server.adapters.speech import Speech
from server.adapters.sql.front import Displays
from server.api.connection import CloseCode, Closed, Connection
from server.domain.speech import MAX_SPOKEN, SPEECH_PATH, speech_signature
from server.floor.front import display_topic
from server.metrics import Metrics
from server.ports.floor import Floor
from server.ports.router import Router
from server.settings import Settings
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import Hello, Ping, Pong, Role

log = structlog.get_logger("loket.display")
router = APIRouter()


class DisplayServices:
    def __init__(
        self, settings: Settings, displays: Displays, speech: Speech, key: bytes,
        floor: Floor, router: Router, metrics: Metrics,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.displays = displays
        self.speech = speech
        self.key = key
        self.floor = floor
        self.router = router
        self.metrics = metrics


def _services(app_state: object) -> DisplayServices:
    services: DisplayServices = app_state.display  # type: ignore[attr-defined]
    return services


@router.get(SPEECH_PATH, tags=["display"], summary="A spoken call (chime + voice), WAV")
async def speech(
    request: Request,
    t: str = Query(..., min_length=1, max_length=MAX_SPOKEN, description="the words"),
    s: str = Query(..., min_length=32, max_length=32, pattern="^[0-9a-f]{32}$"),
) -> FileResponse:
    svc = _services(request.app.state)
    if not hmac.compare_digest(s, speech_signature(t, svc.key)):
        raise HTTPException(403, "not a call this floor made")
    path = await svc.speech.wav(t)
    headers = {"Cache-Control": "public, max-age=86400, immutable"}
    return FileResponse(path, media_type="audio/wav", headers=headers)


@router.websocket("/ws/display")
async def display_socket(ws: WebSocket) -> None:
    svc = _services(ws.app.state)
    origin = ws.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in svc.settings.origins:
        await ws.close(code=CloseCode.FORBIDDEN, reason="origin not allowed")
        return
    await ws.accept()
    conn = Connection(ws, Role.DISPLAY, svc.settings, svc.metrics)
    conn.start()
    topic: str | None = None
    try:
        display = await _hello(conn, svc)
        if display is None:
            return
        display_id, branch, _ = display
        topic = display_topic(branch)
        await svc.router.subscribe(topic, conn)
        await svc.floor.display_opened(branch)  # its branch's state comes at once
        log.info("display_opened", display_id=display_id, branch=branch)
        tasks = {
            asyncio.create_task(_read(conn, svc.settings.heartbeat_timeout)),
            asyncio.create_task(_still_enrolled(conn, svc, display_id)),
            asyncio.create_task(conn.closing.wait()),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    except Closed:
        pass
    finally:
        if topic is not None:
            await svc.router.unsubscribe(topic, conn)
        await conn.stop()


async def _hello(conn: Connection, svc: DisplayServices) -> tuple[str, str, str] | None:
    try:
        first = await conn.receive(svc.settings.hello_timeout)
    except (TimeoutError, ProtocolError):
        conn.close(CloseCode.UNAUTHENTICATED, "no hello")
        return None
    display = await svc.displays.authenticate(first.token) if isinstance(first, Hello) else None
    if display is None:
        refused = "not a display key of this server; enrol it again (`loket display enrol`)"
        conn.reply_error(ProtocolError(ErrorCode.AUTH_FAILED, refused, ref=first.id))
        conn.close(CloseCode.UNAUTHENTICATED, "display key refused")
        return None
    return display


async def _read(conn: Connection, silence: float) -> None:
    """Pings answered; a display silent past the heartbeat timeout is closed (it pings
    every interval)."""
    while True:
        try:
            message = await conn.receive(silence)
        except TimeoutError:
            conn.close(CloseCode.TIMEOUT, "heartbeat timeout")
            return
        except ProtocolError as exc:
            conn.reply_error(exc)
            continue
        if isinstance(message, Ping):
            conn.send(Pong(reply_to=message.id))


async def _still_enrolled(conn: Connection, svc: DisplayServices, display_id: str) -> None:
    """A revoked display loses its socket within `account_check_interval`."""
    while True:
        await asyncio.sleep(svc.settings.account_check_interval)
        with contextlib.suppress(Exception):
            rows = await svc.displays.list()
            mine = next((r for r in rows if r["display_id"] == display_id), None)
            if mine is None or mine["revoked"]:
                conn.close(CloseCode.FORBIDDEN, "display revoked")
                return
