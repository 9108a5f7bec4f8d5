"""Receive buffers that give up on a lost packet, for the kiosk's aiortc receivers.

aiortc 1.16's jitter buffer hands a frame to the decoder only when every packet before it
is there, and at most one frame per packet that arrives. A packet that never comes (lost,
and its retransmission too; voice packets are never asked for again) holds everything
behind it until the buffer is full: for the voice a 320 ms silence, then frames lost for
good as the backlog never drains (measured: 41.5 frames a second of 48.5 that arrived, at
3 % loss); for video up to 512 packets (the face frozen 9 s on a 512 kbit/s line).

- `VoiceJitterBuffer` keeps `depth` packets (80 ms) and hands on the oldest as each one
  arrives; a packet still missing when `depth` later ones have come is skipped (the
  decoder conceals its 20 ms), so nothing else is lost and the delay stays put.
- `PatientJitterBuffer` (video) gives up on a hole once it is `patience_s` old: it drops
  the frame the hole broke (complete frames before it go on), asks for a keyframe (PLI,
  again every `pli_every_s` while none came) and decodes nothing until one arrives, so
  the picture freezes for a moment rather than smearing.
- `FreshNackGenerator` asks for a lost video packet once, not again with every later loss.
- Retransmissions reach the receiver they are for (`_route_retransmissions`): aiortc
  dropped them all when the console's two video m-lines share the RTX payload type.

`patient_receivers` puts them into a peer connection's receivers before media flows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

VOICE_DEPTH = 4  # packets held: 80 ms, as aiortc's prefetch
VIDEO_PATIENCE_S = 0.35  # a NACK's round trip on a queued line, and its retransmission
LATE_MAX = 3_000  # packets: further behind is a sender that started its numbers over


def vp8_frame_start(packet: RtpPacket) -> bool:
    try:
        descriptor, _ = VpxPayloadDescriptor.parse(packet.payload)
    except ValueError:
        return False
    return bool(descriptor.partition_start) and descriptor.partition_id == 0


def vp8_keyframe(frame: JitterFrame) -> bool:
    return bool(frame.data) and frame.data[0] & 0x01 == 0  # P bit clear: a key frame


def vp8_keyframe_start(packet: RtpPacket) -> bool:
    data: bytes = getattr(packet, "_data", b"")  # the VP8 payload aiortc took out
    return vp8_frame_start(packet) and bool(data) and data[0] & 0x01 == 0


def _late(origin: int | None, seq: int) -> bool:
    """Older than what was handed on or given up on (aiortc would start its buffer over
    from such a packet, a hundred behind)."""
    return origin is not None and 0 < uint16_add(origin, -seq) <= LATE_MAX


class VoiceJitterBuffer:
    """One voice packet out per packet in, `depth` behind the newest; see the module."""

    def __init__(self, depth: int = VOICE_DEPTH) -> None:
        self.depth = depth
        self._packets: dict[int, RtpPacket] = {}
        self._next: int | None = None  # the next sequence number to hand on
        self._newest: int | None = None
        self.skipped = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._next is None:
            self._next = self._newest = seq
        elif _late(self._next, seq):
            return False, None
        elif uint16_add(seq, -self._next) > LATE_MAX:  # numbers started over: so do we
            self._packets.clear()
            self._next = self._newest = seq
        assert self._newest is not None
        if uint16_gt(seq, self._newest):
            self._newest = seq
        self._packets[seq] = packet
        if uint16_add(self._newest, -self._next) < self.depth:
            return False, None
        while self._next not in self._packets:  # lost: `depth` later ones have come
            self._next = uint16_add(self._next, 1)
            self.skipped += 1
        out = self._packets.pop(self._next)
        self._next = uint16_add(self._next, 1)
        return False, JitterFrame(data=getattr(out, "_data", b""), timestamp=out.timestamp)


class FreshNackGenerator(NackGenerator):
    """aiortc's NACK generator asks again for every packet still missing (up to 128) each
    time a new one goes missing, and the sender sends them all again: after a burst of
    loss on a full line, a burst of old retransmissions on the same line. This one asks
    for each lost packet once; one that does not come is given up (PatientJitterBuffer)."""

    def add(self, packet: RtpPacket) -> bool:
        asked = set(self.missing)
        missed = super().add(packet)
        if missed:
            self.missing -= asked
        return missed


class PatientJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, giving up on each hole once it is `patience_s` old
    (see the module). `starts_frame` / `starts_keyframe`: what a packet begins."""

    def __init__(
        self,
        capacity: int = 512,
        *,
        patience_s: float = VIDEO_PATIENCE_S,
        starts_frame: Callable[[RtpPacket], bool] = vp8_frame_start,
        starts_keyframe: Callable[[RtpPacket], bool] = vp8_keyframe_start,
        pli_every_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capacity, 0, is_video=True)
        self.patience_s, self.pli_every_s = patience_s, pli_every_s
        self._starts_frame, self._starts_keyframe = starts_frame, starts_keyframe
        self._clock = clock
        self._newest: int | None = None
        self._missing_since: dict[int, float] = {}  # sequence number -> when it was missed
        self._given_up: set[int] = set()  # their retransmissions, if they come, are dropped
        self._gap_ahead = False  # a placeholder is in the buffer: a keyframe was asked for
        self._want_keyframe = False  # past a gap: inter frames are dropped until a keyframe
        self._asked_at = 0.0
        self.holes_skipped = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq, now = packet.sequence_number, self._clock()
        if _late(self._origin, seq) or seq in self._given_up:
            return False, None
        self._note(seq, now)
        pli, frame = self._next_real(*super().add(packet))
        if frame is None and self._give_up(now):
            pli = True  # ask at once; frames before the gap still go on
            frame = self._next_real(False, self._remove_frame(seq))[1]
        if frame is None and self._want_keyframe:
            self._jump_to_keyframe()
            frame = self._next_real(False, self._remove_frame(seq))[1]
        while frame is not None and self._want_keyframe:
            if vp8_keyframe(frame):
                self._want_keyframe = self._gap_ahead = False
                break
            # An inter frame after the gap refers to what was lost: not decodable.
            frame = self._next_real(False, self._remove_frame(seq))[1]
        waiting = self._want_keyframe or self._gap_ahead
        if waiting and frame is None and now - self._asked_at >= self.pli_every_s:
            pli = True
        if pli:
            self._asked_at = now
        return pli, frame

    def _next_real(self, pli: bool, frame: JitterFrame | None) -> tuple[bool, JitterFrame | None]:
        """Skip a placeholder that comes out (an empty frame): the gap is passed, and what
        follows it waits for a keyframe. The next frame instead."""
        while frame is not None and not frame.data:
            self._want_keyframe = True
            frame = self._remove_frame(0)
        if len(self._given_up) > self._capacity:
            self._given_up.clear()  # long passed
        return pli, frame

    def _note(self, seq: int, now: float) -> None:
        """Remember when each sequence number went missing (a later one came first)."""
        newest = self._newest
        if newest is None or uint16_gt(seq, newest):
            if newest is not None and uint16_add(seq, -newest) <= self._capacity:
                missed = uint16_add(newest, 1)
                while missed != seq:
                    self._missing_since[missed] = now
                    missed = uint16_add(missed, 1)
            self._newest = seq
        else:
            self._missing_since.pop(seq, None)  # it came after all
        if len(self._missing_since) > 2 * self._capacity:
            self._missing_since.clear()

    def _slot(self, seq: int) -> RtpPacket | None:
        return self._packets[seq % self._capacity]

    def _first_hole(self) -> int | None:
        """The first missing sequence number between the oldest kept and the newest."""
        if self._origin is None or self._newest is None:
            return None
        seq, end = self._origin, uint16_add(self._newest, 1)
        while seq != end:
            if self._slot(seq) is None:
                return seq
            seq = uint16_add(seq, 1)
        return None

    def _give_up(self, now: float) -> bool:
        """Close the first hole if it is `patience_s` old: the frame it broke (the one
        before it too, unless that one ended: RTP's marker bit) up to the next packet that
        begins a frame becomes one empty placeholder frame, dropped when it comes out;
        complete frames before it go on. True if it did."""
        hole = self._first_hole()
        if hole is None or now - self._missing_since.get(hole, now) < self.patience_s:
            return False
        assert self._origin is not None and self._newest is not None
        start, before = hole, self._slot(uint16_add(hole, -1))
        if hole != self._origin and before is not None and not before.marker:
            while start != self._origin and self._slot(uint16_add(start, -1)).timestamp == (  # type: ignore[union-attr]
                before.timestamp
            ):
                start = uint16_add(start, -1)
        resume, end = hole, uint16_add(self._newest, 1)
        while resume != end:
            packet = self._slot(resume)
            if packet is not None and self._starts_frame(packet):
                break
            resume = uint16_add(resume, 1)
        stamps = {p.timestamp for p in (self._slot(uint16_add(start, -1)), self._slot(resume)) if p}
        stamp = next(t for t in range(1, 4) if t not in stamps)
        seq = start
        while seq != resume:
            placeholder = RtpPacket(sequence_number=seq, timestamp=stamp)
            placeholder._data = b""  # type: ignore[attr-defined]
            self._packets[seq % self._capacity] = placeholder
            self._given_up.add(seq)
            self._missing_since.pop(seq, None)
            seq = uint16_add(seq, 1)
        self.holes_skipped += 1
        self._gap_ahead = True
        return True

    def _jump_to_keyframe(self) -> None:
        """Waiting for a keyframe: if one has begun arriving, nothing before it matters."""
        if self._origin is None or self._newest is None:
            return
        seq, end, start = self._origin, uint16_add(self._newest, 1), None
        while seq != end:
            packet = self._slot(seq)
            if packet is not None and self._starts_keyframe(packet):
                start = seq
            seq = uint16_add(seq, 1)
        if start is not None:
            self.remove(uint16_add(start, -self._origin))


def patient_receivers(pc: Any, sdp: str) -> None:
    """Give every audio and VP8 receiver of `pc` these buffers (and VP8 ones the NACK
    generator), and route the remote's retransmissions to them; `sdp`: the remote's
    description (it says each m-line's codec and retransmission SSRC)."""
    from aiortc.sdp import SessionDescription

    media = {m.rtp.muxId: m for m in SessionDescription.parse(sdp).media}
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        described = media.get(transceiver.mid)
        codecs = described.rtp.codecs if described is not None else []
        codec = codecs[0].mimeType.lower() if codecs else ""
        # aiortc keeps no public hook for these: both are made in RTCRtpReceiver.__init__.
        if transceiver.kind == "audio":
            receiver._RTCRtpReceiver__jitter_buffer = VoiceJitterBuffer()
        elif codec == "video/vp8":
            receiver._RTCRtpReceiver__jitter_buffer = PatientJitterBuffer()
            receiver._RTCRtpReceiver__nack_generator = FreshNackGenerator()
        if described is not None:
            _route_retransmissions(receiver, described)


def _route_retransmissions(receiver: Any, media: Any) -> None:
    """aiortc routes an RTP packet by its SSRC, else by its payload type if only one
    receiver has it. It learns no retransmission SSRC from the description, and with two
    video m-lines (face and document camera) both have the RTX payload type: every
    retransmission was dropped (measured: none of 9 asked for arrived). Register them."""
    router = receiver.transport._rtp_router
    for group in media.ssrc_group:
        if group.semantic == "FID" and len(group.items) == 2:
            router.ssrc_table[int(group.items[1])] = receiver
