"""The floor's edges over real sockets: every reconnect, resume, timeout and
access-before-accept path the first release got wrong, each against a real uvicorn server
with real websocket clients (tests/support/ws_client.py)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from sqlalchemy import text
from websockets.exceptions import ConnectionClosed

from server.auth.tokens import TokenIssuer
from server.principal import AccountRole, Principal
from signaling.errors import ErrorCode
from signaling.messages import (
    Accept,
    Ack,
    Answer,
    Assigned,
    BookingRef,
    BoothAssigned,
    BoothOffered,
    CaptureStatus,
    CheckIn,
    ClaimType,
    DocumentAdded,
    EndSession,
    Error,
    Focus,
    FocusBooth,
    Hello,
    Offer,
    OfferWithdrawn,
    PeerState,
    Ping,
    Pong,
    Queued,
    Reauth,
    RequestCapture,
    Reserved,
    Role,
    SessionEnded,
    SessionUpdate,
    SetAvailability,
    WalkInRef,
    Welcome,
)
from signaling.session import SessionState
from tests.conftest import BACKENDS, node_settings
from tests.support.accounts import add_user, booth_login, booth_token, user_token
from tests.support.claims import seed_claim, valid_nik
from tests.support.images import jpeg
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.ws_client import SignalClient

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 {}\r\n"


@pytest.fixture(params=BACKENDS)
async def server(request, tmp_path):
    """Every edge here is tried on the embedded default and on a cluster node."""
    settings = await node_settings(
        request, tmp_path, grace_period=3.0, reservation_timeout=1.0, decline_cooldown=30.0,
        broadcast_interval=0.05,
    )  # fmt: skip
    async with running_server(settings) as live:
        yield live


async def _booth(
    server: LiveServer, label: str, *, check_in: bool = True, token: str | None = None
) -> SignalClient:
    token = token or await booth_token(server, label)
    client = await SignalClient.connect(server.ws_url, Role.BOOTH, token)
    if check_in:
        code = f"BK-{label.upper()}"
        if await server.app.state.records.store.find_claim_by_booking(code) is None:
            await seed_claim(server, code)
        message = CheckIn(claim=BookingRef(booking_code=code))
        await client.send(message)
        await client.expect(Ack, reply_to=message.id)
    return client


async def _cso(server: LiveServer, name: str, capacity: int = 6) -> SignalClient:
    return await SignalClient.connect(
        server.ws_url, Role.CSO, await user_token(server, name, capacity=capacity)
    )


async def _take(cso: SignalClient) -> str:
    offered = await cso.expect(BoothOffered)
    await cso.send(Accept(session_id=offered.session_id))
    await cso.expect(BoothAssigned, session_id=offered.session_id)
    return offered.session_id


async def _resume(server: LiveServer, client: SignalClient, token: str) -> SignalClient:
    assert client.welcome is not None
    return await SignalClient.connect(
        server.ws_url, client.role, token, resume=client.welcome.resume_token
    )


async def _connected_call(server: LiveServer, booth: SignalClient, cso: SignalClient) -> str:
    session = await _take(cso)
    await booth.expect(Assigned, session_id=session)
    await booth.send(PeerState(session_id=session, state="connected"))
    await cso.expect(PeerState, session_id=session)
    return session


def _booth_state(server: LiveServer, booth_id: str) -> SessionState:
    return server.app.state.floor.core.booths[booth_id].state


async def test_booth_away_when_the_call_ends_learns_it_on_resume(server: LiveServer) -> None:
    token = await booth_token(server, "b1")
    booth = await SignalClient.connect(server.ws_url, Role.BOOTH, token)
    await seed_claim(server, "BK-AWAY")
    await booth.send(CheckIn(claim=BookingRef(booking_code="BK-AWAY")))
    cso = await _cso(server, "siti")
    session = await _connected_call(server, booth, cso)
    await booth.close()
    await asyncio.sleep(0.2)
    await cso.send(EndSession(session_id=session))
    await cso.expect(SessionEnded, session_id=session)

    back = await _resume(server, booth, token)
    assert back.welcome and back.welcome.resumed and back.welcome.booth
    status = back.welcome.booth
    assert status.state is SessionState.IDLE
    assert status.last_ended and status.last_ended.session_id == session
    assert status.last_ended.reason == "cso_ended"
    again = CheckIn(claim=BookingRef(booking_code="BK-AWAY2"))
    await seed_claim(server, "BK-AWAY2")
    await back.send(again)
    await back.expect(Ack, reply_to=again.id)  # not illegal_transition: it is idle again


async def test_kiosk_restarted_mid_call_gets_a_welcome_first_and_nothing_stale(
    server: LiveServer,
) -> None:
    token = await booth_token(server, "b1")
    booth = await _booth(server, "b1", token=token)
    cso = await _cso(server, "siti")
    session = await _connected_call(server, booth, cso)
    # The kiosk restarts: a new process, no resume token.
    restarted = await SignalClient.connect(server.ws_url, Role.BOOTH, token)
    assert restarted.welcome and restarted.welcome.booth
    assert restarted.welcome.booth.state is SessionState.IDLE and not restarted.welcome.resumed
    with pytest.raises(TimeoutError):
        await restarted.expect(SessionEnded, timeout=0.5)
    ended = await cso.expect(SessionEnded, session_id=session)
    assert ended.reason == "booth_left"


async def test_short_drop_mid_call_keeps_the_call_where_it_was(server: LiveServer) -> None:
    token = await booth_token(server, "b1")
    booth = await SignalClient.connect(server.ws_url, Role.BOOTH, token)
    await seed_claim(server, "BK-DROP")
    await booth.send(CheckIn(claim=BookingRef(booking_code="BK-DROP")))
    cso = await _cso(server, "siti")
    session = await _connected_call(server, booth, cso)
    await cso.send(FocusBooth(session_id=session))
    assert (await booth.expect(Focus)).focused
    booth_id = booth.welcome.peer_id if booth.welcome else ""
    assert _booth_state(server, booth_id) is SessionState.FOCUSED

    await booth.close()
    update = await cso.expect(SessionUpdate, booth_connected=False)
    assert update.booth_connected is False and update.state is SessionState.RECONNECTING
    back = await _resume(server, booth, token)
    assert back.welcome and back.welcome.booth
    assert back.welcome.booth.state is SessionState.FOCUSED  # not `connecting`
    assert back.welcome.booth.session_id == session and back.welcome.booth.focused
    live = await server.app.state.floor._live.get(session)
    assert live.state is SessionState.FOCUSED
    update = await cso.expect(SessionUpdate, booth_connected=True, state=SessionState.FOCUSED)
    assert update.booth_connected is True and update.state is SessionState.FOCUSED


async def test_paused_cso_reconnecting_is_offered_nothing_and_keeps_its_break(
    server: LiveServer,
) -> None:
    token = await user_token(server, "siti")
    cso = await SignalClient.connect(server.ws_url, Role.CSO, token)
    pause = SetAvailability(available=False)
    await cso.send(pause)
    await cso.expect(Ack, reply_to=pause.id)
    await cso.close()
    booth = await _booth(server, "b1")
    back = await _resume(server, cso, token)
    assert back.welcome and back.welcome.cso and back.welcome.cso.available is False
    with pytest.raises(TimeoutError):
        await back.expect(BoothOffered, timeout=0.8)
    with pytest.raises(TimeoutError):
        await back.expect(OfferWithdrawn, timeout=0.1)
    # Resuming the break: the booth is offered at once (no decline cooldown was incurred).
    await back.send(SetAvailability(available=True))
    offered = await back.expect(BoothOffered, timeout=3)
    assert offered.booth.booth_id == (booth.welcome.peer_id if booth.welcome else "")


async def test_an_officers_signaling_blip_keeps_the_booth_focused(server: LiveServer) -> None:
    """The call is peer to peer: a console whose socket drops (proxy reload, Wi-Fi change)
    and comes back must find the booth still focused, not muted and detached."""
    booth = await _booth(server, "b1")
    token = await user_token(server, "siti")
    cso = await SignalClient.connect(server.ws_url, Role.CSO, token)
    session = await _connected_call(server, booth, cso)
    await cso.send(FocusBooth(session_id=session))
    assert (await booth.expect(Focus)).focused is True
    await cso.close()
    with pytest.raises(TimeoutError):
        await booth.expect(Focus, timeout=1.0)  # the booth hears nothing of the blip
    back = await _resume(server, cso, token)
    assert back.welcome and back.welcome.cso and back.welcome.cso.focused == session
    booth_id = booth.welcome.peer_id if booth.welcome else ""
    assert _booth_state(server, booth_id) is SessionState.FOCUSED


async def test_lapsed_offer_is_told_to_the_booth(server: LiveServer) -> None:
    booth = await _booth(server, "b1")
    cso = await _cso(server, "siti")
    offered = await cso.expect(BoothOffered)
    await booth.expect(Reserved, session_id=offered.session_id)
    # Nobody accepts within the 1 s reservation timeout.
    withdrawn = await cso.expect(OfferWithdrawn, timeout=4)
    assert withdrawn.reason == "expired"
    queued = await booth.expect(Queued, timeout=2)
    assert queued.position == 0
    booth_id = booth.welcome.peer_id if booth.welcome else ""
    assert _booth_state(server, booth_id) is SessionState.QUEUED


async def test_offered_but_not_accepted_cso_cannot_open_the_claim(server: LiveServer) -> None:
    booth = await _booth(server, "b1")
    token = await user_token(server, "siti")  # logged in before the 1 s offer starts
    cso = await SignalClient.connect(server.ws_url, Role.CSO, token)
    offered = await cso.expect(BoothOffered)
    claim_id = offered.claim.claim_id
    bearer = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=bearer) as http:
        assert (await http.get(f"/api/claims/{claim_id}")).status_code == 403
        key = {"Idempotency-Key": "k-offered-1"}
        outcome = {"decision": "needs_follow_up", "reason_codes": ["doc_unreadable"], "note": ""}
        res = await http.post(f"/api/claims/{claim_id}/outcome", json=outcome, headers=key)
        assert res.status_code == 403
        await cso.send(Accept(session_id=offered.session_id))
        await booth.expect(Assigned)
        assert (await http.get(f"/api/claims/{claim_id}")).status_code == 200


async def test_slow_consumer_is_closed_promptly_with_4429(tmp_path) -> None:
    settings = server_settings(
        tmp_path,
        outbox_size=16,
        max_messages_per_second=5000.0,
        max_descriptions_per_session=1000,
        max_bytes_per_second=1024**3,
    )
    async with running_server(settings) as live:
        booth = await _booth(live, "b1")
        cso = await _cso(live, "siti")
        session = await _connected_call(live, booth, cso)
        # The booth stops reading; the CSO floods it with big offers until its TCP buffers
        # and then its mailbox fill.
        booth.conn.transport.pause_reading()  # type: ignore[attr-defined]
        big = SDP.format("AA") + "a=x-pad:" + "p" * 60_000 + "\r\n"
        floor = live.app.state.floor
        booth_id = booth.welcome.peer_id if booth.welcome else ""
        started = time.monotonic()
        for _ in range(400):
            await cso.send(Offer(session_id=session, sdp=big))
            if not floor.core.booths[booth_id].connected:
                break
            await asyncio.sleep(0)
        deadline = time.monotonic() + 5
        while floor.core.booths[booth_id].connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not floor.core.booths[booth_id].connected, "the slow booth was never let go"
        assert time.monotonic() - started < 10
        # The CSO is told the booth is away, and the server still serves everyone else.
        update = await cso.expect(SessionUpdate, timeout=5, booth_connected=False)
        assert update.booth_connected is False
        ping = Ping()
        await cso.send(ping)
        await cso.expect(Pong, reply_to=ping.id)
        booth.conn.transport.resume_reading()  # type: ignore[attr-defined]
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await booth.conn.recv()
        rcvd = closed.value.rcvd
        assert rcvd is None or rcvd.code == 4429  # 4429 when the close frame got through


async def test_expired_token_closes_the_socket_unless_reauthenticated(server: LiveServer) -> None:
    await add_user(server, "siti")
    principal = Principal("siti", AccountRole.CSO, "Siti", "jkt01", frozenset({"*"}))
    secret = server.settings.jwt_secret.get_secret_value()  # type: ignore[union-attr]
    short = TokenIssuer(secret, access_ttl=2, refresh_ttl=60)
    kept = await SignalClient.connect(server.ws_url, Role.CSO, short.issue(principal).access_token)
    # A second CSO socket with a short token: it reauths in time and stays.
    await add_user(server, "budi")
    budi = Principal("budi", AccountRole.CSO, "Budi", "jkt01", frozenset({"*"}))
    fresh = await SignalClient.connect(server.ws_url, Role.CSO, short.issue(budi).access_token)
    reauth = Reauth(
        token=TokenIssuer(secret, access_ttl=600, refresh_ttl=60).issue(budi).access_token
    )
    await fresh.send(reauth)
    await fresh.expect(Ack, reply_to=reauth.id)

    err = await kept.expect(Error, timeout=5)
    assert err.code == ErrorCode.AUTH_FAILED and "expired" in err.message
    with pytest.raises(ConnectionClosed) as closed:
        await kept.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    ping = Ping()
    await fresh.send(ping)
    await fresh.expect(Pong, reply_to=ping.id)

    # Reauth as somebody else is refused and ends the socket.
    other = Reauth(token=short.issue(principal).access_token)
    await fresh.send(other)
    assert (await fresh.expect(Error, reply_to=other.id)).code == ErrorCode.AUTH_FAILED


async def test_disabling_an_account_closes_its_sockets(tmp_path) -> None:
    settings = server_settings(tmp_path, account_check_interval=0.3)
    async with running_server(settings) as live:
        cso = await _cso(live, "siti")
        booth_token_ = await booth_token(live, "b1")
        booth = await SignalClient.connect(live.ws_url, Role.BOOTH, booth_token_)
        booth_id = booth.welcome.peer_id if booth.welcome else ""
        auth = live.app.state.auth
        await auth.set_disabled("siti", True)
        await auth.revoke_booth(booth_id)
        for client, code in ((cso, 4403), (booth, 4403)):
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await client.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_refused_check_in_leaves_no_record(server: LiveServer) -> None:
    booth = await _booth(server, "b1")  # checked in and queued
    store = server.app.state.records.store
    engine = store._engine if hasattr(store, "_engine") else None

    async def counts() -> tuple[int, int]:
        async with engine.connect() as conn:  # type: ignore[union-attr]
            claims = (await conn.execute(text("SELECT count(*) FROM claims"))).scalar_one()
            audit = (await conn.execute(text("SELECT count(*) FROM audit_log"))).scalar_one()
        return int(claims), int(audit)

    before = await counts()
    for serial in range(3):  # new walk-ins, each refused: the booth is already queued
        walk_in = CheckIn(
            claim=WalkInRef(nik=valid_nik(9000 + serial), kpj="12345678901",
                            claim_type=ClaimType.RESIGNATION)
        )  # fmt: skip
        await booth.send(walk_in)
        err = await booth.expect(Error, reply_to=walk_in.id)
        assert err.code == ErrorCode.ILLEGAL_TRANSITION
    # The same participant at a second booth is refused too, before any record.
    other = await SignalClient.connect(server.ws_url, Role.BOOTH, await booth_token(server, "b2"))
    same = CheckIn(claim=BookingRef(booking_code="BK-B1"))
    await other.send(same)
    assert (await other.expect(Error, reply_to=same.id)).code == ErrorCode.CLAIM_REFUSED
    assert await counts() == before


async def test_a_later_answer_does_not_change_the_sessions_fingerprints(
    server: LiveServer,
) -> None:
    booth = await _booth(server, "b1")
    cso = await _cso(server, "siti")
    session = await _take(cso)
    await booth.expect(Assigned)
    await cso.send(Offer(session_id=session, sdp=SDP.format("C1")))
    await booth.expect(Offer)
    await booth.send(Answer(session_id=session, sdp=SDP.format("B1")))
    await cso.expect(Answer)
    await booth.send(Answer(session_id=session, sdp=SDP.format("B2")))  # renegotiation
    await cso.expect(Answer)
    live = await server.app.state.floor._live.get(session)
    assert live.booth_fingerprints == ("sha-256 B1",)
    assert live.cso_fingerprints == ("sha-256 C1",)
    # The addition is on the audit record, not lost and not overwriting.
    store = server.app.state.records.store
    for _ in range(50):
        entries = [e async for e in store.audit_entries()]
        added = [e for e in entries if e.action == "session.fingerprints_added"]
        if added:
            break
        await asyncio.sleep(0.05)
    assert [tuple(e.fingerprints) for e in added] == [("sha-256 B2",)]


async def test_hostile_nesting_gets_a_typed_error_and_the_socket_lives(
    server: LiveServer,
) -> None:
    booth = await _booth(server, "b1", check_in=False)
    await booth.send_raw("[" * 20_000 + "]" * 20_000)
    assert (await booth.expect(Error)).code == ErrorCode.MALFORMED_JSON
    deep = (
        json.dumps({"v": 1, "type": "ping"})[:-1]
        + ', "x": '
        + '{"a":' * 5000
        + "1"
        + "}" * 5000
        + "}"
    )
    await booth.send_raw(deep)
    assert (await booth.expect(Error)).code in (ErrorCode.MALFORMED_JSON, ErrorCode.TOO_LARGE)
    ping = Ping()
    await booth.send(ping)
    await booth.expect(Pong, reply_to=ping.id)


async def test_sockets_that_never_say_hello_are_bounded(tmp_path) -> None:
    settings = server_settings(tmp_path, max_unauthenticated_sockets=2, hello_timeout=5.0)
    async with running_server(settings) as live:
        quiet = [await SignalClient.connect(live.ws_url, Role.BOOTH) for _ in range(2)]
        third = await SignalClient.connect(live.ws_url, Role.BOOTH)
        err = await third.expect(Error)
        assert err.code == ErrorCode.RATE_LIMITED
        with pytest.raises(ConnectionClosed) as closed:
            await third.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        # Once one of them authenticates, there is room again.
        await quiet[0].send(Hello(token=await booth_token(live, "b1")))
        await quiet[0].expect(Welcome)
        fourth = await SignalClient.connect(live.ws_url, Role.BOOTH, await booth_token(live, "b2"))
        assert fourth.welcome is not None


async def test_supervisors_get_the_floor_coalesced_not_every_peer_state(
    server: LiveServer,
) -> None:
    supervisor = await SignalClient.connect(
        server.ws_url, Role.SUPERVISOR, await user_token(server, "boss", role="supervisor")
    )
    booth = await _booth(server, "b1")
    cso = await _cso(server, "siti")
    session = await _connected_call(server, booth, cso)
    await asyncio.sleep(0.5)
    supervisor.seen.clear()
    while True:  # drain what the call's set-up produced
        try:
            supervisor.seen.append(await supervisor.recv(timeout=0.3))
        except TimeoutError:
            break
    supervisor.seen.clear()
    for state in ["connected", "disconnected"] * 50:
        await booth.send(PeerState(session_id=session, state=state))  # type: ignore[arg-type]
    received = []
    while True:
        try:
            received.append(await supervisor.recv(timeout=0.5))
        except TimeoutError:
            break
    # 100 peer reports cost the supervisor nothing per report (none changes the floor).
    assert len(received) <= 2, [type(m).__name__ for m in received]


async def test_capture_round_trip_and_the_picture_is_pushed_to_the_console(
    server: LiveServer,
) -> None:
    _, tokens = await booth_login(server, "b1")
    booth = await _booth(server, "b1", token=tokens["access_token"])
    cso = await _cso(server, "siti")
    session = await _connected_call(server, booth, cso)
    claim_id = server.app.state.floor.core.sessions[session].live.claim_id
    ask = RequestCapture(session_id=session, capture_id="cap-1", kind="ktp")
    await cso.send(ask)
    got = await booth.expect(RequestCapture, capture_id="cap-1")
    assert got.kind == "ktp"
    await booth.send(
        CaptureStatus(session_id=session, capture_id="cap-1", kind="ktp", stage="uploading",
                      sharpness=412.0, glare=0.01)
    )  # fmt: skip
    status = await cso.expect(CaptureStatus, capture_id="cap-1")
    assert status.stage == "uploading" and status.sharpness == 412.0
    headers = {
        "Authorization": f"Bearer {tokens['access_token']}",
        "Content-Type": "image/jpeg",
        "Idempotency-Key": "cap-1-upload",
    }
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        res = await http.post(
            f"/api/claims/{claim_id}/documents?kind=ktp", content=jpeg(), headers=headers
        )
        assert res.status_code == 201, res.text
        added = await cso.expect(DocumentAdded, timeout=5)
        assert added.document_id == res.json()["document_id"] and added.session_id == session
        # A retry of the same upload is answered from storage and pushes nothing new.
        again = await http.post(
            f"/api/claims/{claim_id}/documents?kind=ktp", content=jpeg(), headers=headers
        )
        assert again.headers.get("Idempotent-Replayed") == "true"
    with pytest.raises(TimeoutError):
        await cso.expect(DocumentAdded, timeout=0.5)
