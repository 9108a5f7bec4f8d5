"""An aiortc officer that talks: for monitoring and whisper tests.

Like the console, it accepts every booth it is offered and offers each one a peer
connection (video received; audio both ways, its voice a tone). It measures the energy of
what it hears from each booth, and it answers a supervisor's whisper (`link_opened` kind
whisper: the supervisor offers, the officer answers receive-only) and measures that too,
so a test can tell who hears whom.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from booth_client.audio import MeasuringAudioSink
from booth_client.peer import rtc_configuration
from booth_client.sources.synthetic import SyntheticToneTrack, SyntheticVideoTrack
from signaling.codec import decode_outbound, encode
from signaling.messages import (
    Accept,
    Answer,
    BoothAssigned,
    BoothOffered,
    Candidate,
    Envelope,
    FocusBooth,
    Hello,
    LinkClosed,
    LinkOpened,
    Offer,
    PeerState,
    Ping,
    Pong,
    Role,
    SessionEnded,
    Welcome,
)
from tests.support.accounts import PASSWORD, add_user
from tests.support.live_server import LiveServer


@dataclass
class Heard:
    """What one peer connection brought in."""

    audio: MeasuringAudioSink = field(default_factory=MeasuringAudioSink)
    video_frames: int = 0


@dataclass
class _Peer:
    pc: RTCPeerConnection
    heard: Heard
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class TalkingCso:
    def __init__(
        self, server: LiveServer, username: str, tone_hz: float = 660.0, picture: bool = False
    ) -> None:
        self.server, self.username = server, username
        self.voice = SyntheticToneTrack(tone_hz)
        # The officer's camera too (a recording shows it): a synthetic scene, sent.
        self.picture = SyntheticVideoTrack(username, 320, 240, 10) if picture else None
        self.calls: dict[str, _Peer] = {}  # session id -> call
        self.whispers: dict[str, _Peer] = {}  # link id -> whisper
        self.whispers_heard: list[Heard] = []  # every whisper ever, oldest first
        self.welcome: Welcome | None = None
        self.seen: list[Envelope] = []
        self.focus_first = True  # talk to the first booth it serves
        self._ws: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.base_url) as http:
            res = await http.post(
                "/api/auth/login", json={"username": self.username, "password": PASSWORD}
            )
            res.raise_for_status()
            token = res.json()["access_token"]
        self._ws = await websockets.connect(f"{self.server.ws_url}/ws/cso", max_size=2**22)
        await self._send(Hello(token=token))
        self.welcome = decode_outbound(await self._ws.recv(), Role.CSO)  # type: ignore[assignment]
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._ws is not None:
            await self._ws.close()
        for peer in [*self.calls.values(), *self.whispers.values()]:
            await self._close(peer)

    def heard_from(self, session_id: str) -> Heard:
        return self.calls[session_id].heard

    async def _send(self, message: Envelope) -> None:
        await self._ws.send(encode(message))

    async def _read(self) -> None:
        async for raw in self._ws:
            message = decode_outbound(raw, Role.CSO)
            self.seen.append(message)
            try:
                await self._on(message)
            except Exception as exc:  # a test helper: say what broke, keep reading
                print(f"talking cso: {type(message).__name__}: {exc!r}")

    async def _on(self, message: Envelope) -> None:
        match message:
            case Ping():
                await self._send(Pong(reply_to=message.id))
            case BoothOffered():
                await self._send(Accept(session_id=message.session_id))
            case BoothAssigned():
                await self._call(message)
            case Answer() if message.session_id in self.calls:
                pc = self.calls[message.session_id].pc
                await pc.setRemoteDescription(RTCSessionDescription(message.sdp, "answer"))
            case LinkOpened() if message.kind == "whisper":
                pc = RTCPeerConnection(rtc_configuration(list(message.ice_servers)))
                peer = _Peer(pc, Heard())
                self.whispers[message.link_id] = peer
                self.whispers_heard.append(peer.heard)
                pc.on("track", lambda track: self._consume(peer, track))
            case Offer() if message.session_id in self.whispers:
                pc = self.whispers[message.session_id].pc
                await pc.setRemoteDescription(RTCSessionDescription(message.sdp, "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                await self._send(Answer(session_id=message.session_id, sdp=pc.localDescription.sdp))
            case Candidate() if message.session_id in self.whispers:
                c = message.candidate
                if c is not None and c.candidate:
                    parsed = candidate_from_sdp(c.candidate.removeprefix("candidate:"))
                    parsed.sdpMid, parsed.sdpMLineIndex = c.sdpMid, c.sdpMLineIndex
                    await self.whispers[message.session_id].pc.addIceCandidate(parsed)
            case LinkClosed() if message.link_id in self.whispers:
                await self._close(self.whispers.pop(message.link_id))
            case SessionEnded() if message.session_id in self.calls:
                await self._close(self.calls.pop(message.session_id))

    async def _call(self, message: BoothAssigned) -> None:
        pc = RTCPeerConnection(rtc_configuration(list(message.ice_servers)))
        peer = _Peer(pc, Heard())
        self.calls[message.session_id] = peer
        pc.on("track", lambda track: self._consume(peer, track))
        if self.picture is not None:
            pc.addTransceiver(self.picture, direction="sendrecv")
        else:
            pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver(self.voice, direction="sendrecv")

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("connected", "failed", "closed"):
                await self._send(PeerState(session_id=message.session_id, state=pc.connectionState))

        await pc.setLocalDescription(await pc.createOffer())
        await self._send(Offer(session_id=message.session_id, sdp=pc.localDescription.sdp))
        if self.focus_first:
            self.focus_first = False
            await self._send(FocusBooth(session_id=message.session_id))

    def _consume(self, peer: _Peer, track: MediaStreamTrack) -> None:
        async def run() -> None:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if track.kind == "audio":
                    peer.heard.audio.write(frame)  # type: ignore[arg-type]
                else:
                    peer.heard.video_frames += 1

        peer.tasks.append(asyncio.create_task(run()))

    async def _close(self, peer: _Peer) -> None:
        for task in peer.tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(peer.pc.close(), 5)


@contextlib.asynccontextmanager
async def talking_cso(
    server: LiveServer,
    username: str,
    *,
    capacity: int = 6,
    tone_hz: float = 660.0,
    picture: bool = False,
) -> AsyncIterator[TalkingCso]:
    await add_user(server, username, capacity=capacity)
    cso = TalkingCso(server, username, tone_hz, picture)
    await cso.start()
    try:
        yield cso
    finally:
        await cso.stop()


async def wait_until(predicate: Any, timeout: float = 30.0, step: float = 0.1) -> None:
    """Poll `predicate()` (sync or async) until true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(step)
