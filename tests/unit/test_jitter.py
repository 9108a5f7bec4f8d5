"""Receive buffers that give up on a lost packet (booth_client.jitter), fed RTP packets
as aiortc's receiver feeds them (one add per packet, at most one frame out), on a fake
clock, against aiortc's own buffer on the same stream."""

from __future__ import annotations

import itertools
import random

from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import RtpPacket

from booth_client.jitter import (
    VIDEO_PATIENCE_S,
    FreshNackGenerator,
    PatientJitterBuffer,
    VoiceJitterBuffer,
    vp8_frame_start,
    vp8_keyframe_start,
)

VOICE_STEP = 0.020


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def voice_packet(seq: int) -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=seq % 65536, timestamp=seq * 960)
    packet._data = seq.to_bytes(4, "big")  # type: ignore[attr-defined]
    return packet


def video_frame(seq: int, frame: int, parts: int, key: bool) -> list[RtpPacket]:
    """One VP8 frame in `parts` packets, as aiortc's sender packs it: the first starts the
    frame (and says keyframe or not), the last carries the marker bit."""
    out = []
    for i in range(parts):
        descriptor = bytes(VpxPayloadDescriptor(partition_start=int(i == 0), partition_id=0))
        head = bytes([0x00 if key else 0x01]) if i == 0 else b""
        data = head + frame.to_bytes(2, "big")
        packet = RtpPacket(payload_type=97, sequence_number=(seq + i) % 65536,
                           timestamp=(frame + 1) * 6000, payload=descriptor + data,
                           marker=int(i == parts - 1))  # fmt: skip
        packet._data = data  # type: ignore[attr-defined]
        out.append(packet)
    return out


def video_stream(frames: int, parts: int, keys: set[int], seq: int = 1000) -> list[RtpPacket]:
    return [p for f in range(frames) for p in video_frame(seq + f * parts, f, parts, f in keys)]


def released(
    buffer: object, packets: list[RtpPacket], step: float, clock: Clock
) -> tuple[list[int], list[float], int]:
    """Feed packets `step` seconds apart: (the frames released, by the number their data
    ends with; when; PLIs asked for)."""
    frames, times, plis = [], [], 0
    for packet in packets:
        clock.now += step
        pli, frame = buffer.add(packet)  # type: ignore[attr-defined]
        plis += pli
        if frame is not None:
            width = 4 if isinstance(buffer, VoiceJitterBuffer) else 2
            frames.append(int.from_bytes(frame.data[-width:], "big"))
            times.append(clock.now)
    return frames, times, plis


def longest_gap(times: list[float]) -> float:
    return max(b - a for a, b in itertools.pairwise(times))


def test_voice_with_3_percent_loss_loses_only_the_lost_packets_and_never_stalls() -> None:
    rng = random.Random(7)
    sent = 3000
    stream = [voice_packet(s) for s in range(sent) if rng.random() > 0.03]
    ours, ours_at, _ = released(VoiceJitterBuffer(), stream, VOICE_STEP, Clock())
    # Every packet that came goes on, in order (bar the last `depth`, still held).
    assert ours == [int.from_bytes(p._data, "big") for p in stream][: len(ours)]  # type: ignore[attr-defined]
    assert len(ours) >= len(stream) - 4
    assert longest_gap(ours_at) <= 4 * VOICE_STEP  # a run of lost packets, nothing more
    # aiortc's own buffer, same stream: stalls, then loses frames it had.
    stock, stock_at, _ = released(JitterBuffer(16, 4), stream, VOICE_STEP, Clock())
    assert len(stock) < 0.9 * len(stream) and longest_gap(stock_at) >= 0.2


def test_voice_skips_a_lost_packet_once_depth_later_ones_came() -> None:
    buffer = VoiceJitterBuffer(depth=4)
    stream = [voice_packet(s) for s in range(20) if s != 6]
    frames, _, _ = released(buffer, stream, VOICE_STEP, Clock())
    assert frames == [s for s in range(16) if s != 6]  # 16..19 held: the depth
    assert buffer.skipped == 1
    # A packet that comes after it was skipped is too late: dropped, order kept.
    assert buffer.add(voice_packet(6)) == (False, None)


def test_video_drops_the_broken_frame_asks_for_a_keyframe_and_waits_for_it() -> None:
    clock = Clock()
    buffer = PatientJitterBuffer(clock=clock)
    packets = video_stream(40, 3, keys={0, 25})
    lost = packets[10 * 3 + 1]  # the middle of frame 10
    stream = [p for p in packets if p is not lost]
    frames, _, plis = released(buffer, stream, 1 / 45, clock)  # 15 fps, 3 packets a frame
    assert frames[:10] == list(range(10))
    # Frame 10 is broken; 11..24 refer to it: none is decoded, a keyframe is asked for.
    assert not set(frames) & set(range(10, 25)) and plis >= 1
    assert frames[10:] == list(range(25, 39))  # from the keyframe on (39 waits for 40)
    assert buffer.holes_skipped == 1
    # aiortc's own buffer on the same stream hands on nothing after the hole.
    stock, _, _ = released(JitterBuffer(512, is_video=True), stream, 1 / 45, Clock())
    assert stock == list(range(10))


def test_a_lost_first_packet_keeps_the_whole_frame_before_it() -> None:
    clock = Clock()
    buffer = PatientJitterBuffer(clock=clock)
    packets = video_stream(30, 2, keys={0, 8})
    lost = packets[5 * 2]  # the first packet of frame 5: frame 4 ended (marker) before it
    frames, _, _ = released(buffer, [p for p in packets if p is not lost], 1 / 30, clock)
    assert frames[:5] == [0, 1, 2, 3, 4] and frames[5:] == list(range(8, 29))


def test_a_retransmission_in_time_loses_nothing_and_one_too_late_is_dropped() -> None:
    clock = Clock()
    buffer = PatientJitterBuffer(clock=clock)
    packets = video_stream(10, 2, keys={0})
    late = packets[7]
    stream = [p for p in packets if p is not late]
    stream.insert(stream.index(packets[11]), late)  # back 0.1 s later, via RTX
    frames, _, plis = released(buffer, stream, 1 / 30, clock)
    assert frames == list(range(9)) and plis == 0 and buffer.holes_skipped == 0

    clock = Clock()
    buffer = PatientJitterBuffer(clock=clock)
    packets = video_stream(30, 2, keys={0, 20})
    lost = packets[7]
    stream = [p for p in packets if p is not lost]
    stream.insert(stream.index(packets[40]), lost)  # 1 s later: given up on long before
    frames, _, _ = released(buffer, stream, 1 / 30, clock)
    assert 3 not in frames and frames[-1] == 28 and frames == sorted(frames)


def test_the_keyframe_is_asked_for_again_until_one_comes() -> None:
    clock = Clock()
    buffer = PatientJitterBuffer(clock=clock)
    packets = video_stream(60, 1, keys={0})  # no keyframe after the loss, ever
    stream = [p for p in packets if p is not packets[5]]
    _, _, plis = released(buffer, stream, 1 / 15, clock)  # 54 frames: 3.6 s waiting
    assert plis >= 6  # every 0.5 s


def test_nack_once_per_lost_packet() -> None:
    ours, stock = FreshNackGenerator(), NackGenerator()
    asked: list[set[int]] = []
    stock_asked: list[set[int]] = []
    for seq in [1, 2, 4, 5, 7, 8, 10]:  # 3, 6, 9 lost
        packet = RtpPacket(sequence_number=seq)
        if ours.add(packet):
            asked.append(set(ours.missing))
        if stock.add(packet):
            stock_asked.append(set(stock.missing))
    assert asked == [{3}, {6}, {9}]
    assert stock_asked == [{3}, {3, 6}, {3, 6, 9}]  # aiortc asks again each time


def test_frame_starts_and_keyframes_are_read_from_the_vp8_payload() -> None:
    [key] = video_frame(1, 0, 1, key=True)
    first, second = video_frame(5, 1, 2, key=False)
    assert vp8_frame_start(key) and vp8_keyframe_start(key)
    assert vp8_frame_start(first) and not vp8_keyframe_start(first)
    assert not vp8_frame_start(second)
    assert not vp8_frame_start(RtpPacket(payload=b""))
    assert VIDEO_PATIENCE_S < 0.5
