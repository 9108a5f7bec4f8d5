"""One WebRTC peer connection from the booth to the CSO console.

The console offers (recvonly video + audio, later a data channel); the booth answers with
its tracks. aiortc does not trickle: candidates are gathered inside setLocalDescription,
so the answer we send is `pc.localDescription`, complete with candidates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from signaling.messages import IceCandidate, IceServer

log = structlog.get_logger("loket.booth.peer")

StateCallback = Callable[[str], None]


def rtc_configuration(ice_servers: list[IceServer]) -> RTCConfiguration:
    # Always explicit: with no list aiortc would add a public STUN server.
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
            for s in ice_servers
        ]
    )


class BoothPeer:
    def __init__(
        self,
        session_id: str,
        ice_servers: list[IceServer],
        video: MediaStreamTrack,
        audio: MediaStreamTrack,
        relay: MediaRelay,
        on_state: StateCallback,
    ) -> None:
        self.session_id = session_id
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self._video, self._audio, self._relay = video, audio, relay
        self._on_state = on_state
        self.pc.on("connectionstatechange", self._state_changed)

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        log.info("peer_state", session_id=self.session_id, state=state)
        self._on_state(state)

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        # Tracks after the offer: they bind to the offered (recvonly) transceivers. The
        # relay lets every session share one source, as a camera would be shared.
        self.pc.addTrack(self._relay.subscribe(self._video))
        self.pc.addTrack(self._relay.subscribe(self._audio))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def add_candidate(self, candidate: IceCandidate | None) -> None:
        if candidate is None or not candidate.candidate:
            return  # end of candidates: aiortc needs no marker
        try:
            parsed = candidate_from_sdp(candidate.candidate.removeprefix("candidate:"))
            parsed.sdpMid = candidate.sdpMid
            parsed.sdpMLineIndex = candidate.sdpMLineIndex
            await self.pc.addIceCandidate(parsed)
        except Exception as exc:  # one odd candidate must not end the session
            log.warning("candidate_ignored", session_id=self.session_id, error=str(exc))

    @property
    def state(self) -> str:
        return str(self.pc.connectionState)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 5)
