"""The kiosk's encoders: a speech voice, and VP8 at the bitrate the ladder sets.

aiortc 1.16 fixes its Opus encoder at 96 kbit/s stereo (~120 kbit/s of RTP payload for
one voice), and its VP8 encoder follows every REMB between 250 kbit/s and 1.5 Mbit/s,
rebuilding itself (a new keyframe) on each change over 10 %. The booth gives each of its
senders one of these subclasses before the first frame (`install`):

- `SpeechOpusEncoder`: mono Opus for speech (`Voice`: 28 kbit/s by default), with in-band
  FEC when the remote end says its decoder uses it (`useinbandfec=1`, as Chromium does),
  at most the remote's `maxaveragebitrate`. DTX is not offered: FFmpeg's libopus wrapper
  (PyAV 18) has no option for it.
- `LadderVp8Encoder`: VP8 at `bitrate_bps`, set by the degradation ladder
  (booth_client.degrade) and nothing else. REMB is kept as an estimate (`remb_bps`) for
  the ladder to read, not obeyed: each change of bitrate costs a keyframe, so the bitrate
  changes only when the ladder steps. Keyframes are capped at `max_intra_pct` of an
  average frame (a 22 KB first keyframe becomes ~3 KB at 640x360 and 300 kbit/s: it
  holds a 512 kbit/s line for 50 ms instead of 350), and a slow track (the document
  camera) sends one every `keyframe_every_s` so a receiver that lost one recovers
  without asking.

The answer's Opus parameters (`voice_fmtp`) tell the console what the kiosk wants to
hear: mono at the speech bitrate; no FEC, which aiortc's decoder cannot use. Video
retransmissions are limited (`RetransmissionLimit`): aiortc sends one for every request.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import av
from aiortc.codecs.opus import SAMPLE_RATE, SAMPLES_PER_FRAME, OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder, number_of_threads
from aiortc.mediastreams import VIDEO_TIME_BASE, convert_timebase
from aiortc.sdp import SessionDescription
from av import AudioResampler
from av.frame import Frame

MIN_VOICE_BPS = 6_000  # Opus's own floor
MIN_VIDEO_BPS = 30_000
MAX_VIDEO_BPS = 4_000_000


@dataclass(frozen=True, slots=True)
class Voice:
    """How the kiosk's voice is encoded."""

    bitrate_bps: int = 28_000
    fec: bool = True  # in-band FEC, if the remote's decoder uses it
    expected_loss_pct: int = 10  # what FEC is sized for

    def for_remote(self, fmtp: dict[str, Any]) -> Voice:
        """Honour the remote's Opus parameters (RFC 7587: what its decoder wants)."""
        bitrate = self.bitrate_bps
        cap = _int(fmtp.get("maxaveragebitrate"))
        if cap is not None:
            bitrate = min(bitrate, max(MIN_VOICE_BPS, cap))
        return replace(
            self, bitrate_bps=bitrate, fec=self.fec and _int(fmtp.get("useinbandfec")) == 1
        )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class SpeechOpusEncoder(OpusEncoder):
    """aiortc's Opus encoder, mono at a speech bitrate, FEC as `voice` says."""

    def __init__(self, voice: Voice) -> None:
        super().__init__()  # a CodecContext not yet opened: set up before the first frame
        self.voice = voice
        self.codec.bit_rate = voice.bitrate_bps
        self.codec.layout = "mono"
        # Constrained VBR: unconstrained, a steady tone took 39 kbit/s of a 28 kbit/s
        # target here, and a thin line has no room for a loud passage's overshoot.
        options = {"application": "voip", "vbr": "2"}
        if voice.fec:
            options |= {"fec": "1", "packet_loss": str(voice.expected_loss_pct)}
        self.codec.options = options
        self.resampler = AudioResampler(
            format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=SAMPLES_PER_FRAME
        )


@dataclass(frozen=True, slots=True)
class VideoEncoding:
    """What the ladder sets on one video encoder."""

    bitrate_bps: int
    keyframe_every_s: float | None = None  # None: only on request (PLI/FIR)
    max_intra_pct: int = 300  # the largest keyframe, in % of an average frame


class LadderVp8Encoder(Vp8Encoder):
    """VP8 at the bitrate the ladder sets; REMB only recorded (`remb_bps`, `remb_at`)."""

    def __init__(self, encoding: VideoEncoding) -> None:
        super().__init__()
        self.encoding = encoding
        self.remb_bps: int | None = None
        self.remb_at: float | None = None  # monotonic
        self.keyframes = 0  # sent, for tests and the log
        self.rebuilds = 0  # encoder (re)creations: each one starts with a keyframe
        self._codec_bps = 0
        self._last_key_at = 0.0

    # aiortc's sender writes every REMB here (RTCRtpSender._handle_rtcp_packet).
    @property
    def target_bitrate(self) -> int:
        return self.encoding.bitrate_bps

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self.remb_bps, self.remb_at = int(bitrate), time.monotonic()

    def set_encoding(self, encoding: VideoEncoding) -> None:
        """From the next frame on (a new bitrate rebuilds the encoder: one keyframe)."""
        bitrate = max(MIN_VIDEO_BPS, min(encoding.bitrate_bps, MAX_VIDEO_BPS))
        self.encoding = replace(encoding, bitrate_bps=bitrate)

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, av.VideoFrame)
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        bitrate = self.encoding.bitrate_bps
        if self.codec is not None and (
            (frame.width, frame.height) != (self.codec.width, self.codec.height)
            or bitrate != self._codec_bps
        ):
            self.codec = None
        now = time.monotonic()
        every = self.encoding.keyframe_every_s
        if self.codec is None:
            self.codec = self._open(frame, bitrate)
            self.rebuilds += 1
            force_keyframe = True
        elif every is not None and now - self._last_key_at >= every:
            force_keyframe = True
        if force_keyframe:
            frame.pict_type = av.video.frame.PictureType.I
            self._last_key_at = now
            self.keyframes += 1
        data = b"".join(bytes(p) for p in self.codec.encode(frame))
        payloads = self._packetize(data, self.picture_id)
        assert frame.pts is not None and frame.time_base is not None
        timestamp = convert_timebase(frame.pts, frame.time_base, VIDEO_TIME_BASE)
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        return payloads, timestamp

    def _open(self, frame: av.VideoFrame, bitrate: int) -> Any:
        """aiortc's realtime CBR settings, at `bitrate`, keyframes capped."""
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height = frame.width, frame.height
        codec.bit_rate = bitrate
        codec.pix_fmt = "yuv420p"
        codec.gop_size = 3000  # kf_max_dist: keyframes on request or on our clock
        codec.qmin, codec.qmax = 2, 56
        codec.options = {
            "bufsize": str(bitrate),  # rc_buf_sz = 1000 ms
            "cpu-used": "-6",
            "deadline": "realtime",
            "lag-in-frames": "0",
            "minrate": str(bitrate),  # minrate = maxrate = bit_rate: CBR
            "maxrate": str(bitrate),
            "max-intra-rate": str(self.encoding.max_intra_pct),
            "noise-sensitivity": "4",
            "overshoot-pct": "15",
            "partitions": "0",
            "static-thresh": "1",
            "undershoot-pct": "100",
        }
        codec.thread_count = number_of_threads(
            frame.width * frame.height, multiprocessing.cpu_count()
        )
        self._codec_bps = bitrate
        return codec


# --- retransmissions ---------------------------------------------------------------------------


class RetransmissionLimit:
    """aiortc's sender retransmits every packet each time it is asked for (Chromium asks
    again every round trip until it comes), with no limit: on a full line that made the
    kiosk send 3.5 Mbit/s into a 1 Mbit/s uplink (measured). This lets a packet go again
    at most once per `again_s`, and retransmissions at most `share` of the encoder's
    bitrate (a token bucket of a second's worth); what it refuses, the receiver gets back
    with a keyframe it asks for. Wraps the sender's own `_retransmit`."""

    PACKET_BYTES = 1_200  # a video packet, near aiortc's 1300-byte maximum

    def __init__(
        self,
        retransmit: Callable[[int], Awaitable[None]],
        bitrate: Callable[[], float],
        *,
        share: float = 0.25,
        again_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._retransmit, self._bitrate, self._clock = retransmit, bitrate, clock
        self.share, self.again_s = share, again_s
        self._sent: dict[int, float] = {}  # sequence number -> when it went again
        self._tokens = 0.0
        self._at: float | None = None
        self.sent = self.refused = 0

    async def __call__(self, sequence_number: int) -> None:
        now = self._clock()
        rate = self.share * self._bitrate() / 8  # bytes a second
        elapsed = now - self._at if self._at is not None else 1.0  # starts with a second's
        self._tokens = min(rate, self._tokens + elapsed * rate)
        self._at = now
        last = self._sent.get(sequence_number)
        if (last is not None and now - last < self.again_s) or self._tokens < self.PACKET_BYTES:
            self.refused += 1
            return
        self._tokens -= self.PACKET_BYTES
        self._sent[sequence_number] = now
        if len(self._sent) > 512:
            self._sent = {s: t for s, t in self._sent.items() if now - t < self.again_s}
        self.sent += 1
        await self._retransmit(sequence_number)


def limit_retransmissions(sender: Any, encoder: LadderVp8Encoder) -> RetransmissionLimit:
    """Put a RetransmissionLimit in front of an aiortc sender's retransmissions (the
    sender calls `self._retransmit(seq)` for each packet a NACK asks for)."""
    limit = RetransmissionLimit(sender._retransmit, lambda: encoder.encoding.bitrate_bps)
    sender._retransmit = limit
    return limit


# --- putting them into aiortc's senders, and the SDP around them -----------------------------


def install(sender: Any, encoder: SpeechOpusEncoder | LadderVp8Encoder) -> None:
    """Give an aiortc RTCRtpSender its encoder before its first frame: the sender makes
    one (aiortc's own) only when it has none (RTCRtpSender._next_encoded_frame)."""
    sender._RTCRtpSender__encoder = encoder  # aiortc keeps no public hook for it


def sent_codec(sdp: str, mid: str | None) -> str | None:
    """The codec (mime type, lower case) a description's m-line `mid` sends first."""
    for media in SessionDescription.parse(sdp).media:
        if media.rtp.muxId == mid and media.rtp.codecs:
            return media.rtp.codecs[0].mimeType.lower()
    return None


def opus_fmtp(sdp: str, mid: str | None) -> dict[str, Any]:
    """The Opus parameters (`a=fmtp`) of m-line `mid` in a description; {} if none."""
    for media in SessionDescription.parse(sdp).media:
        if media.rtp.muxId == mid:
            for codec in media.rtp.codecs:
                if codec.mimeType.lower() == "audio/opus":
                    return dict(codec.parameters)
    return {}


def voice_fmtp(sdp: str, voice: Voice) -> str:
    """Our answer with the Opus parameters that tell the console how to send its voice to
    us: mono, at the speech bitrate, no FEC (aiortc's decoder does not use it)."""
    description = SessionDescription.parse(sdp)
    for media in description.media:
        for codec in media.rtp.codecs:
            if codec.mimeType.lower() == "audio/opus":
                codec.parameters.update(
                    {
                        "minptime": 10,
                        "useinbandfec": 0,
                        "stereo": 0,
                        "sprop-stereo": 0,
                        "maxaveragebitrate": voice.bitrate_bps,
                    }
                )
    return str(description)
