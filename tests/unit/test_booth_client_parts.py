"""Booth-side parts that need no network: synthetic sources, ICE address choice, config."""

from __future__ import annotations

import aioice.ice
import numpy as np
import pytest
from pydantic import ValidationError

import booth_client.ice
from booth_client.config import BoothConfig
from booth_client.cso_standin import percentile
from booth_client.ice import use_host_addresses
from booth_client.sources.synthetic import SyntheticToneTrack, SyntheticVideoTrack
from signaling.messages import BookingRef, WalkInRef


async def test_video_frames_move_and_carry_a_steady_clock() -> None:
    track = SyntheticVideoTrack("booth-7", 320, 240, fps=30)
    frames = [await track.recv() for _ in range(3)]
    assert all((f.width, f.height) == (320, 240) for f in frames)
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and pts[1] - pts[0] == 90_000 // 30
    # A moving scene: consecutive pictures differ (a frozen feed would be a fault).
    a, b = (f.to_ndarray(format="bgr24") for f in frames[:2])
    assert np.count_nonzero(a != b) > 0


def test_hold_and_focus_render_differently() -> None:
    track = SyntheticVideoTrack("booth-1", 320, 240)
    held = track.render(1)
    track.focused = True
    assert np.count_nonzero(held != track.render(1)) > 1000


async def test_tone_is_20ms_of_48k_mono_s16() -> None:
    track = SyntheticToneTrack(440)
    frame = await track.recv()
    assert frame.sample_rate == 48_000 and frame.samples == 960
    samples = track.samples_for(0)
    assert samples.dtype == np.int16 and 0 < np.abs(samples).max() < 2**15


def test_ice_addresses_are_restricted_and_restored() -> None:
    use_host_addresses(["127.0.0.1", "::1"])
    try:
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(False, True) == ["::1"]
        with pytest.raises(ValueError):
            use_host_addresses(["not-an-address"])
    finally:
        use_host_addresses([])
    assert aioice.ice.get_host_addresses is booth_client.ice._original


def test_config_walk_in_by_default_and_booking_when_given() -> None:
    config = BoothConfig(credential="lkb_x.y", server_url="https://loket.example:8443")  # type: ignore[arg-type]
    walk_in = config.claim("jkt01-b1")
    assert isinstance(walk_in, WalkInRef)
    assert config.claim("jkt01-b2").nik != walk_in.nik  # each demo booth a different person
    assert config.ws_url == "wss://loket.example:8443"
    booked = config.model_copy(update={"booking_code": "BK-1234"})
    assert booked.claim("jkt01-b1") == BookingRef(booking_code="BK-1234")


def test_config_reads_comma_separated_addresses_and_refuses_missing_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOKET_BOOTH_ICE_HOST_ADDRESSES", "10.0.0.5, 127.0.0.1")
    monkeypatch.setenv("LOKET_BOOTH_CREDENTIAL", "lkb_a.b")
    assert BoothConfig().ice_host_addresses == ["10.0.0.5", "127.0.0.1"]  # type: ignore[call-arg]
    monkeypatch.delenv("LOKET_BOOTH_CREDENTIAL")
    with pytest.raises(ValidationError):
        BoothConfig()  # type: ignore[call-arg]


def test_percentile_nearest_rank() -> None:
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == 95.0
    assert percentile(values, 50) == 50.0


def test_server_list_settings_read_commas_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.settings import Settings

    monkeypatch.setenv("LOKET_ICE_SERVERS", "turn:turn.example:3478, stun:stun.example")
    monkeypatch.setenv("LOKET_ALLOWED_ORIGINS", '["https://console.example"]')
    settings = Settings()
    assert settings.ice_servers == ["turn:turn.example:3478", "stun:stun.example"]
    assert settings.origins == frozenset({"https://console.example"})
