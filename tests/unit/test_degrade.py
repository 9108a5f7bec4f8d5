"""The video ladder: a pure function of state, sample and time (booth_client.degrade)."""

from __future__ import annotations

from dataclasses import replace

import hypothesis.strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from booth_client.config import BoothConfig
from booth_client.degrade import (
    FLOOR,
    LADDER,
    CallEncoders,
    Degrader,
    Level,
    Policy,
    Sample,
    State,
    decide,
    fitting,
    judge,
    start_state,
    up_wait,
    usable_bps,
    voice_on_wire,
)
from booth_client.sources.media import open_media
from booth_client.uplink import FLOOR_BPS, upload_rate

POLICY = Policy()
VOICE = POLICY.voice_bps


def calm(sent: float = 300_000, **kw: object) -> Sample:
    return Sample(loss=0.0, rtt_s=0.05, sent_bps=sent, **kw)  # type: ignore[arg-type]


def lossy(sent: float, loss: float = 0.3, **kw: object) -> Sample:
    return Sample(loss=loss, rtt_s=0.05, sent_bps=sent, **kw)  # type: ignore[arg-type]


def run(samples: list[Sample], state: State, step: float = 1.0, t0: float = 0.0) -> list[State]:
    """Feed one sample every `step` seconds; the state after each."""
    states = []
    for i, sample in enumerate(samples):
        state = decide(state, sample, t0 + i * step, POLICY)
        states.append(state)
    return states


def test_every_step_has_its_bitrates_and_the_floor_fits_256_kbit_with_an_upload() -> None:
    needs = [LADDER[level].need_bps(VOICE) for level in Level]
    assert needs == sorted(needs, reverse=True)  # each step down needs less
    faces = [LADDER[level].face_bps for level in Level]
    assert faces == sorted(faces, reverse=True) and faces[-1] < 100_000
    # The voice on the wire: 28 kbit/s of Opus and 50 packets' headers a second.
    assert 50_000 < VOICE < 56_000 == voice_on_wire(28_000) + 3_200
    floor = LADDER[FLOOR].need_bps(VOICE)
    assert floor <= 256_000 * POLICY.utilisation  # the call alone fits
    # With an upload beside it, the upload still gets 80 kbit/s: 85 KB in under 9 s.
    assert (upload_rate(256_000, floor, FLOOR_BPS) or 0) >= 80_000
    # Where each line lands, from what the call may use of it.
    assert fitting(usable_bps(2_000_000, False, POLICY), POLICY) == Level.FULL
    assert fitting(usable_bps(1_000_000, False, POLICY), POLICY) == Level.DOCUMENT_SLOW
    assert fitting(usable_bps(512_000, False, POLICY), POLICY) == Level.FACE_360
    assert fitting(usable_bps(256_000, False, POLICY), POLICY) == Level.FACE_180
    # An upload takes its share: the face steps down for it.
    assert fitting(usable_bps(1_000_000, True, POLICY), POLICY) == Level.FACE_360
    assert fitting(usable_bps(512_000, True, POLICY), POLICY) == Level.FACE_180
    assert fitting(usable_bps(256_000, True, POLICY), POLICY) == FLOOR


def test_a_good_line_ramps_up_one_step_per_ramp_until_full() -> None:
    state = start_state(POLICY)
    assert state.level == Level.FACE_360 and up_wait(state, POLICY) == POLICY.ramp_up_s
    levels = [s.level for s in run([calm()] * 8, state)]
    assert levels[:2] == [Level.FACE_360] * 2
    # A spell counts from the first calm sample after a step: 2 s of them, then up.
    assert levels[2:5] == [Level.DOCUMENT_SLOW] * 3 and levels[5] == Level.FULL
    assert set(levels[5:]) == {Level.FULL}


def test_random_loss_below_the_limit_is_not_congestion() -> None:
    # 3 % loss: NACK and FEC repair it; a lower bitrate would not lose less.
    state = State(level=Level.DOCUMENT_SLOW, capacity_bps=1_000_000)
    three = [lossy(700_000, 0.03)] * 20
    assert max(s.level for s in run(three, state)) == Level.DOCUMENT_SLOW  # never below
    assert judge(state, lossy(700_000, 0.03), 0.0, POLICY)[0] == "calm"
    assert judge(state, lossy(700_000, 0.07), 0.0, POLICY) == ("fair", "loss")
    assert judge(state, lossy(700_000, 0.12), 0.0, POLICY) == ("congested", "loss")


def test_a_full_line_steps_down_to_what_it_carried_at_once_then_settles() -> None:
    # A probe to `full` on a 512 kbit/s line: 30 % lost of 720 kbit/s sent.
    state = State(level=Level.FULL)
    first, second, *after = run([lossy(720_000, 0.3)] * 4, state)
    assert first.level == Level.FULL and first.bad_since == 0.0  # one sample is no spell
    # Then: the line carried 504 kbit/s; 85 % of it fits face_360, two steps down at once.
    assert second.capacity_bps is not None and round(second.capacity_bps) == 504_000
    assert second.level == Level.FACE_360 and second.lowered_at == 1.0
    # While the richer step's queue drains, its losses are not counted again.
    assert [s.level for s in after] == [Level.FACE_360] * 2
    assert judge(second, lossy(330_000, 0.5), 2.0, POLICY) == ("fair", "settling")


def test_what_the_receiver_counted_and_a_calm_moment_before_bound_the_estimate() -> None:
    # Half of 720 kbit/s lost: the line carried 360...
    state = State(level=Level.DOCUMENT_SLOW)
    sample = lossy(720_000, 0.5)
    assert run([sample, sample], state)[-1].capacity_bps == 360_000
    # ...and the receiver's own count wins when it is higher.
    counted = lossy(720_000, 0.5, received_bps=600_000)
    assert run([counted, counted], state)[-1].capacity_bps == 600_000
    # A probe from a step that was calm at 380 kbit/s fails: the line carries that much,
    # whatever was lost since.
    probing = State(level=Level.FACE_360, capacity_bps=400_000, good_since=0.0)
    probing = run([calm(380_000)] * 11, probing)[-1]
    assert probing.level == Level.DOCUMENT_SLOW and probing.probe_base_bps == 380_000
    bad = lossy(800_000, 0.7)
    after = run([bad, bad], probing, t0=20.0)[-1]
    assert after.capacity_bps == 380_000 * POLICY.calm_share
    # Not after a ramp step at the start: the calm there was only the feedback's delay.
    start = run([bad, bad], State(level=Level.FACE_360, calm_bps=380_000))[-1]
    assert round(start.capacity_bps or 0) == 240_000  # 800 kbit/s sent, 70 % lost


def test_queueing_and_a_falling_remb_count_as_congestion_once_settled() -> None:
    state = State(level=Level.FULL, min_rtt_s=0.02, remb_bps=1_000_000, changed_at=0.0)
    queued = Sample(loss=0.0, rtt_s=0.2, sent_bps=900_000)
    assert judge(state, queued, 5.0, POLICY) == ("congested", "queue")
    # High but falling: a queue that drains (aiortc's round-trip time is smoothed).
    assert judge(replace(state, rtt_s=0.3), queued, 5.0, POLICY) == ("calm", "")
    assert judge(state, Sample(rtt_s=0.6), 5.0, POLICY) == ("congested", "rtt")
    fell = Sample(loss=0.0, rtt_s=0.02, remb_bps=800_000, sent_bps=900_000)
    assert judge(state, fell, 5.0, POLICY) == ("congested", "remb")
    # Right after a step the new encoder's keyframe makes REMB jump: not the line.
    assert judge(state, fell, 1.0, POLICY) == ("calm", "")


def test_an_upload_steps_the_face_down_for_its_duration_and_it_comes_back() -> None:
    state = State(level=Level.FACE_360, capacity_bps=512_000)
    up = calm(380_000, upload_bps=0.0, uploading=True)
    during = decide(state, up, 0.0, POLICY)
    assert during.level == Level.FACE_180  # at once: room for the upload's share
    # No probing while it runs, however calm.
    steady = run([calm(200_000, upload_bps=200_000, uploading=True)] * 20, during, t0=1.0)
    assert {s.level for s in steady} == {Level.FACE_180}
    # Done: back to what the known capacity carries after `restore_s`, not a probe.
    after = run([calm(200_000)] * 6, steady[-1], t0=30.0)
    assert after[-1].level == Level.FACE_360 and after[-1].raised_at is None


def test_a_probe_that_fails_soon_doubles_the_wait_for_the_next() -> None:
    state = State(level=Level.FACE_360, capacity_bps=450_000, relapses=0)
    assert up_wait(state, POLICY) == POLICY.up_after_s
    levels, now = [], 0.0
    for _ in range(12):  # calm at 380 kbit/s: after 10 s, a probe above the known capacity
        state = decide(state, calm(380_000), now, POLICY)
        levels.append(state.level)
        now += 1
    assert levels[9] == Level.FACE_360 and levels[10] == Level.DOCUMENT_SLOW
    assert state.raised_at is not None
    for _ in range(3):  # it fails
        state = decide(state, lossy(700_000, 0.35), now, POLICY)
        now += 1
    # Back down (to what 65 % of 700 kbit/s fits), and the next probe waits twice as long.
    assert state.level >= Level.FACE_360 and state.relapses == 1
    assert up_wait(state, POLICY) == 2 * POLICY.up_after_s
    assert up_wait(replace(state, relapses=10), POLICY) == POLICY.up_after_max_s


def test_a_busy_calm_line_raises_the_estimate_a_little_each_second() -> None:
    state = State(level=FLOOR, capacity_bps=250_000)
    after = run([calm(150_000, upload_bps=80_000, uploading=True)] * 5, state)
    estimates = [s.capacity_bps for s in after]
    grown = [250_000 * (1 + POLICY.growth) ** n for n in (1, 2, 3)]
    assert [round(e or 0) for e in estimates[:3]] == [round(g) for g in grown]
    # Until what is in use (230 kbit/s) is under `busy` of the estimate: no evidence more.
    assert estimates[3:] == estimates[2:3] * 2
    # Little in use: no evidence the line carries more.
    idle = run([calm(60_000)] * 5, state)
    assert idle[-1].capacity_bps == 250_000


def test_the_degrader_applies_each_step_to_the_tracks_and_encoders() -> None:
    from booth_client.codecs import LadderVp8Encoder, VideoEncoding

    config = BoothConfig(credential="lkb_b.s", width=1280, height=720)  # type: ignore[arg-type,call-arg]
    media = open_media(config, "b1")
    face, document = LadderVp8Encoder(VideoEncoding(1)), LadderVp8Encoder(VideoEncoding(1))
    degrader = Degrader(None, CallEncoders([], face, document), media)
    degrader.apply(Level.FACE_240)
    assert media.face.max_height == 240 and media.face.max_fps is None
    assert media.document_rate.current() == 1.0 and media.document.max_height == 360
    assert face.encoding.bitrate_bps == 170_000 and document.encoding.bitrate_bps == 35_000
    assert document.encoding.keyframe_every_s is not None and face.encoding.keyframe_every_s is None
    degrader.apply(FLOOR)
    assert media.face.max_fps == 10.0 and media.document_rate.current() == 0.5
    degrader.apply(Level.FULL)
    assert media.face.max_height is None and media.document_rate.current() == 2.0
    assert face.encoding.bitrate_bps == 1_000_000


SAMPLES = st.builds(
    Sample,
    loss=st.none() | st.floats(0, 1),
    rtt_s=st.none() | st.floats(0.001, 2),
    remb_bps=st.none() | st.floats(10_000, 5e6),
    sent_bps=st.none() | st.floats(0, 3e6),
    received_bps=st.none() | st.floats(0, 3e6),
    upload_bps=st.floats(0, 2e6),
    uploading=st.booleans(),
)


class LadderWalk(RuleBasedStateMachine):
    """Any samples at any pace: the ladder stays on its steps and keeps its promises."""

    def __init__(self) -> None:
        super().__init__()
        self.state = start_state(POLICY)
        self.now = 0.0

    @rule(sample=SAMPLES, wait=st.floats(0.1, 30))
    def sample(self, sample: Sample, wait: float) -> None:
        self.now += wait
        before = self.state
        verdict, _ = judge(before, sample, self.now, POLICY)
        after = decide(before, sample, self.now, POLICY)
        self.state = after
        assert after.level in LADDER
        if after.level < before.level:  # up: one step, only on a calm sample
            assert before.level - after.level == 1 and verdict == "calm"
        if after.level > before.level:  # down: congested, or an upload's share
            assert verdict == "congested" or (sample.uploading and after.capacity_bps)
        if after.level != before.level:
            assert after.changed_at == self.now

    @invariant()
    def the_estimate_is_never_negative(self) -> None:
        assert self.state.capacity_bps is None or self.state.capacity_bps >= 0
        assert self.state.relapses >= 0

    @invariant()
    def an_upload_always_progresses(self) -> None:
        rate = upload_rate(self.state.capacity_bps, 3e6, FLOOR_BPS)
        assert rate is None or rate >= FLOOR_BPS


TestLadderWalk = LadderWalk.TestCase
