"""Real aiortc booth kiosks (BoothClient) against a live test server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from booth_client.audio import MeasuringAudioSink
from booth_client.client import BoothClient
from booth_client.config import BoothConfig
from booth_client.cso_standin import CsoStandIn
from tests.support.accounts import PASSWORD, add_user, enrol_booth
from tests.support.live_server import LiveServer

if TYPE_CHECKING:
    from server.floor.core import BoothRecord

LOOPBACK = ["127.0.0.1"]


def drop_signaling(client: BoothClient | CsoStandIn) -> None:
    """Cut a kiosk's (or the stand-in console's) websocket as a network loss does: the TCP
    connection aborted, no close frame. It reconnects by itself and rebuilds from
    `welcome`; its peer connections are left alone."""
    ws = client._ws
    assert ws is not None, "no socket to drop"
    ws.transport.abort()


@contextlib.asynccontextmanager
async def running_booths(
    server: LiveServer, count: int, **config: object
) -> AsyncIterator[list[BoothClient]]:
    """`count` kiosks with synthetic media, each running until the block ends."""
    clients = []
    for index in range(count):
        _, credential = await enrol_booth(server, f"booth-{index + 1}")
        settings = BoothConfig(
            server_url=server.base_url,
            credential=credential,  # type: ignore[arg-type]
            ice_host_addresses=LOOPBACK,
            width=320,
            height=240,
            **config,  # type: ignore[arg-type]
        )
        clients.append(BoothClient(settings, label=f"booth-{index + 1}"))
    tasks = [asyncio.create_task(c.run()) for c in clients]
    try:
        yield clients
    finally:
        for client in clients:
            await client.stop()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def running_cso(
    server: LiveServer, username: str, capacity: int
) -> AsyncIterator[CsoStandIn]:
    """A CSO account and an aiortc stand-in console logged in as it, accepting booths."""
    await add_user(server, username, capacity=capacity)
    cso = CsoStandIn(server.base_url, username, PASSWORD)
    task = asyncio.create_task(cso.run())
    try:
        await cso.wait_ready(within=10)
        yield cso
    finally:
        await cso.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


# --- booth kiosks as real `loket booth` processes ------------------------------------------


@dataclass
class BoothProcess:
    """One `loket booth --source synthetic` child process and where its levels go."""

    label: str
    credential: str
    argv: list[str]
    env: dict[str, str]
    audio_log: Path
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=out, stderr=asyncio.subprocess.STDOUT
            )

    async def kill(self) -> None:
        """As a power cut does: SIGKILL, no goodbye to the server."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def stop(self, grace: float = 5.0) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            await self.kill()

    def levels(self, since: float = 0.0) -> list[tuple[float, float]]:
        """(monotonic time, RMS) of every frame of the officer's audio heard since `since`."""
        if not self.audio_log.exists():
            return []
        out = []
        for line in self.audio_log.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, KeyError):
                row = json.loads(line)
                if row["t"] >= since:
                    out.append((float(row["t"]), float(row["rms"])))
        return out

    def heard(self, since: float, threshold: float = 0.01) -> float | None:
        """When this booth first heard the officer (a frame above `threshold`) after `since`."""
        for at, rms in self.levels(since):
            if rms > threshold:
                return at
        return None

    def energy(self, since: float, until: float = float("inf")) -> float:
        """Sum of the RMS of the frames heard in [since, until): 0.0 when nothing came."""
        return sum(rms for at, rms in self.levels(since) if at < until)


@contextlib.asynccontextmanager
async def booth_processes(
    server: LiveServer,
    count: int,
    workdir: Path,
    *,
    speak: dict[int, str] | None = None,
    env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> AsyncIterator[list[BoothProcess]]:
    """`count` real kiosk processes (`loket booth --source synthetic`), labelled booth-1..N,
    each with a measuring audio sink whose levels the test reads (BoothProcess.levels).
    `speak`: booth number (1-based) -> speak pattern; the others are silent."""
    booths = []
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    for number in range(1, count + 1):
        label = f"booth-{number}"
        _, credential = await enrol_booth(server, label)
        audio_log = workdir / f"{label}.audio.jsonl"
        child_env = dict(os.environ)
        child_env.update(
            LOKET_BOOTH_CREDENTIAL=credential,
            LOKET_LOG_LEVEL="INFO",
            LOKET_BOOTH_WIDTH="320",
            LOKET_BOOTH_HEIGHT="240",
            LOKET_BOOTH_OUTBOX_DIR=str(workdir / label / "outbox"),
        )
        child_env.update(env or {})
        argv = [
            sys.executable, "-m", "server.cli", "booth", "--server", server.base_url,
            "--source", "synthetic", "--ice-address", LOOPBACK[0], "--label", label,
            "--speak-pattern", (speak or {}).get(number, "silent"),
            "--audio-sink", "measure", "--audio-log", str(audio_log), *extra_args,
        ]  # fmt: skip
        booths.append(
            BoothProcess(label, credential, argv, child_env, audio_log, workdir / f"{label}.log")
        )
    try:
        for booth in booths:
            await booth.start()
        yield booths
    finally:
        await asyncio.gather(*(b.stop() for b in booths), return_exceptions=True)


# --- what the floor and a booth process's own records say about it ---------------------------

IN_CALL = frozenset({"on_hold", "focused"})  # the booth's media is up (it said `connected`)


def floor_booth(server: LiveServer, booth: BoothProcess) -> BoothRecord | None:
    """The floor core's record of a booth process (found by its label), None until it has
    checked in. `.state`, `.session_id` and `.connected` are what the server holds."""
    core = server.app.state.floor.core
    for record in core.booths.values():
        if record.principal.display_name == booth.label:
            return record
    return None


def session_of(server: LiveServer, booth: BoothProcess) -> str | None:
    """The booth's session once its media is up (on hold or focused), else None."""
    record = floor_booth(server, booth)
    if record is None or str(record.state) not in IN_CALL:
        return None
    return record.session_id


def log_events(booth: BoothProcess, event: str | None = None) -> list[dict[str, object]]:
    """The kiosk process's JSON log lines (all, or those of one `event`), oldest first."""
    if not booth.log_path.exists():
        return []
    found = []
    for line in booth.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            row = json.loads(line)
            if isinstance(row, dict) and (event is None or row.get("event") == event):
                found.append(row)
    return found


def mean_level(booth: BoothProcess, since: float, until: float = float("inf")) -> float:
    """Mean RMS of the officer's audio frames the booth heard in [since, until), 0.0 when
    none came: the measure of an in-process MeasuringAudioSink.energy."""
    picked = [rms for at, rms in booth.levels(since) if at < until]
    return sum(picked) / len(picked) if picked else 0.0


def conversation_levels(
    heard_by_cso: MeasuringAudioSink, booth: BoothProcess, since: float, window: float
) -> tuple[float, float]:
    """Mean levels in [since, since + window): the officer hears the booth (its measuring
    sink), the booth (its process's audio log) hears the officer."""
    until = since + window
    return heard_by_cso.energy(since, until), mean_level(booth, since, until)


def describe(server: LiveServer, booths: list[BoothProcess], tail: int = 3) -> str:
    """For a failure message: each booth's state on the floor, its process, its last logs."""
    lines = []
    for booth in booths:
        record = floor_booth(server, booth)
        state = "absent" if record is None else f"{record.state} connected={record.connected}"
        code = None if booth.process is None else booth.process.returncode
        last = [str(e.get("event")) for e in log_events(booth)[-tail:]]
        lines.append(f"{booth.label}: {state}; exit code {code}; last logs {last}")
    return "\n".join(lines)


async def wait_for_booths(
    server: LiveServer,
    booths: list[BoothProcess],
    ready: Callable[[BoothRecord], bool] = lambda record: record.connected,
    within: float = 90.0,
) -> list[BoothRecord]:
    """Wait until the floor holds every booth process and `ready(record)` is true for each
    (default: its socket is up); their records. Fails with where each one got to."""
    deadline = time.monotonic() + within
    while True:
        records = [floor_booth(server, booth) for booth in booths]
        if all(r is not None and ready(r) for r in records):
            return [r for r in records if r is not None]
        exited = [b for b in booths if b.process is not None and b.process.returncode is not None]
        if exited or time.monotonic() > deadline:
            raise AssertionError(f"booth processes not ready:\n{describe(server, booths)}")
        await asyncio.sleep(0.2)
