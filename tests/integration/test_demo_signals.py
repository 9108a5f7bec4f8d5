"""`loket demo` ends its server and kiosk processes with it, however it is stopped: SIGTERM
(kill, systemd, container runtimes), SIGHUP (the terminal went away), and even SIGKILL
(on Linux the children ask the kernel for SIGTERM when their parent dies).

Real processes: the demo, its `loket serve` and two `loket booth` kiosks. No CSO takes the
booths, so no media flows; the kiosks still warm up their media stack, hence `media`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.cli.demo import _start, _stop_all
from tests.support.live_server import free_port

pytestmark = pytest.mark.media

BOOTHS = 2


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a live process; None once it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    state, ppid = fields[0], int(fields[1])
    return None if state in ("Z", "X") else (ppid, state)


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(int(entry))) is not None:
            parents[int(entry)] = info[0]
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def _wait_for(predicate, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name
)
def test_the_demo_takes_its_children_with_it(tmp_path: Path, sig: signal.Signals) -> None:
    out = (tmp_path / "demo.out").open("w+b")
    demo = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "demo", "--booths", str(BOOTHS),
         "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    children: set[int] = set()
    try:

        def up() -> bool:
            nonlocal children
            children = _descendants(demo.pid)
            assert demo.poll() is None, (tmp_path / "demo.out").read_text()
            printed = b"Press Ctrl-C to stop." in (tmp_path / "demo.out").read_bytes()
            return printed and len(children) >= BOOTHS + 1

        _wait_for(up, 90, "the demo's server and kiosks did not start")
        time.sleep(1.0)  # the kiosks are past start-up, serving
        children = _descendants(demo.pid)
        assert len(children) >= BOOTHS + 1
        demo.send_signal(sig)
        demo.wait(15)
        _wait_for(
            lambda: not {pid for pid in children if _stat(pid) is not None},
            10,
            f"still running after {sig.name}: "
            f"{sorted(pid for pid in children if _stat(pid) is not None)}",
        )
        if sig is not signal.SIGKILL:
            assert demo.returncode == 0, (tmp_path / "demo.out").read_text()[-2000:]
    finally:
        for pid in children | {demo.pid}:
            if _stat(pid) is not None:
                os.kill(pid, signal.SIGKILL)
        demo.wait(5)
        out.close()


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    child = await _start("stubborn", [sys.executable, "-c", stubborn], dict(os.environ), tmp_path)
    async with asyncio.timeout(30):
        while b"ready" not in (tmp_path / "stubborn.log").read_bytes():
            await asyncio.sleep(0.05)
    started = time.monotonic()
    await _stop_all([child], grace=0.5)
    assert child.process.returncode == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 5
