"""Supervisors over real sockets: steering (move a booth, pause an officer, end a stuck
session) and the signaling of monitor and whisper links, each audited and each refused
outside the supervisor's branches or to other roles."""

from __future__ import annotations

import pytest

from signaling.errors import ErrorCode
from signaling.messages import (
    Accept,
    Ack,
    Answer,
    Assigned,
    AvailabilityChanged,
    BookingRef,
    BoothAssigned,
    BoothOffered,
    Candidate,
    CheckIn,
    CloseLink,
    EndSession,
    Error,
    FloorSnapshot,
    Hello,
    LinkClosed,
    LinkOpened,
    MoveBooth,
    Offer,
    OpenLink,
    PeerState,
    Queued,
    Role,
    SessionEnded,
    SessionUpdate,
    SetCsoAvailability,
    Subscribe,
)
from tests.support.accounts import booth_token, user_token
from tests.support.claims import seed_claim
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.ws_client import SignalClient

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 {}\r\n"


@pytest.fixture
async def server(tmp_path):
    settings = server_settings(tmp_path, broadcast_interval=0.05, grace_period=5.0)
    async with running_server(settings) as live:
        yield live


async def _booth(server: LiveServer, label: str, branch: str = "jkt01") -> SignalClient:
    token = await booth_token(server, label, branch=branch)
    client = await SignalClient.connect(server.ws_url, Role.BOOTH, token)
    code = f"BK-{label.upper()}"
    await seed_claim(server, code, branch=branch)
    message = CheckIn(claim=BookingRef(booking_code=code))
    await client.send(message)
    await client.expect(Ack, reply_to=message.id)
    return client


async def _cso(server: LiveServer, name: str, capacity: int = 6) -> SignalClient:
    return await SignalClient.connect(
        server.ws_url, Role.CSO, await user_token(server, name, capacity=capacity)
    )


async def _supervisor(server: LiveServer, name: str = "boss", **profile: object) -> SignalClient:
    token = await user_token(server, name, role="supervisor", **profile)
    return await SignalClient.connect(server.ws_url, Role.SUPERVISOR, token)


async def _call(booth: SignalClient, cso: SignalClient) -> str:
    offered = await cso.expect(BoothOffered)
    await cso.send(Accept(session_id=offered.session_id))
    await cso.expect(BoothAssigned, session_id=offered.session_id)
    await booth.expect(Assigned, session_id=offered.session_id)
    await booth.send(PeerState(session_id=offered.session_id, state="connected"))
    await cso.expect(PeerState)
    return offered.session_id


async def _link(client: SignalClient, kind: str) -> LinkOpened:
    """The next `link_opened` of that kind (`expect` cannot match on a field named kind)."""
    skipped: list[LinkOpened] = []
    try:
        while True:
            opened = await client.expect(LinkOpened)
            if opened.kind == kind:
                return opened
            skipped.append(opened)
    finally:
        client.seen.extend(skipped)


async def _audit_actions(server: LiveServer) -> list[str]:
    store = server.app.state.records.store
    return [e.action async for e in store.audit_entries()]


async def _snapshot(sup: SignalClient) -> FloorSnapshot:
    ask = Subscribe()
    await sup.send(ask)
    return await sup.expect(FloorSnapshot)


async def test_move_a_booth_to_another_officer(server: LiveServer) -> None:
    booth = await _booth(server, "b1")
    first = await _cso(server, "first", capacity=1)
    session = await _call(booth, first)
    second = await _cso(server, "second", capacity=1)
    sup = await _supervisor(server)
    move = MoveBooth(session_id=session, to_cso_id="second")
    await sup.send(move)
    await sup.expect(Ack, reply_to=move.id)
    assert (await first.expect(SessionEnded, session_id=session)).reason == "moved"
    assert (await booth.expect(SessionEnded, session_id=session)).reason == "moved"
    offered = await second.expect(BoothOffered, timeout=5)
    assert offered.claim.claim_id is not None  # the claim travels with the booth
    await second.send(Accept(session_id=offered.session_id))
    assigned = await booth.expect(Assigned, session_id=offered.session_id)
    assert assigned.cso_name == "Second"
    snapshot = await _snapshot(sup)
    loads = {c.cso_id: c.load for c in snapshot.csos}
    assert loads == {"first": 0, "second": 1}
    assert "session.moved" in await _audit_actions(server)


async def test_pause_an_officer_and_the_dashboard_shows_it(server: LiveServer) -> None:
    cso = await _cso(server, "siti")
    sup = await _supervisor(server)
    pause = SetCsoAvailability(cso_id="siti", available=False)
    await sup.send(pause)
    await sup.expect(Ack, reply_to=pause.id)
    told = await cso.expect(AvailabilityChanged)
    assert told.available is False and told.by == "Boss"
    booth = await _booth(server, "b1")
    with pytest.raises(TimeoutError):
        await cso.expect(BoothOffered, timeout=0.6)
    await booth.expect(Queued)
    states = {c.cso_id: c.state for c in (await _snapshot(sup)).csos}
    assert states == {"siti": "paused"}
    assert "cso.paused" in await _audit_actions(server)


async def test_end_a_stuck_session(server: LiveServer) -> None:
    booth = await _booth(server, "b1")
    cso = await _cso(server, "siti")
    session = await _call(booth, cso)
    sup = await _supervisor(server)
    end = EndSession(session_id=session)
    await sup.send(end)
    await sup.expect(Ack, reply_to=end.id)
    assert (await cso.expect(SessionEnded)).reason == "supervisor_ended"
    assert (await booth.expect(SessionEnded)).reason == "supervisor_ended"
    assert "session.ended_by_supervisor" in await _audit_actions(server)


async def test_monitor_and_whisper_links_relay_between_their_ends_only(
    server: LiveServer,
) -> None:
    booth = await _booth(server, "b1")
    cso = await _cso(server, "siti")
    session = await _call(booth, cso)
    sup = await _supervisor(server)

    monitor = OpenLink(kind="monitor", session_id=session)
    await sup.send(monitor)
    await sup.expect(Ack, reply_to=monitor.id)
    at_sup = await _link(sup, "monitor")
    at_booth = await _link(booth, "monitor")
    assert at_booth.offerer and not at_sup.offerer and at_sup.link_id == at_booth.link_id
    link = at_sup.link_id
    marked = await cso.expect(SessionUpdate, monitored=True)  # the setting's default: shown
    assert marked.session_id == session
    # The booth offers (send-only), the supervisor answers; the CSO hears none of it.
    await booth.send(Offer(session_id=link, sdp=SDP.format("BM")))
    assert (await sup.expect(Offer)).session_id == link
    await sup.send(Answer(session_id=link, sdp=SDP.format("SM")))
    assert (await booth.expect(Answer)).session_id == link
    await sup.send(Candidate(session_id=link, candidate=None))
    await booth.expect(Candidate, session_id=link)
    with pytest.raises(TimeoutError):
        await cso.expect(Offer, timeout=0.3)
    # The CSO cannot signal into the monitor link.
    intrude = Candidate(session_id=link, candidate=None)
    await cso.send(intrude)
    assert (await cso.expect(Error, reply_to=intrude.id)).code == ErrorCode.NOT_IN_SESSION

    whisper = OpenLink(kind="whisper", session_id=session)
    await sup.send(whisper)
    wl = await _link(sup, "whisper")
    assert wl.offerer  # the supervisor sends its voice
    assert not (await _link(cso, "whisper")).offerer
    await sup.send(Offer(session_id=wl.link_id, sdp=SDP.format("SW")))
    assert (await cso.expect(Offer)).session_id == wl.link_id
    with pytest.raises(TimeoutError):
        await booth.expect(Offer, timeout=0.3)  # the participant never gets the whisper

    stop = CloseLink(link_id=link)
    await sup.send(stop)
    await sup.expect(Ack, reply_to=stop.id)
    assert (await booth.expect(LinkClosed)).link_id == link
    await cso.expect(SessionUpdate, monitored=False)
    # The call ends: the whisper link closes with it.
    await cso.send(EndSession(session_id=session))
    assert (await sup.expect(LinkClosed, link_id=wl.link_id)).reason == "session_ended"
    actions = await _audit_actions(server)
    for action in ("monitor.started", "monitor.stopped", "whisper.started", "whisper.stopped"):
        assert action in actions


async def test_other_branches_and_other_roles_are_refused(server: LiveServer) -> None:
    booth = await _booth(server, "b1", branch="bdg01")
    cso = await _cso(server, "siti")
    session = await _call(booth, cso)
    local = await _supervisor(server, "lokal", pools=frozenset({"jkt01"}), branch="jkt01")
    for message in (
        OpenLink(kind="monitor", session_id=session),
        MoveBooth(session_id=session, to_cso_id="siti"),
        EndSession(session_id=session),
    ):
        await local.send(message)
        err = await local.expect(Error, reply_to=message.id)
        assert err.code == ErrorCode.FORBIDDEN_FOR_ROLE, err
    # A CSO or booth may not send supervisor messages at all.
    move = MoveBooth(session_id=session, to_cso_id="siti")
    await cso.send(move)
    assert (await cso.expect(Error, reply_to=move.id)).code == ErrorCode.FORBIDDEN_FOR_ROLE
    # A CSO account cannot open the supervisor socket.
    token = await user_token(server, "budi")
    refused = await SignalClient.connect(server.ws_url, Role.SUPERVISOR)
    await refused.send(Hello(token=token))
    assert (await refused.expect(Error)).code == ErrorCode.FORBIDDEN_FOR_ROLE


async def test_a_supervisors_new_socket_ends_its_old_links(server: LiveServer) -> None:
    """Issue 21, C10: a reload used to leave the officer seeing "monitored" and "supervisor
    speaking", and the audit showing monitoring that was not happening."""
    booth = await _booth(server, "b1")
    cso = await _cso(server, "siti")
    session = await _call(booth, cso)
    token = await user_token(server, "boss", role="supervisor")
    sup = await SignalClient.connect(server.ws_url, Role.SUPERVISOR, token)
    for kind in ("monitor", "whisper"):
        ask = OpenLink(kind=kind, session_id=session)  # type: ignore[arg-type]
        await sup.send(ask)
        await sup.expect(Ack, reply_to=ask.id)
    monitor = await _link(booth, "monitor")
    whisper = await _link(cso, "whisper")
    await cso.expect(SessionUpdate, monitored=True)
    again = await SignalClient.connect(server.ws_url, Role.SUPERVISOR, token)  # a reload
    assert (await booth.expect(LinkClosed)).link_id == monitor.link_id
    assert (await cso.expect(LinkClosed)).link_id == whisper.link_id
    await cso.expect(SessionUpdate, monitored=False)
    with pytest.raises(TimeoutError):
        await again.expect(LinkClosed, timeout=0.5)  # the new page never had them
    actions = await _audit_actions(server)
    assert actions.count("monitor.stopped") == 1 and actions.count("whisper.stopped") == 1
    await sup.close()


async def test_each_supervisor_sees_only_the_branches_it_looks_after(server: LiveServer) -> None:
    """Issue 21, D13: the feed is scoped like the steering (it was the whole region)."""
    local = await _supervisor(server, "lokal", pools=frozenset({"jkt01"}), branch="jkt01")
    region = await _supervisor(server, "boss")
    await _booth(server, "b1", branch="jkt01")
    await _booth(server, "b2", branch="bdg01")

    async def waiting(sup: SignalClient, count: int) -> FloorSnapshot:
        while True:
            snap = await sup.expect(FloorSnapshot, timeout=5)
            if snap.queue.waiting == count:
                return snap

    mine = await waiting(local, 1)
    assert set(mine.queue.by_branch) == {"jkt01"}
    assert [b.branch for b in mine.queue.longest] == ["jkt01"]
    everyone = await waiting(region, 2)
    assert set(everyone.queue.by_branch) == {"jkt01", "bdg01"}
    # (Booth ids start with their branch: no event about the other branch's booth came.)
    about = [str(getattr(m, "booth_id", None)) for m in local.seen if getattr(m, "booth_id", None)]
    assert about and all(b.startswith("jkt01-") for b in about), about
    again = await SignalClient.connect(
        server.ws_url, Role.SUPERVISOR, await user_token(server, "lokal2", role="supervisor",
                                                         pools=frozenset({"jkt01"}))
    )  # fmt: skip
    assert again.welcome and again.welcome.floor
    assert set(again.welcome.floor.queue.by_branch) == {"jkt01"}
