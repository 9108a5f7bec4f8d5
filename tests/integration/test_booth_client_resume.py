"""A real BoothClient against a real server over real sockets (signaling only, no media):
it rebuilds from `welcome` after losing its socket, matches replies to its requests, keeps
its socket authenticated with `reauth`, and reacts to the server's close codes.

The kiosk's socket is cut the way a network loss cuts it (the TCP transport aborted, no
close frame); the kiosk reconnects with its resume token and the server's `welcome.booth`
is all it has to go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from booth_client.client import BoothAuthError, BoothClient
from booth_client.kiosk import CloseKind
from signaling.messages import (
    Accept,
    BookingRef,
    BoothAssigned,
    BoothOffered,
    CheckIn,
    EndSession,
    Error,
    FocusBooth,
    Role,
    SessionUpdate,
    SetAvailability,
)
from signaling.session import SessionState
from tests.support.accounts import add_user, enrol_booth, login
from tests.support.booths import drop_signaling, running_booths
from tests.support.claims import seed_claim
from tests.support.live_server import running_server, server_settings
from tests.support.ws_client import SignalClient

S = SessionState
FAST = {"reconnect_min": 0.1, "reconnect_max": 0.5}


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.02)


async def cso_socket(server, username: str, *, capacity: int = 6) -> SignalClient:  # type: ignore[no-untyped-def]
    await add_user(server, username, capacity=capacity)
    token = (await login(server, username))["access_token"]
    return await SignalClient.connect(server.ws_url, Role.CSO, token)


async def test_kiosk_dropped_while_queued_resumes_at_its_place(tmp_path) -> None:
    async with (
        running_server(server_settings(tmp_path)) as server,
        running_booths(server, 3, **FAST) as booths,
    ):
        await until(lambda: all(b.state is S.QUEUED for b in booths))
        # No CSO on duty: the three wait, in check-in order.
        await until(lambda: sorted(b.position for b in booths if b.position is not None)
                    == [0, 1, 2])  # fmt: skip
        middle = next(b for b in booths if b.position == 1)
        session_before = middle.connections
        drop_signaling(middle)
        await until(lambda: middle.state is S.RECONNECTING)
        await until(lambda: middle.connections > session_before and middle.state is S.QUEUED)
        # Rebuilt from welcome (and the place the server tells right after it): the same
        # place, not the back of the queue.
        await until(lambda: middle.position is not None)
        assert middle.position == 1
        assert middle.last_close is not None and middle.last_close.kind is CloseKind.RETRY
        assert middle.last_refusal is None
        assert server.app.state.floor.waiting == 3


async def test_kiosk_dropped_mid_call_keeps_its_session_and_focus(tmp_path) -> None:
    async with (
        running_server(server_settings(tmp_path)) as server,
        running_booths(server, 1, **FAST) as [booth],
    ):
        cso = await cso_socket(server, "siti", capacity=1)
        offered = await cso.expect(BoothOffered)
        await cso.send(Accept(session_id=offered.session_id))
        assigned = await cso.expect(BoothAssigned)
        await until(lambda: booth.state is S.CONNECTING)
        assert booth.session_id == assigned.session_id
        claim_id = booth.claim_id
        await cso.send(FocusBooth(session_id=assigned.session_id))
        await until(lambda: booth.focused)
        before = booth.connections

        drop_signaling(booth)
        away = await cso.expect(SessionUpdate, booth_connected=False)
        assert away.state is S.RECONNECTING
        back = await cso.expect(SessionUpdate, booth_connected=True)
        assert back.session_id == assigned.session_id
        await until(lambda: booth.connections > before and booth.state is not S.RECONNECTING)
        # Rebuilt from welcome: the same call, still focused, nothing renegotiated.
        assert booth.state is S.CONNECTING
        assert booth.session_id == assigned.session_id
        assert booth.claim_id == claim_id
        assert booth.focused
        assert booth.view.cso_name == "Siti"
        await cso.close()


async def test_session_ended_while_away_is_finished_and_the_kiosk_checks_in_again(
    tmp_path,
) -> None:
    async with (
        running_server(server_settings(tmp_path)) as server,
        running_booths(server, 1, reconnect_min=2.0, reconnect_max=2.0) as [booth],
    ):
        cso = await cso_socket(server, "budi", capacity=1)
        offered = await cso.expect(BoothOffered)
        await cso.send(Accept(session_id=offered.session_id))
        await until(lambda: booth.state is S.CONNECTING)
        first = booth.session_id
        await cso.send(SetAvailability(available=False))  # no second booth for this CSO
        drop_signaling(booth)
        await cso.expect(SessionUpdate, booth_connected=False)
        assert first is not None
        await cso.send(EndSession(session_id=first))  # ended while the kiosk is away
        # Back, the kiosk learns it from welcome.last_ended and checks the next one in.
        await until(lambda: booth.state is S.QUEUED, within=15)
        assert booth.session_id is None
        assert booth.last_refusal is None
        await cso.close()


async def test_refused_check_in_leaves_the_kiosk_idle_with_the_refusal(tmp_path) -> None:
    # No grace period: a booth that goes away gives its visit up at once.
    async with running_server(server_settings(tmp_path, grace_period=0)) as server:
        await seed_claim(server, "BK-2001")
        # The participant is already checked in at another booth (a plain socket here).
        _, other = await enrol_booth(server, "other booth")
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            res = await http.post("/api/auth/booth", json={"credential": other})
            token = res.json()["access_token"]
        elsewhere = await SignalClient.connect(server.ws_url, Role.BOOTH, token)
        await elsewhere.send(CheckIn(claim=BookingRef(booking_code="BK-2001")))
        await until(lambda: server.app.state.floor.waiting == 1)

        async with running_booths(server, 1, booking_code="BK-2001", **FAST) as [booth]:
            await until(lambda: booth.last_refusal is not None)
            refusal = booth.last_refusal
            assert refusal is not None
            assert (refusal.request, refusal.code) == ("check_in", "claim_refused")
            assert "already checked in" in refusal.message
            await asyncio.sleep(0.5)  # nothing turns it into a queued booth afterwards
            assert booth.state is S.IDLE and booth.position is None
            assert not booth.checking_in
            assert server.app.state.floor.waiting == 1

            # The other booth lets go: the participant may check in here now.
            await elsewhere.close()
            await until(lambda: server.app.state.floor.waiting == 0)
            await booth.check_in()
            await until(lambda: booth.state is S.QUEUED)
            assert booth.position == 0


async def test_unknown_booking_is_refused_and_never_queued(tmp_path) -> None:
    async with (
        running_server(server_settings(tmp_path)) as server,
        running_booths(server, 1, booking_code="BK-NOPE", **FAST) as [booth],
    ):
        await until(lambda: booth.last_refusal is not None)
        assert booth.last_refusal is not None
        assert booth.last_refusal.code == "claim_not_found"
        assert booth.state is S.IDLE
        # The refusal is final until the participant tries again: no retry loop.
        await asyncio.sleep(0.5)
        assert len(booth.refusals) == 1


async def test_kiosk_keeps_its_socket_past_token_expiry_with_reauth(tmp_path) -> None:
    async with running_server(server_settings(tmp_path, access_token_ttl=30)) as server:
        # Short-lived tokens so that several expire during the test (settings allow >= 30).
        server.app.state.auth._issuer._access_ttl = 4
        async with running_booths(server, 1, **FAST) as [booth]:
            await until(lambda: booth.state is S.QUEUED)
            await asyncio.sleep(8)  # well past two access-token lifetimes
            assert booth.connections == 1, booth.last_close  # never closed with 4401
            assert booth.reauths >= 2
            assert booth.state is S.QUEUED
            assert booth.refusals == []


async def test_kiosk_backs_off_when_another_process_takes_its_connection(tmp_path) -> None:
    async with (
        running_server(server_settings(tmp_path)) as server,
        running_booths(server, 1, replaced_backoff=30.0, **FAST) as [booth],
    ):
        await until(lambda: booth.state is S.QUEUED)
        credential = booth.config.credential.get_secret_value()
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            res = await http.post("/api/auth/booth", json={"credential": credential})
            token = res.json()["access_token"]
        intruder = await SignalClient.connect(server.ws_url, Role.BOOTH, token)
        await until(lambda: booth.last_close is not None)
        assert booth.last_close is not None
        assert booth.last_close.kind is CloseKind.REPLACED
        await asyncio.sleep(1.0)
        assert booth.connections == 1  # not fighting back
        # The intruder keeps the connection: the server has not closed it.
        await intruder.send(CheckIn(claim=BookingRef(booking_code="BK-0000")))
        reply = await intruder.expect(Error)
        assert reply.code == "claim_not_found"
        await intruder.close()


async def test_revoked_booth_gives_up_with_booth_auth_error(tmp_path) -> None:
    settings = server_settings(tmp_path, account_check_interval=0.3)
    async with running_server(settings) as server:
        booth_id, credential = await enrol_booth(server, "booth-x")
        from booth_client.config import BoothConfig

        client = BoothClient(
            BoothConfig(server_url=server.base_url, credential=credential, **FAST)  # type: ignore[arg-type]
        )
        task = asyncio.create_task(client.run())
        try:
            await until(lambda: client.state is S.QUEUED)
            await server.app.state.auth.revoke_booth(booth_id)
            with pytest.raises(BoothAuthError, match="revoked"):
                await asyncio.wait_for(task, 10)
        finally:
            await client.stop()
            task.cancel()
