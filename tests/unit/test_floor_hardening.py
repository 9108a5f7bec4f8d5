"""What one peer could still break in the floor core (issue 21): each test failed on the
core before the split (fingerprints grew without bound, a user named like a booth got its
messages, a supervisor's reconnect leaked its links, every supervisor got every branch,
`subscribe` cost a snapshot each, the participants' index kept NIKs for ever)."""

from __future__ import annotations

import asyncio
import pickle

from server.adapters.local import LocalLiveState, LocalRouter
from server.floor.core import FloorCore
from server.floor.effects import Audit, Effect, FloorChanged, Publish, Send
from server.floor.events import (
    BroadcastDue,
    ClaimResolved,
    Now,
    PeerClosed,
    PeerOpened,
    Received,
    TimerFired,
)
from server.floor.model import MAX_EXTRA_FINGERPRINTS, booth_key, cso_key, supervisor_key
from server.floor.runtime import FloorRuntime
from server.floor.snapshot import SeededIds, dump_core, new_core
from server.metrics import Metrics
from server.principal import AccountRole, Principal
from signaling.errors import ErrorCode
from signaling.messages import (
    Accept,
    Answer,
    BookingRef,
    BoothOffered,
    CheckIn,
    ClaimType,
    EndSession,
    Error,
    FloorEvent,
    FloorSnapshot,
    Leave,
    LinkClosed,
    MoveBooth,
    Offer,
    OpenLink,
    PeerState,
    Subscribe,
    WalkInRef,
)
from tests.unit.test_floor_core import CONFIG, SDP, Harness, _serve, booth, cso

BOSS = Principal("boss", AccountRole.SUPERVISOR, "Boss", "jkt01", frozenset({"*"}))


def errors(effects: list[Effect]) -> list[ErrorCode]:
    return [e.message.code for e in effects if isinstance(e, Send) and isinstance(e.message, Error)]


def relayed(effects: list[Effect], to: str) -> list[object]:
    return [e.message for e in effects if isinstance(e, Send) and e.to == booth_key(to)]


def many_prints(n: int, tag: str) -> str:
    lines = "".join(f"a=fingerprint:sha-256 {tag}{i:04X}:00\r\n" for i in range(n))
    return "v=0\r\n" + lines


def test_hostile_fingerprints_are_capped_refused_and_audited_once() -> None:
    h = Harness()
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    sid = _serve(h, b, c)
    h.send(c, Offer(session_id=sid, sdp=SDP.format("C1")))
    h.send(b, Answer(session_id=sid, sdp=SDP.format("B1")))
    # ~1,500 made-up fingerprints in one 64 KB answer: refused whole, nothing relayed.
    # (The protocol refuses more than 16 fingerprint lines at the socket; the core holds
    # its own line, for what comes from elsewhere: an event log, a newer gateway.)
    hostile = Answer.model_construct(session_id=sid, sdp=many_prints(1500, "F"), id="h")
    effects = h.send(b, hostile)
    assert errors(effects) == [ErrorCode.INVALID_MESSAGE]
    assert not [e for e in effects if isinstance(e, Send) and e.to == cso_key("siti")]
    # New certificates one answer at a time, each in aiortc's three hash functions: a few
    # are an audited addition, then refused.
    per_answer = 3
    fits = MAX_EXTRA_FINGERPRINTS // per_answer
    renegotiations = [
        Answer(session_id=sid, sdp="v=0\r\n" + "".join(
            f"a=fingerprint:sha-{bits} EE:{i:02X}\r\n" for bits in (256, 384, 512)
        ))
        for i in range(fits + 4)
    ]  # fmt: skip
    outcomes = [errors(h.send(b, answer)) for answer in renegotiations]
    assert outcomes == [[]] * fits + [[ErrorCode.RATE_LIMITED]] * 4
    record = h.core.sessions[sid]
    assert len(record.extra_fingerprints) == fits * per_answer <= MAX_EXTRA_FINGERPRINTS
    added = [a for a in h.audits if a.action == "session.fingerprints_added"]
    assert len(added) == fits  # once each, however often repeated
    h.send(b, renegotiations[0])  # known: no second audit
    assert len([a for a in h.audits if a.action == "session.fingerprints_added"]) == len(added)


def test_offers_and_answers_per_session_are_capped() -> None:
    h = Harness()
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    sid = _serve(h, b, c)
    results = [h.send(c, Offer(session_id=sid, sdp=SDP.format("C1"))) for _ in range(40)]
    passed = [r for r in results if relayed(r, "b1")]
    assert len(passed) == CONFIG.max_descriptions
    assert all(errors(r) == [ErrorCode.RATE_LIMITED] for r in results[CONFIG.max_descriptions :])


def test_offers_to_an_end_that_is_away_are_not_counted() -> None:
    """A console retrying a booth whose kiosk is restarting is refused (peer unavailable)
    without using up the session's offers and answers or fingerprints."""
    h = Harness()
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c)
    sid = _serve(h, b, c)
    h.close(b)
    tries = [
        h.send(c, Offer(session_id=sid, sdp=SDP.format(f"C{i:02X}")))
        for i in range(CONFIG.max_descriptions + 5)
    ]
    assert all(errors(t) == [ErrorCode.PEER_UNAVAILABLE] for t in tries)
    assert h.core.sessions[sid].descriptions == 0
    assert h.core.sessions[sid].extra_fingerprints == frozenset()
    h.open(b)
    assert relayed(h.send(c, Offer(session_id=sid, sdp=SDP.format("C1"))), "b1")


def test_a_user_named_like_a_booth_is_another_peer() -> None:
    """`loket user add <a booth's id>` is refused now, but the floor must not mix the two
    up either: messages go by role and id."""
    core = FloorCore(CONFIG, new_id=SeededIds("same"))
    kiosk = Principal("jkt01-b1", AccountRole.BOOTH, "Booth 1", "jkt01")
    officer = Principal("jkt01-b1", AccountRole.CSO, "Officer", "jkt01", frozenset({"*"}))
    now = Now(1000.0, 1.9e9)
    core.handle(PeerOpened(kiosk, "k", None, "tk"), now)
    effects = core.handle(PeerOpened(officer, "o", None, "to"), now)
    assert core.booths["jkt01-b1"].connection == "k" and core.csos["jkt01-b1"].connection == "o"
    check_in = CheckIn(
        claim=WalkInRef(nik="3171011501900001", kpj="12345678901", claim_type=ClaimType.RESIGNATION)
    )
    core.handle(Received(kiosk, "k", check_in), now)

    effects = core.handle(ClaimResolved("jkt01-b1", check_in, "claim-1"), now)
    offered = [e for e in effects if isinstance(e, Send) and isinstance(e.message, BoothOffered)]
    assert [e.to for e in offered] == [cso_key("jkt01-b1")]
    sid = offered[0].message.session_id  # type: ignore[attr-defined]
    effects = core.handle(Received(officer, "o", Accept(session_id=sid)), now)
    targets = {type(e.message).__name__: e.to for e in effects if isinstance(e, Send)}
    assert targets["Assigned"] == booth_key("jkt01-b1")
    assert targets["BoothAssigned"] == cso_key("jkt01-b1")
    # The booth's socket closing does not close the officer's, and the other way round.
    core.handle(PeerClosed(kiosk, "k"), now)
    assert core.csos["jkt01-b1"].connected and not core.booths["jkt01-b1"].connected


def test_a_supervisors_new_socket_ends_its_old_links() -> None:
    h = Harness()
    b, c = booth("b1"), cso("siti")
    h.open(b), h.open(c), h.open(BOSS)
    sid = _serve(h, b, c)
    h.media_up(b)
    h.send(BOSS, OpenLink(kind="monitor", session_id=sid))
    h.send(BOSS, OpenLink(kind="whisper", session_id=sid))
    assert len(h.core.links) == 2
    h.audits.clear()
    old = h.connected["boss"]
    effects = h.handle(PeerOpened(BOSS, "boss-new", None, "t"))  # a reload: the new socket
    h.connected["boss"] = "boss-new"
    assert not h.core.links
    stopped = sorted(a.action for a in h.audits)
    assert stopped == ["monitor.stopped", "whisper.stopped"]
    closed_to = {e.to for e in effects if isinstance(e, Send) and isinstance(e.message, LinkClosed)}
    assert closed_to == {booth_key("b1"), cso_key("siti")}  # the new page never had them
    assert h.booth_mirrors["b1"].links == set() and h.cso_mirrors["siti"].links == set()
    h.handle(PeerClosed(BOSS, old))  # the old socket's close, late: changes nothing
    assert h.core.supervisors["boss"].connection == "boss-new"
    h.check()


def _publishes(effects: list[Effect]) -> list[Publish]:
    return [e for e in effects if isinstance(e, Publish)]


def test_supervisors_see_and_steer_only_their_branches() -> None:
    core = FloorCore(CONFIG, new_id=SeededIds("scope"))
    now = Now(1000.0, 1.9e9)
    here = Principal("ani", AccountRole.SUPERVISOR, "Ani", "jkt01")  # looks after jkt01
    there_booth = Principal("b2", AccountRole.BOOTH, "Booth 2", "bdg01")
    here_booth = Principal("b1", AccountRole.BOOTH, "Booth 1", "jkt01")
    far_cso = Principal("rina", AccountRole.CSO, "Rina", "bdg01", frozenset({"*"}), capacity=1)
    near_cso = Principal("siti", AccountRole.CSO, "Siti", "jkt01", frozenset({"*"}), capacity=1)
    for p, conn in ((here, "s"), (here_booth, "k1"), (there_booth, "k2"), (far_cso, "r")):
        core.handle(PeerOpened(p, conn, None, f"t{conn}"), now)

    topics_seen: dict[str, list[object]] = {}
    for booth_p, conn, code in ((there_booth, "k2", "BK-2"), (here_booth, "k1", "BK-1")):
        ask = CheckIn(claim=BookingRef(booking_code=code))
        core.handle(Received(booth_p, conn, ask), now)
        for e in _publishes(core.handle(ClaimResolved(booth_p.subject, ask, code), now)):
            for t in e.topics:
                topics_seen.setdefault(t, []).append(e.message)
    mine = "floor:jkt01"
    events = [m for m in topics_seen.get(mine, []) if isinstance(m, FloorEvent)]
    assert events and {m.booth_id for m in events if m.booth_id} == {"b1"}
    snapshots = [e.message for e in _publishes(core.handle(BroadcastDue(), now))]
    assert len(snapshots) == 1 and isinstance(snapshots[0], FloorSnapshot)
    assert snapshots[0].queue.by_branch == {} or set(snapshots[0].queue.by_branch) <= {"jkt01"}
    # rina (bdg01) took b2 first (its queue is older), then b1 is offered to nobody yet.
    sessions = {r.live.booth_id: sid for sid, r in core.sessions.items()}
    core.handle(Received(far_cso, "r", Accept(session_id=sessions["b2"])), now)
    core.handle(PeerOpened(near_cso, "n", None, "tn"), now)
    sessions = {r.live.booth_id: sid for sid, r in core.sessions.items()}
    core.handle(Received(near_cso, "n", Accept(session_id=sessions["b1"])), now)
    # A bdg01 booth's session is not hers to end, monitor or move.
    for message in (
        EndSession(session_id=sessions["b2"]),
        OpenLink(kind="monitor", session_id=sessions["b2"]),
        MoveBooth(session_id=sessions["b2"], to_cso_id="siti"),
        # Her booth may not be moved to an officer she does not steer either.
        MoveBooth(session_id=sessions["b1"], to_cso_id="rina"),
    ):
        refused = errors(core.handle(Received(here, "s", message), now))
        assert refused == [ErrorCode.FORBIDDEN_FOR_ROLE], message
    # She may watch her branch's booth; whispering goes by the officer's branch.
    assert (
        errors(
            core.handle(
                Received(here, "s", OpenLink(kind="monitor", session_id=sessions["b1"])), now
            )
        )
        == []
    )


def test_subscribe_costs_a_mark_not_a_snapshot() -> None:
    h = Harness()
    for i in range(4):
        h.open(booth(f"b{i}"))
        h.check_in(booth(f"b{i}"), f"BK-{i}")
        h.resolve(0)
    h.open(BOSS)
    for _ in range(100):
        effects = h.send(BOSS, Subscribe())
        assert not _publishes(effects) and not [
            e for e in effects if isinstance(e, Send) and isinstance(e.message, FloorSnapshot)
        ]
        assert any(isinstance(e, FloorChanged) for e in effects)


def test_the_floor_keeps_no_nik_and_the_participants_index_is_bounded() -> None:
    h = Harness()
    nik = "3171011501900001"
    for round_ in range(3):
        for i in range(4):
            b = booth(f"b{i}")
            if b.subject not in h.connected:
                h.open(b)
            walk_in = WalkInRef(nik=f"{nik[:-2]}{round_}{i}", kpj="12345678901",
                                claim_type=ClaimType.RESIGNATION)  # fmt: skip
            message = CheckIn(claim=walk_in)
            h.send(b, message)
            effect = h.resolving.pop()

            h.handle(ClaimResolved(effect.principal.subject, message, f"claim-{round_}-{i}"))
        state = pickle.dumps(dump_core(h.core))
        assert nik[:-2].encode() not in state  # keyed hashes and masked NIKs only
        for i in range(4):
            h.send(booth(f"b{i}"), Leave())
        assert h.core._booths.holders == {}  # released with each visit
    h.check()


def test_a_poison_event_is_set_aside_and_the_floor_goes_on() -> None:
    """A core that raises half-way through an event (a bug) would leave half a decision
    behind; the runtime rebuilds it from its journal without that event."""

    class Flaky(FloorCore):
        def handle(self, event, now):  # type: ignore[no-untyped-def]
            if isinstance(event, TimerFired) and getattr(self, "poisoned", False):
                self._booths.records.clear()  # half a change...
                raise RuntimeError("a bug")  # ...then the failure
            return super().handle(event, now)

    async def run() -> None:
        metrics = Metrics()
        core = new_core(CONFIG)
        core.__class__ = Flaky
        runtime = FloorRuntime(CONFIG, LocalRouter(), LocalLiveState(), metrics)
        runtime.core = core
        runtime._journal.snapshot(core)  # type: ignore[union-attr]
        await runtime.handle(PeerOpened(booth("b1"), "k1", None, "t1"))
        await runtime.handle(PeerOpened(cso("siti"), "c1", None, "t2"))
        core.poisoned = True  # type: ignore[attr-defined]
        await runtime.handle(TimerFired())
        assert metrics.floor_quarantined._value.get() == 1
        assert set(runtime.core.booths) == {"b1"} and set(runtime.core.csos) == {"siti"}
        await runtime.handle(PeerClosed(booth("b1"), "k1"))  # and it decides on
        assert "b1" not in runtime.core.booths

    asyncio.run(run())


def test_an_audit_entry_survives_a_database_that_is_down() -> None:
    """The records database failing while a supervisor acts must not drop the rest of the
    decision (the ack, the booth's messages); the entry is written once it is back."""

    async def run() -> None:
        written: list[Audit] = []
        down = True

        async def write(entry: Audit) -> None:
            if down:
                raise ConnectionError("database unreachable")
            written.append(entry)

        router = LocalRouter()
        runtime = FloorRuntime(CONFIG, router, LocalLiveState(), Metrics(), write_audit=write)
        await runtime.start()
        try:
            boss_box, booth_box, cso_box = _Box("s"), _Box("k"), _Box("c")  # by connection
            await router.attach(supervisor_key("boss").address, boss_box)
            await router.attach(booth_key("b1").address, booth_box)
            await router.attach(cso_key("siti").address, cso_box)
            for p, conn in ((BOSS, "s"), (booth("b1"), "k"), (cso("siti"), "c")):
                await runtime.handle(PeerOpened(p, conn, None, f"t{conn}"))

            ask = CheckIn(claim=BookingRef(booking_code="BK-1"))
            await runtime.handle(Received(booth("b1"), "k", ask))
            await asyncio.sleep(0.05)
            sid = next(iter(runtime.core.sessions))
            await runtime.handle(Received(cso("siti"), "c", Accept(session_id=sid)))
            await runtime.handle(
                Received(booth("b1"), "k", PeerState(session_id=sid, state="connected"))
            )
            await runtime.handle(Received(BOSS, "s", OpenLink(kind="monitor", session_id=sid)))
            assert any(t == "link_opened" for t in booth_box.types)  # the rest went out
            assert any(t == "ack" for t in boss_box.types)
            assert not written and len(runtime.outbox) == 1
            down = False
            runtime._drainer.wake()
            for _ in range(100):
                if written:
                    break
                await asyncio.sleep(0.05)
            assert [w.action for w in written] == ["monitor.started"]
            assert len(runtime.outbox) == 0
        finally:
            await runtime.stop()

    asyncio.run(run())


class _Box:
    def __init__(self, name: str) -> None:
        self.id = name
        self.types: list[str] = []

    def deliver(self, delivery) -> bool:  # type: ignore[no-untyped-def]
        message = delivery.message
        self.types.append(message.type if message is not None else "raw")
        return True
