"""Three `loket serve` processes, one floor: booths on the first, the CSO on the second, a
supervisor on the third. Real aiortc media flows booth -> CSO while all signaling crosses
processes through Redis (run inside the private network namespace)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from booth_client.client import BoothClient
from booth_client.config import BoothConfig
from booth_client.cso_standin import CsoStandIn
from server.adapters.sql import migrate
from server.principal import AccountRole
from signaling.messages import FloorSnapshot, Role
from signaling.session import SessionState
from tests.support.booths import LOOPBACK
from tests.support.cluster import PASSWORD, connect, running_cluster, user_token
from tests.support.live_server import server_settings
from tests.support.postgres import create_database

pytestmark = pytest.mark.media


async def test_booths_on_one_process_cso_on_another_supervisor_on_a_third(
    tmp_path, postgres, redis_server
) -> None:
    settings = server_settings(
        tmp_path / "data",
        database_url=await create_database(postgres),
        redis_url=redis_server.url,
        redis_prefix=f"m{uuid.uuid4().hex[:10]}",
        leader_lease=2.0,
        presence_ttl=2.0,
    )
    await migrate.upgrade(settings)
    async with running_cluster(settings, redis_server, tmp_path, ("a", "b", "c")) as c:
        a, b, s = c.nodes["a"], c.nodes["b"], c.nodes["c"]
        credentials = await c.add_booths(3, "kiosk")
        await c.add_user("siti", AccountRole.CSO, 6)
        await c.add_user("sri", AccountRole.SUPERVISOR)
        supervisor = await connect(s, Role.SUPERVISOR, await user_token(s, "sri"))
        booths = [
            BoothClient(
                BoothConfig(
                    server_url=a.base_url,
                    credential=credential,  # type: ignore[arg-type]
                    ice_host_addresses=LOOPBACK,
                    width=320,
                    height=240,
                    outbox_dir=tmp_path / f"outbox-{i}",
                ),
                label=f"kiosk-{i}",
            )
            for i, credential in enumerate(credentials)
        ]
        cso = CsoStandIn(b.base_url, "siti", PASSWORD)
        tasks = [asyncio.create_task(x.run()) for x in (*booths, cso)]
        try:
            await cso.wait_connected(3, within=60)
            before = {x.session_id: x.video_frames for x in cso.stats()}
            await asyncio.sleep(2.0)
            for stats in cso.stats():
                assert stats.video_frames > before[stats.session_id] + 5, stats
                assert stats.audio_frames > 0, stats
            for booth in booths:
                assert booth.state in (SessionState.ON_HOLD, SessionState.FOCUSED)
            # The supervisor, on the third process, sees the officer with three calls.
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                snap = await supervisor.expect(FloorSnapshot, timeout=15)
                officers = {o.cso_id: o for o in snap.csos}
                if "siti" in officers and len(officers["siti"].sessions) == 3:
                    break
                assert asyncio.get_running_loop().time() < deadline, snap
        finally:
            for x in (*booths, cso):
                await x.stop()
            for task in tasks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 10)
