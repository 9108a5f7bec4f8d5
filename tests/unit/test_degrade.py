"""The network degradation policy: a pure function of state, sample and time."""

from __future__ import annotations

from booth_client.config import BoothConfig
from booth_client.degrade import (
    LIMITS,
    Degrader,
    Level,
    Policy,
    Sample,
    State,
    decide,
    judge,
    up_wait,
)
from booth_client.sources.media import open_media

POLICY = Policy()
GOOD = Sample(loss=0.0, rtt_s=0.05, bitrate_bps=1_500_000)
LOSSY = Sample(loss=0.10, rtt_s=0.05, bitrate_bps=1_500_000)
FAIR = Sample(loss=0.03, rtt_s=0.05, bitrate_bps=1_500_000)  # between the two loss limits


def run(samples: list[Sample], state: State = State(), step: float = 2.0) -> list[Level]:
    """Feed one sample every `step` seconds; the level after each."""
    levels = []
    for i, sample in enumerate(samples):
        state = decide(state, sample, i * step, POLICY)
        levels.append(state.level)
    return levels


def test_a_good_link_stays_full_and_a_short_blip_changes_nothing() -> None:
    assert set(run([GOOD] * 20)) == {Level.FULL}
    # Bad for 2 s (less than down_after_s), then fine: no step down.
    assert set(run([GOOD, LOSSY, LOSSY, GOOD, LOSSY, GOOD])) == {Level.FULL}


def test_sustained_loss_gives_up_the_document_first_then_the_face_and_never_audio() -> None:
    levels = run([LOSSY] * 12)
    # One step per 4 s of bad samples: document to 1 fps, face to 360 p, then 180 p.
    assert levels[:3] == [Level.FULL, Level.FULL, Level.DOCUMENT_SLOW]
    assert levels.index(Level.FACE_360) > levels.index(Level.DOCUMENT_SLOW)
    assert levels.index(Level.FACE_180) > levels.index(Level.FACE_360)
    assert levels[-1] == Level.FACE_180  # the floor: nothing below it
    assert LIMITS[Level.DOCUMENT_SLOW].face_height is None
    assert [LIMITS[v].face_height for v in (Level.FACE_360, Level.FACE_180)] == [360, 180]
    assert all(LIMITS[v].document_fps == 1.0 for v in Level if v != Level.FULL)


def test_round_trip_time_and_a_falling_bitrate_estimate_count_as_bad() -> None:
    assert judge(Sample(rtt_s=0.8), Level.FULL, POLICY) == "bad"
    assert judge(Sample(bitrate_bps=300_000), Level.FULL, POLICY) == "bad"
    assert judge(Sample(bitrate_bps=300_000), Level.DOCUMENT_SLOW, POLICY) == "fair"
    # The encoder's floor (250 kbit/s) is bad at 360p, and nothing is below 180p.
    assert judge(Sample(bitrate_bps=250_000), Level.FACE_360, POLICY) == "bad"
    assert judge(Sample(bitrate_bps=250_000), Level.FACE_180, POLICY) == "fair"
    assert judge(Sample(), Level.FACE_180, POLICY) == "good"  # no report yet: no evidence


def test_restores_one_level_at_a_time_after_a_longer_spell_of_good_samples() -> None:
    low = State(level=Level.FACE_180)
    levels = run([GOOD] * 20, low)  # 40 s
    # 10 s of good samples per step up, each spell from the first sample after a step:
    # 360p at 10 s, the face whole at 22 s, everything at 34 s.
    assert levels[4] == Level.FACE_180 and levels[5] == Level.FACE_360
    assert levels[10] == Level.FACE_360 and levels[11] == Level.DOCUMENT_SLOW
    assert levels[16] == Level.DOCUMENT_SLOW and levels[17] == Level.FULL
    # A fair sample (loss between the limits) resets the spell: no step up on it.
    assert set(run([GOOD, GOOD, GOOD, FAIR] * 4, low)) == {Level.FACE_180}
    # Good loss, but the bitrate has no headroom for the richer level: stay.
    tight = Sample(loss=0.0, rtt_s=0.05, bitrate_bps=330_000)
    assert set(run([tight] * 20, State(level=Level.DOCUMENT_SLOW))) == {Level.DOCUMENT_SLOW}


def test_a_relapse_right_after_a_step_up_doubles_the_wait_for_the_next() -> None:
    state = State(level=Level.DOCUMENT_SLOW)
    now = 0.0
    for _ in range(6):  # 10 s good: back to FULL
        state = decide(state, GOOD, now, POLICY)
        now += 2
    assert state.level == Level.FULL and state.raised_at is not None
    for _ in range(3):  # bad again within relapse_s: down, and the wait doubles
        state = decide(state, LOSSY, now, POLICY)
        now += 2
    assert state.level == Level.DOCUMENT_SLOW and up_wait(state, POLICY) == 20.0
    levels = []
    for _ in range(12):
        state = decide(state, GOOD, now, POLICY)
        levels.append(state.level)
        now += 2
    assert levels[9] == Level.DOCUMENT_SLOW and levels[10] == Level.FULL  # after 20 s
    # Up again, and it holds for relapse_s: the next wait is the plain one again.
    for _ in range(16):
        state = decide(state, GOOD, now, POLICY)
        now += 2
    assert state.relapses == 0 and up_wait(state, POLICY) == 10.0


def test_the_degrader_applies_each_level_to_the_booth_tracks() -> None:
    media = open_media(BoothConfig(credential="lkb_b.s", width=1280, height=720), "b1")  # type: ignore[arg-type]
    degrader = Degrader(pc=None, face_sender=None, media=media)
    degrader.apply(Level.FACE_360)
    assert media.document_rate.current() == 1.0 and media.face.max_height == 360
    degrader.apply(Level.FULL)
    assert media.document_rate.current() == 2.0 and media.face.max_height is None
