"""Field test with the real console: web_cso in headless Chromium talks to a real `loket
booth` on a branch's line (tests/support/field_browser.py, the namespaces and shaping of
tests/support/branch_link.py). What Chromium decoded is read from its own statistics.

The bounds are looser than the issue's goals (bench/thin_link_bench.py --console measures
those) so that a loaded CI box does not fail them, and tight enough that the behaviour
before issue 22 does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.branch_link import PROFILES
from tests.support.field_browser import console_field_run

pytestmark = [pytest.mark.browser, pytest.mark.media]


@pytest.mark.parametrize("profile", ["1mbit", "1mbit-loss3"])
async def test_the_console_hears_and_sees_the_booth_while_a_picture_uploads(
    profile: str, tmp_path: Path
) -> None:
    report = await console_field_run(PROFILES[profile], tmp_path, settle_s=8.0)
    # The participant's voice at the console (packets that arrived, 50 a second when
    # whole) and the officer's at the kiosk, over the capture's window.
    assert report.voice_fps >= 40.0 and report.officer_voice_fps >= 40.0, report
    assert report.voice_gap_s <= 0.6 and report.officer_voice_gap_s <= 0.6, report.marks
    # On the wire, both ways: speech, not aiortc's 96 kbit/s stereo. The console asked
    # for mono with FEC; the kiosk's answer asked the console for the same bitrate.
    fmtp = str(report.marks["voice_fmtp"])
    assert "useinbandfec=1" in fmtp and "stereo=0" in fmtp, fmtp
    assert report.voice_payload_bps is not None and 15_000 < report.voice_payload_bps < 38_000
    assert report.officer_voice_payload_bps is not None, report
    assert report.officer_voice_payload_bps < 38_000, report
    # The face keeps moving, and the picture gets through beside the call.
    assert report.face_fps >= 5.0 and report.face_freeze_s <= 2.5, report.marks
    assert report.first_document_s is not None and report.first_document_s <= 2.5, report
    assert "done" in report.capture_stages and report.capture_s is not None, report
    # At least a fifth of the line's rate went to the picture beside the call (0.12 with
    # loss: TCP's own losses and timeouts take their part).
    share = 0.12 if PROFILES[profile].loss else 0.2
    assert report.picture_bytes is not None
    assert report.picture_bytes * 8 / report.capture_s >= share * 1_000_000, report
