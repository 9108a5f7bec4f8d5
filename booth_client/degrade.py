"""What the booth gives up when its network degrades: video before audio, the document
camera before the face, and never a frozen picture.

    level 0 FULL           everything as configured
    level 1 DOCUMENT_SLOW  the document track at 1 fps (captures keep full resolution:
                           they travel over HTTP, not the call)
    level 2 FACE_360       and the face camera at most 360 px high (1280x720 -> 640x360)
    level 3 FACE_180       and the face camera at most 180 px high (-> 320x180)

Audio is never touched: Opus at ~32 kbit/s is the last thing to lose.

`decide` is a pure function of the last state, one sample of the call's sending side and
the time. Every `interval_s` the booth samples its peer connection: the CSO's receiver
reports (RTCP RR: fraction of video packets lost, round-trip time) and the face encoder's
target bitrate, which aiortc sets from the CSO's REMB estimate (clamped to
250 kbit/s-1.5 Mbit/s; 500 kbit/s until the first estimate). A sample is **bad** when loss
or round-trip time pass their limits or the bitrate falls below what the current level
needs; after `down_after_s` of bad samples the booth steps down one level. It steps up one
level only after `up_after_s` of **good** samples (loss and round-trip time well under the
limits, bitrate 20% above what the richer level needs): the hysteresis. A step up that is
followed by a step down within `relapse_s` doubles the wait before the next step up (up to
`up_after_max_s`), so a link at the edge does not see-saw; a step up that holds for
`relapse_s` resets the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Literal

import structlog

log = structlog.get_logger("loket.booth.degrade")


class Level(IntEnum):
    FULL = 0
    DOCUMENT_SLOW = 1
    FACE_360 = 2
    FACE_180 = 3


@dataclass(frozen=True, slots=True)
class Limits:
    document_fps: float | None  # a cap on the document track's rate
    face_height: int | None  # a cap on the face track's height (aspect kept)


LIMITS = {
    Level.FULL: Limits(None, None),
    Level.DOCUMENT_SLOW: Limits(1.0, None),
    Level.FACE_360: Limits(1.0, 360),
    Level.FACE_180: Limits(1.0, 180),
}


@dataclass(frozen=True, slots=True)
class Sample:
    loss: float | None = None  # fraction of video packets lost, 0..1 (None: no report yet)
    rtt_s: float | None = None
    bitrate_bps: float | None = None  # the face encoder's target


@dataclass(frozen=True, slots=True)
class Policy:
    bad_loss: float = 0.05
    good_loss: float = 0.02
    bad_rtt_s: float = 0.5
    good_rtt_s: float = 0.3
    # Below this target bitrate a level is too rich (FULL, DOCUMENT_SLOW, FACE_360).
    min_bitrate_bps: tuple[float, float, float] = (350_000, 300_000, 260_000)
    headroom: float = 1.2  # bitrate above the richer level's need before stepping up
    down_after_s: float = 4.0
    up_after_s: float = 10.0
    up_after_max_s: float = 120.0
    relapse_s: float = 30.0
    interval_s: float = 2.0


@dataclass(frozen=True, slots=True)
class State:
    level: Level = Level.FULL
    bad_since: float | None = None
    good_since: float | None = None
    relapses: int = 0  # steps down soon after a step up: each doubles the wait to go up
    raised_at: float | None = None  # the last step up, until it has held for relapse_s


Verdict = Literal["bad", "good", "fair"]


def judge(sample: Sample, level: Level, policy: Policy) -> Verdict:
    """Bad: this level is more than the link carries. Good: the next richer one fits."""
    loss, rtt, bps = sample.loss, sample.rtt_s, sample.bitrate_bps
    if (loss is not None and loss >= policy.bad_loss) or (
        rtt is not None and rtt >= policy.bad_rtt_s
    ):
        return "bad"
    if bps is not None and level < Level.FACE_180 and bps < policy.min_bitrate_bps[level]:
        return "bad"
    if level == Level.FULL:
        return "fair"
    calm = (loss is None or loss < policy.good_loss) and (rtt is None or rtt < policy.good_rtt_s)
    richer_needs = policy.min_bitrate_bps[level - 1] * policy.headroom
    if calm and (bps is None or bps >= richer_needs):
        return "good"
    return "fair"


def decide(state: State, sample: Sample, now: float, policy: Policy = Policy()) -> State:
    """The next state: one level down after a spell of bad samples, one up after a longer
    spell of good ones; a fair sample resets both spells."""
    if state.raised_at is not None and now - state.raised_at >= policy.relapse_s:
        state = replace(state, relapses=0, raised_at=None)  # the step up held: forgiven
    verdict = judge(sample, state.level, policy)
    if verdict == "bad":
        since = state.bad_since if state.bad_since is not None else now
        if now - since >= policy.down_after_s and state.level < Level.FACE_180:
            relapses = state.relapses + (state.raised_at is not None)
            return State(Level(state.level + 1), relapses=relapses)
        return replace(state, bad_since=since, good_since=None)
    if verdict == "good":
        since = state.good_since if state.good_since is not None else now
        if now - since >= up_wait(state, policy):
            return replace(state, level=Level(state.level - 1), good_since=None, raised_at=now)
        return replace(state, good_since=since, bad_since=None)
    return replace(state, bad_since=None, good_since=None)


def up_wait(state: State, policy: Policy) -> float:
    """Seconds of good samples before the next step up: doubled per relapse, capped."""
    return min(policy.up_after_s * 2**state.relapses, policy.up_after_max_s)


# --- wiring: sample an aiortc peer connection, apply the limits ------------------------------


async def sample_peer(pc: Any, face_sender: Any) -> Sample:
    """Loss and round-trip time from the CSO's receiver reports on our video, and the face
    encoder's target bitrate (aiortc keeps it private; None if it is not there)."""
    report = await pc.getStats()
    losses: list[float] = []
    rtts: list[float] = []
    for stats in report.values():
        if getattr(stats, "type", None) == "remote-inbound-rtp" and stats.kind == "video":
            # aiortc reports RTCP's fraction-lost byte as is (0..255).
            losses.append(stats.fractionLost / 256)
            if stats.roundTripTime is not None:
                rtts.append(stats.roundTripTime)
    encoder = getattr(face_sender, "_RTCRtpSender__encoder", None)
    bitrate = getattr(encoder, "target_bitrate", None)
    return Sample(
        loss=max(losses) if losses else None,
        rtt_s=max(rtts) if rtts else None,
        bitrate_bps=float(bitrate) if bitrate else None,
    )


class Degrader:
    """Runs the policy on one call: samples, decides, and sets the document track's rate
    cap and the face track's height cap (booth_client.sources.media)."""

    def __init__(self, pc: Any, face_sender: Any, media: Any, policy: Policy = Policy()) -> None:
        self.pc, self.face_sender, self.media, self.policy = pc, face_sender, media, policy
        self.state = State()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="degrade")

    def apply(self, level: Level) -> None:
        limits = LIMITS[level]
        self.media.document_rate.cap = limits.document_fps
        self.media.face.max_height = limits.face_height

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.policy.interval_s)
            try:
                sample = await sample_peer(self.pc, self.face_sender)
            except Exception as exc:  # stats of a closing connection: stop quietly
                log.info("degrade_sample_failed", error=str(exc))
                return
            before = self.state.level
            self.state = decide(self.state, sample, time.monotonic(), self.policy)
            if self.state.level != before:
                self.apply(self.state.level)
                worse = self.state.level > before
                (log.warning if worse else log.info)(
                    "video_degraded" if worse else "video_restored",
                    level=self.state.level.name.lower(),
                    loss=sample.loss,
                    rtt_s=sample.rtt_s,
                    bitrate_bps=sample.bitrate_bps,
                )

    async def stop(self) -> None:
        """The call ended: its limits go with it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.apply(Level.FULL)
