"""`loket demo --headless` as a new user runs it: one process tree, six booths, a report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.live_server import free_port

pytestmark = pytest.mark.media


def test_headless_demo_connects_six_booths_and_prints_one_json_line(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "demo", "--headless", "--duration", "20",
         "--port", str(free_port()), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    report = json.loads(lines[0])
    assert result.returncode == 0, (report, result.stderr[-2000:])
    assert report["booths"] == 6 and report["connected"] == 6
    assert report["frames_received"] > 6 * 15  # seconds of video, not a single frame each
    assert 0 < report["first_frame_ms"]["p50"] <= report["first_frame_ms"]["p95"]
    assert "demo-cso" in result.stderr  # the login is printed for the person at the screen
