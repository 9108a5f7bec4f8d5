"""Document capture end to end over real sockets and HTTP: the CSO asks a real kiosk
(BoothClient, synthetic document camera, the real pipeline and outbox) for a KTP; the
kiosk retries once with advice (its synthetic participant's hand shakes at first), the
CSO sees every stage, and the stored picture is pushed to the console."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from signaling.messages import (
    Accept,
    BoothOffered,
    CaptureStatus,
    DocumentAdded,
    RequestCapture,
    Role,
)
from signaling.session import SessionState
from tests.support.accounts import add_user, login
from tests.support.booths import running_booths
from tests.support.live_server import running_server, server_settings
from tests.support.ws_client import SignalClient


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.05)


async def test_cso_requests_a_capture_and_the_picture_arrives(tmp_path) -> None:
    async with (
        running_server(server_settings(tmp_path / "server")) as server,
        running_booths(server, 1, outbox_dir=tmp_path / "outbox") as (booth,),
    ):
        await add_user(server, "siti")
        tokens = await login(server, "siti")
        cso = await SignalClient.connect(server.ws_url, Role.CSO, tokens["access_token"])
        offered = await cso.expect(BoothOffered, timeout=20)
        await cso.send(Accept(session_id=offered.session_id))
        await until(lambda: booth.state is SessionState.CONNECTING)

        ask = RequestCapture(session_id=offered.session_id, capture_id="cap-ktp", kind="ktp")
        await cso.send(ask)
        stages = []
        while True:
            status = await cso.expect(CaptureStatus, timeout=30, capture_id="cap-ktp")
            stages.append(status)
            if status.stage in ("done", "failed"):
                break
        assert [s.stage for s in stages] == ["capturing", "retrying", "uploading", "done"]
        assert stages[1].advice == "hold_still"
        assert stages[-1].sharpness and stages[-1].glare is not None
        added = await cso.expect(DocumentAdded, timeout=10)
        assert added.document_id == stages[-1].document_id and added.kind == "ktp"
        # The picture is the rectified card (ID-1 aspect), readable by the serving CSO.
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            got = await http.get(
                f"/api/documents/{added.document_id}",
                headers={"Authorization": f"Bearer {tokens['access_token']}"},
            )
        assert got.status_code == 200 and got.content[:2] == b"\xff\xd8"
        assert added.width and added.height
        assert abs(added.width / added.height - 85.6 / 54) < 0.05
        assert list((tmp_path / "outbox").glob("*.json")) == []  # nothing left waiting
