"""An aiortc CSO console without a browser: for `loket demo --headless`, tests and benches.

It logs in as a CSO, accepts every booth it is offered, offers each one a recvonly
video + audio + document-camera video peer connection in the browser console's m-line
order, and decodes what arrives. It measures, per session, the time from the booth's
check-in to the first decoded video frame, and counts frames.

Like the console, it resumes by state sync: after every (re)connect it rebuilds its calls
and offers from `welcome.cso` (sessions ended while away are hung up, new ones called,
pending offers accepted), matches every reply to its request, re-offers a booth that comes
back from a signaling drop when the negotiation did not finish, and keeps its socket
authenticated with `reauth` (storing the rotated refresh token).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from websockets.asyncio.client import ClientConnection

from booth_client.kiosk import (
    CLOSE_FORBIDDEN,
    CLOSE_REPLACED,
    CLOSE_UNAUTHENTICATED,
    Refusal,
    Requests,
    Settled,
    refresh_margin,
)
from booth_client.peer import rtc_configuration
from signaling.codec import decode_outbound, encode
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Accept,
    Ack,
    Answer,
    BoothAssigned,
    BoothOffered,
    CsoStatus,
    EndSession,
    Envelope,
    Error,
    FocusBooth,
    Hello,
    IceServer,
    Offer,
    PeerState,
    Ping,
    Pong,
    Reauth,
    Role,
    SessionEnded,
    SessionUpdate,
    Welcome,
)
from signaling.session import SessionState

log = structlog.get_logger("loket.cso_standin")

CLIENT_NAME = "loket-cso-standin/0.2"
# Refusals of an offer that mean the session is gone: hang up.
_GONE = frozenset({ErrorCode.NOT_IN_SESSION, ErrorCode.UNKNOWN_SESSION})


@dataclass
class CallStats:
    session_id: str
    booth_id: str
    checked_in_at: float  # unix time, from the server
    assigned_at: float = 0.0  # unix time the CSO learnt of the assignment
    first_frame_at: float | None = None  # unix time of the first decoded video frame
    video_frames: int = 0
    audio_frames: int = 0
    document_frames: int = 0  # the booth's document camera (the third m-line)
    last_size: tuple[int, int] = (0, 0)  # of the newest face frame (the booth may scale it)
    width: int = 0
    height: int = 0

    @property
    def first_frame_ms(self) -> float | None:
        if self.first_frame_at is None:
            return None
        return (self.first_frame_at - self.checked_in_at) * 1000


@dataclass
class _Call:
    stats: CallStats
    ice_servers: list[IceServer]
    pc: RTCPeerConnection | None = None
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    booth_away: bool = False
    needs_offer: bool = False  # the booth was away when we offered: offer again on return

    @property
    def negotiated(self) -> bool:
        """An answer came back and the connection is not dead."""
        pc = self.pc
        return (
            pc is not None
            and pc.signalingState == "stable"
            and pc.connectionState not in ("failed", "closed")
        )


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(0, min(len(ordered), rank) - 1)]


class CsoStandIn:
    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._username, self._password = username, password
        self._ws: ClientConnection | None = None
        self._calls: dict[str, _Call] = {}
        self._finished: list[CallStats] = []
        self._ready = asyncio.Event()
        self._progress = asyncio.Event()
        self._stopping = False
        self._requests = Requests()
        self._tokens: dict[str, Any] | None = None
        self._token_deadline = 0.0  # monotonic expiry of the access token we hold
        self._auth_lock = asyncio.Lock()
        self._resume: str | None = None
        self.welcome: Welcome | None = None  # the latest
        self.connections = 0  # welcomes received
        self.refusals: list[Refusal] = []
        self.replaced = False  # another console took this account's socket (4409)
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- public -----------------------------------------------------------------------

    async def run(self) -> None:
        """Log in, hold the socket (reconnecting and resuming) and serve booths until
        stop(). Raises if the login is refused."""
        strikes = 0
        backoff = 0.2
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as http:
            await self._log_in(http)
            while not self._stopping:
                ws: ClientConnection | None = None
                before = self.connections
                try:
                    await self._fresh_tokens(http)
                    async with websockets.connect(
                        self._ws_url(), max_size=2**22, ping_interval=None
                    ) as ws:
                        self._ws = ws
                        await self._serve(ws, http)
                except (OSError, TimeoutError, websockets.ConnectionClosed, httpx.HTTPError) as exc:
                    log.info("server_unreachable", error=str(exc) or type(exc).__name__)
                finally:
                    self._ws = None
                if self._stopping:
                    break
                code = ws.close_code if ws is not None else None
                if self.connections > before:
                    strikes, backoff = 0, 0.2
                if code == CLOSE_REPLACED:
                    self.replaced = True
                    log.error("cso_replaced", note="another console took over this account")
                    break
                if code in (CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN):
                    strikes += 1
                    if strikes > 1 or code == CLOSE_FORBIDDEN:
                        raise RuntimeError(f"the server refused this CSO (close code {code})")
                    self._token_deadline = 0.0  # refresh before the next hello
                    continue
                for call in self._calls.values():
                    call.booth_away = False  # unknown until the next welcome says
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def wait_ready(self, within: float) -> None:
        await asyncio.wait_for(self._ready.wait(), within)

    async def wait_connected(self, count: int, within: float) -> None:
        """Until `count` sessions have delivered a decoded video frame (TimeoutError)."""
        async with asyncio.timeout(within):
            while self.connected() < count:
                self._progress.clear()
                await self._progress.wait()

    def stats(self) -> list[CallStats]:
        return self._finished + [call.stats for call in self._calls.values()]

    def live_sessions(self) -> list[str]:
        return list(self._calls)

    def connected(self) -> int:
        return sum(1 for s in self.stats() if s.first_frame_at is not None)

    def report(self) -> dict[str, Any]:
        firsts = [s.first_frame_ms for s in self.stats() if s.first_frame_ms is not None]
        return {
            "booths": len({s.booth_id for s in self.stats()}),
            "connected": self.connected(),
            "first_frame_ms": {
                "p50": _round(statistics.median(firsts) if firsts else None),
                "p95": _round(percentile(firsts, 95)),
            },
            "frames_received": sum(s.video_frames for s in self.stats()),
        }

    async def focus(self, session_id: str | None) -> None:
        """Talk to this session's booth (None: to none); the others see a hold slate."""
        await self._request(FocusBooth(session_id=session_id))

    async def end(self, session_id: str) -> None:
        await self._request(EndSession(session_id=session_id))

    async def stop(self) -> None:
        self._stopping = True
        for session_id in list(self._calls):
            await self._hang_up(session_id)
        for task in list(self._tasks):
            task.cancel()
        if self._ws is not None:
            await self._ws.close()

    # --- auth ------------------------------------------------------------------------

    def _ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http") + "/ws/cso"

    async def _log_in(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/api/auth/login", json={"username": self._username, "password": self._password}
        )
        response.raise_for_status()
        self._keep(response.json())

    def _keep(self, body: dict[str, Any]) -> None:
        self._tokens = body  # the refresh token rotates: only the newest works
        # `exp` is in whole seconds, so the token may expire up to a second early.
        self._token_deadline = time.monotonic() + float(body["expires_in"]) - 1.0

    async def _fresh_tokens(self, http: httpx.AsyncClient, *, force: bool = False) -> str:
        async with self._auth_lock:
            assert self._tokens is not None
            lifetime = float(self._tokens["expires_in"])
            if not force and self._token_deadline - time.monotonic() > refresh_margin(lifetime):
                return str(self._tokens["access_token"])
            response = await http.post(
                "/api/auth/refresh", json={"refresh_token": self._tokens["refresh_token"]}
            )
            if response.status_code == 200:
                self._keep(response.json())
            else:
                log.info("refresh_refused", status=response.status_code)
                await self._log_in(http)
            return str(self._tokens["access_token"])

    async def _keep_authenticated(self, http: httpx.AsyncClient, deadline: float) -> None:
        """Refresh before the socket's token expires and hand the new one over (`reauth`)."""
        while True:
            assert self._tokens is not None
            margin = refresh_margin(float(self._tokens["expires_in"]))
            await asyncio.sleep(max(0.0, deadline - margin - time.monotonic()))
            token = await self._fresh_tokens(http, force=self._token_deadline <= deadline)
            deadline = self._token_deadline
            await self._request(Reauth(token=token))

    # --- signaling ---------------------------------------------------------------------

    async def _serve(self, ws: ClientConnection, http: httpx.AsyncClient) -> None:
        assert self._tokens is not None
        self._requests.clear()
        deadline = self._token_deadline
        await self._send(
            Hello(token=self._tokens["access_token"], resume=self._resume, client=CLIENT_NAME)
        )
        welcome = decode_outbound(await asyncio.wait_for(ws.recv(), 10), Role.CSO)
        if not isinstance(welcome, Welcome):
            if self.connections == 0:
                raise RuntimeError(f"login refused on the socket: {welcome}")
            log.warning("hello_refused", reply=str(welcome))
            return
        self.welcome = welcome
        self.connections += 1
        self._resume = welcome.resume_token
        if welcome.token_expires_at is not None:
            deadline = min(deadline, time.monotonic() + welcome.token_expires_at - time.time())
        helpers = [
            asyncio.create_task(self._heartbeat(welcome.heartbeat_interval)),
            asyncio.create_task(self._keep_authenticated(http, deadline)),
        ]
        try:
            await self._rebuild(welcome.cso)
            self._ready.set()
            async for raw in ws:
                try:
                    message = decode_outbound(raw, Role.CSO)
                except ProtocolError as exc:
                    log.warning("bad_server_message", error=exc.message)
                    continue
                await self._on_message(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            for task in helpers:
                task.cancel()

    async def _rebuild(self, status: CsoStatus | None) -> None:
        """State sync: make our calls match the server's account of this CSO."""
        status = status or CsoStatus(available=True)
        listed = {s.session_id: s for s in status.sessions}
        for session_id in list(self._calls):
            if session_id not in listed:  # ended while we were away
                await self._hang_up(session_id)
        for session in status.sessions:
            call = self._calls.get(session.session_id)
            if call is None:
                call = self._track(
                    session.session_id,
                    session.booth.booth_id,
                    session.checked_in_at,
                    session.ice_servers,
                )
            call.ice_servers = list(session.ice_servers) or call.ice_servers
            call.booth_away = (
                not session.booth_connected or session.state is SessionState.RECONNECTING
            )
            if call.negotiated:
                continue  # media flows peer to peer: a signaling drop did not touch it
            if call.booth_away:
                call.needs_offer = True  # offered when the booth is back
            else:
                await self._offer(session.session_id)
        for offer in status.offers:
            await self._request(Accept(session_id=offer.session_id))
        log.info("welcome", sessions=len(status.sessions), offers=len(status.offers))

    async def _send(self, message: Envelope) -> None:
        if self._ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._ws.send(encode(message))

    async def _request(self, message: Envelope) -> None:
        self._requests.track(message)
        await self._send(message)

    async def _heartbeat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._send(Ping())

    async def _on_message(self, message: Envelope) -> None:
        match message:
            case Ping():
                await self._send(Pong(reply_to=message.id))
            case Ack() | Error():
                settled = self._requests.settle(message)
                if settled is not None:
                    await self._settled(settled)
                elif isinstance(message, Error):
                    log.warning("server_error", code=str(message.code), error=message.message)
            case BoothOffered():
                await self._request(Accept(session_id=message.session_id))
            case BoothAssigned():
                if message.session_id not in self._calls and not self._stopping:
                    self._track(
                        message.session_id,
                        message.booth.booth_id,
                        message.checked_in_at,
                        message.ice_servers,
                    )
                    await self._offer(message.session_id)
            case Answer():
                await self._answered(message)
            case SessionUpdate():
                await self._session_update(message)
            case PeerState() if message.state in ("closed", "failed"):
                # The kiosk lost its call (it restarted and resumed): offer afresh.
                call = self._calls.get(message.session_id)
                if call is not None and call.negotiated and not call.booth_away:
                    await self._offer(message.session_id)
            case SessionEnded():
                await self._hang_up(message.session_id)
            case _:
                pass  # candidates: aiortc's answer already carries them; booth peer states

    async def _settled(self, settled: Settled) -> None:
        refusal = settled.refusal
        if refusal is None:
            return
        self.refusals = [*self.refusals[-19:], refusal]
        log.warning("request_refused", request=refusal.request, code=refusal.code,
                    error=refusal.message)  # fmt: skip
        request = settled.request
        if isinstance(request, Offer):
            call = self._calls.get(request.session_id)
            if call is None:
                return
            if refusal.code == ErrorCode.PEER_UNAVAILABLE:
                call.needs_offer = True  # the booth is reconnecting: offer again when back
                call.booth_away = True
            elif refusal.code in _GONE:
                await self._hang_up(request.session_id)
        elif isinstance(request, Reauth) and self._ws is not None:
            await self._ws.close()  # a fresh hello with a fresh token

    async def _session_update(self, message: SessionUpdate) -> None:
        call = self._calls.get(message.session_id)
        if call is None:
            return
        away = not message.booth_connected or message.state is SessionState.RECONNECTING
        was_away, call.booth_away = call.booth_away, away
        if away:
            log.info("booth_reconnecting", session_id=message.session_id)
            return
        if call.needs_offer or (was_away and not call.negotiated):
            await self._offer(message.session_id)

    def _track(
        self, session_id: str, booth_id: str, checked_in_at: float, ice: list[IceServer]
    ) -> _Call:
        call = _Call(CallStats(session_id, booth_id, checked_in_at, time.time()), list(ice))
        self._calls[session_id] = call
        return call

    async def _offer(self, session_id: str) -> None:
        """A fresh recvonly peer connection and its offer (the booth answers each offer
        with a fresh peer of its own)."""
        call = self._calls.get(session_id)
        if call is None or self._stopping:
            return
        await self._close_pc(call)
        call.needs_offer = False
        pc = RTCPeerConnection(rtc_configuration(call.ice_servers))
        call.pc = pc
        stats = call.stats
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        document = pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track is document.receiver.track:
                call.readers.append(asyncio.create_task(self._read_document(track, stats)))
                return
            call.readers.append(asyncio.create_task(self._read(track, stats)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            if call.pc is pc and state in ("connected", "failed", "disconnected", "closed"):
                await self._request(PeerState(session_id=stats.session_id, state=state))  # type: ignore[arg-type]

        await pc.setLocalDescription(await pc.createOffer())
        await self._request(Offer(session_id=session_id, sdp=pc.localDescription.sdp))

    async def _answered(self, message: Answer) -> None:
        call = self._calls.get(message.session_id)
        if call is None or call.pc is None or call.pc.signalingState != "have-local-offer":
            return  # an answer to an offer we have since replaced
        try:
            await call.pc.setRemoteDescription(
                RTCSessionDescription(sdp=message.sdp, type="answer")
            )
        except Exception as exc:  # a stale or odd answer must not end the console
            log.warning("answer_ignored", session_id=message.session_id, error=str(exc))

    async def _read(self, track: MediaStreamTrack, stats: CallStats) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    stats.audio_frames += 1
                    continue
                stats.video_frames += 1
                stats.last_size = (frame.width, frame.height)  # type: ignore[union-attr]
                if stats.first_frame_at is None:
                    stats.first_frame_at = time.time()
                    stats.width, stats.height = frame.width, frame.height  # type: ignore[union-attr]
                    log.info(
                        "first_frame",
                        session_id=stats.session_id,
                        booth_id=stats.booth_id,
                        ms=round(stats.first_frame_ms or 0),
                    )
                    self._progress.set()

    async def _read_document(self, track: MediaStreamTrack, stats: CallStats) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                await track.recv()
                stats.document_frames += 1

    async def _close_pc(self, call: _Call) -> None:
        pc, call.pc = call.pc, None
        readers, call.readers = call.readers, []
        for reader in readers:
            reader.cancel()
        if pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 5)

    async def _hang_up(self, session_id: str) -> None:
        call = self._calls.pop(session_id, None)
        if call is None:
            return
        self._finished.append(call.stats)
        await self._close_pc(call)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
