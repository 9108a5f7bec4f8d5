"""Front of house on the Redis floor: the desk, the booth, the display and the officer on
three different `loket serve` processes against real redis-server and PostgreSQL. Tickets
are issued and called through the leader (events on the wire, the lobby in the snapshot),
the display hears each call on its branch's topic, the leader is SIGKILLed mid-day and the
next one goes on with the same lobby (the next number, the same ticket called), and every
step is in PostgreSQL's `ticket_events` exactly once (through the leader's outbox)."""

from __future__ import annotations

import asyncio

import websockets
from sqlalchemy import func, select

from server.adapters.sql.engine import make_engine
from server.adapters.sql.front import Displays, ticket_events
from server.principal import AccountRole
from signaling.codec import decode_outbound, encode
from signaling.messages import (
    Ack,
    BoothOffered,
    CheckIn,
    ClaimType,
    DisplayCall,
    Hello,
    IssueTicket,
    Leave,
    Ping,
    Role,
    TicketCalled,
    TicketIssued,
    TicketRef,
    WalkInRef,
)
from tests.integration.test_cluster import cluster_settings  # noqa: F401  (fixture)
from tests.support.claims import valid_nik
from tests.support.cluster import booth_token, connect, running_cluster, user_token


async def _issue(desk, serial: int) -> str:  # type: ignore[no-untyped-def]
    ask = IssueTicket(claim=WalkInRef(nik=valid_nik(serial), kpj=f"{serial:011d}",
                                      claim_type=ClaimType.RETIREMENT))  # fmt: skip
    await desk.send(ask)
    return (await desk.expect(TicketIssued, timeout=20, reply_to=ask.id)).ticket.number


async def test_the_lobby_on_a_cluster_survives_its_leader(
    cluster_settings,  # noqa: F811  (the fixture imported above)
    redis_server,
    tmp_path,
) -> None:
    async with running_cluster(cluster_settings, redis_server, tmp_path, ("a", "b", "c")) as c:
        await c.add_user("desk", AccountRole.SUPERVISOR)
        await c.add_user("siti", AccountRole.CSO)
        (credential,) = await c.add_booths(1, "bilik")
        engine = make_engine(cluster_settings)
        displays = Displays(engine)
        key = await displays.enrol("jkt01", "Ruang tunggu")
        desk = await connect(c.nodes["a"], Role.SUPERVISOR, await user_token(c.nodes["a"], "desk"))
        cso = await connect(c.nodes["c"], Role.CSO, await user_token(c.nodes["c"], "siti"))
        display = await websockets.connect(f"{c.nodes['c'].ws_url}/ws/display")
        await display.send(encode(Hello(token=key)))
        heard: list[str] = []

        async def listen() -> None:
            async for raw in display:
                message = decode_outbound(raw, Role.DISPLAY)
                if isinstance(message, DisplayCall):
                    heard.append(message.call.number)

        async def ping() -> None:
            while True:
                await asyncio.sleep(3)
                await display.send(encode(Ping()))

        tasks = [asyncio.create_task(listen()), asyncio.create_task(ping())]
        try:
            first, second = await _issue(desk, 1), await _issue(desk, 2)
            assert (first, second) == ("B-001", "B-002")
            booth = await connect(
                c.nodes["b"], Role.BOOTH, await booth_token(c.nodes["b"], credential)
            )
            called = await booth.expect(TicketCalled, timeout=20)
            assert called.ticket.number == first
            confirm = CheckIn(claim=TicketRef(number=first))
            await booth.send(confirm)
            await booth.expect(Ack, timeout=10, reply_to=confirm.id)
            offered = await cso.expect(BoothOffered, timeout=20)
            assert offered.claim.nik_masked and offered.claim.nik_masked.endswith(valid_nik(1)[-4:])
            # The leader dies mid-day; the next one has the same lobby.
            leader = await c.leader()
            label, node = c.node_named(leader)
            node.kill()
            await booth.send(Leave()) if label != "b" else None
            survivor = next(n for lbl, n in c.nodes.items() if lbl not in (label,))
            for _ in range(200):
                if await c.leader() != leader:
                    break
                await asyncio.sleep(0.1)
            if label == "a":  # the desk's process died: it logs in again elsewhere
                desk = await connect(survivor, Role.SUPERVISOR, await user_token(survivor, "desk"))
            third = await _issue(desk, 3)
            assert third == "B-003"  # numbering went on from the snapshot and the log
            if label != "b":
                again = await booth.expect(TicketCalled, timeout=20)
                assert again.ticket.number == second
            for _ in range(100):
                if first in heard and (label == "c" or second in heard):
                    break
                await asyncio.sleep(0.1)
            assert first in heard
        finally:
            for task in tasks:
                task.cancel()
            await display.close()
        # Every step once, in PostgreSQL, through the leaders' outboxes.
        for _ in range(100):
            async with engine.connect() as conn:
                rows = (await conn.execute(
                    select(ticket_events.c.number, ticket_events.c.kind, func.count())
                    .group_by(ticket_events.c.number, ticket_events.c.kind)
                )).all()  # fmt: skip
            kinds = {(n, k): count for n, k, count in rows}
            if kinds.get((first, "served")) and kinds.get((third, "arrived")):
                break
            await asyncio.sleep(0.1)
        assert all(count == 1 for count in kinds.values()), kinds
        assert {(first, "arrived"), (first, "called"), (first, "served"),
                (second, "arrived"), (third, "arrived")} <= set(kinds)  # fmt: skip
        await displays.close()
        await engine.dispose()
