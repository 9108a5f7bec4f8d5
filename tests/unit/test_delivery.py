"""The outbox's delivery rules (booth_client.delivery) against an in-memory server: what
is retried, what refreshes the token, what is given up on and reported, one pass at a
time, and the timer that needs no new capture to try again."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from booth_client import delivery
from booth_client.delivery import (
    RETRY_CAP_S,
    Delivery,
    DeliveryEvent,
    Drainer,
    EventKind,
    Verdict,
    backoff,
    judge,
)
from booth_client.outbox import ItemState, Outbox
from tests.support.outbox_server import FakeServer


def _drainer(tmp_path: Path, server: FakeServer) -> tuple[Outbox, Drainer, list[DeliveryEvent]]:
    events: list[DeliveryEvent] = []

    async def on_event(event: DeliveryEvent) -> None:
        events.append(event)

    outbox = Outbox(tmp_path / "outbox")
    return outbox, Drainer(outbox, server, on_event=on_event), events


def test_judgement_of_every_answer() -> None:
    cases = {201: Verdict.DELIVERED, 200: Verdict.DELIVERED, 401: Verdict.REAUTH,
             408: Verdict.RETRY, 425: Verdict.RETRY, 429: Verdict.RETRY, 500: Verdict.RETRY,
             503: Verdict.RETRY, 507: Verdict.RETRY, 400: Verdict.REFUSED, 403: Verdict.REFUSED,
             404: Verdict.REFUSED, 409: Verdict.REFUSED, 413: Verdict.REFUSED,
             415: Verdict.REFUSED, 422: Verdict.REFUSED}  # fmt: skip
    assert {status: judge(Delivery(status, {})) for status in cases} == cases


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    lows = [backoff(n, 0.0) for n in range(1, 12)]
    highs = [backoff(n, 0.999) for n in range(1, 12)]
    assert lows[:3] == [0.5, 1.0, 2.0] and max(highs) <= RETRY_CAP_S
    assert all(a <= b for a, b in itertools.pairwise(lows))


async def test_a_lost_network_keeps_the_picture_and_the_timer_sends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "RETRY_BASE_S", 0.02)
    server = FakeServer(script=["network", 503, "network"])
    outbox, drainer, events = _drainer(tmp_path, server)
    item = outbox.put("claim-1", "ktp", b"\xff\xd8x", capture_id="c1", session_id="s1")
    result = await drainer.drain()
    assert result.remaining == 1 and "reached" in (result.stopped or "")
    assert [e.kind for e in events] == [EventKind.QUEUED] and events[0].retry_in
    drainer.start()  # no new capture needed from here on
    async with asyncio.timeout(5):
        while not any(e.kind is EventKind.DELIVERED for e in events):
            await asyncio.sleep(0.01)
    await drainer.stop()
    assert server.documents == {item.idempotency_key: "c1"} and server.uploads == 1
    assert events[-1].kind is EventKind.DELIVERED and events[-1].document_id == "doc-c1"
    assert drainer.failures == 0 and drainer.retry_in is None


async def test_a_refused_token_is_refreshed_and_the_upload_goes_on(tmp_path: Path) -> None:
    server = FakeServer(script=[401])
    outbox, drainer, _ = _drainer(tmp_path, server)
    outbox.put("claim-1", "ktp", b"\xff\xd8x", capture_id="c1", session_id="s1")
    result = await drainer.drain()
    assert (result.delivered, result.remaining) == (1, 0) and server.token_fresh


async def test_a_picture_refused_for_good_is_reported_then_forgotten(tmp_path: Path) -> None:
    server = FakeServer(script=[422])
    outbox, drainer, events = _drainer(tmp_path, server)
    item = outbox.put("claim-1", "ktp", b"\xff\xd8x", capture_id="c1", session_id="s1")
    original = server.report

    async def unreachable(_item):  # type: ignore[no-untyped-def]
        raise OSError("down")

    server.report = unreachable  # type: ignore[method-assign]
    await drainer.drain()
    (kept,) = outbox.pending()  # refused, but the server was not told yet: kept
    assert kept.state is ItemState.REFUSED and kept.refusal["reason"] == "http_422"
    server.report = original  # type: ignore[method-assign]
    await drainer.drain()
    assert outbox.pending() == [] and server.uploads == 0  # not uploaded again
    assert server.reports == {f"undeliverable-{item.item_id}": "c1"}
    assert outbox.tombstones()[0]["reported"] is True
    assert events[-1].kind is EventKind.UNDELIVERABLE


async def test_a_capture_cut_short_is_reported_not_left_waiting(tmp_path: Path) -> None:
    server = FakeServer()
    earlier = Outbox(tmp_path / "outbox").reserve("claim-1", "ktp", capture_id="c-cut", owner="x")
    outbox, drainer, _ = _drainer(tmp_path, server)  # the kiosk restarted
    # This process is taking that picture right now:
    taking = outbox.reserve("claim-1", "kk", capture_id="c-now", owner=drainer.owner)
    await drainer.drain()
    assert [i.item_id for i in outbox.pending()] == [taking.item_id]
    assert server.reports == {f"undeliverable-{earlier.item_id}": "c-cut"}


async def test_a_picture_without_a_grant_gets_one_before_its_upload(tmp_path: Path) -> None:
    server = FakeServer()
    outbox, drainer, _ = _drainer(tmp_path, server)
    outbox.put("claim-1", "ktp", b"\xff\xd8x", capture_id="c1", session_id="s1")
    await drainer.drain()
    assert server.seen_grants == ["lcg1.c1.mac"]


async def test_concurrent_captures_never_upload_one_item_twice(tmp_path: Path) -> None:
    server = FakeServer()
    outbox, drainer, _ = _drainer(tmp_path, server)
    for n in range(4):
        outbox.put("claim-1", "ktp", b"\xff\xd8" + bytes([n]), capture_id=f"c{n}")
    await asyncio.gather(*(drainer.drain() for _ in range(4)))
    assert server.uploads == 4 and server.most_in_flight == 1 and outbox.pending() == []


async def test_a_retry_time_set_by_a_captures_own_pass_wakes_the_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "RETRY_BASE_S", 0.02)
    server = FakeServer()
    outbox, drainer, events = _drainer(tmp_path, server)
    drainer.start()  # nothing to send: the timer has no time set
    await asyncio.sleep(0.05)
    outbox.put("claim-1", "ktp", b"\xff\xd8x", capture_id="c1", session_id="s1")
    server.script = ["network"]
    assert (await drainer.drain()).stopped  # a capture's own pass, not the timer's
    async with asyncio.timeout(5):  # the timer sends it, with no kick
        while not any(e.kind is EventKind.DELIVERED for e in events):
            await asyncio.sleep(0.01)
    await drainer.stop()
