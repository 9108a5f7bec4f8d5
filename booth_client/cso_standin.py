"""An aiortc CSO console without a browser: for `loket demo --headless`, tests and benches.

It logs in as a CSO, accepts every booth it is offered, offers each one a recvonly
video + audio peer connection exactly as the browser console does, and decodes what
arrives. It measures, per session, the time from the booth's check-in to the first
decoded video frame, and counts frames.
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

from booth_client.peer import rtc_configuration
from signaling.codec import decode_outbound, encode
from signaling.errors import ProtocolError
from signaling.messages import (
    Accept,
    Answer,
    BoothAssigned,
    BoothOffered,
    EndSession,
    Envelope,
    Error,
    FocusBooth,
    Hello,
    Offer,
    PeerState,
    Ping,
    Pong,
    Role,
    SessionEnded,
    Welcome,
)

log = structlog.get_logger("loket.cso_standin")


@dataclass
class CallStats:
    session_id: str
    booth_id: str
    checked_in_at: float  # unix time, from the server
    assigned_at: float = 0.0  # unix time the CSO learnt of the assignment
    first_frame_at: float | None = None  # unix time of the first decoded video frame
    video_frames: int = 0
    audio_frames: int = 0
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
    pc: RTCPeerConnection
    readers: list[asyncio.Task[None]] = field(default_factory=list)


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

    # --- public -----------------------------------------------------------------------

    async def run(self) -> None:
        """Log in, hold the socket and serve booths until stop()."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as http:
            response = await http.post(
                "/api/auth/login", json={"username": self._username, "password": self._password}
            )
            response.raise_for_status()
            token = response.json()["access_token"]
        ws_url = "ws" + self.base_url.removeprefix("http") + "/ws/cso"
        async with websockets.connect(ws_url, max_size=2**22, ping_interval=None) as ws:
            self._ws = ws
            await self._send(Hello(token=token, client="loket-cso-standin/0.1"))
            welcome = decode_outbound(await asyncio.wait_for(ws.recv(), 10), Role.CSO)
            if not isinstance(welcome, Welcome):
                raise RuntimeError(f"login refused on the socket: {welcome}")
            self._ready.set()
            heartbeat = asyncio.create_task(self._heartbeat(welcome.heartbeat_interval))
            try:
                async for raw in ws:
                    try:
                        message = decode_outbound(raw, Role.CSO)
                    except ProtocolError as exc:
                        log.warning("bad_server_message", error=exc.message)
                        continue
                    await self._on_message(message)
            finally:
                heartbeat.cancel()
                self._ws = None

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
        await self._send(FocusBooth(session_id=session_id))

    async def end(self, session_id: str) -> None:
        await self._send(EndSession(session_id=session_id))

    async def stop(self) -> None:
        self._stopping = True
        for session_id in list(self._calls):
            await self._hang_up(session_id)
        if self._ws is not None:
            await self._ws.close()

    # --- signaling ---------------------------------------------------------------------

    async def _send(self, message: Envelope) -> None:
        if self._ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._ws.send(encode(message))

    async def _heartbeat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._send(Ping())

    async def _on_message(self, message: Envelope) -> None:
        match message:
            case Ping():
                await self._send(Pong(reply_to=message.id))
            case BoothOffered():
                await self._send(Accept(session_id=message.session_id))
            case BoothAssigned():
                await self._call(message)
            case Answer():
                call = self._calls.get(message.session_id)
                if call is not None:
                    await call.pc.setRemoteDescription(
                        RTCSessionDescription(sdp=message.sdp, type="answer")
                    )
            case SessionEnded():
                await self._hang_up(message.session_id)
            case Error():
                log.warning("server_error", code=str(message.code), error=message.message)
            case _:
                pass  # candidates: aiortc's answer already carries them

    async def _call(self, assigned: BoothAssigned) -> None:
        if assigned.session_id in self._calls or self._stopping:
            return
        pc = RTCPeerConnection(rtc_configuration(assigned.ice_servers))
        stats = CallStats(
            assigned.session_id, assigned.booth.booth_id, assigned.checked_in_at, time.time()
        )
        call = _Call(stats, pc)
        self._calls[assigned.session_id] = call
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            call.readers.append(asyncio.create_task(self._read(track, stats)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            if state in ("connected", "failed", "disconnected", "closed"):
                await self._send(PeerState(session_id=stats.session_id, state=state))  # type: ignore[arg-type]

        await pc.setLocalDescription(await pc.createOffer())
        await self._send(Offer(session_id=assigned.session_id, sdp=pc.localDescription.sdp))

    async def _read(self, track: MediaStreamTrack, stats: CallStats) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    stats.audio_frames += 1
                    continue
                stats.video_frames += 1
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

    async def _hang_up(self, session_id: str) -> None:
        call = self._calls.pop(session_id, None)
        if call is None:
            return
        self._finished.append(call.stats)
        for reader in call.readers:
            reader.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(call.pc.close(), 5)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
