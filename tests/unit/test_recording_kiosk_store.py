"""The kiosk's recordings on disk and their delivery (booth_client.recording.store,
.delivery), against a server that answers each request ok, network down, 503 or 401 at
random, and a kiosk restarted (its objects dropped, a part file left half written) at any
point between. Whatever happens: every sealed segment reaches the server exactly once with
the hash it was sealed with, the close lists every sealed segment and comes after all of
them, every mark lands in exactly one place (a segment or the closing), and the kiosk's
copy goes only once the server closed the recording.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from booth_client.delivery import Delivery
from booth_client.recording.delivery import RecordingDelivery
from booth_client.recording.store import Closing, Recording, RecordingInfo, RecordingStore, Sealed
from booth_client.recording.transport import Clock

OUTCOMES = st.lists(st.sampled_from(["ok", "ok", "ok", "down", "busy", "token"]), max_size=12)


class FakeServer:
    """The recording API's answers, as the kiosk sees them; each request first draws an
    outcome from `plan` (ok when it runs out)."""

    def __init__(self) -> None:
        self.plan: list[str] = []
        self.opened: dict[str, str] = {}  # session -> recording id
        self.stored: dict[int, str] = {}  # seq -> sha256
        self.stores = Counter[int]()
        self.staged: dict[str, tuple[int, str, bytearray]] = {}
        self.closed: list[int] | None = None
        self.clock = Clock()
        self.reauths = 0

    def _draw(self) -> Delivery | None:
        outcome = self.plan.pop(0) if self.plan else "ok"
        if outcome == "down":
            raise OSError("network down")
        if outcome == "busy":
            return Delivery(503, {"error": {"code": "unavailable"}})
        if outcome == "token":
            return Delivery(401, {"error": {"code": "unauthenticated"}})
        return None

    async def reauthenticate(self) -> None:
        self.reauths += 1

    async def open(self, info: RecordingInfo) -> Delivery:
        if (refused := self._draw()) is not None:
            return refused
        rid = self.opened.setdefault(info.session_id, "r" * 32)
        return Delivery(201, {"recording_id": rid, "state": "open", "grant": "g"})

    async def declare(self, info: RecordingInfo, sealed: Sealed, pending: int) -> Delivery:
        assert info.recording_id == "r" * 32 and self.closed is None
        if (refused := self._draw()) is not None:
            return refused
        if sealed.seq in self.stored:
            assert self.stored[sealed.seq] == sealed.sha256, "another segment, same number"
            return Delivery(200, {"stored": True})
        key = f"up-{sealed.seq}-{sealed.sha256[:8]}"
        upload = self.staged.setdefault(key, (sealed.seq, sealed.sha256, bytearray()))
        return Delivery(201, {"location": key, "offset": len(upload[2])})

    async def send(self, location: str, offset: int, data: bytes) -> Delivery:
        seq, sha, got = self.staged[location]
        assert offset == len(got)
        half = offset + max(1, (len(data) - offset) // 2)
        got.extend(data[offset:half])  # half of it arrives, then the line may drop
        if (refused := self._draw()) is not None:
            return refused
        got.extend(data[half:])
        assert hashlib.sha256(got).hexdigest() == sha
        del self.staged[location]
        self.stored[seq] = sha
        self.stores[seq] += 1
        return Delivery(201, {"seq": seq})

    async def close(self, info: RecordingInfo, closing: Closing, listed: list[Sealed]) -> Delivery:
        if (refused := self._draw()) is not None:
            return refused
        numbers = [s.seq for s in listed]
        assert all(self.stored.get(s.seq) == s.sha256 for s in listed), "closed before all up"
        if self.closed is None:
            self.closed = numbers
        return Delivery(200, {"manifest_sha256": "m" * 64})

    async def alert(self, info: RecordingInfo, reason: str, detail: str) -> Delivery:
        return Delivery(201, {})


class RecordingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="rec-prop-"))
        self.server = FakeServer()
        self.store = RecordingStore(self.root)
        info = RecordingInfo("s1", "c1", origin=1.0e9, consent={"answer": "given"}, media={},
                             segment_s=10.0)  # fmt: skip
        self.rec: Recording | None = self.store.open(info)
        self.sealed: dict[int, str] = {}  # seq -> sha the kiosk sealed
        self.marks: list[str] = []  # every mark made, by its detail
        self.clock = 0.0
        self.closed_on_disk = False

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _recording(self) -> Recording | None:
        if self.rec is None:
            self.rec = self.store.find("s1")
        return self.rec

    @precondition(lambda self: not self.closed_on_disk)
    @rule(data=st.binary(min_size=1, max_size=300))
    def seal_a_segment(self, data: bytes) -> None:
        rec = self._recording()
        assert rec is not None
        seq = rec.next_seq()
        rec.part(seq).write_bytes(data)
        start, self.clock = self.clock, self.clock + 2.0
        sealed = rec.seal(seq, start, self.clock, 3, None)
        assert sealed.sha256 == hashlib.sha256(data).hexdigest() and sealed.size == len(data)
        self.sealed[seq] = sealed.sha256

    @precondition(lambda self: not self.closed_on_disk)
    @rule()
    def mark(self) -> None:
        rec = self._recording()
        assert rec is not None
        detail = f"m{len(self.marks)}"
        rec.mark(self.clock, "focus", detail)
        self.marks.append(detail)

    @precondition(lambda self: not self.closed_on_disk)
    @rule(half=st.booleans())
    def kiosk_killed(self, half: bool) -> None:
        """The process dies (maybe mid-segment: a part file left); a new one starts."""
        rec = self._recording()
        if rec is not None and half:
            rec.part(rec.next_seq()).write_bytes(b"half a segment")
        self.store = RecordingStore(self.root)
        self.rec = None

    @precondition(lambda self: not self.closed_on_disk)
    @rule()
    def session_over(self) -> None:
        rec = self._recording()
        assert rec is not None
        rec.close(self.clock, "cso_ended", None)
        self.closed_on_disk = True

    @rule(plan=OUTCOMES)
    def delivery_pass(self, plan: list[str]) -> None:
        self.server.plan = list(plan)
        delivery = RecordingDelivery(self.store, self.server)  # type: ignore[arg-type]
        asyncio.run(delivery.deliver_all())
        if self.server.closed is not None:
            self.rec = None

    @invariant()
    def what_the_server_has_was_sealed_once(self) -> None:
        for seq, sha in self.server.stored.items():
            assert self.sealed.get(seq) == sha
        assert all(n == 1 for n in self.server.stores.values()), self.server.stores

    @invariant()
    def the_close_lists_every_sealed_segment(self) -> None:
        if self.server.closed is not None:
            assert self.closed_on_disk
            assert self.server.closed == sorted(self.sealed)
            assert not (self.root / "s1").exists()  # the kiosk's copy went after

    @invariant()
    def every_mark_is_in_one_place(self) -> None:
        rec = self._recording()
        if rec is None:
            return
        placed = [m["detail"] for s in rec.sealed() for m in s.marks]
        closing = rec.closing()
        if closing is not None:
            placed += [m["detail"] for m in closing.marks]
            assert sorted(placed) == sorted(self.marks)
        else:
            assert len(placed) == len(set(placed)) and set(placed) <= set(self.marks)

    @invariant()
    def segment_bytes_stay_until_stored(self) -> None:
        rec = self._recording()
        if rec is None:
            return
        for sealed in rec.sealed():
            on_disk = rec.directory / f"{sealed.seq:06d}.webm"
            assert on_disk.exists() == (not sealed.uploaded)
            assert sealed.uploaded <= (sealed.seq in self.server.stored)


RecordingMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25,
                                              deadline=None)  # fmt: skip
TestRecordingDelivery = RecordingMachine.TestCase


def test_a_reason_is_a_word_the_server_takes() -> None:
    from booth_client.recording.transport import _word

    assert _word("cso_ended") == "cso_ended"
    assert _word("Kiosk Stopped!") == "kiosk_stopped"
    assert _word("") == "ended"


def test_the_worker_seals_segments_marks_a_full_disk_as_a_gap_and_resumes(tmp_path: Path) -> None:
    """The encoder thread on a real clock: segments end on multiples of segment_s; while
    the disk is 'full' nothing is written and the time is a disk_full gap, said once; when
    room returns the next segment carries the gap; stopping seals the one being written."""
    import threading
    import time

    import av
    import numpy as np

    from booth_client.recording.media import EvidenceFormat
    from booth_client.recording.worker import EncoderWorker, WorkerEvent

    picture = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90, np.uint8), format="bgr24")

    class Feeds:
        def participant(self) -> av.VideoFrame | None:
            return picture

        def officer(self) -> av.VideoFrame | None:
            return None

    store = RecordingStore(tmp_path)
    info = RecordingInfo("s3", "c1", origin=time.time(), consent={}, media={}, segment_s=1.0)
    rec = store.open(info)
    events: list[WorkerEvent] = []
    free = {"bytes": 10**12}
    lock = threading.Lock()

    def told(event: WorkerEvent) -> None:
        with lock:
            events.append(event)

    fmt = EvidenceFormat(cell_width=32, cell_height=24, fps=10.0, video_bps=20_000)
    worker = EncoderWorker(rec, fmt, Feeds(), told, min_free_bytes=1000,
                           free_bytes=lambda: free["bytes"])  # fmt: skip
    worker.start()
    for _ in range(30):  # 20 ms voice frames of a tone, as the loop would push them
        tone = (np.sin(np.arange(960) / 5.0) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        frame.sample_rate = 48_000
        worker.push_audio(0, frame)
        time.sleep(0.02)
    time.sleep(0.8)  # past t = 1 s: segment 1 sealed
    free["bytes"] = 10  # the disk fills: segment 2 is written on; the next is refused
    time.sleep(1.6)
    free["bytes"] = 10**12
    time.sleep(1.3)
    worker.stop()
    kinds = [e.kind for e in events]
    assert kinds.count("paused") == 1 and kinds.count("resumed") == 1, kinds
    sealed = rec.sealed()
    assert len(sealed) >= 3, sealed
    assert [s.seq for s in sealed] == list(range(1, len(sealed) + 1))
    for before, after in itertools.pairwise(sealed):
        assert after.start_s >= before.end_s - 0.01
    gapped = [s for s in sealed if s.gap_before is not None]
    assert len(gapped) == 1 and gapped[0].gap_before["reason"] == "disk_full", sealed
    assert gapped[0].start_s - gapped[0].gap_before["start_s"] >= 0.5
    assert all(abs(s.end_s - round(s.end_s)) < 0.45 for s in sealed[:-1])  # on the second
    assert not list(rec.directory.glob("*.part"))


def test_a_configuration_whose_segments_the_server_would_refuse_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    from booth_client.recording.config import RecordingConfig

    assert RecordingConfig(enabled=True, segment_s=10.0).video_bps == 120_000
    with pytest.raises(ValidationError, match="more than the server takes"):
        RecordingConfig(video_bps=2_000_000, segment_s=60.0)
