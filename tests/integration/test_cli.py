"""`loket` commands as an operator types them (typer's CliRunner, real SQLite on disk)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from server.cli import app

runner = CliRunner(env={"COLUMNS": "200"})  # rich tables: no wrapping


@pytest.fixture
def data_dir(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOKET_DATA_DIR", str(tmp_path))
    return tmp_path


def _ok(*args: str, input: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result.output


def test_user_add_list_passwd_disable(data_dir) -> None:
    out = _ok(
        "user", "add", "siti", "--role", "cso", "--display-name", "Siti Rahma",
        "--branch", "jkt01", "--pools", "jkt01,bdg01", "--capacity", "5", "--password-stdin",
        input="a long enough password\n",
    )  # fmt: skip
    assert "added cso siti" in out
    again = runner.invoke(
        app,
        ["user", "add", "siti", "--role", "cso", "--display-name", "S", "--branch", "jkt01",
         "--password-stdin"],
        input="a long enough password\n",
    )  # fmt: skip
    assert again.exit_code == 1 and "loket user passwd siti" in again.output
    listing = _ok("user", "list")
    assert "siti" in listing and "bdg01,jkt01" in listing
    _ok("user", "passwd", "siti", "--password-stdin", input="another long password\n")
    assert "disabled" in _ok("user", "disable", "siti")
    missing = runner.invoke(app, ["user", "disable", "ghost"])
    assert missing.exit_code == 1 and "loket user list" in missing.output


def test_booth_enrol_prints_a_credential_once_and_revoke(data_dir) -> None:
    out = _ok("booth", "enrol", "--branch", "jkt01", "--label", "Booth 3", "--booth-id", "jkt01-b3")
    credential = out.strip().splitlines()[-1]
    assert credential.startswith("lkb_jkt01-b3.")
    listing = _ok("booth", "list")
    assert "jkt01-b3" in listing and credential not in listing
    assert "revoked" in _ok("booth", "revoke", "jkt01-b3")
    assert "revoked" in _ok("booth", "list")
    assert runner.invoke(app, ["booth", "revoke", "nope"]).exit_code == 1


def test_a_booth_id_and_a_username_are_never_the_same_name(data_dir) -> None:
    """Issue 21, A3: the two sockets would evict each other (4409) and messages could
    reach the wrong one; the names are refused at the source."""
    _ok("booth", "enrol", "--branch", "jkt01", "--label", "Booth 1", "--booth-id", "jkt01-b1")
    clash = runner.invoke(
        app,
        ["user", "add", "jkt01-b1", "--role", "cso", "--display-name", "X", "--branch", "jkt01",
         "--password-stdin"],
        input="a long enough password\n",
    )  # fmt: skip
    assert clash.exit_code == 1 and "enrolled booth's id" in clash.output
    _ok("user", "add", "siti", "--role", "cso", "--display-name", "Siti", "--branch", "jkt01",
        "--password-stdin", input="a long enough password\n")  # fmt: skip
    reverse = runner.invoke(
        app, ["booth", "enrol", "--branch", "jkt01", "--label", "B", "--booth-id", "siti"]
    )
    assert reverse.exit_code == 1 and "a user's name" in reverse.output
    assert "siti" not in _ok("booth", "list")


def test_db_upgrade_and_current(data_dir) -> None:
    assert "database at revision" in _ok("db", "upgrade")
    assert "up to date" in _ok("db", "current")


def test_schema_prints_every_message_type(data_dir) -> None:
    schema = json.loads(_ok("schema", "--indent", "0"))
    text = json.dumps(schema)
    for kind in ("hello", "check_in", "booth_assigned", "offer", "floor_event", "error"):
        assert f'"{kind}"' in text


def test_booth_without_credential_says_what_to_do(data_dir, monkeypatch) -> None:
    monkeypatch.delenv("LOKET_BOOTH_CREDENTIAL", raising=False)
    result = runner.invoke(app, ["booth", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "--credential" in result.output


@pytest.mark.parametrize(
    "command",
    [[], ["serve"], ["demo"], ["booth"], ["booth", "enrol"], ["booth", "list"], ["user"],
     ["user", "add"], ["db"], ["db", "upgrade"], ["schema"], ["floor"], ["floor", "status"],
     ["floor", "reset"]],
)  # fmt: skip
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
