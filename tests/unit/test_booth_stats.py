"""The kiosk's `peer_stats`: one interval's loss and frame rate, clamped to the protocol."""

from __future__ import annotations

from booth_client.stats import StatsSample, peer_stats


def test_an_interval_reports_its_own_loss_and_frame_rate() -> None:
    before = StatsSample(at=10.0, frames=100, received=1000, lost=10, video_received=700)
    now = StatsSample(at=16.0, frames=190, received=1900, lost=110, video_received=1300)
    stats = peer_stats("s1", now, before, rtt_ms=42.345, remote_loss=0.01)
    assert stats.session_id == "s1"
    assert stats.rtt_ms == 42.3
    assert stats.loss == round(100 / 1000, 4)  # this interval: 100 lost of 1,000
    assert stats.fps == 15.0


def test_the_first_report_has_no_rate_and_the_worse_loss_wins() -> None:
    now = StatsSample(at=5.0, frames=30, received=500, lost=0)
    stats = peer_stats("s1", now, None, rtt_ms=None, remote_loss=0.2)
    assert stats.fps is None and stats.rtt_ms is None
    assert stats.loss == 0.2  # the officer's end saw a fifth of our packets lost


def test_counters_that_went_backwards_never_give_negative_or_huge_values() -> None:
    before = StatsSample(at=1.0, frames=500, received=9000, lost=50)
    now = StatsSample(at=1.0, frames=10, received=10, lost=0)  # a new connection's counters
    stats = peer_stats("s1", now, before, rtt_ms=10_000_000.0, remote_loss=0.0)
    assert stats.loss == 0.0 and stats.fps is None and stats.rtt_ms == 600_000.0


def test_no_officer_video_means_no_frame_rate_not_zero() -> None:
    """An officer without a camera is not a bad connection: fps is left out."""
    before = StatsSample(at=0.0, frames=0, received=100, lost=0, video_received=0)
    now = StatsSample(at=6.0, frames=0, received=400, lost=0, video_received=0)
    assert peer_stats("s1", now, before, rtt_ms=3.0, remote_loss=0.0).fps is None
