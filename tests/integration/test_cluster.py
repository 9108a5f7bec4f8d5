"""Loket as a cluster: several real `loket serve` processes, one real redis-server, one real
PostgreSQL. Processes are killed with SIGKILL and Redis is restarted under live traffic.

Every socket here is a real websocket to a real process; the floor's leader is whichever
process holds the lease, found from Redis, never assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections import Counter

import httpx
import pytest

from booth_client.client import BoothClient
from booth_client.config import BoothConfig
from server.adapters.sql import migrate
from server.principal import AccountRole
from signaling.messages import (
    Accept,
    Assigned,
    BoothAssigned,
    BoothOffered,
    CheckIn,
    ClaimType,
    EndSession,
    FloorSnapshot,
    Queued,
    Role,
    WalkInRef,
)
from signaling.session import SessionState
from tests.support.claims import valid_nik
from tests.support.cluster import (
    Cluster,
    Node,
    booth_token,
    connect,
    running_cluster,
    user_token,
)
from tests.support.live_server import server_settings
from tests.support.postgres import create_database
from tests.support.ws_client import SignalClient

LEASE = 1.5
PRESENCE = 1.5
GRACE = 3.0


@pytest.fixture
async def cluster_settings(tmp_path, postgres, redis_server):  # type: ignore[no-untyped-def]
    settings = server_settings(
        tmp_path / "data",
        database_url=await create_database(postgres),
        redis_url=redis_server.url,
        redis_prefix=f"c{uuid.uuid4().hex[:10]}",
        leader_lease=LEASE,
        presence_ttl=PRESENCE,
        snapshot_interval=0.5,
        grace_period=GRACE,
        reservation_timeout=10.0,
    )
    await migrate.upgrade(settings)
    return settings


def _walk_in(serial: int) -> CheckIn:
    return CheckIn(
        claim=WalkInRef(
            nik=valid_nik(serial), kpj=f"{serial:011d}", claim_type=ClaimType.RESIGNATION
        )
    )


async def _booths(cluster: Cluster, node: Node, count: int, prefix: str) -> list[SignalClient]:
    credentials = await cluster.add_booths(count, prefix)
    return [
        await connect(node, Role.BOOTH, await booth_token(node, credential))
        for credential in credentials
    ]


async def _cso(cluster: Cluster, node: Node, username: str, capacity: int) -> SignalClient:
    await cluster.add_user(username, AccountRole.CSO, capacity)
    return await connect(node, Role.CSO, await user_token(node, username))


async def _take_all(cso: SignalClient, assigned: list[str], stop: asyncio.Event) -> None:
    """Accept every offer; note each booth assigned."""
    while not stop.is_set():
        try:
            offered = await cso.expect(BoothOffered, timeout=0.5)
        except TimeoutError:
            continue
        await cso.send(Accept(session_id=offered.session_id))
        done = await cso.expect(BoothAssigned, timeout=15, session_id=offered.session_id)
        assigned.append(done.booth.booth_id)


async def _until(condition, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# --- the leader dies -------------------------------------------------------------------------


async def test_sigkill_the_leader_mid_burst_loses_no_booth_and_assigns_none_twice(
    cluster_settings, redis_server, tmp_path
) -> None:
    runs = int(os.environ.get("LOKET_CLUSTER_RUNS", "3"))
    rng = random.Random(int(os.environ.get("LOKET_CLUSTER_SEED", str(time.time_ns()))))
    takeovers: list[float] = []
    async with running_cluster(cluster_settings, redis_server, tmp_path, ("a", "b", "c")) as c:
        for run in range(runs):
            leader = await c.leader()
            label, dead = c.node_named(leader)
            a, b = [n for lb, n in c.nodes.items() if lb != label]
            booths = await _booths(c, a, 5, f"r{run}a") + await _booths(c, b, 5, f"r{run}b")
            ids = {x.welcome.peer_id for x in booths if x.welcome}
            csos = [await _cso(c, a, f"ana{run}", 6), await _cso(c, b, f"budi{run}", 6)]
            assigned: list[str] = []
            stop = asyncio.Event()
            takers = [asyncio.create_task(_take_all(cso, assigned, stop)) for cso in csos]
            order = list(enumerate(booths))
            rng.shuffle(order)
            kill_after = rng.randrange(len(order) + 1)
            killed_at = 0.0
            for n, (serial, booth) in enumerate(order):
                if n == kill_after:
                    dead.kill()
                    killed_at = time.monotonic()
                await booth.send(_walk_in(run * 100 + serial + 1))
                await asyncio.sleep(rng.uniform(0, 0.05))
            if not killed_at:
                dead.kill()
                killed_at = time.monotonic()
            while (await c.leader()) == leader:
                await asyncio.sleep(0.02)
            takeovers.append(time.monotonic() - killed_at)
            await _until(
                lambda a=assigned, i=ids: set(a) == i, 30, f"all of {sorted(ids)} assigned"
            )
            await asyncio.sleep(1.0)  # any second assignment would show up by now
            stop.set()
            await asyncio.gather(*takers)
            counts = Counter(assigned)
            assert counts == Counter(ids), f"run {run}: assigned {counts}"
            for client in [*booths, *csos]:
                await client.close()
            await c.add_node(label)  # back to three processes for the next run
    # Takeover within the lease (plus one campaign period).
    assert max(takeovers) < LEASE + LEASE / 3 + 1.0, takeovers
    print(f"\ntakeover after SIGKILL: {[round(t, 2) for t in takeovers]} s (lease {LEASE} s)")


# --- a CSO's process dies -------------------------------------------------------------------


async def test_sigkill_the_csos_process_the_console_resumes_on_another(
    cluster_settings, redis_server, tmp_path
) -> None:
    async with running_cluster(cluster_settings, redis_server, tmp_path, ("a", "b", "c")) as c:
        booths = await _booths(c, c.nodes["a"], 3, "bt")
        for serial, booth in enumerate(booths):
            await booth.send(_walk_in(serial + 1))
        cso = await _cso(c, c.nodes["b"], "siti", 6)
        sessions = set()
        for _ in booths:
            offered = await cso.expect(BoothOffered)
            await cso.send(Accept(session_id=offered.session_id))
            sessions.add((await cso.expect(BoothAssigned)).session_id)
        assert cso.welcome is not None
        resume = cso.welcome.resume_token
        c.nodes["b"].kill()
        # The console reconnects through another process (a load balancer would pick one).
        token = await user_token(c.nodes["c"], "siti")
        again = await connect(c.nodes["c"], Role.CSO, token, resume=resume)
        assert again.welcome is not None and again.welcome.cso is not None
        assert {s.session_id for s in again.welcome.cso.sessions} == sessions
        # Long after the dead process's presence lapsed, the sessions are still there.
        await asyncio.sleep(PRESENCE * 2 + GRACE)
        again2 = await connect(c.nodes["a"], Role.CSO, await user_token(c.nodes["a"], "siti"),
                               resume=again.welcome.resume_token)  # fmt: skip
        assert again2.welcome is not None and again2.welcome.cso is not None
        assert {s.session_id for s in again2.welcome.cso.sessions} == sessions


async def test_a_cso_whose_process_died_for_good_has_its_booths_requeued_first(
    cluster_settings, redis_server, tmp_path
) -> None:
    async with running_cluster(cluster_settings, redis_server, tmp_path, ("a", "b", "c")) as c:
        first = await _booths(c, c.nodes["a"], 2, "early")
        for serial, booth in enumerate(first):
            await booth.send(_walk_in(serial + 1))
        cso = await _cso(c, c.nodes["b"], "siti", 2)
        for _ in first:
            offered = await cso.expect(BoothOffered)
            await cso.send(Accept(session_id=offered.session_id))
            await cso.expect(BoothAssigned)
        for booth in first:
            await booth.expect(Assigned)  # reads past what it was told before its call
            booth.seen.clear()
        (late,) = await _booths(c, c.nodes["c"], 1, "late")
        await late.send(_walk_in(50))
        await late.expect(Queued, position=0)
        c.nodes["b"].kill()  # and the CSO never comes back (b may be the leader too)
        # Presence lapses, then the grace period: both early booths go back to the front.
        requeued_within = LEASE + PRESENCE * 3 + GRACE + 5
        for booth in first:
            await booth.expect(Queued, timeout=requeued_within)
        await late.expect(Queued, position=2, timeout=requeued_within)
        relief = await _cso(c, c.nodes["c"], "wati", 1)
        offered = await relief.expect(BoothOffered, timeout=10)
        assert offered.booth.booth_id in {"early-0", "early-1"}


# --- Redis restarts ---------------------------------------------------------------------------


async def test_redis_restart_mid_session_keeps_outcomes_and_queue_order(
    cluster_settings, redis_server, tmp_path
) -> None:
    async with running_cluster(cluster_settings, redis_server, tmp_path, ("a", "b")) as c:
        a, b = c.nodes["a"], c.nodes["b"]
        (served,) = await _booths(c, a, 1, "served")
        await served.send(_walk_in(1))
        cso = await _cso(c, a, "siti", 1)
        offered = await cso.expect(BoothOffered)
        await cso.send(Accept(session_id=offered.session_id))
        assigned = await cso.expect(BoothAssigned)
        claim_id = assigned.claim.claim_id
        waiting = await _booths(c, b, 4, "wait")
        for serial, booth in enumerate(waiting):
            await booth.send(_walk_in(10 + serial))
            await booth.expect(Queued, position=serial)
        bearer = {"Authorization": f"Bearer {await user_token(a, 'siti')}"}
        outcome = {"decision": "rejected", "reason_codes": ["claim_not_eligible"], "note": ""}

        await asyncio.to_thread(redis_server.restart, 1.0)

        async with httpx.AsyncClient(base_url=b.base_url, headers=bearer) as http:
            # Outcomes live in PostgreSQL: recorded (through another process) while the
            # floor's leader is still finding its feet, acknowledged once.
            for _ in range(100):
                reply = await http.post(
                    f"/api/claims/{claim_id}/outcome",
                    json=outcome,
                    headers={"Idempotency-Key": "restart-1"},
                )
                if reply.status_code == 201:
                    break
                await asyncio.sleep(0.1)
            assert reply.status_code == 201, reply.text
            again = await http.post(
                f"/api/claims/{claim_id}/outcome",
                json=outcome,
                headers={"Idempotency-Key": "restart-1"},
            )
            assert again.json()["outcome_id"] == reply.json()["outcome_id"]
        # The floor goes on: the session ends and the waiting booths come in their order.
        await cso.send(EndSession(session_id=assigned.session_id))
        order = []
        for _ in waiting:
            offered = await cso.expect(BoothOffered, timeout=20)
            await cso.send(Accept(session_id=offered.session_id))
            done = await cso.expect(BoothAssigned, timeout=10)
            order.append(done.booth.booth_id)
            await cso.send(EndSession(session_id=done.session_id))
        assert order == [f"wait-{i}" for i in range(4)]
        # And a supervisor on either process sees the floor.
        await c.add_user("sri", AccountRole.SUPERVISOR)
        sup = await connect(b, Role.SUPERVISOR, await user_token(b, "sri"))
        assert sup.welcome is not None and sup.welcome.floor is not None
        assert any(o.cso_id == "siti" for o in sup.welcome.floor.csos)
        # Live updates reach it too: the next booth is offered to the now free officer.
        (later,) = await _booths(c, a, 1, "after")
        await later.send(_walk_in(99))
        await cso.expect(BoothOffered, timeout=10)
        snapshot = await sup.expect(FloorSnapshot, timeout=10)
        assert any(o.cso_id == "siti" for o in snapshot.csos)


async def test_redis_data_lost_the_floor_is_rebuilt_from_the_kiosks_and_postgresql(
    cluster_settings, redis_server, tmp_path
) -> None:
    """Redis comes back empty (FLUSHALL: what a lost volume looks like to the servers).
    The servers close their sockets, kiosks reconnect and check in again, and their
    claims are found again in PostgreSQL."""
    async with running_cluster(cluster_settings, redis_server, tmp_path, ("a", "b")) as c:
        a, b = c.nodes["a"], c.nodes["b"]
        credentials = await c.add_booths(3, "kiosk")
        kiosks = [
            BoothClient(
                BoothConfig(
                    server_url=a.base_url if i % 2 else b.base_url,
                    credential=credential,  # type: ignore[arg-type]
                    walk_in_nik=valid_nik(70 + i),
                    outbox_dir=tmp_path / f"outbox-{i}",
                ),
                label=f"kiosk-{i}",
            )
            for i, credential in enumerate(credentials)
        ]
        tasks = [asyncio.create_task(k.run()) for k in kiosks]
        try:
            await _until(lambda: all(k.state is SessionState.QUEUED for k in kiosks), 30, "queued")
            claims = [k.claim_id for k in kiosks]
            connections = [k.connections for k in kiosks]
            await c.redis.flushall()
            await _until(
                lambda: all(
                    k.connections > n and k.state is SessionState.QUEUED
                    for k, n in zip(kiosks, connections, strict=True)
                ),
                40,
                "every kiosk back in the queue",
            )
            assert [k.claim_id for k in kiosks] == claims
            cso = await _cso(c, a, "siti", 3)
            offered = set()
            for _ in kiosks:
                offer = await cso.expect(BoothOffered, timeout=15)
                offered.add(offer.booth.booth_id)
            assert offered == {"kiosk-0", "kiosk-1", "kiosk-2"}
        finally:
            for k in kiosks:
                await k.stop()
            for task in tasks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 10)
