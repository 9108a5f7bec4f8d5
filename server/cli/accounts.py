"""`loket user ...`, `loket db ...` and the operator half of `loket booth ...`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from server.cli.common import DATA_DIR_OPTION, fail, load_settings, run_database_job
from server.ports.accounts import AccountExists, AccountNotFound
from server.principal import AccountRole
from server.settings import Settings

if TYPE_CHECKING:
    from server.auth.service import AuthService

T = TypeVar("T")
console = Console()
user_app = typer.Typer(no_args_is_help=True)
db_app = typer.Typer(no_args_is_help=True)


_fail = fail


def _with_auth(settings: Settings, work: Callable[[AuthService], Awaitable[T]]) -> T:
    """Run `work` against the accounts store, bringing an embedded database up to date."""
    from server.adapters.sql.wiring import open_accounts
    from server.auth.demo import auth_service

    async def job() -> T:
        engine, store = await open_accounts(settings)
        try:
            return await work(auth_service(settings, store))
        finally:
            await engine.dispose()

    return run_database_job(settings, job)


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _split(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


@user_app.command("add", help="Add a CSO, supervisor or operator account.")
def user_add(
    username: str = typer.Argument(..., help="Login name, e.g. siti.rahma"),
    role: AccountRole = typer.Option(..., help="cso, supervisor, operator or auditor."),
    display_name: str = typer.Option(..., help="Name shown to booths and colleagues."),
    branch: str = typer.Option(..., help="Home branch code, e.g. jkt01."),
    pools: str = typer.Option(
        "", help="CSO: branches served, comma-separated, '*' for all (default: home branch)."
    ),
    skills: str = typer.Option("", help="CSO: skills, comma-separated, e.g. lang:en."),
    capacity: int = typer.Option(6, min=1, max=6, help="CSO: booths served at once (1-6)."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin instead of prompting."
    ),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    if role is AccountRole.BOOTH:
        raise _fail("booths are enrolled with `loket booth enrol`")
    settings = load_settings(data_dir)
    password = _read_password(password_stdin)

    async def work(auth: AuthService) -> None:
        await auth.add_user(
            username, password, role=role, display_name=display_name, branch=branch,
            pools=_split(pools), skills=_split(skills), capacity=capacity,
        )  # fmt: skip

    try:
        _with_auth(settings, work)
    except AccountExists:
        raise _fail(f"user {username!r} exists; use `loket user passwd {username}`") from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"added {role} {username}")


@user_app.command("list", help="List accounts.")
def user_list(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    settings = load_settings(data_dir)
    users = _with_auth(settings, lambda auth: auth.store.list_users())
    table = Table("username", "role", "name", "branch", "pools", "skills", "capacity", "status")
    for u in users:
        table.add_row(
            u.username, str(u.role), u.display_name, u.branch, ",".join(sorted(u.pools)),
            ",".join(sorted(u.skills)), str(u.capacity), "disabled" if u.disabled else "active",
        )  # fmt: skip
    console.print(table)


@user_app.command("passwd", help="Set a new password for an account.")
def user_passwd(
    username: str,
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read from stdin."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    settings = load_settings(data_dir)
    password = _read_password(password_stdin)
    try:
        _with_auth(settings, lambda auth: auth.set_password(username, password))
    except AccountNotFound:
        raise _fail(f"no user {username!r}; see `loket user list`") from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"password changed for {username}")


@user_app.command(
    "disable",
    help="Disable an account: its logins end (refresh tokens revoked) and its open "
    "sockets close within a minute. --enable undoes it.",
)
def user_disable(
    username: str = typer.Argument(..., help="Login name, see `loket user list`."),
    enable: bool = typer.Option(False, "--enable", help="Re-enable instead."),
    data_dir: Path | None = DATA_DIR_OPTION,
) -> None:
    settings = load_settings(data_dir)
    try:
        revoked = _with_auth(settings, lambda auth: auth.set_disabled(username, not enable))
    except AccountNotFound:
        raise _fail(f"no user {username!r}; see `loket user list`") from None
    if enable:
        typer.echo(f"{username} enabled")
    else:
        typer.echo(f"{username} disabled ({revoked} login(s) ended)")


@db_app.command("upgrade", help="Create or upgrade the database schema to this version.")
def db_upgrade(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    from server.adapters.sql import migrate

    settings = load_settings(data_dir)
    try:
        asyncio.run(migrate.upgrade(settings))
    except OSError as exc:
        raise _fail(f"cannot reach the database ({exc}); check LOKET_DATABASE_URL") from None
    typer.echo(f"database at revision {migrate.head_revision()}")


@db_app.command("current", help="Show the schema revision of the database.")
def db_current(data_dir: Path | None = DATA_DIR_OPTION) -> None:
    from server.adapters.sql import migrate

    settings = load_settings(data_dir)
    current = asyncio.run(migrate.current_revision(settings))
    head = migrate.head_revision()
    state = "up to date" if current == head else "run `loket db upgrade`"
    typer.echo(f"database: {current or 'empty'}; this Loket: {head} ({state})")


def register_booth_admin(booth_app: typer.Typer) -> None:
    """Add the operator commands (enrol, list, revoke) to the `loket booth` group."""

    @booth_app.command("enrol", help="Enrol a booth kiosk and print its credential (once).")
    def booth_enrol(
        branch: str = typer.Option(..., help="Branch code of the booth, e.g. jkt01."),
        label: str = typer.Option(..., help="Name shown to CSOs, e.g. 'Booth 3'."),
        booth_id: str | None = typer.Option(
            None, help="Booth id (default: generated); an existing id is re-keyed."
        ),
        data_dir: Path | None = DATA_DIR_OPTION,
    ) -> None:
        settings = load_settings(data_dir)
        try:
            new_id, credential = _with_auth(
                settings, lambda auth: auth.enrol_booth(branch, label, booth_id)
            )
        except ValueError as exc:
            raise _fail(str(exc)) from None
        typer.echo(f"booth {new_id} enrolled for branch {branch}")
        typer.secho(
            "Credential (shown only this once; store it on the kiosk as LOKET_BOOTH_CREDENTIAL):",
            err=True,
        )
        typer.echo(credential)

    @booth_app.command("list", help="List enrolled booths.")
    def booth_list(data_dir: Path | None = DATA_DIR_OPTION) -> None:
        settings = load_settings(data_dir)
        booths = _with_auth(settings, lambda auth: auth.store.list_booths())
        table = Table("booth id", "branch", "label", "status", "last seen")
        for b in booths:
            seen = b.last_seen_at.isoformat(timespec="seconds") if b.last_seen_at else "never"
            table.add_row(b.booth_id, b.branch, b.label, "revoked" if b.revoked else "ok", seen)
        console.print(table)

    @booth_app.command(
        "revoke",
        help="Revoke a booth's credential: its logins end (refresh tokens revoked) and its "
        "socket closes within a minute. `loket booth enrol --booth-id ID` restores it.",
    )
    def booth_revoke(
        booth_id: str = typer.Argument(..., help="Booth id, see `loket booth list`."),
        data_dir: Path | None = DATA_DIR_OPTION,
    ) -> None:
        settings = load_settings(data_dir)
        try:
            revoked = _with_auth(settings, lambda auth: auth.revoke_booth(booth_id))
        except AccountNotFound:
            raise _fail(f"no booth {booth_id!r}; see `loket booth list`") from None
        typer.echo(f"booth {booth_id} revoked ({revoked} login(s) ended)")
