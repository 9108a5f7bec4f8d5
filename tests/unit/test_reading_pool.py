"""The reading pool with real worker processes: the event loop keeps running while a
worker reads, a full queue answers "busy" at once, a reading past its timeout is answered
"timeout" and its worker replaced, a worker that dies is replaced, bad input is refused
on the loop, a closed pool says so."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import cv2
import numpy as np
import pytest

from reading.document import ImageRejected, Reading
from reading.pool import PoolConfig, ReadingPool, Unavailable
from tests.support.id_documents import CardStyle, person, render_ktp

PERSON = person(61)


def _jpeg() -> bytes:
    """A whole KTP: ~1-2 s of reading."""
    ok, data = cv2.imencode(".jpg", render_ktp(PERSON, CardStyle(), 61))
    assert ok
    return data.tobytes()


def _nik_only() -> bytes:
    """Only the KTP's NIK row, on a small square: a fraction of a second of reading, for
    the tests of the pool's mechanics."""
    card = render_ktp(PERSON, CardStyle(), 61)
    square = np.full((400, 400, 3), 230, np.uint8)
    row = cv2.resize(card[150:230, 30:1000], (390, 32), interpolation=cv2.INTER_AREA)
    square[180:212, 5:395] = row
    ok, data = cv2.imencode(".jpg", square)
    assert ok
    return data.tobytes()


async def _until(condition, within: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_readings_run_off_the_loop_and_a_full_pool_says_busy_at_once() -> None:
    pool = ReadingPool(PoolConfig(workers=1, queue=1, timeout=120.0))
    await pool.start()
    jpeg = _nik_only()
    try:
        await _until(lambda: pool.ready == 1)
        # The loop keeps its pace while the worker reads.
        gaps: list[float] = []
        stop = asyncio.Event()

        async def tick() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        result = await pool.read("ktp", jpeg)
        stop.set()
        await ticker
        assert isinstance(result, Reading), result
        assert result.values()["nik"] == PERSON.nik
        assert max(gaps) < result.ms / 1000 / 4, (max(gaps), result.ms)

        # One reading, one waiting: a third is answered "busy" before either is done.
        tasks = [asyncio.create_task(pool.read("ktp", jpeg)) for _ in range(3)]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        assert [t.result() for t in done] == [Unavailable("busy", "1 reading, 1 waiting")]
        assert tasks[2] in done
        results = await asyncio.gather(*tasks[:2])
        assert all(isinstance(r, Reading) and r.values()["nik"] == PERSON.nik for r in results)

        # Bad input is refused on the loop, before it is queued.
        with pytest.raises(ImageRejected, match="not a picture"):
            await pool.read("ktp", b"\xff\xd8 not really a jpeg")
        with pytest.raises(ValueError, match="cannot read 'kk'"):
            await pool.read("kk", jpeg)

        # A worker killed while idle is replaced; the next reading is still answered.
        os.kill(pool._workers[0].process.pid, signal.SIGKILL)
        again = await pool.read("ktp", jpeg)
        assert isinstance(again, Reading) or again.reason == "failed", again
        assert isinstance(await pool.read("ktp", jpeg), Reading)
        assert pool.restarts >= 1

        # Closing answers the readings in flight at once.
        pending = [asyncio.create_task(pool.read("ktp", _jpeg())) for _ in range(2)]
        await asyncio.sleep(0.2)
        assert pool.admitted == 2
        await pool.close()
        closed = Unavailable("closed", "the reading pool is shut down")
        assert await asyncio.gather(*pending) == [closed, closed]
        assert await pool.read("ktp", jpeg) == closed
    finally:
        await pool.close()


async def test_a_reading_past_its_timeout_is_answered_and_its_worker_replaced() -> None:
    # A timeout shorter than any reading of a full card: the worker is killed mid-read.
    pool = ReadingPool(PoolConfig(workers=1, queue=0, timeout=0.3, start_timeout=120.0))
    await pool.start()
    try:
        await _until(lambda: pool.ready == 1)
        first = pool._workers[0].process
        result = await pool.read("ktp", _jpeg())
        assert isinstance(result, Unavailable) and result.reason == "timeout", result
        await _until(lambda: not first.is_alive())
        await _until(lambda: pool.ready == 1 and pool._workers[0].process is not first)
        assert pool.restarts == 1
    finally:
        await pool.close()
    assert not any(w.process.is_alive() for w in pool._workers.values())
