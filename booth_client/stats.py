"""How the kiosk's call is doing, for the supervisors' floor view (`peer_stats`).

From aiortc's getStats: the round trip time and loss the officer's end reports about
what the kiosk sends (remote-inbound-rtp, from RTCP receiver reports), the loss of what
the kiosk receives (inbound-rtp), and the officer's video frame rate counted at the
kiosk's sink. Each report covers the interval since the previous one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiortc import RTCPeerConnection
from aiortc.stats import RTCInboundRtpStreamStats, RTCRemoteInboundRtpStreamStats

from signaling.messages import PeerStats

STATS_INTERVAL_S = 6.0  # as often as the console reports its end


@dataclass(frozen=True)
class StatsSample:
    at: float  # monotonic
    frames: int  # officer's video frames shown so far
    received: int  # packets received so far
    lost: int  # packets lost so far (as counted by the receiver side)
    video_received: int = 0  # of those, video: no officer video, no frame rate to report


async def sample(pc: RTCPeerConnection, frames: int) -> tuple[StatsSample, float | None, float]:
    """(counters now, RTT in ms or None, the officer's reported loss share of our media)."""
    report = await pc.getStats()
    received = lost = video = 0
    rtts: list[float] = []
    remote_loss: list[float] = []
    for stat in report.values():
        if isinstance(stat, RTCInboundRtpStreamStats):
            received += stat.packetsReceived or 0
            lost += max(0, stat.packetsLost or 0)
            if stat.kind == "video":
                video += stat.packetsReceived or 0
        elif isinstance(stat, RTCRemoteInboundRtpStreamStats):
            if stat.roundTripTime is not None:
                rtts.append(stat.roundTripTime * 1000)
            if stat.fractionLost is not None:
                remote_loss.append(stat.fractionLost)
    rtt = max(rtts) if rtts else None
    counters = StatsSample(time.monotonic(), frames, received, lost, video)
    return counters, rtt, max(remote_loss, default=0)


def peer_stats(
    session_id: str,
    now: StatsSample,
    before: StatsSample | None,
    rtt_ms: float | None,
    remote_loss: float,
) -> PeerStats:
    """The report for the interval since `before` (the whole call when there is none)."""
    base = before or StatsSample(now.at, 0, 0, 0)
    got = max(0, now.received - base.received)
    missed = max(0, now.lost - base.lost)
    local_loss = missed / (missed + got) if missed + got else 0.0
    seconds = now.at - base.at
    video = now.video_received > base.video_received  # the officer sends a picture
    fps = (now.frames - base.frames) / seconds if before and video and seconds > 0 else None
    return PeerStats(
        session_id=session_id,
        rtt_ms=None if rtt_ms is None else min(600_000.0, round(rtt_ms, 1)),
        loss=round(min(1.0, max(local_loss, remote_loss)), 4),
        fps=None if fps is None else round(min(240.0, max(0.0, fps)), 1),
    )
