"""The signaling server over real sockets: dispatch, relay rules, bad input, failover.

Signaling only (no media): the media path has its own test. Every client here is a real
websockets connection to a real uvicorn server on a free loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from signaling.errors import ErrorCode
from signaling.messages import (
    Accept,
    Assigned,
    BookingRef,
    BoothAssigned,
    BoothOffered,
    Candidate,
    CheckIn,
    Error,
    FloorEvent,
    Hello,
    Offer,
    Ping,
    Pong,
    Queued,
    Reserved,
    Role,
    SessionEnded,
)
from tests.conftest import BACKENDS, node_settings
from tests.support.accounts import booth_token, user_token
from tests.support.claims import seed_claim
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.ws_client import SignalClient

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AB:CD\r\n"


@pytest.fixture(params=BACKENDS)
async def server(request, tmp_path):
    """Every test here runs on the embedded default and as a cluster node."""
    settings = await node_settings(request, tmp_path, grace_period=1.0, reservation_timeout=5.0)
    async with running_server(settings) as live:
        yield live


async def _booth(server: LiveServer, label: str, code: str | None = None) -> SignalClient:
    code = code or f"BK-{label.upper()}"  # one participant per booth
    client = await SignalClient.connect(server.ws_url, Role.BOOTH, await booth_token(server, label))
    if await server.app.state.records.store.find_claim_by_booking(code) is None:
        await seed_claim(server, code)
    await client.send(CheckIn(claim=BookingRef(booking_code=code)))
    return client


async def _cso(server: LiveServer, name: str, capacity: int = 6) -> SignalClient:
    token = await user_token(server, name, role="cso", capacity=capacity)
    return await SignalClient.connect(server.ws_url, Role.CSO, token)


async def _take(cso: SignalClient) -> BoothAssigned:
    offered = await cso.expect(BoothOffered)
    await cso.send(Accept(session_id=offered.session_id))
    return await cso.expect(BoothAssigned, session_id=offered.session_id)


async def test_six_booths_are_offered_to_one_cso_and_assigned(server: LiveServer) -> None:
    booths = [await _booth(server, f"booth-{i}") for i in range(6)]
    for booth in booths:
        await booth.expect(Queued)  # nobody on duty yet: they wait, with a place
    cso = await _cso(server, "siti")
    sessions = {(await _take(cso)).booth.booth_id for _ in range(6)}
    assert len(sessions) == 6
    for booth in booths:
        await booth.expect(Reserved)
        assigned = await booth.expect(Assigned)
        assert assigned.cso_name
    # A seventh booth waits: the CSO is at capacity.
    seventh = await _booth(server, "booth-7")
    queued = await seventh.expect(Queued)
    assert queued.position == 0


async def test_relay_only_between_the_two_ends_of_a_session(server: LiveServer) -> None:
    booth_a = await _booth(server, "a")
    cso_a = await _cso(server, "cso-a", capacity=1)
    session_a = (await _take(cso_a)).session_id
    booth_b = await _booth(server, "b")
    cso_b = await _cso(server, "cso-b", capacity=1)
    session_b = (await _take(cso_b)).session_id

    # The right pair: the offer reaches the booth, with the server's envelope intact.
    await cso_a.send(Offer(session_id=session_a, sdp=SDP))
    relayed = await booth_a.expect(Offer)
    assert relayed.session_id == session_a and relayed.sdp == SDP

    # CSO A signalling into B's session, and booth A into B's: refused, nothing delivered.
    offer = Offer(session_id=session_b, sdp=SDP)
    await cso_a.send(offer)
    err = await cso_a.expect(Error, reply_to=offer.id)
    assert err.code == ErrorCode.NOT_IN_SESSION
    cand = Candidate(session_id=session_b, candidate=None)
    await booth_a.send(cand)
    assert (await booth_a.expect(Error, reply_to=cand.id)).code == ErrorCode.NOT_IN_SESSION
    with pytest.raises(TimeoutError):
        await booth_b.expect(Offer, timeout=0.5)
    await cso_b.send(Offer(session_id="0" * 32, sdp=SDP))
    assert (await cso_b.expect(Error)).code == ErrorCode.NOT_IN_SESSION


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", ErrorCode.MALFORMED_JSON),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE),
        (json.dumps({"v": 1, "type": "teleport"}), ErrorCode.UNKNOWN_TYPE),
        (json.dumps({"v": 1, "type": "accept", "session_id": "x"}), ErrorCode.FORBIDDEN_FOR_ROLE),
        (
            json.dumps({"v": 1, "type": "check_in", "claim": {"kind": "x"}}),
            ErrorCode.INVALID_MESSAGE,
        ),
        ("x" * 200_000, ErrorCode.TOO_LARGE),
        (b"\xff\xfe binary", ErrorCode.MALFORMED_JSON),
    ],
)
async def test_bad_input_gets_a_typed_error_and_the_socket_lives(
    server: LiveServer, raw: str | bytes, code: ErrorCode
) -> None:
    booth = await SignalClient.connect(server.ws_url, Role.BOOTH, await booth_token(server, "b"))
    await booth.send_raw(raw)
    err = await booth.expect(Error)
    assert err.code == code
    assert err.hint  # every error tells the peer what to do next
    ping = Ping()
    await booth.send(ping)
    await booth.expect(Pong, reply_to=ping.id)
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{server.base_url}/healthz")).status_code == 200


async def test_protocol_version_mismatch_is_fatal_and_explained(server: LiveServer) -> None:
    token = await booth_token(server, "old-kiosk")
    booth = await SignalClient.connect(server.ws_url, Role.BOOTH)
    await booth.send_raw({"v": 99, "type": "hello", "token": token})
    err = await booth.expect(Error)
    assert err.code == ErrorCode.UNSUPPORTED_VERSION
    with pytest.raises(ConnectionClosed) as closed:
        await booth.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def test_bad_token_wrong_role_and_foreign_origin_are_refused(server: LiveServer) -> None:
    anon = await SignalClient.connect(server.ws_url, Role.CSO)
    await anon.send(Hello(token="not-a-token"))
    assert (await anon.expect(Error)).code == ErrorCode.AUTH_FAILED
    with pytest.raises(ConnectionClosed):
        await anon.recv(timeout=5)

    # A booth credential may not open the CSO socket.
    kiosk = await SignalClient.connect(server.ws_url, Role.CSO)
    await kiosk.send(Hello(token=await booth_token(server, "b")))
    assert (await kiosk.expect(Error)).code == ErrorCode.FORBIDDEN_FOR_ROLE

    # A page on another site may not open a socket with the user's token.
    token = await user_token(server, "siti")
    with pytest.raises(InvalidStatus) as refused:
        await SignalClient.connect(server.ws_url, Role.CSO, token, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    # The server's own origin is fine.
    ok = await SignalClient.connect(server.ws_url, Role.CSO, token, origin=server.origin)
    assert ok.welcome is not None


async def test_messages_before_hello_are_refused(server: LiveServer) -> None:
    anon = await SignalClient.connect(server.ws_url, Role.BOOTH)
    await anon.send(CheckIn(claim=BookingRef(booking_code="BK-0001")))
    assert (await anon.expect(Error)).code == ErrorCode.UNAUTHENTICATED


async def test_second_cso_takes_over_after_the_grace_period(server: LiveServer) -> None:
    supervisor = await SignalClient.connect(
        server.ws_url, Role.SUPERVISOR, await user_token(server, "boss", role="supervisor")
    )
    assert supervisor.welcome and supervisor.welcome.floor is not None  # state in welcome
    booth = await _booth(server, "b1")
    first = await _cso(server, "first")
    session = (await _take(first)).session_id
    await booth.expect(Assigned, session_id=session)
    second = await _cso(server, "second")

    await first.close()  # gone, and not back within grace (1 s in this test)
    ended = await booth.expect(SessionEnded, timeout=10)
    assert ended.session_id == session and ended.reason == "cso_lost"
    offered = await second.expect(BoothOffered, timeout=10)
    assert offered.booth.booth_id == (booth.welcome.peer_id if booth.welcome else "")
    await second.send(Accept(session_id=offered.session_id))
    await booth.expect(Assigned, session_id=offered.session_id)
    kinds = {e.kind for e in supervisor.seen if isinstance(e, FloorEvent)}
    while "booth_requeued" not in kinds:
        kinds.add((await supervisor.expect(FloorEvent)).kind)
    assert {"cso_lost", "booth_requeued"} <= kinds


async def test_cso_back_within_grace_keeps_its_booths(server: LiveServer) -> None:
    booth = await _booth(server, "b1")
    token = await user_token(server, "flaky")
    cso = await SignalClient.connect(server.ws_url, Role.CSO, token)
    session = (await _take(cso)).session_id
    resume = cso.welcome.resume_token if cso.welcome else None
    await cso.close()
    await asyncio.sleep(0.2)
    back = await SignalClient.connect(server.ws_url, Role.CSO, token, resume=resume)
    # Resume by state sync: the welcome carries the session, nothing is replayed.
    assert back.welcome and back.welcome.resumed and back.welcome.cso
    assert [s.session_id for s in back.welcome.cso.sessions] == [session]
    with pytest.raises(TimeoutError):
        await booth.expect(SessionEnded, timeout=1.5)  # past the 1 s grace: still served


async def test_a_silent_peer_is_dropped_and_a_live_one_kept(tmp_path) -> None:
    settings = server_settings(tmp_path, heartbeat_interval=0.2, heartbeat_timeout=0.6)
    async with running_server(settings) as live:
        silent = await _booth(live, "silent-booth")  # answers nothing from now on
        alive = await SignalClient.connect(
            live.ws_url, Role.BOOTH, await booth_token(live, "alive-booth")
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await silent.conn.recv()  # pings arrive; we never answer
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
        assert loop.time() - started < 3.0
        # The other booth answers pings (SignalClient.recv does) and stays connected.
        deadline = loop.time() + 1.5
        while loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await alive.recv(timeout=0.3)
        await alive.send(Ping())
        await alive.expect(Pong)
