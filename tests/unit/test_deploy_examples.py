"""The example kiosk configuration an operator copies loads as it is, and records."""

from __future__ import annotations

from pathlib import Path

import pytest

from booth_client.config import load_config

EXAMPLE = Path(__file__).parents[2] / "deploy" / "booth.example.toml"


def test_the_example_booth_config_loads_and_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOKET_BOOTH_CREDENTIAL", "kept-out-of-the-file")
    config = load_config(EXAMPLE)
    assert config.source == "v4l2" and config.face_camera.device == "/dev/video0"
    assert config.recording.enabled  # a branch kiosk records (after consent)
