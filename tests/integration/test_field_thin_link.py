"""Field test: a real `loket booth` on a branch's line, an aiortc officer at the other end
(tests/support/field.py). The kiosk runs in its own network namespace behind a veth pair,
its uplink shaped with `tbf` and losing packets with iptables' `statistic` match; the
officer talks, asks for a capture after the call settled, and times every frame over the
upload's window.

What was measured before issue 22 on these lines: at 512 kbit/s the face frozen 4-6 s and
the voice at 25-31 frames/s with 0.4 s gaps while a picture uploaded; at 1 Mbit/s with
3 % loss the face at 8.7 fps with freezes to 3.9 s and the document camera decoding
nothing in 15 s. The bounds below are looser than the issue's goals (which the bench
measures: bench/thin_link_bench.py) so that a loaded two-core box does not fail them (at
a load average of 14, starved of CPU, kiosk and officer do), and tight enough that the old
behaviour does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.branch_link import PROFILES
from tests.support.field import FieldReport, field_run

pytestmark = pytest.mark.media

LEVELS = ["full", "document_slow", "face_360", "face_240", "face_180", "face_180_slow"]


def assert_voice_and_face(report: FieldReport, *, voice_fps: float, face_fps: float = 5.0) -> None:
    """Voice both ways and the face, over the window from the request until after the
    picture was stored."""
    assert report.voice_fps >= voice_fps, report
    assert report.officer_voice_fps >= voice_fps, report
    assert report.voice_gap_s <= 0.6 and report.officer_voice_gap_s <= 0.6, report.marks
    assert report.face_fps >= face_fps, report
    assert report.face_freeze_s <= 2.5, report.marks
    # The voice on the wire: mono, at the speech bitrate (aiortc's own Opus sent 96 kbit/s
    # stereo, ~120 kbit/s of payload). Our officer's offer has no useinbandfec: no FEC.
    assert report.voice_stereo_packets == 0
    assert report.voice_payload_bps is not None and 18_000 < report.voice_payload_bps < 36_000


def assert_capture(report: FieldReport, rate_kbit: int, share: float) -> None:
    """The picture stored, at least `share` of the line's rate going to it beside the
    call (on a lossy line TCP's own losses and timeouts take their part)."""
    assert "done" in report.capture_stages and report.capture_s is not None, report
    assert report.picture_bytes is not None and report.picture_bytes > 60_000
    assert report.picture_bytes * 8 / report.capture_s >= share * rate_kbit * 1000, report


async def test_a_512_kbit_line_keeps_the_voice_while_a_picture_uploads(tmp_path: Path) -> None:
    report = await field_run(PROFILES["512kbit"], tmp_path, settle_s=8.0, after_s=4.0)
    assert_voice_and_face(report, voice_fps=42.0)
    assert_capture(report, 512, share=0.25)
    # The ladder: found the line full on its way up and stepped below what it cannot
    # carry (each step logs its video_level: the log's own level no longer overwrites it).
    levels = report.levels()
    assert levels and all(level in LEVELS for level in levels)
    assert max(LEVELS.index(level) for level in levels) >= LEVELS.index("face_360")
    # If the face stepped down for the upload (when the call at its step would leave the
    # picture less than its share: tests/unit/test_degrade.py holds the rule), it came
    # back after it. Whether it had to depends on where the ladder stood when the officer
    # asked, which a loaded machine moves; the voice, the face and the upload's share
    # above are what the line must give either way.
    during = [i for i, (_, _, uploading) in enumerate(report.steps) if uploading]
    if during:
        assert any(
            LEVELS.index(level) < LEVELS.index(report.steps[during[0]][1])
            for _, level, uploading in report.steps[during[0] + 1 :]
            if not uploading
        ), report.steps


async def test_a_lossy_line_keeps_the_face_moving_and_shows_the_document(
    tmp_path: Path,
) -> None:
    report = await field_run(PROFILES["1mbit-loss3"], tmp_path, settle_s=8.0)
    assert report.line.lost_up > 0 and report.line.lost_down > 0  # the loss was there
    # 3 % of 50 voice packets a second are lost. The face's rate over the window is not
    # what tells this line from the old one (8.7 fps then; 12 fps measured on a quiet box,
    # 2.9 once with the whole suite on two cores while the capture retried): its longest
    # freeze and the document camera's first frame are.
    assert_voice_and_face(report, voice_fps=40.0, face_fps=2.0)
    assert report.first_document_s is not None and report.first_document_s <= 2.5, report
    assert report.document_frames > 0
    assert_capture(report, 1000, share=0.15)
