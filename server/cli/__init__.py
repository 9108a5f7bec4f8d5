"""`loket`: the one command for operators, demos and kiosks. `loket --help` lists it all."""

from __future__ import annotations

import json

import typer

from booth_client.capture.cli import capture_app
from server.cli.accounts import db_app, user_app
from server.cli.booth import booth_app
from server.cli.demo import demo
from server.cli.floor import floor_app
from server.cli.front import display_app, reports_app
from server.cli.recording import recording_app
from server.cli.records import audit_app, claims_app, outcomes_app, retention_app
from server.cli.serve import serve

app = typer.Typer(
    name="loket",
    help="Loket: one CSO console serving four to six booth kiosks over WebRTC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command(help="Run the signaling server (FastAPI + websockets).")(serve)
app.command(help="Run everything on one machine: server, six synthetic booths, demo accounts.")(
    demo
)
app.add_typer(booth_app, name="booth")
app.add_typer(user_app, name="user", help="Manage CSO, supervisor and operator accounts.")
app.add_typer(db_app, name="db", help="Database schema: upgrade, current revision.")
app.add_typer(claims_app, name="claims")
app.add_typer(outcomes_app, name="outcomes")
app.add_typer(audit_app, name="audit")
app.add_typer(retention_app, name="retention")
app.add_typer(recording_app, name="recording")
app.add_typer(capture_app, name="capture")
app.add_typer(floor_app, name="floor")
app.add_typer(display_app, name="display")
app.add_typer(reports_app, name="reports")


@app.command(help="Print the JSON Schema of every websocket message.")
def schema(
    indent: int = typer.Option(2, help="JSON indentation (0 for one line)."),
) -> None:
    from signaling.schema import protocol_schema

    typer.echo(json.dumps(protocol_schema(), indent=indent or None, sort_keys=True))


def main() -> None:
    app()
