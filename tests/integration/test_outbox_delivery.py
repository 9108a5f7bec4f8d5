"""A kiosk killed during an upload delivers the capture exactly once after a restart.

The kiosk's upload path (booth_client.outbox: the on-disk outbox and its HTTP uploader)
runs in its own process (tests/support/outbox_child.py) against a real server, and kills
itself with SIGKILL before the upload or after the server answered but before it noted
the answer. A fresh process then drains the outbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.support.claims import seed_claim
from tests.support.images import jpeg
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.sessions import live_pair

CHILD = Path(__file__).resolve().parents[1] / "support" / "outbox_child.py"


@pytest.fixture
async def server(tmp_path):
    async with running_server(server_settings(tmp_path)) as live:
        yield live


async def _kiosk(args: list[str], crash: str | None = None) -> tuple[int, dict[str, int] | None]:
    env = {**os.environ, "PYTHONPATH": str(CHILD.parents[2])}
    env.pop("LOKET_BOOTH_CRASH_POINT", None)
    if crash:
        env["LOKET_BOOTH_CRASH_POINT"] = crash
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    line = out.decode().strip().splitlines()
    return proc.returncode or 0, json.loads(line[-1]) if line else None


@pytest.mark.parametrize("crash", ["before_upload", "after_upload"])
async def test_a_capture_survives_sigkill_and_is_stored_exactly_once(
    server: LiveServer, tmp_path: Path, crash: str
) -> None:
    await seed_claim(server, "BK-OUTBOX")
    pair = await live_pair(server, "BK-OUTBOX", booth="kiosk-1", cso="siti")
    picture = tmp_path / "ktp.jpg"
    picture.write_bytes(jpeg(seed=7))
    outbox = tmp_path / "outbox"
    args = [str(outbox), server.base_url, pair.booth_token, pair.claim_id, "ktp", str(picture)]

    code, _ = await _kiosk(args, crash=crash)
    assert code == -signal.SIGKILL
    assert len(list(outbox.glob("*.json"))) == 1  # the capture is still on disk
    documents = await server.app.state.records.store.documents_of(pair.claim_id)
    assert len(documents) == (1 if crash == "after_upload" else 0)

    code, result = await _kiosk([*args, "--drain-only"])
    assert code == 0 and result == {"delivered": 1, "pending": 0}
    assert list(outbox.glob("*.json")) == []
    documents = await server.app.state.records.store.documents_of(pair.claim_id)
    assert len(documents) == 1 and documents[0].kind == "ktp"
    await pair.close()
