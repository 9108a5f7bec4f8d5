"""Silent monitoring at the booth: a send-only peer connection to a supervisor.

When a supervisor monitors the booth's session, the server sends `link_opened` (kind
`monitor`, `offerer: true`). The booth then opens a second RTCPeerConnection, to the
supervisor, that only sends:

- the participant's camera and microphone, as relay subscriptions of the very tracks the
  call to the CSO uses (one camera, one microphone, shared: the call is untouched);
- the CSO's voice as the booth hears it, so both sides of the conversation are heard.
  The booth's peer hands every decoded frame of the officer's audio to its sink
  (booth_client.audio); `MonitorLinks.tee()` wraps that sink so each frame also goes to a
  `FrameFeed` track while a monitor link is open. The feed only carries what arrives:
  while the CSO talks to another booth (hold), nothing arrives and nothing is sent.

The tracks go in a fixed order, so the supervisor's page knows them by m-line:
participant audio (mid 0), CSO audio (mid 1), video (mid 2).

It offers with `session_id = link_id`, sending `pc.localDescription` (aiortc gathers
candidates in setLocalDescription: there is no trickle), applies the supervisor's
`answer` and trickled candidates, and closes on `link_closed`, when the session ends, or
when the socket is replaced. Nothing here can end or renegotiate the call itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import av
import structlog
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from av.video.reformatter import VideoReformatter

from booth_client.audio import AudioSink
from booth_client.peer import rtc_configuration
from booth_client.relay import FrameRelay
from signaling.messages import Answer, Candidate, Envelope, LinkClosed, LinkOpened, Offer

log = structlog.get_logger("loket.booth.monitor")

FEED_QUEUE = 25  # 0.5 s of 20 ms frames: a late encoder drops the oldest, as live audio does

Send = Callable[[Envelope], Awaitable[None]]
Tracks = Callable[[], tuple[MediaStreamTrack | None, MediaStreamTrack]]


class FrameFeed(MediaStreamTrack):
    """A track whose frames are pushed in (the CSO's decoded voice), for one consumer."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._frames: asyncio.Queue[av.AudioFrame] = asyncio.Queue(FEED_QUEUE)
        self._ended = asyncio.Event()
        self.pushed = self.sent = 0  # frames in and out (tests, benches)

    def push(self, frame: av.AudioFrame) -> None:
        if self.readyState != "live":
            return
        if self._frames.full():
            self._frames.get_nowait()
        self._frames.put_nowait(frame)
        self.pushed += 1

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        getter = asyncio.ensure_future(self._frames.get())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({getter, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if not getter.done():
            getter.cancel()
            raise MediaStreamError
        self.sent += 1
        return getter.result()

    def stop(self) -> None:
        super().stop()
        self._ended.set()


class OwnFrames(MediaStreamTrack):
    """The camera's frames for the monitor's encoder: half the size and every other frame
    (a supervisor watching needs the picture, not the officer's full quality; this keeps
    the extra encoder cheap), converted to yuv420p here with a reformatter of our own.
    Relayed frames are shared with the call's encoder, which converts them in its own
    thread through the frame's cached reformatter: two threads on one swscale context
    crash, so this encoder never touches a shared frame's."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, scale: float = 0.5, every: int = 2) -> None:
        super().__init__()
        self._source, self._scale, self._every = source, scale, every
        self._reformatter = VideoReformatter()

    async def recv(self) -> av.VideoFrame:
        for _ in range(self._every - 1):
            await self._source.recv()
        frame = await self._source.recv()
        assert isinstance(frame, av.VideoFrame)
        width = max(16, int(frame.width * self._scale) // 2 * 2)
        height = max(16, int(frame.height * self._scale) // 2 * 2)
        out = self._reformatter.reformat(frame, format="yuv420p", width=width, height=height)
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    def stop(self) -> None:
        super().stop()
        self._source.stop()


class TeeAudioSink:
    """The booth's audio sink, plus a copy of every frame to the open monitor feeds."""

    def __init__(self, inner: AudioSink, links: MonitorLinks) -> None:
        self.inner, self._links = inner, links

    def write(self, frame: av.AudioFrame) -> None:
        for link in self._links.links.values():
            link.cso_voice.push(frame)
        self.inner.write(frame)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> object:  # energy(), levels, frames ... of the inner
        return getattr(self.inner, name)


@dataclass
class MonitorLink:
    link_id: str
    session_id: str
    supervisor: str
    pc: RTCPeerConnection
    cso_voice: FrameFeed = field(default_factory=FrameFeed)


class MonitorLinks:
    """The booth's monitor links: at most a few (one per watching supervisor)."""

    def __init__(self, relay: FrameRelay, tracks: Tracks, send: Send) -> None:
        self._relay, self._tracks, self._send = relay, tracks, send
        self.links: dict[str, MonitorLink] = {}
        self.opened = 0  # links ever opened (tests, benches)

    def tee(self, sink: AudioSink) -> AudioSink:
        """Wrap the sink the booth's peer writes the officer's voice to."""
        return sink if isinstance(sink, TeeAudioSink) else TeeAudioSink(sink, self)

    def has(self, link_id: str) -> bool:
        return link_id in self.links

    async def link_opened(self, msg: LinkOpened, current_session: str | None) -> None:
        if msg.kind != "monitor" or not msg.offerer:
            return  # whispers go to the console, never to the booth
        if msg.session_id != current_session:
            log.warning("monitor_for_other_session", link_id=msg.link_id)
            return
        await self.close(msg.link_id)
        video, audio = self._tracks()
        pc = RTCPeerConnection(rtc_configuration(list(msg.ice_servers)))
        link = MonitorLink(msg.link_id, msg.session_id, msg.supervisor_name, pc)
        self.links[msg.link_id] = link
        self.opened += 1
        # Send-only, in a fixed order: the participant's voice, the officer's voice, video.
        # (Audio first: with aiortc 1.16, a third m-line after video + audio never starts
        # sending; measured in tests/integration/test_monitoring.py.)
        pc.addTransceiver(self._relay.subscribe(audio), direction="sendonly")
        pc.addTransceiver(link.cso_voice, direction="sendonly")
        if video is not None:
            pc.addTransceiver(OwnFrames(self._relay.subscribe(video)), direction="sendonly")
        pc.on("connectionstatechange", lambda: self._state_changed(link))
        await pc.setLocalDescription(await pc.createOffer())
        if self.links.get(msg.link_id) is not link:
            return  # closed while gathering
        log.info("monitor_started", link_id=msg.link_id, supervisor=msg.supervisor_name)
        await self._send(Offer(session_id=msg.link_id, sdp=pc.localDescription.sdp))

    def _state_changed(self, link: MonitorLink) -> None:
        state = link.pc.connectionState
        log.info("monitor_state", link_id=link.link_id, state=state)
        if state == "failed" and self.links.get(link.link_id) is link:
            asyncio.get_running_loop().create_task(self.close(link.link_id))

    async def answer(self, msg: Answer) -> None:
        link = self.links.get(msg.session_id)
        if link is None or link.pc.signalingState != "have-local-offer":
            return
        await link.pc.setRemoteDescription(RTCSessionDescription(sdp=msg.sdp, type="answer"))

    async def candidate(self, msg: Candidate) -> None:
        link = self.links.get(msg.session_id)
        if link is None or msg.candidate is None or not msg.candidate.candidate:
            return
        try:
            parsed = candidate_from_sdp(msg.candidate.candidate.removeprefix("candidate:"))
            parsed.sdpMid = msg.candidate.sdpMid
            parsed.sdpMLineIndex = msg.candidate.sdpMLineIndex
            await link.pc.addIceCandidate(parsed)
        except Exception as exc:  # an odd candidate must not end the link
            log.warning("monitor_candidate_ignored", link_id=link.link_id, error=str(exc))

    async def link_closed(self, msg: LinkClosed) -> None:
        await self.close(msg.link_id)

    async def session_ended(self, session_id: str) -> None:
        for link in [lk for lk in self.links.values() if lk.session_id == session_id]:
            await self.close(link.link_id)

    async def close(self, link_id: str) -> None:
        link = self.links.pop(link_id, None)
        if link is None:
            return
        log.info("monitor_stopped", link_id=link_id)
        link.cso_voice.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(link.pc.close(), 5)

    async def close_all(self) -> None:
        for link_id in list(self.links):
            await self.close(link_id)
