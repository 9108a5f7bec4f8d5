"""Where aiortc spends the kiosk's CPU in a Python loop, done with numpy instead.

aiortc (1.16) computes the RFC 6465 audio level of every audio frame it sends (the
`ssrc-audio-level` RTP header extension) by unpacking each 16-bit sample in Python: 960
iterations per 20 ms frame, per audio sender. py-spy on a kiosk in a call measured it at
~1 % of a core per sender, and a monitored kiosk sends three audio tracks (the call's
voice, and the participant's and the officer's voice to the supervisor): it was the
largest single cost of being monitored (bench/supervisor_monitor_bench.py). The level
computed here is the same number (tests/unit/test_aiortc_speedups.py compares the two on
random frames), so the extension the officer's browser reads does not change.
"""

from __future__ import annotations

import math

import av
import numpy as np
from aiortc import rtp

# Kept for comparison (tests); taken before `install` can have replaced it.
aiortc_audio_level_dbov = rtp.compute_audio_level_dbov

_MAX_SAMPLE = 32767
_MIN_LEVEL, _MAX_LEVEL = -127, 0


def audio_level_dbov(frame: av.AudioFrame) -> int:
    """RFC 6465 Appendix A over the frame's first plane, as aiortc's own function reads it
    (every 16-bit value in the plane, divided by the samples per channel)."""
    plane = frame.planes[0]
    values = np.frombuffer(memoryview(plane), dtype=np.int16, count=plane.buffer_size // 2)
    wide = values.astype(np.int64)
    energy = int(np.dot(wide, wide))
    rms = math.sqrt(energy / (frame.samples * _MAX_SAMPLE * _MAX_SAMPLE))
    if rms <= 0:
        return _MIN_LEVEL
    return round(min(max(20 * math.log10(rms), _MIN_LEVEL), _MAX_LEVEL))


def install() -> None:
    """Make aiortc's senders use `audio_level_dbov` (they look it up on `aiortc.rtp`)."""
    rtp.compute_audio_level_dbov = audio_level_dbov  # type: ignore[assignment]
