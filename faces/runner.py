"""Face work off the event loop: a bounded thread pool, refused at once when full.

    runner = FaceRunner(workers=1, queue=4, timeout_s=10)
    result = await runner.compare(live_bgr, ktp_bgr)    # FaceComparison or FaceUnavailable
    ...
    runner.close()

Threads suffice: onnxruntime, OpenCV and numpy release the GIL in the heavy parts. At most
`workers + queue` jobs are admitted (running or waiting); one more gets FaceUnavailable
"busy" at once rather than a slow console. A caller waits at most `timeout_s`
("timeout"); the job itself cannot be interrupted mid-run, so it keeps its slot until it
ends and the bound holds (a comparison is five 640x640 detector runs, the document in
four orientations, and two embeddings: ~140 ms of CPU whatever the pictures). The models
load in a worker on first use, or at `warm_up()`. A bad picture raises FaceInputError to
the caller, as `analyse` does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import numpy as np

from faces.analysis import BANDS, FaceAnalyser, FaceBands, FaceComparison, FaceFinding, compare

T = TypeVar("T")


class Unavailability(StrEnum):
    BUSY = "busy"
    TIMEOUT = "timeout"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class FaceUnavailable:
    reason: Unavailability
    message: str


class FaceRunner:
    def __init__(
        self,
        analyser: FaceAnalyser | None = None,
        *,
        workers: int = 1,
        queue: int = 4,
        timeout_s: float = 10.0,
    ) -> None:
        """`workers` 1 on a 2-core box: a comparison then takes one core, the event loop
        and everything else the other."""
        if workers < 1 or queue < 0 or timeout_s <= 0:
            raise ValueError("workers >= 1, queue >= 0, timeout_s > 0")
        self.workers, self.queue, self.timeout_s = workers, queue, timeout_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="faces")
        self._analyser = analyser
        self._analyser_lock = threading.Lock()
        self._admitted = 0
        self._admitted_lock = threading.Lock()  # released from worker threads
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs admitted and not yet finished (running or waiting)."""
        with self._admitted_lock:
            return self._admitted

    def analyser(self) -> FaceAnalyser:
        """The analyser, created on first call (in a worker: loading takes ~1 s)."""
        with self._analyser_lock:
            if self._analyser is None:
                self._analyser = FaceAnalyser(threads=1)
            return self._analyser

    async def warm_up(self) -> FaceUnavailable | None:
        """Load the models now, off the loop (a FaceModelError is raised here, early)."""
        result = await self._submit(self.analyser)
        return result if isinstance(result, FaceUnavailable) else None

    async def analyse(
        self, image: np.ndarray, *, any_orientation: bool = False
    ) -> FaceFinding | FaceUnavailable:
        return await self._submit(
            lambda: self.analyser().analyse(image, any_orientation=any_orientation)
        )

    async def compare(
        self, live: np.ndarray, document: np.ndarray, bands: FaceBands = BANDS
    ) -> FaceComparison | FaceUnavailable:
        """Both pictures analysed (the document in any orientation) and compared in one
        job (one slot)."""

        def job() -> FaceComparison:
            analyser = self.analyser()
            return compare(analyser.analyse(live), analyser.analyse_document(document), bands)

        return await self._submit(job)

    def close(self) -> None:
        """Refuse new jobs; running ones finish in their threads."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _submit(self, job: Callable[[], T]) -> T | FaceUnavailable:
        if self._closed:
            return FaceUnavailable(Unavailability.CLOSED, "Face comparison is shut down.")
        with self._admitted_lock:
            if self._admitted >= self.workers + self.queue:
                return FaceUnavailable(
                    Unavailability.BUSY,
                    f"Face comparison unavailable: {self._admitted} already running or "
                    "waiting. Try again shortly.",
                )
            self._admitted += 1
        try:
            future: Future[T] = self._pool.submit(job)
        except RuntimeError:  # closed meanwhile
            self._release(None)
            return FaceUnavailable(Unavailability.CLOSED, "Face comparison is shut down.")
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except TimeoutError:
            return FaceUnavailable(
                Unavailability.TIMEOUT,
                f"Face comparison took longer than {self.timeout_s:g} s and was abandoned.",
            )

    def _release(self, _: object) -> None:
        with self._admitted_lock:
            self._admitted -= 1
