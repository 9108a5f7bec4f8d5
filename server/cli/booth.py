"""`loket booth`: run a booth kiosk; `loket booth enrol|list|revoke` for operators."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import typer
from pydantic import ValidationError

from server.cli.accounts import register_booth_admin
from server.logging import configure_logging
from signaling.messages import Language

booth_app = typer.Typer(
    help="Run a booth kiosk (with --server and --credential), or manage enrolled booths.",
)


async def _run_kiosk(config: object, label: str | None) -> int:
    from booth_client.client import BoothAuthError, BoothClient
    from booth_client.config import BoothConfig

    assert isinstance(config, BoothConfig)
    client = BoothClient(config, label=label)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # A kiosk stops cleanly: close the peer, leave the queue, exit 0.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, lambda: loop.create_task(client.stop()))
    try:
        await client.run()
    except BoothAuthError as exc:
        typer.secho(
            f"error: the server refused this booth: {exc}\n"
            "Ask an operator for a new credential (`loket booth enrol`).",
            fg="red",
            err=True,
        )
        return 1
    return 0


@booth_app.callback(invoke_without_command=True)
def booth(
    ctx: typer.Context,
    server: str = typer.Option(
        None, envvar="LOKET_BOOTH_SERVER_URL", help="Loket server, e.g. http://10.1.2.3:8000."
    ),
    credential: str = typer.Option(
        None,
        envvar="LOKET_BOOTH_CREDENTIAL",
        help="Booth credential from `loket booth enrol` (prefer the environment variable: "
        "flags show up in process lists).",
    ),
    source: str = typer.Option("synthetic", help="Camera source: synthetic (test scene)."),
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
    log_level: str = typer.Option("INFO", envvar="LOKET_LOG_LEVEL", help="Log level."),
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from booth_client.config import BoothConfig

    overrides: dict[str, object] = {"source": source, "show_documents": show_documents}
    if server:
        overrides["server_url"] = server
    if credential:
        overrides["credential"] = credential
    if language:
        overrides["language"] = language
    if ice_address:
        overrides["ice_host_addresses"] = ice_address
    for name, value in (
        ("speak_pattern", speak_pattern),
        ("audio_sink", audio_sink),
        ("audio_log", audio_log),
    ):
        if value:
            overrides[name] = value
    try:
        config = BoothConfig(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "booth"
            typer.secho(f"error: {where}: {err['msg']}", fg="red", err=True)
        typer.secho(
            "Give --server and --credential (or LOKET_BOOTH_* variables); "
            "`loket booth --help` lists them.",
            err=True,
        )
        raise typer.Exit(2) from None
    configure_logging(log_level, json=True)
    try:
        code = asyncio.run(_run_kiosk(config, label))
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


register_booth_admin(booth_app)
