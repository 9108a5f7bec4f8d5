"""Websocket endpoints for booths, CSOs and supervisors.

Thin glue: check Origin, authenticate the first message, then turn each valid message into
one Floor call. Every refusal is a typed `error` reply; the socket stays open unless the
error is fatal (bad version, bad token, wrong role, silence past the heartbeat timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import structlog
from fastapi import APIRouter, WebSocket

from server.api.connection import CloseCode, Closed, Connection
from server.auth.errors import AuthError
from server.auth.service import AuthService
from server.floor import Floor
from server.metrics import Metrics
from server.ports.router import FLOOR_TOPIC, Router
from server.principal import AccountRole, Principal
from server.records import RecordsError, RecordsService
from server.settings import Settings
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Accept,
    Answer,
    Candidate,
    CheckIn,
    Decline,
    EndSession,
    Envelope,
    FocusBooth,
    Hello,
    Leave,
    Offer,
    PeerState,
    Ping,
    Pong,
    Role,
    SetAvailability,
    Subscribe,
)

log = structlog.get_logger("loket.ws")
router = APIRouter()

# Which account roles may open which socket. Operators are trusted with the floor view.
SOCKET_ROLES: dict[Role, frozenset[AccountRole]] = {
    Role.BOOTH: frozenset({AccountRole.BOOTH}),
    Role.CSO: frozenset({AccountRole.CSO}),
    Role.SUPERVISOR: frozenset({AccountRole.SUPERVISOR, AccountRole.OPERATOR}),
}


@dataclass(frozen=True)
class SocketServices:
    settings: Settings
    auth: AuthService
    floor: Floor
    router: Router
    metrics: Metrics
    records: RecordsService


def _services(ws: WebSocket) -> SocketServices:
    services: SocketServices = ws.app.state.sockets
    return services


@router.websocket("/ws/booth")
async def booth_socket(ws: WebSocket) -> None:
    await serve_socket(ws, Role.BOOTH)


@router.websocket("/ws/cso")
async def cso_socket(ws: WebSocket) -> None:
    await serve_socket(ws, Role.CSO)


@router.websocket("/ws/supervisor")
async def supervisor_socket(ws: WebSocket) -> None:
    await serve_socket(ws, Role.SUPERVISOR)


async def serve_socket(ws: WebSocket, role: Role) -> None:
    svc = _services(ws)
    origin = ws.headers.get("origin")
    # Browsers always send Origin; kiosks and scripts send none. A foreign Origin is a
    # cross-site page trying to ride the user's session: refuse before accepting.
    if origin is not None and origin.rstrip("/") not in svc.settings.origins:
        log.warning("ws_origin_refused", origin=origin, role=str(role))
        await ws.close(code=CloseCode.FORBIDDEN, reason="origin not allowed")
        return
    await ws.accept()
    conn = Connection(ws, role, svc.settings, svc.metrics)
    conn.start()
    svc.metrics.sockets.labels(role=str(role)).inc()
    principal: Principal | None = None
    try:
        hello = await _await_hello(conn, svc)
        if hello is None:
            return
        principal = _authenticate(conn, svc, hello, role)
        if principal is None:
            return
        structlog.contextvars.bind_contextvars(peer_id=principal.subject, role=str(role))
        previous = await svc.router.attach(principal.subject, conn)
        if isinstance(previous, Connection):
            previous.close(CloseCode.REPLACED, "replaced by a newer connection")
        if role is Role.BOOTH:
            await svc.floor.booth_connected(principal, conn.id, hello.resume)
        elif role is Role.CSO:
            await svc.floor.cso_connected(principal, conn.id, hello.resume)
        else:
            await svc.router.subscribe(FLOOR_TOPIC, conn)
            await svc.floor.supervisor_connected(principal, conn.id)
        # The reader and the heartbeat run side by side; whichever ends first (peer gone,
        # or silent past heartbeat_timeout) ends the other.
        reader = asyncio.create_task(_read_loop(conn, svc, principal))
        heartbeat = asyncio.create_task(_heartbeat(conn, svc.settings))
        try:
            await asyncio.wait({reader, heartbeat}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, heartbeat):
                task.cancel()
            results = await asyncio.gather(reader, heartbeat, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, Closed):
                log.error("socket_task_failed", error=repr(result))
    except Closed:
        pass
    finally:
        svc.metrics.sockets.labels(role=str(role)).dec()
        if principal is not None:
            await _disconnected(conn, svc, principal)
        await conn.stop()
        structlog.contextvars.unbind_contextvars("peer_id", "role")


async def _await_hello(conn: Connection, svc: SocketServices) -> Hello | None:
    try:
        first = await conn.receive(svc.settings.hello_timeout)
    except TimeoutError:
        conn.reply_error(ProtocolError(ErrorCode.UNAUTHENTICATED, "no hello in time"))
        conn.close(CloseCode.TIMEOUT, "no hello")
        return None
    except ProtocolError as exc:
        conn.reply_error(exc)
        conn.close(CloseCode.PROTOCOL if exc.fatal else CloseCode.UNAUTHENTICATED, exc.code)
        return None
    if not isinstance(first, Hello):
        conn.reply_error(
            ProtocolError(
                ErrorCode.UNAUTHENTICATED, "the first message must be hello", ref=first.id
            )
        )
        conn.close(CloseCode.UNAUTHENTICATED, "hello first")
        return None
    return first


def _authenticate(
    conn: Connection, svc: SocketServices, hello: Hello, role: Role
) -> Principal | None:
    try:
        principal = svc.auth.authenticate(hello.token)
    except AuthError as exc:
        conn.reply_error(ProtocolError(ErrorCode.AUTH_FAILED, exc.message, ref=hello.id))
        conn.close(CloseCode.UNAUTHENTICATED, "auth failed")
        return None
    if principal.role not in SOCKET_ROLES[role]:
        conn.reply_error(
            ProtocolError(
                ErrorCode.FORBIDDEN_FOR_ROLE,
                f"a {principal.role} account may not open the {role} socket",
                ref=hello.id,
            )
        )
        conn.close(CloseCode.FORBIDDEN, "wrong role")
        return None
    return principal


async def _heartbeat(conn: Connection, settings: Settings) -> None:
    """Ping the peer every interval; a peer silent for heartbeat_timeout is dead. One timer
    per socket, rather than a deadline on every message read."""
    while True:
        await asyncio.sleep(settings.heartbeat_interval)
        silent = time.monotonic() - conn.last_heard
        if silent > settings.heartbeat_timeout:
            log.info("peer_silent", silent_s=round(silent, 1))
            conn.close(CloseCode.TIMEOUT, "heartbeat timeout")
            return
        conn.send(Ping())


async def _read_loop(conn: Connection, svc: SocketServices, principal: Principal) -> None:
    while True:
        try:
            message = await conn.receive()
        except Closed:
            return
        except ProtocolError as exc:
            conn.reply_error(exc)
            if exc.fatal:
                conn.close(CloseCode.PROTOCOL, exc.code)
                return
            continue
        received_at = time.monotonic()
        try:
            await _handle(conn, svc, principal, message, received_at)
        except ProtocolError as exc:
            conn.reply_error(exc)
        except Exception:
            log.exception("handler_failed", message_type=type(message).__name__)
            conn.reply_error(
                ProtocolError(
                    ErrorCode.INTERNAL, "the server failed to handle that", ref=message.id
                )
            )


async def _handle(
    conn: Connection,
    svc: SocketServices,
    principal: Principal,
    message: Envelope,
    received_at: float,
) -> None:
    floor, me = svc.floor, principal.subject
    match message:
        case Ping():
            conn.send(Pong(reply_to=message.id))
        case Pong():
            pass  # liveness only; receive() already noted it
        case Hello():
            raise ProtocolError(ErrorCode.CONFLICT, "already authenticated", ref=message.id)
        case Offer() | Answer() | Candidate() | PeerState():
            await floor.relay(principal, message, received_at)
        case CheckIn():
            claim_id = await _resolve_claim(svc, principal, message)
            await floor.check_in(me, message, claim_id)
        case Leave():
            await floor.leave(me, message.id)
        case SetAvailability():
            await floor.set_availability(me, message.available, message.id)
        case Accept():
            await floor.accept(me, message.session_id, message.id)
        case Decline():
            await floor.decline(me, message.session_id, message.id)
        case FocusBooth():
            await floor.focus(me, message.session_id, message.id)
        case EndSession():
            await floor.end_session(me, message.session_id, message.id)
        case Subscribe():
            conn.send(await floor.snapshot())
        case _:  # decode_inbound only lets through what this role may send
            raise ProtocolError(ErrorCode.FORBIDDEN_FOR_ROLE, "not handled here", ref=message.id)


async def _disconnected(conn: Connection, svc: SocketServices, principal: Principal) -> None:
    with contextlib.suppress(Exception):
        await svc.router.detach(principal.subject, conn)
    try:
        if conn.role is Role.BOOTH:
            await svc.floor.booth_disconnected(principal.subject, conn.id)
        elif conn.role is Role.CSO:
            await svc.floor.cso_disconnected(principal.subject, conn.id)
        else:
            await svc.router.unsubscribe(FLOOR_TOPIC, conn)
    except Exception:
        log.exception("disconnect_cleanup_failed")


async def _resolve_claim(svc: SocketServices, booth: Principal, message: CheckIn) -> str:
    """The recorded claim behind a check-in; a walk-in is registered here (no quota)."""
    try:
        claim = await svc.records.check_in(booth, message.claim)
    except RecordsError as exc:
        code = ErrorCode.CLAIM_NOT_FOUND if exc.status == 404 else ErrorCode.CLAIM_REFUSED
        raise ProtocolError(code, exc.message, ref=message.id) from None
    return claim.claim_id
