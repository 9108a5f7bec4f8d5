"""The booth hears the officer: sinks, and the CSO's tracks through a real peer connection.

An aiortc "console" offers sendrecv audio + video to a real BoothPeer, as the browser
does, and switches its microphone with replaceTrack (no renegotiation): the booth's
measuring sink hears the tone only while the track is attached.
"""

from __future__ import annotations

import asyncio
import os
import time

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from booth_client.audio import (
    LatestFrameSink,
    MeasuringAudioSink,
    NullAudioSink,
    frame_rms,
    open_audio_sink,
)
from booth_client.ice import use_host_addresses
from booth_client.peer import BoothPeer
from booth_client.relay import FrameRelay
from booth_client.sources.synthetic import SyntheticToneTrack, SyntheticVideoTrack


def _frame(samples: np.ndarray) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 48_000
    return frame


def test_rms_of_silence_and_of_the_synthetic_voice() -> None:
    assert frame_rms(_frame(np.zeros(960, dtype=np.int16))) == 0.0
    tone = SyntheticToneTrack(440, amplitude=0.2)
    assert frame_rms(_frame(tone.samples_for(3))) == pytest.approx(0.2 / 2**0.5, rel=0.02)


def test_the_measuring_sink_records_levels_over_time_and_to_a_file(tmp_path) -> None:
    log = tmp_path / "levels.jsonl"
    sink = MeasuringAudioSink(log)
    start = time.monotonic()
    sink.write(_frame(np.zeros(960, dtype=np.int16)))
    sink.write(_frame(SyntheticToneTrack(440).samples_for(1)))
    sink.close()
    assert [round(level.rms, 2) for level in sink.levels] == [0.0, 0.14]
    voiced = sink.first_voiced(start)
    assert voiced is not None and voiced >= start
    assert sink.energy(start) == pytest.approx(0.07, abs=0.01)
    assert len(log.read_text().splitlines()) == 2


@pytest.mark.skipif(os.path.exists("/dev/snd"), reason="this machine has a sound device")
def test_without_a_sound_device_the_speaker_falls_back_to_a_null_sink() -> None:
    # A kiosk whose speaker is missing still takes calls (and says so in its log).
    assert isinstance(open_audio_sink("auto"), NullAudioSink)
    assert isinstance(open_audio_sink("null"), NullAudioSink)
    assert isinstance(open_audio_sink("measure"), MeasuringAudioSink)


@pytest.mark.media
async def test_the_booth_hears_the_officer_only_while_the_microphone_is_attached() -> None:
    use_host_addresses(["127.0.0.1"])
    heard, screen = MeasuringAudioSink(), LatestFrameSink()
    booth = BoothPeer(
        "s1", [], SyntheticVideoTrack("booth-1", 160, 120), SyntheticToneTrack(300),
        FrameRelay(), lambda state: None, audio_sink=heard, video_sink=screen,
    )  # fmt: skip
    console = RTCPeerConnection()
    voice, camera = SyntheticToneTrack(1000, amplitude=0.3), SyntheticVideoTrack("cso", 160, 120)
    try:
        audio = console.addTransceiver("audio", direction="sendrecv")
        video = console.addTransceiver("video", direction="sendrecv")
        audio.sender.replaceTrack(voice)
        video.sender.replaceTrack(camera)
        await console.setLocalDescription(await console.createOffer())
        answer = await booth.answer(console.localDescription.sdp)
        await console.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

        start = time.monotonic()
        await _until(lambda: heard.first_voiced(start, 0.02) is not None and screen.frames > 3)
        assert screen.size == (160, 120)
        # On hold: the console detaches its microphone; nothing more reaches the booth.
        audio.sender.replaceTrack(None)
        await asyncio.sleep(0.5)
        quiet = time.monotonic()
        await asyncio.sleep(1.0)
        assert heard.energy(quiet) == 0.0
        # Focused again: the same transceiver, no new offer.
        audio.sender.replaceTrack(voice)
        back = time.monotonic()
        await _until(lambda: heard.first_voiced(back, 0.02) is not None)
    finally:
        await console.close()
        await booth.close()


async def _until(condition, within: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.05)
