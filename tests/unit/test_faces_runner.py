"""FaceRunner: face work off the event loop, bounded, refused at once when full, with a
timeout that does not break the bound. Real models, real pictures."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from faces import FaceAnalyser, FaceBand, FaceComparison, FaceFinding, FaceInputError
from faces.runner import FaceRunner, FaceUnavailable, Unavailability
from tests.support.faces_scenes import captured_ktp, live_still


@pytest.fixture(scope="module")
def analyser() -> FaceAnalyser:
    return FaceAnalyser()


@pytest.fixture(scope="module")
def pictures() -> tuple[np.ndarray, np.ndarray]:
    return live_still("collins", seed=1), captured_ktp("collins", seed=0).image


async def wait_idle(runner: FaceRunner) -> None:
    for _ in range(500):
        if runner.pending == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{runner.pending} jobs still pending")


async def test_a_comparison_runs_while_the_event_loop_keeps_going(
    analyser: FaceAnalyser, pictures: tuple[np.ndarray, np.ndarray]
) -> None:
    runner = FaceRunner(analyser)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    try:
        result = await runner.compare(*pictures)
    finally:
        ticker.cancel()
        runner.close()
    assert isinstance(result, FaceComparison) and result.band is FaceBand.LIKELY_SAME
    assert ticks > 1  # the loop ran other work while both pictures were analysed


async def test_jobs_past_workers_plus_queue_are_refused_at_once(
    analyser: FaceAnalyser, pictures: tuple[np.ndarray, np.ndarray]
) -> None:
    runner = FaceRunner(analyser, workers=1, queue=1)
    try:
        results = await asyncio.gather(*(runner.compare(*pictures) for _ in range(4)))
    finally:
        runner.close()
    done = [r for r in results if isinstance(r, FaceComparison)]
    refused = [r for r in results if isinstance(r, FaceUnavailable)]
    assert len(done) == 2 and len(refused) == 2
    assert {r.reason for r in refused} == {Unavailability.BUSY}
    assert refused[0].message.startswith("Face comparison unavailable: 2 already running")
    assert runner.pending == 0


async def test_a_timeout_answers_the_caller_but_the_slot_is_held_until_the_job_ends(
    analyser: FaceAnalyser, pictures: tuple[np.ndarray, np.ndarray]
) -> None:
    runner = FaceRunner(analyser, workers=1, queue=0, timeout_s=0.02)
    try:
        first = await runner.compare(*pictures)
        assert isinstance(first, FaceUnavailable) and first.reason is Unavailability.TIMEOUT
        if runner.pending:  # the abandoned job still runs: the bound holds
            second = await runner.compare(*pictures)
            assert isinstance(second, FaceUnavailable)
            assert second.reason is Unavailability.BUSY
        await wait_idle(runner)
    finally:
        runner.close()
    patient = FaceRunner(analyser, timeout_s=30)
    try:
        assert isinstance(await patient.analyse(pictures[0]), FaceFinding)
    finally:
        patient.close()


async def test_bad_input_raises_to_the_caller_and_frees_its_slot(analyser: FaceAnalyser) -> None:
    runner = FaceRunner(analyser, workers=1, queue=0)
    try:
        with pytest.raises(FaceInputError):
            await runner.analyse(np.zeros((10, 10), np.uint8))
        assert runner.pending == 0
    finally:
        runner.close()


async def test_a_closed_runner_refuses(analyser: FaceAnalyser) -> None:
    runner = FaceRunner(analyser)
    runner.close()
    result = await runner.analyse(np.zeros((10, 10, 3), np.uint8))
    assert isinstance(result, FaceUnavailable) and result.reason is Unavailability.CLOSED


async def test_the_models_load_off_the_loop_on_warm_up() -> None:
    runner = FaceRunner()
    try:
        assert await runner.warm_up() is None
        assert isinstance(runner.analyser(), FaceAnalyser)
    finally:
        runner.close()


def test_limits_are_checked() -> None:
    for bad in ({"workers": 0}, {"queue": -1}, {"timeout_s": 0}):
        with pytest.raises(ValueError):
            FaceRunner(**bad)  # type: ignore[arg-type]
