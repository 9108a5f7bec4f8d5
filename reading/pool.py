"""Readings for an asyncio server, off its event loop: a bounded pool of worker processes.

    pool = ReadingPool(PoolConfig(workers=2, queue=4, timeout=15.0))
    await pool.start()                    # workers load the engine in the background
    result = await pool.read("ktp", jpeg)  # Reading, or Unavailable(reason) at once when full
    await pool.close()

The event loop never waits on OCR: each worker is its own process (the engine is
CPU-bound and holds the GIL), fed one picture at a time through a pipe the loop watches.
At most `workers` readings run and `queue` wait; one more is answered "busy" at once,
so a burst of captures makes "reading unavailable", not a slow console. A reading that
takes longer than `timeout` (waiting included) is answered "timeout", and if it was
running its worker is killed and replaced: one picture cannot hold a core for longer.
A worker that dies is replaced the same way. Pictures are checked (size, header) on the
loop before they are queued; a damaged one raises `ImageRejected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

from reading.document import ImageRejected, Reading, check_image
from reading.fields import KIND_FIELDS

Reason = Literal["busy", "timeout", "failed", "closed"]


@dataclass(frozen=True, slots=True)
class PoolConfig:
    workers: int = 1  # processes, each reading one picture at a time (~1 core each)
    queue: int = 4  # readings that may wait for a worker; one more is "busy"
    timeout: float = 20.0  # seconds from read() to its answer, waiting included
    threads: int = 1  # onnxruntime threads per worker: 1 gives the most readings per core
    nice: int = 10  # workers yield the CPU to the server's own process
    start_timeout: float = 120.0  # a worker that has not loaded the engine by then is replaced

    def __post_init__(self) -> None:
        if self.workers < 1 or self.queue < 0 or self.threads < 1:
            raise ValueError("workers and threads must be >= 1, queue >= 0")
        if self.timeout <= 0 or self.start_timeout <= 0:
            raise ValueError("timeouts must be > 0")


@dataclass(frozen=True, slots=True)
class Unavailable:
    """No reading: `busy` (the queue is full: try later or let the officer read it),
    `timeout`, `failed` (the worker died or the engine failed: logged in `detail`), or
    `closed` (the pool is shutting down)."""

    reason: Reason
    detail: str = ""


@dataclass(eq=False)
class _Job:
    kind: str
    data: bytes
    deadline: float
    answer: asyncio.Future[Reading | Unavailable] = field(repr=False)


def _serve(conn: Connection, threads: int, nice: int) -> None:
    """A worker process: load the engine once, then read pictures until told to stop."""
    with contextlib.suppress(OSError):
        os.nice(nice)
    from reading.document import read_bytes
    from reading.engine import OcrEngine

    try:
        engine = OcrEngine(threads)
    except Exception as exc:  # a missing or changed model: say so, then stop
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", engine.load_seconds))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        kind, data = message
        try:
            conn.send(("ok", read_bytes(kind, data, engine)))
        except ImageRejected as exc:
            conn.send(("rejected", str(exc)))
        except Exception as exc:
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, config: PoolConfig) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, config.threads, config.nice),
                                   daemon=True, name="loket-reading")  # fmt: skip
        self.process.start()
        child.close()

    async def receive(self, within: float) -> tuple[str, Any]:
        """The worker's next message; TimeoutError after `within` s, EOFError if it died."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self.conn.fileno()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await asyncio.wait_for(ready, within)
        finally:
            loop.remove_reader(fd)
        message: tuple[str, Any] = self.conn.recv()  # EOFError when the process died
        return message

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


class ReadingPool:
    def __init__(self, config: PoolConfig | None = None) -> None:
        self.config = config or PoolConfig()
        # Readings admitted and not yet answered: at most workers + queue. (Counted here,
        # not by the queue's size: a job sits in the queue until a worker task wakes.)
        self._admitted: set[_Job] = set()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: dict[int, _Worker] = {}
        self._closed = False
        self.restarts = 0  # workers replaced after a timeout or a crash
        self.ready = 0  # workers that have loaded the engine

    async def start(self) -> None:
        """Start the workers; returns at once (each loads its engine in the background,
        and readings wait in the queue meanwhile)."""
        if self._tasks:
            return
        self._tasks = [asyncio.create_task(self._run(i), name=f"reading-worker-{i}")
                       for i in range(self.config.workers)]  # fmt: skip

    async def read(self, kind: str, data: bytes) -> Reading | Unavailable:
        """Read a document picture (JPEG or PNG bytes). Raises ValueError for an unknown
        kind and ImageRejected for a picture this reader does not take; every other
        outcome is a Reading or an Unavailable, within `timeout` (plus a little)."""
        if kind not in KIND_FIELDS:
            raise ValueError(f"cannot read {kind!r}: one of {', '.join(KIND_FIELDS)}")
        check_image(data)
        if self._closed:
            return Unavailable("closed", "the reading pool is shut down")
        if not self._tasks:
            await self.start()
        loop = asyncio.get_running_loop()
        if len(self._admitted) >= self.config.workers + self.config.queue:
            busy = f"{self.config.workers} reading, {self.config.queue} waiting"
            return Unavailable("busy", busy)
        job = _Job(kind, data, loop.time() + self.config.timeout, loop.create_future())
        self._admitted.add(job)
        job.answer.add_done_callback(lambda _: self._admitted.discard(job))
        self._queue.put_nowait(job)
        try:
            # The worker task answers by the deadline; the grace covers a worker that
            # is being killed at that moment.
            return await asyncio.wait_for(asyncio.shield(job.answer), self.config.timeout + 5)
        except TimeoutError:
            return Unavailable("timeout", "no answer from the reading worker")
        finally:
            if not job.answer.done():
                job.answer.set_result(Unavailable("timeout"))

    async def _run(self, slot: int) -> None:
        """One worker slot: keep a worker alive and feed it jobs, one at a time."""
        loop = asyncio.get_running_loop()
        carried: _Job | None = None
        while not self._closed:
            worker = _Worker(self.config)
            self._workers[slot] = worker
            try:
                status, detail = await worker.receive(self.config.start_timeout)
            except (TimeoutError, EOFError, OSError):
                status, detail = "failed", "the worker did not start"
            if status != "ready":
                await loop.run_in_executor(None, worker.stop)
                self.restarts += 1
                await asyncio.sleep(1.0)  # a broken install fails every start: do not spin
                continue
            self.ready += 1
            try:
                while not self._closed:
                    job = carried or await self._queue.get()
                    carried = None
                    if job.answer.done():
                        continue  # its caller has already been answered
                    remaining = job.deadline - loop.time()
                    if remaining <= 0:
                        self._answer(job, Unavailable("timeout", "waited too long for a worker"))
                        continue
                    try:
                        worker.conn.send((job.kind, job.data))
                    except OSError:  # the worker died while idle: the next one reads it
                        carried = job
                        break
                    started = time.perf_counter()
                    try:
                        status, detail = await worker.receive(remaining)
                    except TimeoutError:
                        took = time.perf_counter() - started
                        self._answer(job, Unavailable("timeout", f"reading took over {took:.1f} s"))
                        break  # kill this worker: it is still busy with that picture
                    except (EOFError, OSError):
                        self._answer(job, Unavailable("failed", "the reading worker died"))
                        break
                    if status == "ok":
                        self._answer(job, detail)
                    elif status == "rejected":
                        if not job.answer.done():
                            job.answer.set_exception(ImageRejected(detail))
                    else:
                        self._answer(job, Unavailable("failed", detail))
            finally:
                self.ready -= 1
                await loop.run_in_executor(None, worker.stop)
            if not self._closed:
                self.restarts += 1

    @staticmethod
    def _answer(job: _Job, result: Reading | Unavailable) -> None:
        if not job.answer.done():
            job.answer.set_result(result)

    @property
    def admitted(self) -> int:
        """Readings running or waiting (at most workers + queue)."""
        return len(self._admitted)

    async def close(self) -> None:
        """Stop the workers; readings still running or waiting are answered "closed"."""
        self._closed = True
        for job in list(self._admitted):
            self._answer(job, Unavailable("closed", "the reading pool is shut down"))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for worker in self._workers.values():
            worker.stop()
        self._workers.clear()
        self._tasks = []
