"""The field test: a real `loket booth` on a branch line, its officer on the other end.

One kiosk process runs in the branch namespace (tests/support/branch_link.py), the
server and an aiortc officer (`FieldCso`) outside. The officer talks (a tone), focuses the
booth, asks for a KTP capture once the call has settled, and writes down the arrival time
of every frame it decodes: the participant's voice, the face camera, the document camera;
the kiosk writes down every frame of the officer's voice it hears (its audio log). From
those, `field_run` reports what a branch would see (`FieldReport`): voice continuity both
ways during the capture upload, the face's frame rate and longest freeze, the upload's
time, the ladder's steps. bench/thin_link_bench.py runs the same with the goals table's
profiles; tests/integration/test_field_thin_link.py asserts on a few.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from booth_client.ice import use_host_addresses
from booth_client.jitter import VoiceJitterBuffer, patient_receivers
from booth_client.peer import rtc_configuration
from server.settings import Settings
from signaling.messages import (
    Answer,
    BoothAssigned,
    CaptureStatus,
    Envelope,
    FocusBooth,
    Offer,
    PeerState,
    RequestCapture,
)
from tests.support.accounts import PASSWORD, login
from tests.support.booths import BoothProcess, log_events
from tests.support.branch_link import BranchLink, LineCounters, LinkProfile, branch_link
from tests.support.live_server import free_port
from tests.support.talking_cso import Heard, TalkingCso, _Peer

CSO_NAME = "field-cso"


@dataclass
class Timeline:
    """Arrival times (monotonic, the whole machine's clock) of what the officer decoded."""

    voice: list[float] = field(default_factory=list)
    face: list[tuple[float, int, int]] = field(default_factory=list)  # (t, width, height)
    document: list[float] = field(default_factory=list)
    connected_at: float | None = None
    statuses: list[tuple[float, CaptureStatus]] = field(default_factory=list)
    session_id: str = ""
    # The participant's voice as it came off the wire: (time, RTP payload bytes, stereo).
    voice_payloads: list[tuple[float, int, bool]] = field(default_factory=list)
    officer_voice_bytes: list[tuple[float, int]] = field(default_factory=list)  # (t, total)

    def stage_at(self, capture_id: str, stage: str) -> float | None:
        for at, status in self.statuses:
            if status.capture_id == capture_id and status.stage == stage:
                return at
        return None


class CountingVoiceBuffer(VoiceJitterBuffer):
    """The voice's receive buffer, noting each packet's payload size and channel count
    (the Opus TOC byte's stereo flag) as it arrives: what was on the wire."""

    def __init__(self, timeline: Timeline) -> None:
        super().__init__()
        self.timeline = timeline

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        payload = packet.payload
        stereo = bool(payload) and bool(payload[0] & 0x04)
        self.timeline.voice_payloads.append((time.monotonic(), len(payload), stereo))
        return super().add(packet)


class FieldCso(TalkingCso):
    """An aiortc officer in the console's m-line order (face video, audio both ways,
    document video) that times every frame it decodes and asks for captures."""

    def __init__(self, server: Endpoint, username: str) -> None:
        super().__init__(server, username, tone_hz=660.0)  # type: ignore[arg-type]
        self.timelines: dict[str, Timeline] = {}

    async def _call(self, message: BoothAssigned) -> None:
        pc = RTCPeerConnection(rtc_configuration(list(message.ice_servers)))
        peer = _Peer(pc, Heard())
        timeline = self.timelines.setdefault(message.session_id, Timeline())
        timeline.session_id = message.session_id
        self.calls[message.session_id] = peer
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver(self.voice, direction="sendrecv")
        document = pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            which = "document" if track is document.receiver.track else track.kind
            peer.tasks.append(asyncio.create_task(self._time(track, which, timeline)))

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState == "connected":
                timeline.connected_at = time.monotonic()
            if pc.connectionState in ("connected", "failed", "closed"):
                state = PeerState(session_id=message.session_id, state=pc.connectionState)  # type: ignore[arg-type]
                with contextlib.suppress(websockets.ConnectionClosed):  # closing: no news
                    await self._send(state)

        await pc.setLocalDescription(await pc.createOffer())
        await self._send(Offer(session_id=message.session_id, sdp=pc.localDescription.sdp))
        await self._send(FocusBooth(session_id=message.session_id))

    async def _answered(self, session_id: str, sdp: str) -> None:
        """Like the kiosk, give up on a lost packet after a moment (booth_client.jitter)."""
        pc = self.calls[session_id].pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        patient_receivers(pc, sdp)
        timeline = self.timelines[session_id]
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                counting = CountingVoiceBuffer(timeline)
                transceiver.receiver._RTCRtpReceiver__jitter_buffer = counting  # type: ignore[attr-defined]

    async def _time(self, track: MediaStreamTrack, which: str, timeline: Timeline) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if which == "audio":
                    timeline.voice.append(now)
                elif which == "document":
                    timeline.document.append(now)
                else:
                    timeline.face.append((now, frame.width, frame.height))  # type: ignore[union-attr]

    async def _on(self, message: Envelope) -> None:
        if isinstance(message, Answer) and message.session_id in self.calls:
            await self._answered(message.session_id, message.sdp)
            return
        if isinstance(message, CaptureStatus):
            timeline = self.timelines.setdefault(
                message.session_id, Timeline(session_id=message.session_id)
            )
            timeline.statuses.append((time.monotonic(), message))
            return
        await super()._on(message)

    async def request_capture(self, session_id: str, kind: str = "ktp") -> str:
        capture_id = f"cap-{uuid.uuid4().hex[:10]}"
        await self._send(RequestCapture(session_id=session_id, capture_id=capture_id, kind=kind))
        return capture_id


# --- what a window of a timeline says -----------------------------------------------------


def continuity(times: list[float], start: float, end: float) -> tuple[float, float]:
    """(frames a second, longest gap in seconds) of the arrivals in [start, end]; the
    window's edges count as arrivals' neighbours, so silence at either end is a gap."""
    inside = [t for t in times if start <= t <= end]
    edges = [start, *inside, end]
    gap = max(b - a for a, b in itertools.pairwise(edges))
    return len(inside) / (end - start), gap


def _gaps(times: list[float], start: float, end: float, top: int = 3) -> list[tuple[float, float]]:
    """The `top` longest gaps in [start, end] as (seconds after start, length)."""
    edges = [start, *(t for t in times if start <= t <= end), end]
    gaps = [(round(a - start, 3), round(b - a, 3)) for a, b in itertools.pairwise(edges)]
    return sorted(gaps, key=lambda g: -g[1])[:top]


@dataclass
class FieldReport:
    profile: str
    face_size: tuple[int, int]  # the camera as configured (the call's resolution)
    picture_bytes: int | None = None
    capture_s: float | None = None  # `uploading` -> `done`, as the officer saw it
    window_s: float = 0.0  # the capture's window the figures below cover
    voice_fps: float = 0.0  # the participant's voice at the officer, 50 a second when whole
    voice_gap_s: float = 0.0
    officer_voice_fps: float = 0.0  # the officer's voice at the kiosk
    officer_voice_gap_s: float = 0.0
    face_fps: float = 0.0
    face_freeze_s: float = 0.0
    face_sizes: list[tuple[int, int]] = field(default_factory=list)  # received, in the window
    first_face_s: float | None = None  # connected -> first face frame
    first_document_s: float | None = None  # connected -> first document frame
    document_frames: int = 0  # in the window
    steps: list[tuple[float, str, bool]] = field(default_factory=list)  # (t, level, uploading)
    line: LineCounters = field(default_factory=LineCounters)
    capture_stages: list[str] = field(default_factory=list)
    voice_payload_bps: float | None = None  # the participant's voice: RTP payload bits/s
    voice_stereo_packets: int = 0  # of its packets, stereo ones (the kiosk sends mono)
    officer_voice_payload_bps: float | None = None  # the officer's (measured in Chromium)
    marks: dict[str, Any] = field(default_factory=dict)  # where the gaps were, for a reader

    def levels(self) -> list[str]:
        return [level for _, level, _ in self.steps]


def _capture_window(timeline: Timeline, capture_id: str, asked: float) -> tuple[float, float]:
    """The upload: from half a second before the kiosk said `uploading` until a second
    after the picture was stored, at least 3 s (the camera's part before it is the
    kiosk's CPU, not the line)."""
    done = timeline.stage_at(capture_id, "done") or time.monotonic()
    start = (timeline.stage_at(capture_id, "uploading") or asked) - 0.5
    return start, max(done + 1.0, start + 3.0)


async def _picture_bytes(server: Endpoint, username: str, document_id: str | None) -> int | None:
    if document_id is None:
        return None
    token = (await login(server, username))["access_token"]  # type: ignore[arg-type]
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        res = await http.get(
            f"/api/documents/{document_id}", headers={"Authorization": f"Bearer {token}"}
        )
        return len(res.content) if res.status_code == 200 else None


@dataclass(frozen=True)
class Endpoint:
    """Where a `loket serve` process listens (what TalkingCso and login need of a server)."""

    base_url: str
    ws_url: str


async def _accounts(settings: Settings) -> str:
    """The officer (`CSO_NAME`, the tests' password) and one booth; its credential."""
    from server.adapters.sql import migrate
    from server.adapters.sql.wiring import open_accounts
    from server.auth.demo import auth_service
    from server.principal import AccountRole

    await migrate.upgrade(settings)
    engine, store = await open_accounts(settings)
    try:
        auth = auth_service(settings, store)
        await auth.add_user(
            CSO_NAME, PASSWORD, role=AccountRole.CSO, display_name="Field CSO", branch="jkt01",
            pools=frozenset({"*"}), skills=frozenset({"lang:en"}), capacity=1,
        )  # fmt: skip
        _, credential = await auth.enrol_booth("jkt01", "branch-booth")
        return credential
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def loket_serve(data_dir: Path, host: str, reach: str) -> AsyncIterator[tuple[Endpoint, str]]:
    """`loket serve` as its own process listening on `host` (not in this process's event
    loop: a busy server must not delay what the officer here sends and times); yields its
    address at `reach` and the booth's credential."""
    port = free_port(reach)
    settings = Settings(data_dir=data_dir, host=host, port=port, log_level="WARNING")
    credential = await _accounts(settings)
    env = {**os.environ, "LOKET_DATA_DIR": str(data_dir), "LOKET_HOST": host,
           "LOKET_LOG_LEVEL": "WARNING"}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=(data_dir / "serve.log").open("ab"),
    )  # fmt: skip
    endpoint = Endpoint(f"http://{reach}:{port}", f"ws://{reach}:{port}")
    try:
        async with httpx.AsyncClient(base_url=endpoint.base_url) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                if proc.returncode is not None:
                    raise RuntimeError(f"loket serve exited: see {data_dir / 'serve.log'}")
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("loket serve did not become ready")
        yield endpoint, credential
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()


def booth_in_branch(
    server: Endpoint, link: BranchLink, credential: str, workdir: Path, face: tuple[int, int]
) -> BoothProcess:
    """One `loket booth` process for the branch namespace: synthetic media (the face camera
    at `face`, a participant who speaks all the time), the officer's voice measured."""
    label = "branch-booth"
    audio_log = workdir / f"{label}.audio.jsonl"
    env = dict(os.environ)
    env.update(
        LOKET_BOOTH_CREDENTIAL=credential,
        LOKET_LOG_LEVEL="INFO",
        LOKET_BOOTH_FACE_CAMERA__WIDTH=str(face[0]),
        LOKET_BOOTH_FACE_CAMERA__HEIGHT=str(face[1]),
        LOKET_BOOTH_OUTBOX_DIR=str(workdir / label / "outbox"),
    )
    argv = link.argv(
        sys.executable, "-m", "server.cli", "booth", "--server", server.base_url,
        "--source", "synthetic", "--ice-address", link.inside_ip, "--label", label,
        "--speak-pattern", "always", "--audio-sink", "measure", "--audio-log", str(audio_log),
    )  # fmt: skip
    return BoothProcess(label, credential, argv, env, audio_log, workdir / f"{label}.log")


async def until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"field run: {what} did not happen within {within:.0f} s")
        await asyncio.sleep(0.05)


class Officer(Protocol):
    """The officer's end of the field run: the aiortc FieldCso, or the console in
    Chromium (tests/support/field_browser.py). Its timeline is of the one call."""

    async def call_started(self, within: float) -> Timeline: ...

    async def request_capture(self, session_id: str, kind: str) -> str: ...

    async def timeline(self) -> Timeline: ...


class AiortcOfficer:
    """FieldCso as an Officer."""

    def __init__(self, cso: FieldCso) -> None:
        self.cso = cso

    async def call_started(self, within: float) -> Timeline:
        await until(lambda: any(t.face for t in self.cso.timelines.values()), within, "a face")
        return await self.timeline()

    async def request_capture(self, session_id: str, kind: str) -> str:
        return await self.cso.request_capture(session_id, kind)

    async def timeline(self) -> Timeline:
        [timeline] = self.cso.timelines.values()
        return timeline


@dataclass
class Branch:
    """What a field run stands on: the line, the server, the kiosk process."""

    link: BranchLink
    server: Endpoint
    booth: BoothProcess
    profile: LinkProfile
    face: tuple[int, int]


@contextlib.asynccontextmanager
async def branch_office(
    profile: LinkProfile, workdir: Path, face: tuple[int, int], *, bind_all: bool = False
) -> AsyncIterator[Branch]:
    """The branch line, `loket serve` outside it (on every address with `bind_all`, so a
    browser here may use 127.0.0.1: a secure context), and the kiosk (not yet started)."""
    await asyncio.to_thread((workdir / "server").mkdir, parents=True, exist_ok=True)
    async with branch_link(profile) as link:
        host = "0.0.0.0" if bind_all else link.outside_ip
        async with loket_serve(workdir / "server", host, link.outside_ip) as (server, credential):
            booth = booth_in_branch(server, link, credential, workdir, face)
            try:
                yield Branch(link, server, booth, profile, face)
            finally:
                await booth.stop()


async def field_run(
    profile: LinkProfile,
    workdir: Path,
    *,
    face: tuple[int, int] = (640, 360),
    settle_s: float = 10.0,
    kind: str = "kk",
    after_s: float = 0.0,
) -> FieldReport:
    """One call on a `profile` line with the aiortc officer: connect, let the ladder
    settle for `settle_s`, ask for a capture of a `kind` document (the synthetic family
    card is ~85 KB, the KTP ~109 KB), and report on the window from the request until
    after it is stored (the ladder's steps until `after_s` later)."""
    async with branch_office(profile, workdir, face) as branch:
        # This process's officer offers the address the branch reaches (whatever an earlier
        # in-process kiosk left aioice offering).
        use_host_addresses([branch.link.outside_ip])
        cso = FieldCso(branch.server, CSO_NAME)
        await cso.start()
        try:
            await branch.booth.start()
            return await measure(branch, AiortcOfficer(cso), settle_s, kind, after_s)
        finally:
            await cso.stop()
            use_host_addresses([])


async def measure(
    branch: Branch, officer: Officer, settle_s: float, kind: str, after_s: float = 0.0
) -> FieldReport:
    """Wait for the call, let it settle, capture, and read the window around the upload
    (and the ladder's steps until `after_s` after it)."""
    timeline = await officer.call_started(within=60)
    await asyncio.sleep(settle_s)
    asked = time.monotonic()
    session_id = (await officer.timeline()).session_id
    capture_id = await officer.request_capture(session_id, kind)

    async def stored() -> bool:
        timeline = await officer.timeline()
        return bool(
            timeline.stage_at(capture_id, "done") or timeline.stage_at(capture_id, "failed")
        )

    deadline = time.monotonic() + 60
    while not await stored():
        if time.monotonic() > deadline:
            raise AssertionError("field run: the capture was not stored within 60 s")
        await asyncio.sleep(0.1)
    timeline = await officer.timeline()
    start, end = _capture_window(timeline, capture_id, asked)
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    timeline = await officer.timeline()
    report = window_report(timeline, branch, capture_id, start, end)
    ours = [s for _, s in timeline.statuses if s.capture_id == capture_id]
    document_id = next((s.document_id for s in ours if s.document_id), None)
    report.picture_bytes = await _picture_bytes(branch.server, CSO_NAME, document_id)
    report.line = await branch.link.counters()
    if after_s > 0:
        await asyncio.sleep(after_s)
        report.steps = ladder_steps(branch.booth)
    return report


def window_report(
    timeline: Timeline, branch: Branch, capture_id: str, start: float, end: float
) -> FieldReport:
    """What the officer and the kiosk received in [start, end], and the ladder's steps."""
    booth = branch.booth
    heard = [t for t, _ in booth.levels(start - 1)]
    face_times = [t for t, _, _ in timeline.face]
    connected = timeline.connected_at or face_times[0]
    ours = [(at, s) for at, s in timeline.statuses if s.capture_id == capture_id]
    report = FieldReport(branch.profile.name, branch.face, window_s=end - start)
    report.voice_fps, report.voice_gap_s = continuity(timeline.voice, start, end)
    report.officer_voice_fps, report.officer_voice_gap_s = continuity(heard, start, end)
    report.face_fps, report.face_freeze_s = continuity(face_times, start, end)
    report.face_sizes = sorted({(w, h) for t, w, h in timeline.face if start <= t <= end})
    report.first_face_s = face_times[0] - connected
    report.first_document_s = timeline.document[0] - connected if timeline.document else None
    report.document_frames = sum(1 for t in timeline.document if start <= t <= end)
    uploading = timeline.stage_at(capture_id, "uploading")
    done = timeline.stage_at(capture_id, "done")
    if uploading is not None and done is not None:
        report.capture_s = done - uploading
    report.capture_stages = [s.stage for _, s in ours]
    payloads = [(t, n, stereo) for t, n, stereo in timeline.voice_payloads if start <= t <= end]
    if payloads:
        report.voice_payload_bps = sum(n for _, n, _ in payloads) * 8 / (end - start)
        report.voice_stereo_packets = sum(stereo for _, _, stereo in payloads)
    sent = [(t, n) for t, n in timeline.officer_voice_bytes if start <= t <= end]
    if len(sent) >= 2 and sent[-1][0] > sent[0][0]:
        report.officer_voice_payload_bps = (
            (sent[-1][1] - sent[0][1]) * 8 / (sent[-1][0] - sent[0][0])
        )
    report.marks = {
        "voice_gaps": _gaps(timeline.voice, start, end),
        "face_gaps": _gaps(face_times, start, end),
        "officer_gaps": _gaps(heard, start, end),
        **{s.stage: round(at - start, 3) for at, s in ours},
    }
    report.steps = ladder_steps(booth)
    return report


def ladder_steps(booth: BoothProcess) -> list[tuple[float, str, bool]]:
    """The kiosk's ladder so far: (unix time, level stepped to, while an upload ran)."""
    return [
        (_event_time(e), str(e.get("video_level")), bool(e.get("uploading")))
        for e in log_events(booth)
        if e.get("event") in ("video_degraded", "video_restored")
    ]


def _event_time(event: dict[str, object]) -> float:
    from datetime import datetime

    stamp = str(event.get("timestamp", ""))
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(stamp).timestamp()
    return 0.0
