"""The kiosk's encoders (booth_client.codecs): what they put in each packet, checked with
libopus's own packet parser and against aiortc's encoders on the same input."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import fractions
import glob
import os

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder

from booth_client.codecs import (
    LadderVp8Encoder,
    RetransmissionLimit,
    SpeechOpusEncoder,
    VideoEncoding,
    Voice,
    opus_fmtp,
    sent_codec,
    voice_fmtp,
)
from booth_client.peer import rtc_configuration
from booth_client.sources.synthetic import SyntheticToneTrack, SyntheticVideoTrack


def libopus() -> ctypes.CDLL:
    """The libopus PyAV encodes with (its wheel bundles one), else the system's."""
    bundled = glob.glob(os.path.join(os.path.dirname(av.__file__), "..", "av.libs", "libopus*"))
    path = bundled[0] if bundled else ctypes.util.find_library("opus")
    if path is None:
        pytest.fail("no libopus to parse packets with (PyAV's wheel bundles one)")
    lib = ctypes.CDLL(path)
    lib.opus_packet_has_lbrr.argtypes = [ctypes.c_char_p, ctypes.c_int32]
    lib.opus_packet_get_nb_channels.argtypes = [ctypes.c_char_p]
    return lib


async def speech(encoder: OpusEncoder, frames: int = 150) -> list[bytes]:
    """Opus packets of `frames` 20 ms frames of the synthetic participant's voice."""
    track = SyntheticToneTrack(440.0)
    packets = []
    for _ in range(frames):
        payloads, _ = encoder.encode(await track.recv())
        packets += payloads
    return packets


def kbit_per_s(packets: list[bytes]) -> float:
    steady = packets[25:]
    return sum(len(p) for p in steady) * 8 / (len(steady) * 0.020) / 1000


async def test_the_voice_is_mono_speech_with_fec_when_asked() -> None:
    lib = libopus()
    ours = await speech(SpeechOpusEncoder(Voice(28_000, fec=True)))
    assert {lib.opus_packet_get_nb_channels(p) for p in ours} == {1}
    # In-band FEC (LBRR, carried in the next packet): where SILK's voice detector calls
    # the steady tone speech; never without it.
    assert sum(lib.opus_packet_has_lbrr(p, len(p)) == 1 for p in ours) >= 10
    assert 20 <= kbit_per_s(ours) <= 30
    plain = await speech(SpeechOpusEncoder(Voice(28_000, fec=False)))
    assert not any(lib.opus_packet_has_lbrr(p, len(p)) == 1 for p in plain)
    assert 24 <= kbit_per_s(plain) <= 32  # constrained VBR: at the target
    # aiortc's own, same voice: stereo at ~96 kbit/s.
    stock = await speech(OpusEncoder())
    assert {lib.opus_packet_get_nb_channels(p) for p in stock} == {2}
    assert kbit_per_s(stock) > 3 * kbit_per_s(ours)


def test_the_voice_follows_what_the_remote_decoder_asks_for() -> None:
    voice = Voice(28_000, fec=True)
    chromium = {"minptime": 10, "useinbandfec": 1, "maxaveragebitrate": 24_000}
    assert voice.for_remote(chromium) == Voice(24_000, fec=True)
    assert voice.for_remote({}) == Voice(28_000, fec=False)  # RFC 7587: FEC only if asked
    assert voice.for_remote({"maxaveragebitrate": 100}).bitrate_bps == 6_000
    assert voice.for_remote({"maxaveragebitrate": "x"}).bitrate_bps == 28_000


def frames(n: int, size: tuple[int, int] = (640, 360)) -> list[av.VideoFrame]:
    """A detailed moving picture (a camera's noise and texture, not a flat test scene)."""
    width, height = size
    texture = np.random.default_rng(1).integers(40, 216, (height, width, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(np.roll(texture, 2 * i, axis=1), format="bgr24")
        frame.pts, frame.time_base = i * 6000, fractions.Fraction(1, 90_000)
        out.append(frame)
    return out


def test_vp8_keeps_the_ladders_bitrate_whatever_remb_says_and_caps_keyframes() -> None:
    encoder = LadderVp8Encoder(VideoEncoding(150_000))
    encoder.target_bitrate = 1_500_000  # what aiortc does with each REMB
    assert encoder.remb_bps == 1_500_000 and encoder.target_bitrate == 150_000
    sizes = [sum(len(p) for p in encoder.encode(f)[0]) for f in frames(60)]
    assert encoder.rebuilds == 1 and encoder.keyframes == 1
    kbit = sum(sizes[15:]) * 8 / (45 / 15) / 1000
    assert 75 <= kbit <= 190, kbit
    # aiortc's own (at its 250 kbit/s floor), same picture: its first keyframe is uncapped.
    stock = Vp8Encoder()
    stock.target_bitrate = 150_000
    stock_first = sum(len(p) for p in stock.encode(frames(1)[0])[0])
    assert sizes[0] < stock_first / 2, (sizes[0], stock_first)


def test_a_step_rebuilds_once_and_a_slow_track_sends_keyframes_on_its_clock() -> None:
    encoder = LadderVp8Encoder(VideoEncoding(300_000))
    pictures = frames(6)
    encoder.encode(pictures[0])
    encoder.set_encoding(VideoEncoding(100_000))
    encoder.encode(pictures[1])
    encoder.encode(pictures[2])
    assert encoder.rebuilds == 2 and encoder.keyframes == 2
    encoder.encode(pictures[3], force_keyframe=True)  # a PLI
    assert encoder.keyframes == 3
    slow = LadderVp8Encoder(VideoEncoding(50_000, keyframe_every_s=0.0))
    for picture in pictures:
        slow.encode(picture)
    assert slow.keyframes == 6 and slow.rebuilds == 1
    assert LadderVp8Encoder(VideoEncoding(1)).encoding.bitrate_bps == 1  # set_encoding clamps
    clamped = LadderVp8Encoder(VideoEncoding(1))
    clamped.set_encoding(VideoEncoding(1))
    assert clamped.encoding.bitrate_bps == 30_000


async def test_the_answer_asks_for_mono_speech_and_keeps_everything_else() -> None:
    # No ICE servers: aiortc would add a public STUN server (nothing leaves this machine).
    console, booth = (
        RTCPeerConnection(rtc_configuration([])),
        RTCPeerConnection(rtc_configuration([])),
    )
    try:
        console.addTransceiver("video", direction="recvonly")
        console.addTransceiver(SyntheticToneTrack(440.0), direction="sendrecv")
        await console.setLocalDescription(await console.createOffer())
        await booth.setRemoteDescription(console.localDescription)
        booth.addTrack(SyntheticVideoTrack("b", 320, 240, 15))
        booth.addTrack(SyntheticToneTrack(440.0))
        answer = await booth.createAnswer()
        ours = voice_fmtp(answer.sdp, Voice(24_000))
        await booth.setLocalDescription(RTCSessionDescription(ours, "answer"))
        sent = booth.localDescription.sdp
        audio_mid = booth.getTransceivers()[1].mid
        assert {k: str(v) for k, v in opus_fmtp(sent, audio_mid).items()} == {
            "minptime": "10", "useinbandfec": "0", "stereo": "0", "sprop-stereo": "0",
            "maxaveragebitrate": "24000",
        }  # fmt: skip
        assert sent_codec(sent, audio_mid) == "audio/opus"
        assert sent_codec(sent, booth.getTransceivers()[0].mid) == "video/vp8"
        # Only the Opus line changed: fingerprints, groups, codecs are all as aiortc made them.
        changed = set(ours.splitlines()) ^ set(answer.sdp.splitlines())
        assert changed and all(line.startswith("a=fmtp:") for line in changed), changed
        await console.setRemoteDescription(booth.localDescription)  # the console takes it
    finally:
        await asyncio.gather(console.close(), booth.close())


def test_sdp_helpers_say_nothing_of_what_is_not_there() -> None:
    sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    assert opus_fmtp(sdp, "0") == {} and sent_codec(sdp, "0") is None
    assert np.isfinite(Voice().bitrate_bps)


async def test_retransmissions_go_once_a_while_and_within_their_share() -> None:
    clock = [0.0]
    sent: list[int] = []

    async def retransmit(seq: int) -> None:
        sent.append(seq)

    limit = RetransmissionLimit(retransmit, lambda: 480_000, clock=lambda: clock[0])
    # A second's worth of tokens to start: 25 % of 480 kbit/s = 15 KB = 12 packets.
    for seq in range(20):
        await limit(seq)
    assert sent == list(range(12)) and limit.refused == 8
    # Asked again within 0.2 s (Chromium asks each round trip): not again.
    clock[0] = 0.1
    await limit(3)
    assert sent.count(3) == 1
    # Later, with the tokens that came meanwhile: again, at the share's rate.
    clock[0] = 0.5
    for seq in (3, 4, 5, 6, 7, 8):
        await limit(seq)
    # 0.6 KB left + 0.5 s x 15 KB/s: six packets.
    assert sent[12:] == [3, 4, 5, 6, 7, 8]
