"""What the booth sends on the line it has: a ladder of video steps, each with its
bitrates, chosen from the kiosk's own estimate of its uplink. Voice is never touched.

    step           face                 document camera          video   on the wire*
    full           as configured, 1000  as configured, 2 fps 250  1250k   1.37 Mbit/s
    document_slow  as configured,  600  720 p, 1 fps, 120          720k   0.81 Mbit/s
    face_360       360 p,          280  540 p, 1 fps,  50          330k   0.40 Mbit/s
    face_240       240 p,          170  360 p, 1 fps,  35          205k   0.27 Mbit/s
    face_180       180 p,          100  360 p, 0.5 fps, 24         124k   0.18 Mbit/s
    face_180_slow  180 p 10 fps,    56  270 p, 0.5 fps, 12          68k   0.12 Mbit/s
    (* video + 5 % of packet headers + the voice: 28 kbit/s Opus in 50 packets a second,
       ~53 kbit/s with its headers)

(bitrates in kbit/s; "as configured" is the camera's own size, 1280x720 at a branch).
The floor fits a 256 kbit/s uplink with a picture upload beside the call.

The estimate (`decide`, a pure function of the last state, one sample and the time):
every `interval_s` the booth samples its call (`Sampler`): what it sent (RTP bytes and
packets: the bitrate on the wire), what the paced uploads sent (booth_client.uplink), the
receiver reports on it (loss over the interval, round-trip time, the receiver's own count)
and the receiver's REMB. A sample is **congested** when loss reaches `bad_loss`, the
round-trip time `bad_rtt_s` or `queue_s` over the call's lowest (a queue in front of the
line), or REMB falls (the receiver's delay-based detector saw a queue grow; not counted
while a step settles, its keyframe makes REMB jump). Random loss below `bad_loss` is not
congestion: NACK and FEC repair it, and a lower bitrate would not lose less.

Congested for `down_after_s`: the line is full, so what went through it is its capacity
(`delivered_bps`; after a failed probe, at least most of what the step below it sent
calmly); the booth steps down to the richest step that fits `utilisation` of it, at
least one step, and counts nothing for `settle_s` while the old step's queue drains.
Calm samples that use most of the estimate raise it by `growth` a second. While an
upload runs, `upload_share` of the capacity is kept for it: the face steps down for the
upload's duration and comes back `restore_s` after it. A richer step that the known
capacity does not carry is tried (a probe) after `up_after_s` of calm samples; a probe
that fails within `relapse_s` doubles the wait (up to `up_after_max_s`), so a line at the
edge does not see-saw. Until the line is first full the call ramps up from `start`, one
step every `ramp_up_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Literal

import structlog

from booth_client.codecs import LadderVp8Encoder, VideoEncoding

log = structlog.get_logger("loket.booth.degrade")

# Bytes on the wire per RTP packet beyond its payload: RTP 12 + extensions ~12 + SRTP
# tag 10 + UDP 8 + IPv4 20.
RTP_OVERHEAD_BYTES = 62
UDP_IP_BYTES = 28
VIDEO_HEADERS = 1.05  # video packets are ~1,200 bytes: 5 % of headers
DOCUMENT_KEYFRAME_EVERY_S = 10.0  # a slow track repairs itself without asking
MIN_PACKETS = 20  # sent in an interval, for its loss to mean something


class Level(IntEnum):
    FULL = 0
    DOCUMENT_SLOW = 1
    FACE_360 = 2
    FACE_240 = 3
    FACE_180 = 4
    FACE_180_SLOW = 5


FLOOR = Level.FACE_180_SLOW


@dataclass(frozen=True, slots=True)
class Step:
    """What one level sends: caps on each camera's track and each encoder's bitrate."""

    face_height: int | None  # None: as configured
    face_fps: float | None
    face_bps: int
    document_height: int | None
    document_fps: float | None  # None: the idle rate (full while a capture runs)
    document_bps: int

    @property
    def video_bps(self) -> int:
        return self.face_bps + self.document_bps

    def need_bps(self, voice_bps: float) -> float:
        """What this step takes of the uplink with the voice (`voice_bps` on the wire)."""
        return self.video_bps * VIDEO_HEADERS + voice_bps


LADDER: dict[Level, Step] = {
    Level.FULL: Step(None, None, 1_000_000, None, None, 250_000),
    Level.DOCUMENT_SLOW: Step(None, None, 600_000, 720, 1.0, 120_000),
    Level.FACE_360: Step(360, None, 280_000, 540, 1.0, 50_000),
    Level.FACE_240: Step(240, None, 170_000, 360, 1.0, 35_000),
    Level.FACE_180: Step(180, None, 100_000, 360, 0.5, 24_000),
    Level.FACE_180_SLOW: Step(180, 10.0, 56_000, 270, 0.5, 12_000),
}


def voice_on_wire(bitrate_bps: float, packets_per_s: float = 50.0) -> float:
    """A voice's bitrate with its packet headers."""
    return bitrate_bps + packets_per_s * RTP_OVERHEAD_BYTES * 8


@dataclass(frozen=True, slots=True)
class Sample:
    """One interval of the call's sending side (None: not known yet)."""

    loss: float | None = None  # share of our packets the receiver lost in the interval
    rtt_s: float | None = None
    jitter_s: float | None = None
    remb_bps: float | None = None  # the receiver's newest estimate for our video
    sent_bps: float | None = None  # all the call sent, on the wire (headers, retransmissions)
    received_bps: float | None = None  # of it, what the receiver reports it received
    upload_bps: float = 0.0  # the paced uploads on the wire
    uploading: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    voice_bps: float = voice_on_wire(28_000)
    start: Level = Level.FACE_360
    utilisation: float = 0.85  # of the capacity, for the call (the rest absorbs bursts)
    upload_share: float = 0.4  # of the capacity, kept for an upload while one runs
    busy: float = 0.75  # of the capacity in use: calm samples then raise the estimate...
    growth: float = 0.08  # ...by this share a second
    calm_share: float = 0.95  # of what the step below a failed probe sent calmly: a floor
    bad_loss: float = 0.10
    good_loss: float = 0.05
    bad_rtt_s: float = 0.5
    queue_s: float = 0.15  # round-trip time above the call's lowest: a standing queue
    remb_fall: float = 0.9  # REMB below this share of the previous one: the receiver saw a queue
    settle_s: float = 2.0  # after a step down (REMB: either way), the old step's queue drains
    down_after_s: float = 1.0
    ramp_up_s: float = 2.0  # one step up per this many calm seconds until the first congestion
    restore_s: float = 2.0  # back to a step the known capacity carries (after an upload)
    up_after_s: float = 10.0  # a probe above the known capacity
    up_after_max_s: float = 120.0
    relapse_s: float = 30.0
    interval_s: float = 1.0


@dataclass(frozen=True, slots=True)
class State:
    level: Level = Level.FACE_360
    capacity_bps: float | None = None  # what the uplink carries; None: never full yet
    min_rtt_s: float | None = None
    rtt_s: float | None = None  # the previous sample's
    remb_bps: float | None = None  # the previous sample's
    calm_bps: float = 0.0  # what the call sent in the last calm sample
    probe_base_bps: float = 0.0  # what it sent calmly just before the last probe
    changed_at: float | None = None  # the last step, either way
    lowered_at: float | None = None  # the last step down
    bad_since: float | None = None
    good_since: float | None = None
    relapses: int = 0  # probes that failed soon after: each doubles the wait to go up
    raised_at: float | None = None  # the last probe, until it has held for relapse_s


def start_state(policy: Policy) -> State:
    return State(level=policy.start)


Verdict = Literal["congested", "calm", "fair"]


def judge(state: State, sample: Sample, now: float, policy: Policy) -> tuple[Verdict, str]:
    """Congested: the line is full (or failing). Calm: nothing says it is near full. With
    the signal that decided it (for the log)."""
    loss, rtt = sample.loss, sample.rtt_s
    if state.lowered_at is not None and now - state.lowered_at < policy.settle_s:
        return "fair", "settling"  # the queue of the richer step is still draining
    settled = state.changed_at is None or now - state.changed_at >= policy.settle_s
    if loss is not None and loss >= policy.bad_loss:
        return "congested", "loss"
    if rtt is not None and rtt >= policy.bad_rtt_s:
        return "congested", "rtt"
    if (
        rtt is not None
        and state.min_rtt_s is not None
        and rtt - state.min_rtt_s >= policy.queue_s
        and (state.rtt_s is None or rtt > state.rtt_s)
    ):
        # A queue, growing now (aiortc smooths the round-trip time over many reports:
        # high but falling is one that drains).
        return "congested", "queue"
    if (
        settled
        and sample.remb_bps is not None
        and state.remb_bps is not None
        and sample.remb_bps < policy.remb_fall * state.remb_bps
    ):
        return "congested", "remb"
    if loss is not None and loss >= policy.good_loss:
        return "fair", "loss"
    return "calm", ""


def usable_bps(capacity: float, uploading: bool, policy: Policy) -> float:
    """What the call may use of a link of `capacity` (less while an upload runs)."""
    share = policy.utilisation - (policy.upload_share if uploading else 0.0)
    return capacity * share


def fitting(usable: float, policy: Policy) -> Level:
    """The richest step within `usable` bits a second; the floor if none is."""
    for level in Level:
        if LADDER[level].need_bps(policy.voice_bps) <= usable:
            return level
    return FLOOR


def decide(state: State, sample: Sample, now: float, policy: Policy = Policy()) -> State:
    """The next state: down to what fits once the line has been full for `down_after_s`
    (or an upload needs its share), back up when the known capacity carries it, probes
    above it after a spell of calm samples."""
    if state.raised_at is not None and now - state.raised_at >= policy.relapse_s:
        state = replace(state, relapses=0, raised_at=None)  # the probe held: forgiven
    verdict, _ = judge(state, sample, now, policy)
    rtt = sample.rtt_s
    min_rtt = state.min_rtt_s if rtt is None else min(rtt, state.min_rtt_s or rtt)
    state = replace(
        state,
        min_rtt_s=min_rtt,
        rtt_s=rtt if rtt is not None else state.rtt_s,
        remb_bps=sample.remb_bps or state.remb_bps,
    )
    if verdict == "congested":
        return _congested(state, sample, now, policy)
    state = replace(state, bad_since=None)
    carried = (sample.sent_bps or 0.0) + sample.upload_bps
    if verdict == "calm" and sample.sent_bps:
        # The call's own media only: an upload's bytes are counted when they are handed to
        # the socket, and unpaced (capacity unknown) that is long before they are sent.
        state = replace(state, calm_bps=sample.sent_bps)
    capacity = state.capacity_bps
    if verdict == "calm" and capacity is not None:
        # The line carried this calmly: it carries at least that, and, when that was near
        # the estimate, a little more (found out when it is full again).
        if carried >= policy.busy * capacity:
            capacity *= 1 + policy.growth * policy.interval_s
        capacity = max(capacity, carried)
        state = replace(state, capacity_bps=capacity)
    fits = (
        None
        if capacity is None
        else fitting(usable_bps(capacity, sample.uploading, policy), policy)
    )
    if sample.uploading and fits is not None and fits > state.level:
        # An upload began: make room for its share now. (Without one, a step above the
        # estimate is a probe: the line says whether it carries it.)
        return replace(state, level=fits, good_since=None, changed_at=now, lowered_at=now)
    if verdict != "calm" or state.level == Level.FULL:
        return replace(state, good_since=None)
    since = state.good_since if state.good_since is not None else now
    richer = Level(state.level - 1)
    known = fits is not None and fits <= richer
    if known:
        wait = policy.restore_s
    elif sample.uploading:
        return replace(state, good_since=since)  # no probing while an upload runs
    else:
        wait = up_wait(state, policy)
    if now - since < wait:
        return replace(state, good_since=since)
    if known:
        return replace(state, level=richer, good_since=None, changed_at=now, raised_at=None)
    return replace(
        state,
        level=richer,
        good_since=None,
        changed_at=now,
        raised_at=now,
        probe_base_bps=state.calm_bps,
    )


def _congested(state: State, sample: Sample, now: float, policy: Policy) -> State:
    """A congested sample: after `down_after_s` of them the line is full, so what went
    through it is its capacity; step down to what fits (at least one step)."""
    since = state.bad_since if state.bad_since is not None else now
    if now - since < policy.down_after_s:
        return replace(state, bad_since=since, good_since=None)
    capacity = delivered_bps(sample) or state.capacity_bps
    if state.raised_at is not None:
        # A probe failed: the step below it was calm at this rate, so the line carries
        # that much (what went through it just now leaves out the retransmissions).
        capacity = max(capacity or 0.0, state.probe_base_bps * policy.calm_share) or None
    target = Level(min(FLOOR, state.level + 1))
    if capacity is not None:
        target = max(target, fitting(usable_bps(capacity, sample.uploading, policy), policy))
    state = replace(state, capacity_bps=capacity, bad_since=None, good_since=None)
    if target == state.level:
        return state  # at the floor: only the estimate moves (the uploads' share with it)
    relapses = state.relapses + (state.raised_at is not None)
    return replace(
        state, level=target, relapses=relapses, raised_at=None, changed_at=now, lowered_at=now
    )


def delivered_bps(sample: Sample) -> float | None:
    """What a full line carried: all the call sent (retransmissions too: on a full line
    they take a good part of it) less the share lost, or the receiver's own count of our
    media if higher; with the uploads. None if nothing is known."""
    estimates = [sample.received_bps]
    if sample.sent_bps is not None:
        estimates.append(sample.sent_bps * (1 - (sample.loss or 0.0)))
    known = [e for e in estimates if e is not None]
    if not known:
        return None
    media = max(known)
    return media + sample.upload_bps if media + sample.upload_bps > 0 else None


def up_wait(state: State, policy: Policy) -> float:
    """Calm seconds before a probe: the ramp until the line was first full, then
    `up_after_s` doubled per failed probe, capped."""
    if state.capacity_bps is None:
        return policy.ramp_up_s
    return min(policy.up_after_s * 2**state.relapses, policy.up_after_max_s)


# --- wiring: sample an aiortc peer connection, apply the steps -------------------------------


@dataclass
class CallEncoders:
    """The call's senders and the encoders the booth gave them (booth_client.codecs)."""

    senders: list[Any]  # every RTCRtpSender of the call
    face: LadderVp8Encoder | None = None
    document: LadderVp8Encoder | None = None


@dataclass
class _Counters:
    at: float
    bytes: int = 0  # on the transport: everything the call sent
    packets: int = 0
    media_packets: int = 0  # RTP of the tracks (not retransmissions, not RTCP)
    lost: int = 0
    upload_bytes: int = 0


@dataclass
class _Received:
    """One stream's receiver reports: when the last came, how many packets it counted."""

    at: float
    packets: int
    rate_bps: float | None = None


@dataclass
class Sampler:
    """Turns the call's cumulative statistics into one Sample per interval."""

    pc: Any
    encoders: CallEncoders
    upload: Callable[[], tuple[int, bool]] = lambda: (0, False)  # (bytes paced, uploading)
    _last: _Counters | None = field(default=None, init=False)
    _received: dict[str, _Received] = field(default_factory=dict, init=False)

    async def sample(self) -> Sample:
        report = await self.pc.getStats()
        now = _Counters(time.monotonic())
        rtts: list[float] = []
        jitters: list[float] = []
        sent: dict[str, Any] = {}
        for stats in report.values():
            kind = getattr(stats, "type", None)
            if kind == "transport":  # all that left: media, retransmissions, RTCP
                now.bytes += stats.bytesSent or 0
                now.packets += stats.packetsSent or 0
            elif kind == "outbound-rtp":
                now.media_packets += stats.packetsSent or 0
                sent[stats.id.removeprefix("outbound-rtp_")] = stats
            elif kind == "remote-inbound-rtp":
                now.lost += max(0, stats.packetsLost or 0)
                if stats.roundTripTime is not None:
                    rtts.append(stats.roundTripTime)
                if stats.jitter is not None:
                    clock = 90_000 if stats.kind == "video" else 48_000
                    jitters.append(stats.jitter / clock)
        for stats in report.values():
            if getattr(stats, "type", None) == "remote-inbound-rtp":
                self._receiver_counted(
                    stats, sent.get(stats.id.removeprefix("remote-inbound-rtp_"))
                )
        now.upload_bytes, uploading = self.upload()
        before, self._last = self._last, now
        sent_bps = loss = None
        upload_bps = 0.0
        if before is not None and now.at > before.at:
            seconds = now.at - before.at
            packets = now.packets - before.packets
            sent_bps = (now.bytes - before.bytes + packets * UDP_IP_BYTES) * 8 / seconds
            upload_bps = (now.upload_bytes - before.upload_bytes) * 8 * 1.04 / seconds
            lost = now.lost - before.lost
            media = now.media_packets - before.media_packets
            # Too few packets (a sample taken early for an upload) say nothing of loss.
            loss = min(1.0, max(0.0, lost / media)) if media >= MIN_PACKETS else None
        rates = [r.rate_bps for r in self._received.values() if r.rate_bps is not None]
        return Sample(
            loss=loss,
            rtt_s=max(rtts) if rtts else None,
            jitter_s=max(jitters) if jitters else None,
            remb_bps=self._remb(),
            sent_bps=sent_bps,
            received_bps=sum(rates) if rates else None,
            upload_bps=upload_bps,
            uploading=uploading,
        )

    def _receiver_counted(self, report: Any, outbound: Any) -> None:
        """A stream's rate as its receiver counted it, between its last two reports, at
        the stream's average packet size on the wire."""
        if outbound is None or not outbound.packetsSent or report.packetsReceived is None:
            return
        key, at = report.id, report.timestamp.timestamp()
        last = self._received.get(key)
        if last is None:
            self._received[key] = _Received(at, report.packetsReceived)
            return
        if at <= last.at:
            return  # no new report since
        size = outbound.bytesSent / outbound.packetsSent + RTP_OVERHEAD_BYTES
        rate = max(0, report.packetsReceived - last.packets) * size * 8 / (at - last.at)
        self._received[key] = _Received(at, report.packetsReceived, rate)

    def _remb(self) -> float | None:
        """The receiver's estimate for our video: Chromium sends one REMB for all streams
        (both encoders get it), aiortc one per stream (add them)."""
        face, document = self.encoders.face, self.encoders.document
        values = [e.remb_bps for e in (face, document) if e is not None and e.remb_bps]
        if not values:
            return None
        if len(values) == 2 and values[0] == values[1]:
            return float(values[0])
        return float(sum(values))


class Degrader:
    """Runs the ladder on one call: samples, decides, and applies each step to the
    tracks (booth_client.sources.media) and the encoders (booth_client.codecs).
    `capacity_bps` and `call_bps` are what the upload pacer shares the line by."""

    def __init__(
        self,
        pc: Any,
        encoders: CallEncoders,
        media: Any,
        policy: Policy = Policy(),
        upload: Callable[[], tuple[int, bool]] = lambda: (0, False),
    ) -> None:
        self.pc, self.encoders, self.media, self.policy = pc, encoders, media, policy
        self.state = start_state(policy)
        self.sampler = Sampler(pc, encoders, upload)
        self.last_sample = Sample()
        self.steps: list[tuple[float, str]] = []  # (monotonic, level name): the ladder's moves
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def capacity_bps(self) -> float | None:
        return self.state.capacity_bps

    @property
    def call_bps(self) -> float:
        """What the call sends now: as measured over the last interval, or less if it has
        stepped down since (its step's need)."""
        need = LADDER[self.state.level].need_bps(self.policy.voice_bps)
        sent = self.last_sample.sent_bps
        return need if sent is None else min(sent, need)

    def start(self) -> None:
        self.apply(self.state.level)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="degrade")

    def nudge(self) -> None:
        """Sample now (an upload began): its share of the line is made at once."""
        self._wake.set()

    def apply(self, level: Level) -> None:
        step = LADDER[level]
        self._cap_tracks(step)
        if self.encoders.face is not None:
            self.encoders.face.set_encoding(VideoEncoding(step.face_bps))
        if self.encoders.document is not None:
            self.encoders.document.set_encoding(
                VideoEncoding(step.document_bps, keyframe_every_s=DOCUMENT_KEYFRAME_EVERY_S)
            )
        self.steps.append((time.monotonic(), level.name.lower()))

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that comes as the event is set, and this loop would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.policy.interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                sample = await self.sampler.sample()
            except Exception as exc:  # stats of a closing connection: stop quietly
                log.info("degrade_sample_failed", error=str(exc))
                return
            self.last_sample = sample
            before, now = self.state, time.monotonic()
            verdict, why = judge(before, sample, now, self.policy)
            self.state = decide(before, sample, now, self.policy)
            face = self.encoders.face
            described = _described(self.state, sample)
            log.debug("ladder_sample", verdict=verdict, signal=why or None, **described,
                      jitter_s=_round(sample.jitter_s, 3),
                      face_keyframes=None if face is None else face.keyframes)  # fmt: skip
            if self.state.level != before.level:
                self.apply(self.state.level)
                worse = self.state.level > before.level
                step = LADDER[self.state.level]
                # `video_level`, not `level=`: the log's own level field would overwrite it.
                (log.warning if worse else log.info)(
                    "video_degraded" if worse else "video_restored",
                    face_bps=step.face_bps,
                    document_bps=step.document_bps,
                    signal=why or None,
                    **described,
                )

    async def stop(self) -> None:
        """The call ended: its limits go with it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._cap_tracks(LADDER[Level.FULL])

    def _cap_tracks(self, step: Step) -> None:
        self.media.document_rate.cap = step.document_fps
        self.media.document.max_height = step.document_height
        self.media.face.max_height = step.face_height
        self.media.face.max_fps = step.face_fps


def _round(value: float | None, digits: int = 0) -> float | None:
    return None if value is None else round(value, digits) if digits else round(value)


def _described(state: State, sample: Sample) -> dict[str, object]:
    """A sample and the estimate after it, for the log."""
    return {
        "video_level": state.level.name.lower(),
        "capacity_bps": _round(state.capacity_bps),
        "sent_bps": _round(sample.sent_bps),
        "received_bps": _round(sample.received_bps),
        "upload_bps": _round(sample.upload_bps),
        "remb_bps": _round(sample.remb_bps),
        "loss": _round(sample.loss, 3),
        "rtt_s": _round(sample.rtt_s, 3),
        "uploading": sample.uploading,
    }
