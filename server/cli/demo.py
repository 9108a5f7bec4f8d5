"""`loket demo`: the whole system on one machine, on embedded defaults.

One process tree: this process creates the demo accounts, starts `loket serve` and six
synthetic booth kiosks (`loket booth`) as child processes, and prints where to look.
With `--headless` it also runs an aiortc CSO stand-in in this process that accepts every
booth, receives their media for `--duration` seconds and prints one JSON line last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
import typer

from server.cli.common import DATA_DIR_OPTION, load_settings
from server.logging import configure_logging
from server.settings import Settings

LOOPBACK = "127.0.0.1"


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


async def _start(name: str, argv: list[str], env: dict[str, str], log_dir: Path | None) -> Child:
    """Start a child; with `log_dir`, its output goes to `<log_dir>/<name>.log`."""
    if log_dir is None:
        process = await asyncio.create_subprocess_exec(*argv, env=env)
        return Child(name, process)
    with _open_log(log_dir, name) as out:
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    return Child(name, process)


async def _stop_all(children: list[Child], grace: float = 5.0) -> None:
    for child in children:
        if child.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGINT)
    for child in children:
        try:
            await asyncio.wait_for(child.process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
            await child.process.wait()


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
    from server.auth.demo import ensure_demo_accounts

    accounts = await ensure_demo_accounts(settings, booths=booths)
    base_url = f"http://{settings.host}:{settings.port}"
    children: list[Child] = []
    # Headless: stdout is for the JSON report only, so children log to files.
    log_dir = settings.data_dir / "logs" if headless else None
    standin = None
    standin_task: asyncio.Task[None] | None = None
    try:
        server = await _start(
            "server",
            _loket_command("serve", "--host", settings.host, "--port", str(settings.port)),
            _child_env(settings),
            log_dir,
        )
        children.append(server)
        await _wait_ready(base_url, server)
        cso, supervisor = accounts.cso, accounts.supervisor
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
            await asyncio.Event().wait()  # until Ctrl-C cancels us
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
        await _stop_all(children)


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
