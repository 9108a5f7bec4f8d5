"""The kiosk's signaling loop: log in, hold a websocket, check in, answer the CSO.

Follows signaling.session.BoothSession for where the booth stands. A dropped socket is
reconnected with backoff and the `resume` token from `welcome`; the peer connection is
left alone meanwhile, so media keeps flowing through a signaling blip.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass

import httpx
import structlog
import websockets
from aiortc.contrib.media import MediaRelay
from websockets.asyncio.client import ClientConnection

from booth_client.config import BoothConfig
from booth_client.ice import use_host_addresses
from booth_client.peer import BoothPeer
from booth_client.sources.documents import render_document
from booth_client.sources.synthetic import SyntheticToneTrack, SyntheticVideoTrack
from signaling.codec import decode_outbound, encode
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Answer,
    Assigned,
    Candidate,
    CheckIn,
    Envelope,
    Error,
    Focus,
    Hello,
    IceServer,
    Offer,
    PeerState,
    Ping,
    Pong,
    Queued,
    Reserved,
    Role,
    SessionEnded,
    Welcome,
)
from signaling.session import BoothSession, SessionEvent, SessionState

log = structlog.get_logger("loket.booth")

CLIENT_NAME = "loket-booth/0.1"
_FATAL_AUTH = {ErrorCode.AUTH_FAILED, ErrorCode.FORBIDDEN_FOR_ROLE}


class DocumentRefused(Exception):
    """The server refused an upload; `message` says what the participant should do."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class BoothAuthError(Exception):
    """The server refused the credential: retrying will not help; re-enrol the booth."""


@dataclass
class Tokens:
    access: str
    refresh: str
    expires_at: float  # monotonic


class BoothClient:
    def __init__(self, config: BoothConfig, *, label: str | None = None) -> None:
        self.config = config
        self.machine = BoothSession()
        self.session_id: str | None = None
        self.claim_id: str | None = None  # the claim being verified in this session
        self.position: int | None = None
        self.booth_id: str | None = None
        self.changed = asyncio.Event()  # set on every state change (tests, UI)
        self._label = label
        self._tokens: Tokens | None = None
        self._resume: str | None = None
        self._ws: ClientConnection | None = None
        self._peer: BoothPeer | None = None
        self._ice_servers: list[IceServer] = []
        self._relay = MediaRelay()
        self._video: SyntheticVideoTrack | None = None
        self._audio = SyntheticToneTrack(config.tone_hz)
        self._stopping = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        if config.ice_host_addresses:
            use_host_addresses(config.ice_host_addresses)

    @property
    def state(self) -> SessionState:
        return self.machine.state

    # --- lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Until stop(): connect, serve, reconnect with backoff. Raises BoothAuthError."""
        backoff = self.config.reconnect_min
        async with httpx.AsyncClient(base_url=self.config.server_url, timeout=10) as http:
            while not self._stopping.is_set():
                try:
                    await self._ensure_tokens(http)
                    async with websockets.connect(
                        f"{self.config.ws_url}/ws/booth", max_size=2**20, ping_interval=None
                    ) as ws:
                        self._ws = ws
                        await self._serve(ws)
                    backoff = self.config.reconnect_min
                except BoothAuthError:
                    raise
                except (OSError, TimeoutError, websockets.ConnectionClosed, httpx.HTTPError) as exc:
                    log.info("server_unreachable", error=str(exc) or type(exc).__name__)
                finally:
                    self._ws = None
                if self._stopping.is_set():
                    break
                self._lost_connection()
                delay = backoff * (0.5 + random.random())
                backoff = min(backoff * 2, self.config.reconnect_max)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        await self._close_peer()

    async def stop(self) -> None:
        self._stopping.set()
        if self._ws is not None:
            await self._ws.close()
        await self._close_peer()

    # --- auth -------------------------------------------------------------------------

    async def _ensure_tokens(self, http: httpx.AsyncClient) -> None:
        tokens = self._tokens
        if tokens is not None and tokens.expires_at - time.monotonic() > 60:
            return
        response = None
        if tokens is not None:
            response = await http.post("/api/auth/refresh", json={"refresh_token": tokens.refresh})
        if response is None or response.status_code != 200:
            credential = self.config.credential.get_secret_value()
            response = await http.post("/api/auth/booth", json={"credential": credential})
        if response.status_code in (401, 403):
            error = response.json().get("error", {})
            raise BoothAuthError(error.get("message", "the server refused this booth"))
        response.raise_for_status()
        body = response.json()
        self.booth_id = body["subject"]
        self._tokens = Tokens(
            body["access_token"], body["refresh_token"], time.monotonic() + body["expires_in"]
        )

    async def _show_documents(self) -> None:
        """Demo participant: send one picture for each requirement still missing."""
        # A participant takes a moment to get the papers out; the call settles meanwhile.
        await asyncio.sleep(self.config.documents_after_s)
        if self.claim_id is None or self._tokens is None:
            return
        async with httpx.AsyncClient(base_url=self.config.server_url, timeout=30) as http:
            response = await http.get(
                f"/api/claims/{self.claim_id}",
                headers={"Authorization": f"Bearer {self._tokens.access}"},
            )
        if response.status_code != 200:
            log.warning("claim_unreadable", status=response.status_code)
            return
        label = self._label or self.booth_id or "booth"
        for seed, item in enumerate(response.json()["checklist"]["items"]):
            if item["status"] != "missing":
                continue
            picture = render_document(item["names"][0], label, seed)
            try:
                await self.upload_document(item["any_of"][0], picture, "image/jpeg")
            except (DocumentRefused, httpx.HTTPError, RuntimeError) as exc:
                log.warning("document_not_sent", kind=item["any_of"][0], error=str(exc))
                return

    async def upload_document(self, kind: str, data: bytes, content_type: str) -> dict[str, str]:
        """Send a document picture for this session's claim; durable once this returns.

        Retried on network errors with the same Idempotency-Key, so a retry after a lost
        answer never stores the document twice.
        """
        if self.claim_id is None or self._tokens is None:
            raise RuntimeError("no live session: documents are sent during a session")
        key = uuid.uuid4().hex
        delay = self.config.reconnect_min
        async with httpx.AsyncClient(base_url=self.config.server_url, timeout=30) as http:
            for attempt in range(5):
                try:
                    response = await http.post(
                        f"/api/claims/{self.claim_id}/documents",
                        params={"kind": kind},
                        content=data,
                        headers={
                            "Authorization": f"Bearer {self._tokens.access}",
                            "Content-Type": content_type,
                            "Idempotency-Key": key,
                        },
                    )
                except httpx.TransportError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.config.reconnect_max)
                    continue
                if response.status_code >= 400:
                    error = response.json().get("error", {})
                    raise DocumentRefused(
                        response.status_code, error.get("code", ""), error.get("message", "")
                    )
                body: dict[str, str] = response.json()
                return body
        raise AssertionError("unreachable")

    # --- the socket ------------------------------------------------------------------

    async def _serve(self, ws: ClientConnection) -> None:
        assert self._tokens is not None
        await self._send(Hello(token=self._tokens.access, resume=self._resume, client=CLIENT_NAME))
        welcome = await self._expect_welcome(ws)
        self._resume = welcome.resume_token
        if welcome.resumed and self.machine.state is SessionState.RECONNECTING:
            self._handle(SessionEvent.RESUME)
        elif not welcome.resumed:
            await self._close_peer()  # the server forgot us: start a fresh visit
            self.machine = BoothSession()
            self.session_id = None
        heartbeat = asyncio.create_task(self._heartbeat(welcome.heartbeat_interval))
        try:
            if self.machine.state is SessionState.IDLE:
                await self._check_in()
            async for raw in ws:
                try:
                    message = decode_outbound(raw, Role.BOOTH)
                except ProtocolError as exc:
                    log.warning("bad_server_message", code=str(exc.code), error=exc.message)
                    continue
                await self._on_message(message)
        finally:
            heartbeat.cancel()

    async def _expect_welcome(self, ws: ClientConnection) -> Welcome:
        raw = await asyncio.wait_for(ws.recv(), 10)
        message = decode_outbound(raw, Role.BOOTH)
        if isinstance(message, Error):
            if message.code in _FATAL_AUTH:
                self._tokens = None  # maybe just expired: log in afresh once
                raise OSError(f"server refused the token: {message.message}")
            raise OSError(f"server error on hello: {message.message}")
        if not isinstance(message, Welcome):
            raise OSError(f"expected welcome, got {type(message).__name__}")
        return message

    async def _heartbeat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._send(Ping())

    async def _send(self, message: Envelope) -> None:
        if self._ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._ws.send(encode(message))

    async def _check_in(self) -> None:
        self._handle(SessionEvent.CHECK_IN)
        await self._send(
            CheckIn(
                claim=self.config.claim(self.booth_id or "booth"),
                language=self.config.language,
                needs_assistance=self.config.needs_assistance,
            )
        )

    # --- messages --------------------------------------------------------------------

    async def _on_message(self, message: Envelope) -> None:
        match message:
            case Ping():
                await self._send(Pong(reply_to=message.id))
            case Queued():
                self.position = message.position
                self.changed.set()
            case Reserved():
                self.session_id = message.session_id
                if self.machine.can(SessionEvent.RESERVE):
                    self._handle(SessionEvent.RESERVE)
            case Assigned():
                self.session_id = message.session_id
                self.claim_id = message.claim_id
                self._ice_servers = message.ice_servers
                if self.machine.state is SessionState.QUEUED:
                    self._handle(SessionEvent.RESERVE)  # reserved + assigned in one breath
                if self.machine.can(SessionEvent.ACCEPT):
                    self._handle(SessionEvent.ACCEPT)
                log.info("assigned", session_id=message.session_id, cso=message.cso_name)
            case Offer():
                await self._answer(message)
            case Candidate():
                if self._peer is not None and self._peer.session_id == message.session_id:
                    await self._peer.add_candidate(message.candidate)
            case Focus():
                if self._video is not None:
                    self._video.focused = message.focused
                event = SessionEvent.FOCUS if message.focused else SessionEvent.UNFOCUS
                if self.machine.can(event):
                    self._handle(event)
            case SessionEnded():
                await self._session_ended(message)
            case Error():
                log.warning("server_error", code=str(message.code), error=message.message)
            case _:
                pass

    async def _answer(self, offer: Offer) -> None:
        if offer.session_id != self.session_id:
            log.warning("offer_for_other_session", session_id=offer.session_id)
            return
        # Each offer starts a fresh peer: a console that reloads negotiates from scratch.
        await self._close_peer()
        if self._video is None:
            label = self._label or self.booth_id or "booth"
            self._video = SyntheticVideoTrack(
                label, self.config.width, self.config.height, self.config.fps
            )
            self._video.language = str(self.config.language)
        session_id = offer.session_id
        peer = BoothPeer(
            session_id,
            self._ice_servers,
            self._video,
            self._audio,
            self._relay,
            lambda state: self._peer_state(session_id, state),
        )
        self._peer = peer
        sdp = await peer.answer(offer.sdp)
        await self._send(Answer(session_id=session_id, sdp=sdp))

    def _peer_state(self, session_id: str, state: str) -> None:
        if state in ("connected", "failed", "disconnected", "closed"):
            message = PeerState(session_id=session_id, state=state)  # type: ignore[arg-type]
            asyncio.get_running_loop().create_task(self._send(message))
        if state == "connected" and self.machine.can(SessionEvent.MEDIA_UP):
            self._handle(SessionEvent.MEDIA_UP)
            if self.config.show_documents:
                task = asyncio.get_running_loop().create_task(self._show_documents())
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _session_ended(self, message: SessionEnded) -> None:
        if message.session_id != self.session_id:
            return
        log.info("session_ended", session_id=message.session_id, reason=message.reason)
        await self._close_peer()
        self.session_id = None
        if message.reason == "cso_lost":
            # Requeued at the front by the server: we are waiting again, not done.
            if self.machine.can(SessionEvent.REQUEUE):
                self._handle(SessionEvent.REQUEUE)
            return
        self.machine = BoothSession()
        self.changed.set()
        if self.config.rejoin_after_session and not self._stopping.is_set():
            await self._check_in()

    def _lost_connection(self) -> None:
        if self.machine.can(SessionEvent.CONNECTION_LOST):
            self._handle(SessionEvent.CONNECTION_LOST)

    def _handle(self, event: SessionEvent) -> None:
        try:
            self.machine.handle(event)
        except Exception as exc:  # our view drifted from the server's: log, carry on
            log.warning("unexpected_transition", event=str(event), error=str(exc))
        self.changed.set()

    async def _close_peer(self) -> None:
        peer, self._peer = self._peer, None
        if peer is not None:
            await peer.close()
