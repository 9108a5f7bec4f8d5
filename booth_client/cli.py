"""`loket booth`: run a booth kiosk as a service.

    loket booth --config /etc/loket/booth.toml --health 127.0.0.1:9110

Settings come from the TOML file, then `LOKET_BOOTH_*` variables, then flags
(booth_client.config). SIGTERM or SIGINT stops it cleanly within a few seconds: it leaves
the queue (or the call), tries the outbox once, closes the peer and the devices, and exits
0. Exit codes: 1 the server refused the credential, 2 the configuration is unusable,
3 a camera, microphone or file could not be opened. Logs are JSON lines on stderr.

This module (and all of booth_client) imports nothing from `server/`: a kiosk installs
`booth_client` and `signaling` only. `loket booth` in the server's CLI delegates here and
adds the operators' `enrol`, `list`, `revoke`; `python -m booth_client` runs the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import structlog
import typer

from booth_client.config import BoothConfig, ConfigError, health_address, load_config
from booth_client.logging import configure_logging, last_problem
from signaling.messages import Language

log = structlog.get_logger("loket.booth.cli")

EXIT_REFUSED, EXIT_CONFIG, EXIT_DEVICE = 1, 2, 3
STOP_WITHIN_S = 4.0

HELP = (
    "Run a booth kiosk: --config FILE (TOML), LOKET_BOOTH_* variables or flags; "
    "`--health 127.0.0.1:9110` serves GET /healthz."
)


def health_snapshot(client: Any) -> dict[str, Any]:
    """What GET /healthz answers (booth_client.health): 200 iff `connected`."""
    problem = last_problem()
    outbox = client.capture_agent.outbox
    return {
        "connected": client.online,
        "state": str(client.state),
        "session": client.session_id,
        "ticket": client.called_ticket.number if client.called_ticket else None,
        "peer": client.peer_state,
        "media_up": client.media.up,
        "source": client.media.source,
        "video_level": client.video_level,
        "document_fps": client.media.document_rate.current(),
        "outbox_depth": len(outbox.pending()),
        "outbox_retry_in_s": client.capture_agent.delivery.retry_in,
        # Captures given up on (reported to the server), the last few: see the log.
        "outbox_undeliverable": len(outbox.tombstones()),
        "last_error": None
        if problem is None
        else {"event": problem.event, "detail": problem.detail, "at": problem.at},
        "connections": client.connections,
    }


async def serve(
    config: BoothConfig, label: str | None, screen_flags: dict[str, Any] | None = None
) -> int:
    """Run the kiosk (its screen, its health endpoint) until SIGTERM/SIGINT; the exit code.
    `screen_flags` override the LOKET_KIOSK_* screen settings (booth_client.screen)."""
    from booth_client.client import BoothAuthError, BoothClient
    from booth_client.health import HealthServer
    from booth_client.sources.media import MediaSourceError

    try:
        client = BoothClient(config, label=label)
    except MediaSourceError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        log.error("media_unavailable", error=str(exc))
        return EXIT_DEVICE
    health: HealthServer | None = None
    if config.health:
        host, port = health_address(config.health)
        health = HealthServer(host, port, lambda: health_snapshot(client))
        try:
            await health.start()
        except OSError as exc:
            typer.secho(
                f"error: health endpoint {config.health}: {exc}; pick a free port "
                "(health = in the config file, or --health)",
                fg="red",
                err=True,
            )
            return EXIT_CONFIG
    try:
        screen = _open_screen(client, screen_flags or {})
    except ValueError as exc:  # bad screen settings, or no display for a window
        typer.secho(f"error: kiosk screen: {exc}", fg="red", err=True)
        log.error("screen_unavailable", error=str(exc))
        if health is not None:
            await health.close()
        return EXIT_DEVICE
    loop = asyncio.get_running_loop()
    runner = loop.create_task(client.run(), name="kiosk")
    stopping: list[asyncio.Task[int]] = []

    def on_signal(signum: int) -> None:
        if stopping:
            return  # a second signal: the first stop is under way
        log.info("booth_signal", signal=signal.Signals(signum).name)
        stopping.append(loop.create_task(client.shutdown(STOP_WITHIN_S)))

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig)
    code = 0
    try:
        await runner
    except BoothAuthError as exc:
        typer.secho(
            f"error: the server refused this booth: {exc}\n"
            "Ask an operator for a new credential (`loket booth enrol`).",
            fg="red",
            err=True,
        )
        code = EXIT_REFUSED
    finally:
        began = time.monotonic()
        for task in stopping:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, STOP_WITHIN_S)
        if health is not None:
            await health.close()
        if screen is not None:
            await screen.close()
        log.info("booth_stopped", code=code, stop_s=round(time.monotonic() - began, 2))
    return code


def _open_screen(client: Any, flags: dict[str, Any]) -> Any:
    """The participant's screen, if one is asked for (pygame is imported only then)."""
    from pydantic import ValidationError

    from booth_client.screen.settings import ScreenSettings

    try:
        options = ScreenSettings(**flags)
    except ValidationError as exc:
        raise ValueError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    if options.mode == "none" and options.participant != "screen":
        return None
    from booth_client.screen import ScreenUnavailable, add_screen

    try:
        return add_screen(client, options)
    except ScreenUnavailable as exc:
        raise ValueError(f"{exc} (use --screen headless on a kiosk without a display)") from exc


def kiosk(
    ctx: typer.Context,
    config: Path = typer.Option(
        None,
        "--config",
        envvar="LOKET_BOOTH_CONFIG",
        help="TOML file with the kiosk's settings (deploy/booth.example.toml); "
        "LOKET_BOOTH_* variables and flags override it.",
    ),
    server: str = typer.Option(
        None, envvar="LOKET_BOOTH_SERVER_URL", help="Loket server, e.g. http://10.1.2.3:8000."
    ),
    credential: str = typer.Option(
        None,
        envvar="LOKET_BOOTH_CREDENTIAL",
        help="Booth credential from `loket booth enrol` (prefer the environment variable: "
        "flags show up in process lists).",
    ),
    source: str = typer.Option(
        None,
        help="Media: synthetic (test scene, default), v4l2 (cameras and microphone), "
        "file (looped video files, for rehearsals).",
    ),
    health: str = typer.Option(
        None, "--health", help="Serve GET /healthz on HOST:PORT, e.g. 127.0.0.1:9110."
    ),
    language: Language = typer.Option(
        None, help="Screen language: id (Bahasa Indonesia, default) or en."
    ),
    ice_address: list[str] = typer.Option(
        None,
        "--ice-address",
        help="Offer only this local address as an ICE candidate (repeatable); "
        "127.0.0.1 for a one-machine demo.",
    ),
    label: str = typer.Option(None, help="Name drawn on the test scene (default: booth id)."),
    show_documents: bool = typer.Option(
        False,
        "--show-documents",
        help="Synthetic participant: once the call is up, send a picture of each document "
        "the claim still needs, for the CSO to check (demo).",
    ),
    speak_pattern: str = typer.Option(
        None,
        "--speak-pattern",
        help="Synthetic participant's voice: always (default), silent, or ON/OFF[@DELAY] "
        "seconds of speech and silence, e.g. 1.5/4.",
    ),
    audio_sink: str = typer.Option(
        None,
        "--audio-sink",
        help="The officer's voice: auto (sound card, else none), null, or measure "
        "(levels to --audio-log, for tests).",
    ),
    audio_log: str = typer.Option(
        None, "--audio-log", help="With --audio-sink measure: a JSON line per audio frame."
    ),
    log_level: str = typer.Option(
        None, envvar="LOKET_LOG_LEVEL", help="Log level (default INFO, or log_level in the file)."
    ),
    screen: str = typer.Option(
        None,
        "--screen",
        envvar="LOKET_KIOSK_MODE",
        help="The participant's screen: window (full screen on the kiosk's display), "
        "headless (the same screens as PNG files in --screen-dir), or none (default).",
    ),
    screen_dir: Path = typer.Option(
        None, "--screen-dir", help="With --screen headless: where the PNGs go."
    ),
    participant: str = typer.Option(
        None,
        "--participant",
        help="Who checks in: screen (the person at it; the default with a screen) or "
        "synthetic (the demo participant).",
    ),
) -> None:
    if ctx.invoked_subcommand is not None:
        return  # an operator command (`loket booth enrol`, ...)
    flags: dict[str, Any] = {
        "server_url": server,
        "credential": credential,
        "source": source,
        "health": health,
        "language": language,
        "ice_host_addresses": ice_address or None,
        "show_documents": show_documents or None,  # unset: the file's or the variable's
        "speak_pattern": speak_pattern,
        "audio_sink": audio_sink,
        "audio_log": audio_log,
        "log_level": log_level,
    }
    try:
        settings = load_config(config, **flags)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            typer.secho(f"error: {line}", fg="red", err=True)
        typer.secho("`loket booth --help` lists the flags.", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    configure_logging(settings.log_level)
    screen_flags = {"mode": screen, "out_dir": screen_dir, "participant": participant}
    try:
        code = asyncio.run(
            serve(settings, label, {k: v for k, v in screen_flags.items() if v is not None})
        )
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


app = typer.Typer(help=HELP, add_completion=False)
app.callback(invoke_without_command=True)(kiosk)


def main() -> None:
    app(prog_name="loket-booth")
