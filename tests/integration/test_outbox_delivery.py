"""A picture taken for a claim reaches that claim exactly once, whatever the kiosk does in
between: real `loket booth` processes (booth_client), a real server over real sockets.

The officer (a protocol client, no media) asks the kiosk for a KTP; the kiosk kills itself
with SIGKILL at a point of the upload (LOKET_BOOTH_CRASH_POINT) and is started again, as
systemd's `Restart=always` would: it resumes its visit (same session, the officer is not
told the booth left) and its outbox delivers the picture by itself, with no new capture
asked. Also when the session ended meanwhile and another participant checked in next
(the capture's grant still carries it to its claim, marked as after the session), when
the kiosk is stopped again (SIGTERM) before any officer took it, and when it dies in the
middle of a chunked upload (the next start goes on from the server's offset).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from server.adapters.sql import migrate
from signaling.messages import (
    Accept,
    BoothAssigned,
    BoothOffered,
    DocumentAdded,
    EndSession,
    RequestCapture,
    Role,
    SessionEnded,
    SessionUpdate,
    SetAvailability,
)
from tests.support.accounts import add_user, enrol_booth, login
from tests.support.claims import seed_claim
from tests.support.kiosk_process import kiosk_process
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.ws_client import SignalClient


@pytest.fixture(params=["sqlite", "postgresql"])
async def server(request, tmp_path):  # type: ignore[no-untyped-def]
    overrides: dict[str, Any] = {"grace_period": 30.0}
    if request.param == "postgresql":
        from tests.support.postgres import create_database

        overrides["database_url"] = await create_database(request.getfixturevalue("postgres"))
    settings = server_settings(tmp_path / "server", **overrides)
    await migrate.upgrade(settings)
    async with running_server(settings) as live:
        yield live


async def _officer(server: LiveServer) -> SignalClient:
    await add_user(server, "siti")
    token = (await login(server, "siti"))["access_token"]
    return await SignalClient.connect(server.ws_url, Role.CSO, token)


async def _serve_and_ask(cso: SignalClient, capture_id: str = "cap-ktp") -> str:
    """Accept the next booth offered and ask it for a KTP; the session id."""
    offered = await cso.expect(BoothOffered, timeout=30)
    await cso.send(Accept(session_id=offered.session_id))
    await cso.expect(BoothAssigned, timeout=10, session_id=offered.session_id)
    await asyncio.sleep(0.3)  # the kiosk hears `assigned`
    await cso.send(RequestCapture(session_id=offered.session_id, capture_id=capture_id, kind="ktp"))
    return offered.session_id


async def _documents(server: LiveServer, claim_id: str, count: int, within: float = 30.0):  # type: ignore[no-untyped-def]
    store = server.app.state.records.store
    async with asyncio.timeout(within):
        while len(found := await store.documents_of(claim_id)) < count:
            await asyncio.sleep(0.1)
    return found


async def _audit(server: LiveServer, claim_id: str) -> list[str]:
    entries = server.app.state.records.store.audit_entries()
    return [e.action async for e in entries if e.claim_id == claim_id]


async def _killed_mid_capture(
    server: LiveServer, tmp_path: Path, code: str, crash: str, **config: Any
) -> tuple[str, SignalClient, Path, str]:
    """Kiosk-1 checks in for `code`, the officer asks it for a KTP and the kiosk kills
    itself at `crash`: (its credential, the officer, its state directory, the session)."""
    _, credential = await enrol_booth(server, "kiosk-1")
    cso = await _officer(server)
    state = tmp_path / "kiosk"
    async with kiosk_process(
        server, credential, state, crash=crash, booking_code=code, **config
    ) as first:
        session_id = await _serve_and_ask(cso)
        assert await first.exited() == -signal.SIGKILL
    return credential, cso, state, session_id


def _code() -> str:
    return f"BK-{uuid.uuid4().hex[:8].upper()}"


@pytest.mark.parametrize("crash", ["before_upload", "after_upload"])
async def test_a_killed_kiosk_restarts_resumes_and_delivers_the_picture_once(
    server: LiveServer, tmp_path: Path, crash: str
) -> None:
    code = _code()
    claim = await seed_claim(server, code)
    credential, cso, state, session_id = await _killed_mid_capture(server, tmp_path, code, crash)
    stored_before = len(await server.app.state.records.store.documents_of(claim.claim_id))
    assert stored_before == (1 if crash == "after_upload" else 0)
    assert len(list((state / "outbox").glob("*.json"))) == 1  # kept on disk

    async with kiosk_process(server, credential, state, booking_code=code) as again:
        # It resumes its visit: same session, and the officer hears it is back.
        back = await cso.expect(SessionUpdate, timeout=30, session_id=session_id)
        while not back.booth_connected:
            back = await cso.expect(SessionUpdate, timeout=30, session_id=session_id)
        (document,) = await _documents(server, claim.claim_id, 1)
        await again.until(lambda h: h["outbox_depth"] == 0 and h["session"] == session_id)
        assert document.kind == "ktp" and document.session_id == session_id
        assert document.after_session is False
        await asyncio.sleep(0.5)  # nothing more arrives
        assert len(await server.app.state.records.store.documents_of(claim.claim_id)) == 1
        events = [e["event"] for e in again.events()]
        assert "outbox_delivered" in events and "welcome" in events
    assert not any(isinstance(m, SessionEnded) for m in cso.seen)  # never told booth_left
    added = [m for m in cso.seen if isinstance(m, DocumentAdded)]
    if crash == "before_upload":
        added.append(await cso.expect(DocumentAdded, timeout=5))
    assert [a.document_id for a in added] == [document.document_id]
    actions = await _audit(server, claim.claim_id)
    assert actions.count("document.uploaded") == 1 and actions.count("capture.requested") == 1
    await cso.close()


async def test_the_session_ended_meanwhile_and_the_picture_still_reaches_its_claim(
    server: LiveServer, tmp_path: Path
) -> None:
    first_code, next_code = _code(), _code()
    claim = await seed_claim(server, first_code)
    next_claim = await seed_claim(server, next_code)
    credential, cso, state, session_id = await _killed_mid_capture(
        server, tmp_path, first_code, "before_upload"
    )
    await cso.send(EndSession(session_id=session_id))  # the officer moves on
    await cso.expect(SessionEnded, timeout=10, session_id=session_id)

    # The next participant checks in at this kiosk; the kept picture is the last one's.
    async with kiosk_process(server, credential, state, booking_code=next_code) as again:
        (document,) = await _documents(server, claim.claim_id, 1)
        await again.until(lambda h: h["outbox_depth"] == 0)
        offered = await cso.expect(BoothOffered, timeout=30)
        assert offered.claim.claim_id == next_claim.claim_id
    assert document.after_session is True and document.session_id == session_id
    assert await server.app.state.records.store.documents_of(next_claim.claim_id) == []
    actions = await _audit(server, claim.claim_id)
    assert actions.count("document.uploaded") == 1
    await cso.close()


async def test_stopped_again_before_any_officer_took_it_the_picture_is_not_lost(
    tmp_path: Path,
) -> None:
    # A short grace period: the killed kiosk's session ends (booth_lost) before it is back.
    settings = server_settings(tmp_path / "server", grace_period=0.5)
    async with running_server(settings) as server:
        code = _code()
        claim = await seed_claim(server, code)
        credential, cso, state, session_id = await _killed_mid_capture(
            server, tmp_path, code, "before_upload"
        )
        await cso.expect(SessionEnded, timeout=10, session_id=session_id)
        await cso.send(SetAvailability(available=False))
        async with kiosk_process(server, credential, state, booking_code=code) as again:
            await again.until(lambda h: h["connected"], within=30)
            assert await again.stop(signal.SIGTERM) == 0  # before any officer accepted it
        (document,) = await _documents(server, claim.claim_id, 1, within=5)
        assert document.after_session is True
        assert list((state / "outbox").glob("*.json")) == []
        await cso.close()


async def test_a_chunked_upload_cut_by_a_kill_goes_on_from_the_servers_offset(
    tmp_path: Path,
) -> None:
    async with running_server(server_settings(tmp_path / "server")) as server:
        await _chunked_upload_cut_by_a_kill(server, tmp_path)


async def _chunked_upload_cut_by_a_kill(server: LiveServer, tmp_path: Path) -> None:
    code, chunk = _code(), 16 * 1024
    claim = await seed_claim(server, code)
    credential, cso, state, _ = await _killed_mid_capture(
        server, tmp_path, code, "mid_upload", upload_chunk_bytes=chunk
    )
    staged = list((server.settings.data_dir / "uploads").iterdir())
    assert len(staged) == 1  # one chunk on the server, the rest not
    async with kiosk_process(
        server, credential, state, booking_code=code, upload_chunk_bytes=chunk
    ) as again:
        (document,) = await _documents(server, claim.claim_id, 1)
        resumed = [e for e in again.events() if e["event"] == "upload_resumed"]
        assert [e["offset"] for e in resumed] == [chunk]
        assert document.size_bytes > 2 * chunk
    assert list((server.settings.data_dir / "uploads").iterdir()) == []
    await cso.close()
