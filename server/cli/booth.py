"""`loket booth`: run a booth kiosk (booth_client.cli); `loket booth enrol|list|revoke`
for operators, which need the server's database and so live here."""

from __future__ import annotations

import typer

from booth_client.cli import HELP, kiosk
from server.cli.accounts import register_booth_admin

booth_app = typer.Typer(help=f"{HELP} Operators: enrol, list, revoke.")
booth_app.callback(invoke_without_command=True)(kiosk)
register_booth_admin(booth_app)
