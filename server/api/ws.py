"""Websocket endpoints for booths, CSOs and supervisors.

Thin glue: check Origin, authenticate the first message, then hand each valid message to
the floor runtime as an event. Every refusal is a typed `error` reply; the socket stays
open unless the error is fatal (bad version, bad token, wrong role, silence past the
heartbeat timeout).

Authentication holds for the whole connection, not just `hello`: a socket whose access
token expires is closed (4401) unless the client sent a fresh one (`reauth`) first, and
the accounts behind all open sockets are re-read every `account_check_interval` (batched,
`watch_accounts`) so a disabled account or a revoked booth loses its sockets within that
time (4403).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket

from server.api.connection import CloseCode, Closed, Connection
from server.auth.errors import AuthError
from server.auth.service import AuthService
from server.domain.access import floor_scope, floor_topic, may_open_socket
from server.floor import ClaimLookupError
from server.floor.effects import Audit
from server.floor.outbox import AuditWriter
from server.floor.runtime import ClaimResolver
from server.metrics import Metrics
from server.ports.floor import Floor
from server.ports.records import AuditDraft, RecordsTx
from server.ports.router import Router
from server.principal import Principal
from server.records import RecordsError, RecordsService
from server.settings import Settings
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Ack,
    CheckIn,
    Envelope,
    Hello,
    Ping,
    Pong,
    Reauth,
    Role,
    Subscribe,
    TicketRef,
)

log = structlog.get_logger("loket.ws")
router = APIRouter()


def peer_address(principal: Principal, role: Role) -> str:
    """How routers and the floor address this socket's peer: role and id together (a
    user may be named like a booth; they are two peers)."""
    return f"{role}:{principal.subject}"


@dataclass
class SocketServices:
    settings: Settings
    auth: AuthService
    floor: Floor
    router: Router
    metrics: Metrics
    records: RecordsService
    unauthenticated: int = field(default=0)  # sockets open that have not said hello yet
    # Authenticated sockets of this process, for the batched account re-check.
    open_sockets: dict[str, tuple[Connection, _Session]] = field(default_factory=dict)


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


SUBSCRIBE_INTERVAL = 1.0  # seconds between `subscribe`s one socket may send


class _Session:
    """The authenticated identity of one socket; `principal` changes on `reauth`."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.subscribed_at = -SUBSCRIBE_INTERVAL


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
    me: _Session | None = None
    try:
        hello = await _await_hello(conn, svc)
        if hello is None:
            return
        principal = await _authenticate(conn, svc, hello.token, role, hello.id)
        if principal is None:
            return
        me = _Session(principal)
        svc.open_sockets[conn.id] = (conn, me)
        structlog.contextvars.bind_contextvars(peer_id=principal.subject, role=str(role))
        previous = await svc.router.attach(peer_address(principal, role), conn)
        if isinstance(previous, Connection):
            previous.close(CloseCode.REPLACED, "replaced by a newer connection")
        if role is Role.SUPERVISOR:
            await svc.router.subscribe(floor_topic(floor_scope(principal)), conn)
        await svc.floor.opened(principal, conn.id, hello.resume)
        # Reader, watchdog (heartbeat, token expiry, account checks) and the connection's
        # own close side by side; whichever ends first ends the others.
        tasks = {
            asyncio.create_task(_read_loop(conn, svc, me)),
            asyncio.create_task(_watchdog(conn, svc, me)),
            asyncio.create_task(_closing(conn)),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, Closed):
                log.error("socket_task_failed", error=repr(result))
    except Closed:
        pass
    finally:
        svc.metrics.sockets.labels(role=str(role)).dec()
        svc.open_sockets.pop(conn.id, None)
        if me is not None:
            await _disconnected(conn, svc, me.principal)
        await conn.stop()
        structlog.contextvars.unbind_contextvars("peer_id", "role")


async def _await_hello(conn: Connection, svc: SocketServices) -> Hello | None:
    # Sockets that have not said who they are cost memory and a timer each: bound them.
    if svc.unauthenticated >= svc.settings.max_unauthenticated_sockets:
        conn.reply_error(
            ProtocolError(ErrorCode.RATE_LIMITED, "too many connections waiting to say hello")
        )
        conn.close(CloseCode.OVERLOADED, "too many unauthenticated sockets")
        return None
    svc.unauthenticated += 1
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
    finally:
        svc.unauthenticated -= 1
    if not isinstance(first, Hello):
        conn.reply_error(
            ProtocolError(
                ErrorCode.UNAUTHENTICATED, "the first message must be hello", ref=first.id
            )
        )
        conn.close(CloseCode.UNAUTHENTICATED, "hello first")
        return None
    return first


async def _authenticate(
    conn: Connection, svc: SocketServices, token: str, role: Role, ref: str
) -> Principal | None:
    try:
        principal = svc.auth.authenticate(token)
    except AuthError as exc:
        conn.reply_error(ProtocolError(ErrorCode.AUTH_FAILED, exc.message, ref=ref))
        conn.close(CloseCode.UNAUTHENTICATED, "auth failed")
        return None
    verdict = may_open_socket(principal, role)
    if not verdict:
        conn.reply_error(ProtocolError(ErrorCode.FORBIDDEN_FOR_ROLE, verdict.reason, ref=ref))
        conn.close(CloseCode.FORBIDDEN, "wrong role")
        return None
    return principal


async def _watchdog(conn: Connection, svc: SocketServices, me: _Session) -> None:
    """One timer per socket: pings, silence and token expiry. (Account re-checks are
    batched for all sockets by `watch_accounts`.)"""
    settings = svc.settings
    next_ping = time.monotonic() + settings.heartbeat_interval
    while True:
        expires_at = me.principal.expires_at
        until_expiry = (expires_at - time.time()) if expires_at is not None else float("inf")
        wake = next_ping - time.monotonic()
        await asyncio.sleep(max(0.0, min(wake, until_expiry)))
        now = time.monotonic()
        if me.principal.expires_at is not None and time.time() >= me.principal.expires_at:
            log.info("token_expired")
            conn.reply_error(
                ProtocolError(
                    ErrorCode.AUTH_FAILED,
                    "the access token expired; refresh it and send `reauth` before it does",
                )
            )
            conn.close(CloseCode.UNAUTHENTICATED, "token expired")
            return
        if now >= next_ping:
            next_ping = now + settings.heartbeat_interval
            silent = now - conn.last_heard
            if silent > settings.heartbeat_timeout:
                log.info("peer_silent", silent_s=round(silent, 1))
                conn.close(CloseCode.TIMEOUT, "heartbeat timeout")
                return
            conn.send(Ping())


async def watch_accounts(svc: SocketServices) -> None:
    """Every `account_check_interval`, re-read the accounts behind every open socket of
    this process in a few batched queries, and close (4403) those of disabled users and
    revoked booths. One task per process, not one query per socket: 35,000 sockets cost
    ~70 reads per interval instead of 35,000."""
    while True:
        await asyncio.sleep(svc.settings.account_check_interval)
        sockets = list(svc.open_sockets.values())
        if not sockets:
            continue
        try:
            gone = await svc.auth.inactive([me.principal for _, me in sockets])
        except Exception:  # a database blip is not the users' fault: keep the sockets
            log.warning("account_check_failed", exc_info=True)
            continue
        for conn, me in sockets:
            if (me.principal.role, me.principal.subject) in gone:
                log.info("account_no_longer_active", peer_id=me.principal.subject)
                conn.reply_error(
                    ProtocolError(
                        ErrorCode.AUTH_FAILED, "this account was disabled; ask an operator"
                    )
                )
                conn.close(CloseCode.FORBIDDEN, "account disabled")


async def _closing(conn: Connection) -> None:
    """End the handler once a close is decided (slow consumer, replaced, expired), even
    when the peer has stopped reading and the writer cannot finish the close handshake."""
    await conn.closing.wait()
    await conn.flushed(timeout=1.0)


async def _read_loop(conn: Connection, svc: SocketServices, me: _Session) -> None:
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
            await _handle(conn, svc, me, message, received_at)
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
    conn: Connection, svc: SocketServices, me: _Session, message: Envelope, received_at: float
) -> None:
    match message:
        case Ping():
            conn.send(Pong(reply_to=message.id))
        case Pong():
            pass  # liveness only; receive() already noted it
        case Hello():
            raise ProtocolError(ErrorCode.CONFLICT, "already authenticated", ref=message.id)
        case Reauth():
            await _reauth(conn, svc, me, message)
        case Subscribe() if received_at - me.subscribed_at < SUBSCRIBE_INTERVAL:
            # Snapshots come with every broadcast pass anyway; asking faster costs the
            # floor (in a cluster, Redis) and gives nothing.
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, "one snapshot request per second", ref=message.id
            )
        case Subscribe():
            me.subscribed_at = received_at
            await svc.floor.received(me.principal, conn.id, message, received_at, conn.last_raw)
        case _:
            await svc.floor.received(me.principal, conn.id, message, received_at, conn.last_raw)


async def _reauth(conn: Connection, svc: SocketServices, me: _Session, message: Reauth) -> None:
    try:
        fresh = svc.auth.authenticate(message.token)
    except AuthError as exc:
        raise ProtocolError(ErrorCode.AUTH_FAILED, exc.message, ref=message.id) from None
    if fresh.subject != me.principal.subject or fresh.role is not me.principal.role:
        # Not a refresh but another identity: this socket cannot change hands.
        conn.reply_error(
            ProtocolError(
                ErrorCode.AUTH_FAILED, "reauth must be for the same account", ref=message.id
            )
        )
        conn.close(CloseCode.UNAUTHENTICATED, "reauth for another account")
        return
    me.principal = fresh
    conn.send(Ack(reply_to=message.id))


async def _disconnected(conn: Connection, svc: SocketServices, principal: Principal) -> None:
    with contextlib.suppress(Exception):
        await svc.router.detach(peer_address(principal, conn.role), conn)
    try:
        if conn.role is Role.SUPERVISOR:
            await svc.router.unsubscribe(floor_topic(floor_scope(principal)), conn)
        await svc.floor.closed(principal, conn.id)
    except Exception:
        log.exception("disconnect_cleanup_failed")


def claim_resolver(records: RecordsService) -> ClaimResolver:
    """The floor's claim lookup: the recorded claim behind a check-in the floor accepted;
    a walk-in is registered here (no quota)."""

    async def resolve(booth: Principal, message: CheckIn) -> str:
        if isinstance(message.claim, TicketRef):  # the floor confirms tickets itself
            raise ClaimLookupError(ErrorCode.CLAIM_REFUSED, "a ticket is confirmed at its booth")
        try:
            claim = await records.check_in(booth, message.claim)
        except RecordsError as exc:
            code = ErrorCode.CLAIM_NOT_FOUND if exc.status == 404 else ErrorCode.CLAIM_REFUSED
            raise ClaimLookupError(code, exc.message) from None
        return claim.claim_id

    return resolve


def audit_writer(records: RecordsService) -> AuditWriter:
    """The floor outbox's writer: one audit entry (a supervisor's steering or monitoring,
    fingerprints a renegotiation added), exactly once under its effect id (the records'
    idempotency table: a retry, or a second leader draining the same entry, finds it
    written), stamped with the time of the decision, not of the write."""

    async def write(entry: Audit) -> None:
        draft = AuditDraft(
            actor=entry.actor,
            role=entry.role,
            action=entry.action,
            claim_id=entry.claim_id,
            fingerprints=entry.fingerprints,
            details={k: v for k, v in entry.details.items() if v is not None},
        )
        at = datetime.fromtimestamp(entry.at, UTC)
        body = json.dumps([entry.action, entry.actor, entry.claim_id, draft.details,
                           list(entry.fingerprints)], sort_keys=True, default=str)  # fmt: skip
        digest = hashlib.sha256(body.encode()).hexdigest()

        def work(tx: RecordsTx) -> tuple[int, dict[str, Any]]:
            written = tx.append_audit(draft, at)
            return 200, {"seq": written.seq, "hash": written.hash}

        await records.store.idempotent("floor:outbox", entry.effect_id, digest, work)

    return write
