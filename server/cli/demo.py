"""`loket demo`: the whole system on one machine, on embedded defaults.

One process tree: this process creates the demo accounts, starts `loket serve` and six
synthetic booth kiosks (`loket booth`) as child processes, and prints where to look.
With `--headless` it also runs an aiortc CSO stand-in in this process that accepts every
booth, receives their media for `--duration` seconds and prints one JSON line last.

The children end with the demo. SIGTERM, SIGINT or SIGHUP stops it: every child gets
SIGTERM, and SIGKILL if it is still running `STOP_GRACE` seconds later (a second signal
kills them at once). On Linux each child also asks the kernel for SIGTERM when the demo
dies, so not even a SIGKILL of the demo leaves orphans.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
import typer

from server.cli.common import DATA_DIR_OPTION, load_settings
from server.logging import configure_logging
from server.settings import Settings

LOOPBACK = "127.0.0.1"
STOP_GRACE = 5.0  # seconds a child has to end after SIGTERM before it is killed
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process


def _loket_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "server.cli", *args]


def _child_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["LOKET_DATA_DIR"] = str(settings.data_dir.resolve())
    env.update(extra)
    return env


def _open_log(log_dir: Path, name: str) -> BinaryIO:
    log_dir.mkdir(parents=True, exist_ok=True)
    return (log_dir / f"{name}.log").open("ab")


def _die_with_parent() -> Callable[[], None] | None:
    """Linux: a `preexec_fn` after which the kernel sends the child SIGTERM when this
    process dies, however it dies. None elsewhere (the signal handlers still apply)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Looked up here: the forked child only makes the call.
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the demo died before the call: nobody would tell us
            os._exit(1)

    return preexec


async def _start(name: str, argv: list[str], env: dict[str, str], log_dir: Path | None) -> Child:
    """Start a child; with `log_dir`, its output goes to `<log_dir>/<name>.log`."""
    preexec = _die_with_parent()
    if log_dir is None:
        process = await asyncio.create_subprocess_exec(*argv, env=env, preexec_fn=preexec)
        return Child(name, process)
    with _open_log(log_dir, name) as out:
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT, preexec_fn=preexec
        )
    return Child(name, process)


def _kill_all(children: list[Child]) -> None:
    for child in children:
        if child.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()


async def _stop_all(children: list[Child], grace: float = STOP_GRACE) -> None:
    """SIGTERM to every child at once; SIGKILL to those still running after `grace`."""
    running = [c for c in children if c.process.returncode is None]
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            child.process.terminate()
    if not running:
        return
    waits = {asyncio.ensure_future(c.process.wait()): c for c in running}
    _, late = await asyncio.wait(waits, timeout=grace)
    if late:
        names = ", ".join(sorted(waits[w].name for w in late))
        typer.echo(f"{names}: still running {grace:.0f} s after SIGTERM; killed", err=True)
        _kill_all([waits[w] for w in late])
        await asyncio.wait(late)


class _StopOnSignal:
    """SIGTERM, SIGINT or SIGHUP cancels the demo's task, whose `finally` ends the
    children. A signal once they are being ended (a second one, or the first after the
    demo finished by itself) kills them at once instead: it never interrupts the ending."""

    def __init__(self, task: asyncio.Task[int], children: list[Child]) -> None:
        self.received: signal.Signals | None = None
        self.ending = False  # the children are being ended
        self._task = task
        self._children = children
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.received is None and not self.ending:
            self.received = sig
            typer.echo(f"{sig.name}: stopping the demo and its processes", err=True)
            self._task.cancel()
        else:
            _kill_all(self._children)

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def _wait_ready(base_url: str, server: Child, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if server.process.returncode is not None:
                raise RuntimeError(
                    f"the server exited with code {server.process.returncode}; "
                    "is the port already in use? Try --port 8001."
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{base_url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the server did not become ready within {within:.0f} s")


def _say(text: str, *, headless: bool) -> None:
    # In headless mode stdout carries only the final JSON line, so scripts can parse it.
    typer.echo(text, err=headless)


async def _run_demo(settings: Settings, booths: int, headless: bool, duration: float) -> int:
    children: list[Child] = []
    task = asyncio.current_task()
    assert task is not None
    stop = _StopOnSignal(task, children)
    try:
        return await _demo(settings, booths, headless, duration, children)
    except asyncio.CancelledError:
        if stop.received is None:
            raise
        task.uncancel()
        return 0  # stopped as asked
    finally:
        stop.ending = True
        await _stop_all(children)
        stop.remove()


async def _demo(
    settings: Settings, booths: int, headless: bool, duration: float, children: list[Child]
) -> int:
    from server.auth.demo import ensure_demo_accounts

    accounts = await ensure_demo_accounts(settings, booths=booths)
    base_url = f"http://{settings.host}:{settings.port}"
    # Headless: stdout is for the JSON report only, so children log to files.
    log_dir = settings.data_dir / "logs" if headless else None
    standin = None
    standin_task: asyncio.Task[None] | None = None
    try:
        server = await _start(
            "server",
            _loket_command("serve", "--host", settings.host, "--port", str(settings.port)),
            _child_env(settings, **({} if headless else {"LOKET_LOBBY_CALL_TIMEOUT": "20"})),
            log_dir,
        )
        children.append(server)
        await _wait_ready(base_url, server)
        cso, supervisor = accounts.cso, accounts.supervisor
        front = None if headless else await _front_of_house(settings)
        _say(
            "\nLoket demo is running.\n"
            f"  CSO console:  {base_url}/console/\n"
            f"  CSO login:    {cso.username} / {cso.password}\n"
            f"  Supervisor:   {supervisor.username} / {supervisor.password}\n"
            f"  Metrics:      {base_url}/metrics\n"
            f"  Starting {booths} synthetic booths; they queue until a CSO takes them.\n"
            "  Once a call is up, each booth sends pictures of its participant's documents:\n"
            "  open a tile's Claim panel to check them and record the decision.\n",
            headless=headless,
        )
        if front is not None:
            _say(_front_text(base_url, *front), headless=False)
        if headless:
            from booth_client.cso_standin import CsoStandIn
            from booth_client.ice import use_host_addresses

            use_host_addresses([LOOPBACK])
            standin = CsoStandIn(base_url, cso.username, cso.password)
            standin_task = asyncio.create_task(standin.run())
            await standin.wait_ready(within=30)
        started = time.monotonic()
        for index, booth in enumerate(accounts.booths, start=1):
            env = _child_env(
                settings,
                LOKET_BOOTH_CREDENTIAL=booth.credential,
                LOKET_LOG_LEVEL="WARNING",
                # Each kiosk's capture outbox, inside the demo's data directory.
                LOKET_BOOTH_OUTBOX_DIR=str(
                    settings.data_dir.resolve() / "booths" / f"booth-{index}"
                ),
                **({} if headless else TICKET_BOOTHS),  # called by ticket (front of house)
                LOKET_BOOTH_RECORDING__ENABLED="true",  # sessions recorded as evidence
            )
            argv = _loket_command(
                "booth", "--server", base_url, "--source", "synthetic",
                "--ice-address", LOOPBACK, "--show-documents",
                # Participants speak now and then, at different moments, so the
                # console's "wants to talk" flag means something in the demo.
                "--speak-pattern", f"2/12@{index * 2}",
            )  # fmt: skip
            children.append(await _start(f"booth-{index}", argv, env, log_dir))
        if not headless:
            _say("Press Ctrl-C to stop.", headless=False)
            from server.cli.demo_front import demo_desk, ensure_demo_desk

            desk = await ensure_demo_desk(settings)
            await demo_desk(base_url, desk.username, desk.password, DESK_EVERY)
            await asyncio.Event().wait()  # until a signal cancels us (_StopOnSignal)
            return 0
        assert standin is not None
        with contextlib.suppress(TimeoutError):
            await standin.wait_connected(booths, within=duration)
        await asyncio.sleep(max(0.0, duration - (time.monotonic() - started)))
        report = standin.report()
        report["booths"] = booths
        typer.echo(json.dumps(report))
        return 0 if report["connected"] == booths else 1
    finally:
        if standin is not None:
            await standin.stop()
        if standin_task is not None:
            standin_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await standin_task


DESK_EVERY = 25.0  # seconds between the demo desk's tickets


def _ticket_booths() -> dict[str, str]:
    from server.cli.demo_front import ABSENT

    return {
        "LOKET_BOOTH_TICKET_PARTICIPANT": "true",
        "LOKET_BOOTH_TICKET_ABSENT": ",".join(ABSENT),
        "LOKET_BOOTH_TICKET_CONFIRM_AFTER_S": "4",
    }


TICKET_BOOTHS = _ticket_booths()


async def _front_of_house(settings: Settings) -> tuple[str, str]:
    """Yesterday's day of tickets for the reports, and a key for the waiting room's
    display: (key, yesterday)."""
    from server.adapters.sql.engine import make_engine
    from server.adapters.sql.front import Displays, FrontStore
    from server.api.front import report_config
    from server.auth.demo import DEMO_BRANCH
    from server.cli.demo_front import seed_demo_members, seed_yesterday

    engine = make_engine(settings)
    store, displays = FrontStore(engine, report_config(settings)), Displays(engine)
    try:
        yesterday = await seed_yesterday(store, DEMO_BRANCH)
        await seed_demo_members(settings)
        key = await displays.enrol(DEMO_BRANCH, "Demo waiting room", "demo-display")
    finally:
        await store.close()
        await displays.close()
        await engine.dispose()
    return key, yesterday


def _front_text(base_url: str, key: str, yesterday: str) -> str:
    return (
        "  Front of house (the booths are called by ticket; the desk below issues one\n"
        f"  every {DESK_EVERY:.0f} s, and every fifth holder never comes):\n"
        f"  Waiting room: {base_url}/display/#key={key}\n"
        f"  Desk:         {base_url}/desk/ (supervisor login)\n"
        f"  Reports:      {base_url}/reports/ (supervisor login; yesterday, {yesterday}, is a\n"
        "                synthetic day of tickets)\n"
    )


def demo(
    headless: bool = typer.Option(
        False,
        "--headless",
        help="No browser: an aiortc CSO stand-in accepts every booth, receives media for "
        "--duration seconds, then prints one JSON line and exits (non-zero unless every "
        "booth delivered frames).",
    ),
    duration: float = typer.Option(
        20.0, min=3.0, help="With --headless: seconds from booth start to the report."
    ),
    booths: int = typer.Option(6, min=1, max=6, help="How many synthetic booths to start."),
    host: str = typer.Option(LOOPBACK, help="Address for the server."),
    port: int = typer.Option(8000, help="Port for the server."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    """Run server, demo accounts and six synthetic booths on this machine."""
    settings = load_settings(data_dir, host=host, port=port)
    # Our own logs go to stderr, so stdout stays the single JSON line in headless mode.
    configure_logging("WARNING" if headless else "INFO", json=False)
    try:
        code = asyncio.run(_run_demo(settings, booths, headless, duration))
    except KeyboardInterrupt:
        code = 0
    except RuntimeError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        code = 1
    raise typer.Exit(code)
