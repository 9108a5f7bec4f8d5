"""One WebRTC peer connection from the booth to the CSO console.

The console offers sendrecv video + audio; the booth answers with its tracks and receives
the officer's camera and microphone on the same transceivers. The console sends them only
to the booth it is talking to (replaceTrack, no renegotiation), so on hold nothing
arrives. Every decoded frame of the officer's tracks goes to a sink (booth_client.audio):
the speaker and the kiosk screen.

A console that also offers a second video m-line (recvonly, after the audio) gets the
document camera on it: m-line order is the convention (face video, audio, document
video), so a console that does not offer it does not get it.

Each sender gets the booth's own encoder before its first frame (booth_client.codecs):
the voice as mono speech Opus (FEC and bitrate as the console's offer asks), each camera
as VP8 at the bitrate of the ladder's step; the answer tells the console to send its
voice mono at the speech bitrate. The receivers give up on a lost packet after a moment
(booth_client.jitter) instead of holding everything behind it. The ladder
(booth_client.degrade) runs for the life of the peer.

aiortc does not trickle: candidates are gathered inside setLocalDescription, so the answer
we send is `pc.localDescription`, complete with candidates.
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
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from booth_client import aiortc_speedups
from booth_client.audio import AudioSink, LatestFrameSink, NullAudioSink, VideoSink
from booth_client.codecs import (
    LadderVp8Encoder,
    SpeechOpusEncoder,
    VideoEncoding,
    Voice,
    install,
    limit_retransmissions,
    opus_fmtp,
    sent_codec,
    voice_fmtp,
)
from booth_client.degrade import (
    DOCUMENT_KEYFRAME_EVERY_S,
    LADDER,
    CallEncoders,
    Degrader,
    Level,
)
from booth_client.jitter import patient_receivers
from booth_client.relay import FrameRelay
from signaling.messages import IceCandidate, IceServer

aiortc_speedups.install()
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
        relay: FrameRelay,
        on_state: StateCallback,
        *,
        audio_sink: AudioSink | None = None,
        video_sink: VideoSink | None = None,
        document: MediaStreamTrack | None = None,
        degrade: Callable[[RTCPeerConnection, CallEncoders], Degrader] | None = None,
        voice: Voice | None = None,
    ) -> None:
        self.session_id = session_id
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self._video, self._audio, self._relay = video, audio, relay
        self._document = document
        self._degrade = degrade
        self._voice = voice or Voice()
        self.degrader: Degrader | None = None
        self.encoders: CallEncoders | None = None
        self.sends_document = False
        self._on_state = on_state
        self._sinks: dict[str, AudioSink | VideoSink | None] = {
            "audio": audio_sink or NullAudioSink(),
            "video": video_sink or LatestFrameSink(),
        }
        self._consumers: set[asyncio.Task[None]] = set()
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("track", self._track_received)

    def _track_received(self, track: MediaStreamTrack) -> None:
        """The officer's camera or microphone: feed its frames to the booth's sink."""
        # Always read: aiortc queues decoded frames without bound until someone does.
        task = asyncio.get_running_loop().create_task(
            self._consume(track), name=f"cso-{track.kind}"
        )
        self._consumers.add(task)
        task.add_done_callback(self._consumers.discard)

    async def _consume(self, track: MediaStreamTrack) -> None:
        log.info("cso_track", session_id=self.session_id, kind=track.kind)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return  # the peer connection closed
            sink = self._sinks.get(track.kind)
            if sink is None:
                continue
            try:
                sink.write(frame)  # type: ignore[arg-type]
            except Exception as exc:  # a broken sink must not end the call
                log.warning("sink_failed", kind=track.kind, error=str(exc))
                self._sinks[track.kind] = None

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        log.info("peer_state", session_id=self.session_id, state=state)
        self._on_state(state)

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        # Tracks after the offer: they bind to the offered (sendrecv) transceivers. The
        # relay lets every session share one source, as a camera would be shared.
        face = self.pc.addTrack(self._relay.subscribe(self._video))
        voice = self.pc.addTrack(self._relay.subscribe(self._audio))
        document: RTCRtpSender | None = None
        free_video = [
            t for t in self.pc.getTransceivers() if t.kind == "video" and t.sender.track is None
        ]
        if self._document is not None and free_video:
            # addTrack takes the first free video transceiver: the offer's second video
            # m-line. The document track goes to this call only, not to monitor links.
            document = self.pc.addTrack(self._relay.subscribe(self._document))
            self.sends_document = True
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(
            RTCSessionDescription(sdp=voice_fmtp(answer.sdp, self._voice), type="answer")
        )
        self.encoders = self._install_encoders(offer_sdp, face, voice, document)
        patient_receivers(self.pc, self.pc.localDescription.sdp)
        if self._degrade is not None:
            self.degrader = self._degrade(self.pc, self.encoders)
            self.degrader.start()
        return self.pc.localDescription.sdp

    def _install_encoders(
        self,
        offer_sdp: str,
        face: RTCRtpSender,
        voice: RTCRtpSender,
        document: RTCRtpSender | None,
    ) -> CallEncoders:
        """Our encoders into the senders whose negotiated codec they are (another codec,
        e.g. H264 or G.711, keeps aiortc's)."""
        mids = {t.sender: t.mid for t in self.pc.getTransceivers()}
        answer = self.pc.localDescription.sdp
        encoders = CallEncoders(senders=[s for s in (face, voice, document) if s is not None])
        if sent_codec(answer, mids.get(voice)) == "audio/opus":
            wanted = self._voice.for_remote(opus_fmtp(offer_sdp, mids.get(voice)))
            install(voice, SpeechOpusEncoder(wanted))
            log.info("voice_encoder", bitrate_bps=wanted.bitrate_bps, fec=wanted.fec)
        full = LADDER[Level.FULL]  # until the ladder applies its first step (if it runs)
        for sender, encoding in (
            (face, VideoEncoding(full.face_bps)),
            (document, VideoEncoding(full.document_bps, DOCUMENT_KEYFRAME_EVERY_S)),
        ):
            if sender is not None and sent_codec(answer, mids.get(sender)) == "video/vp8":
                encoder = LadderVp8Encoder(encoding)
                install(sender, encoder)
                limit_retransmissions(sender, encoder)
                if sender is face:
                    encoders.face = encoder
                else:
                    encoders.document = encoder
        return encoders

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
        if self.degrader is not None:
            await self.degrader.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 5)
        for task in list(self._consumers):
            task.cancel()


async def warm_up(within: float = 10.0) -> float | None:
    """Connect a throwaway pair of peer connections inside this process and decode one
    frame, so the kiosk's first real call does not pay for everything aiortc, aioice and
    the codecs do the first time (lazy imports, codec set-up, the first DTLS handshake):
    ~90 ms here, more while six kiosks start calls at once. Seconds taken, or None if it
    could not be done (then the first call simply pays; nothing else depends on it)."""
    from booth_client.sources.synthetic import SyntheticVideoTrack

    began = asyncio.get_running_loop().time()
    receiver = RTCPeerConnection(rtc_configuration([]))
    sender = RTCPeerConnection(rtc_configuration([]))
    camera = SyntheticVideoTrack("warm-up", 160, 120, 15)
    decoded = asyncio.Event()
    readers: list[asyncio.Task[None]] = []

    @receiver.on("track")
    def _track(track: MediaStreamTrack) -> None:
        async def first() -> None:
            with contextlib.suppress(MediaStreamError):
                await track.recv()
                decoded.set()

        readers.append(asyncio.ensure_future(first()))

    try:
        async with asyncio.timeout(within):
            receiver.addTransceiver("video", direction="recvonly")
            receiver.addTransceiver("audio", direction="recvonly")
            await receiver.setLocalDescription(await receiver.createOffer())
            await sender.setRemoteDescription(receiver.localDescription)
            sender.addTrack(camera)
            await sender.setLocalDescription(await sender.createAnswer())
            await receiver.setRemoteDescription(sender.localDescription)
            await decoded.wait()
        return asyncio.get_running_loop().time() - began
    except Exception as exc:  # no usable address, a codec missing: the first call pays
        log.info("warm_up_skipped", error=str(exc) or type(exc).__name__)
        return None
    finally:
        for reader in readers:
            reader.cancel()
        camera.stop()
        await receiver.close()
        await sender.close()
