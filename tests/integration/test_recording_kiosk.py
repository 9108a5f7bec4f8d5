"""The kiosk records its sessions (issue 23): a real kiosk (BoothClient, aiortc, synthetic
camera and microphone) in a call with an officer that talks and shows a picture, through
a live server. The recording opens with the consent's answer, segments are sealed and
uploaded during the call, and the session's end closes it: the server holds a recording
whose every segment verifies, shows both faces and carries both voices.

Runs inside a private network namespace (scripts/test); ICE is limited to loopback.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import numpy as np
import pytest

from booth_client.client import BoothClient
from booth_client.recording.config import RecordingConfig
from booth_client.recording.media import GREY_Y
from booth_client.upload import CRASH_POINT_ENV
from signaling.messages import EndSession, RecordingStatus, RequestCapture
from signaling.session import SessionState
from tests.support.booths import (
    booth_processes,
    drop_signaling,
    log_events,
    running_booths,
    running_cso,
)
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.talking_cso import TalkingCso, talking_cso

pytestmark = pytest.mark.media

SMALL = {"segment_s": 4.0, "cell_width": 160, "cell_height": 120, "fps": 5.0}


async def until(check, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"{what} did not happen within {within} s"
        await asyncio.sleep(0.2)


async def _closed(server: LiveServer, session_id: str):  # type: ignore[no-untyped-def]
    rec = await server.app.state.recordings.service.store.by_session(session_id)
    return rec if rec is not None and rec.state == "closed" else None


def _decode(data: bytes, tmp: Path) -> tuple[tuple[int, int], int, np.ndarray, float]:
    """(picture size, audio channels, per-channel RMS, the share of the officer's half of
    the last picture that is the 'no picture' grey) of one WebM segment."""
    path = tmp / "segment.webm"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        size = (video.codec_context.width, video.codec_context.height)
        pictures = [  # the luma plane, as composed
            f.reformat(format="yuv420p").to_ndarray()[: size[1]] for f in container.decode(video=0)
        ]
        officer = pictures[-1][:, size[0] // 2 :]
        grey = float(np.mean(np.abs(officer.astype(int) - GREY_Y) <= 2))
    with av.open(str(path)) as container:
        channels = container.streams.audio[0].codec_context.channels
        chunks = [
            f.to_ndarray().reshape(-1, channels) if f.format.is_packed else f.to_ndarray().T
            for f in container.decode(audio=0)
        ]
    samples = np.concatenate(chunks).astype(np.float64)
    return size, channels, np.sqrt(np.mean(samples**2, axis=0)), grey


async def test_a_call_is_recorded_uploaded_closed_and_verifies(tmp_path: Path) -> None:
    config = RecordingConfig(enabled=True, **SMALL)  # type: ignore[arg-type]
    async with (
        running_server(server_settings(tmp_path, upload_chunk_min_bytes=1024)) as server,
        talking_cso(server, "siti", picture=True) as cso,
        running_booths(
            server, 1, recording=config, state_dir=tmp_path / "kiosk", upload_chunk_bytes=16384
        ) as (booth,),
    ):
        await until(lambda: _state(booth, SessionState.FOCUSED), 60, "a focused call")
        session_id = booth.session_id
        assert session_id is not None
        await until(lambda: _recording_told(cso, session_id, "recording"), 15, "'recording'")
        # The officer asks for a KTP picture: the timeline marks it asked, taken, stored.
        await cso._send(RequestCapture(session_id=session_id, capture_id="cap-1", kind="ktp"))
        await asyncio.sleep(3.0)
        # A signaling blip: the media goes on, and so does the same recording (marked).
        drop_signaling(booth)

        async def back() -> bool:
            return booth.connections >= 2 and booth.online

        await until(back, 20, "the kiosk back online")
        await asyncio.sleep(6.0)  # a call of about 10 s: two segments and a third
        await cso._send(EndSession(session_id=session_id))
        await until(lambda: _closed(server, session_id), 60, "the recording closed")
        # Delivered: the kiosk's disk holds nothing of it any more.
        # (the synthetic participant checks in again: its next session is recorded too)
        mine = booth.recording.store.root / session_id
        await until(lambda: _gone(mine), 10, "the kiosk's copy gone")

        service = server.app.state.recordings.service
        rec = await _closed(server, session_id)
        report = await service.verify(rec)
        assert report.ok, report.to_json()
        manifest = rec.manifest
        segments = manifest["segments"]
        assert len(segments) >= 3, manifest
        assert manifest["gaps"] == [], manifest["gaps"]
        assert manifest["officer"]["id"] == "siti"
        assert manifest["consent"]["answer"] == "given"
        assert {
            "recording_started",
            "focus",
            "capture_requested",
            "capture_taken",
            "capture_stored",
            "kiosk_offline",
            "kiosk_online",
            "session_ended",
        } <= {m["kind"] for m in manifest["marks"]}, manifest["marks"]
        # Both faces side by side, both voices: the participant's on the left channel,
        # the officer's tone on the right.
        levels = []
        for seg in segments:
            data = await asyncio.to_thread(service.files.get, rec.recording_id, seg["seq"])
            size, channels, rms, grey = _decode(data, tmp_path)
            assert size == (320, 120) and channels == 2
            assert grey < 0.5, f"segment {seg['seq']}: no officer picture ({grey:.0%} grey)"
            levels.append(rms)
        # (decoded Opus is float, full scale 1.0; silence would be below 0.001)
        assert max(lv[0] for lv in levels) > 0.02, levels  # the participant spoke
        assert min(lv[1] for lv in levels[:-1]) > 0.02, levels  # the officer's tone throughout
        entries = [e async for e in server.app.state.records.store.audit_entries()]
        actions = {e.action for e in entries if e.claim_id == rec.claim_id}
        assert {"recording.consent_given", "recording.started", "recording.closed"} <= actions


async def _state(booth: BoothClient, state: SessionState) -> bool:
    return booth.state is state


async def _recording_told(cso: TalkingCso, session_id: str, state: str) -> bool:
    return any(
        isinstance(m, RecordingStatus) and m.session_id == session_id and m.state == state
        for m in cso.seen
    )


async def _gone(directory: Path) -> bool:
    return not await asyncio.to_thread(directory.exists)


async def test_a_kiosk_killed_mid_upload_goes_on_with_the_same_recording(tmp_path: Path) -> None:
    """A real `loket booth` process SIGKILLed with its first segment half uploaded, in the
    middle of the call: restarted, it resumes that upload from the server's offset, goes on
    recording the same session (the time it was down a `kiosk_restart` gap), and closes
    the recording when the session ends; nothing is lost or stored twice."""
    recording_env = {
        "LOKET_BOOTH_RECORDING__ENABLED": "true",
        "LOKET_BOOTH_RECORDING__SEGMENT_S": "4",
        "LOKET_BOOTH_RECORDING__CELL_WIDTH": "160",
        "LOKET_BOOTH_RECORDING__CELL_HEIGHT": "120",
        "LOKET_BOOTH_UPLOAD_CHUNK_BYTES": "16384",
    }
    crash = {CRASH_POINT_ENV: "recording_mid_upload"}
    async with (
        running_server(server_settings(tmp_path, upload_chunk_min_bytes=1024)) as server,
        running_cso(server, "siti", capacity=1) as cso,
        booth_processes(server, 1, tmp_path / "b", env={**recording_env, **crash}) as (booth,),
    ):
        assert booth.process is not None
        code = await asyncio.wait_for(booth.process.wait(), 90)
        assert code == -9, _tail(booth.log_path)
        sessions = cso.live_sessions()
        assert len(sessions) == 1, sessions
        session_id = sessions[0]
        service = server.app.state.recordings.service
        rec = await service.store.by_session(session_id)
        assert rec is not None and rec.state == "open"
        assert await service.store.segments(rec.recording_id) == {}  # half of segment 1 up

        for key in crash:
            booth.env.pop(key)
        await booth.start()

        async def recorded_on() -> bool:
            stored = await service.store.segments(rec.recording_id)
            return len(stored) >= 3

        await until(recorded_on, 60, "three segments stored after the restart")
        await cso.end(session_id)
        await until(lambda: _closed(server, session_id), 60, "the recording closed")
        closed = await _closed(server, session_id)
        report = await service.verify(closed)
        assert report.ok, report.to_json()
        manifest = closed.manifest
        seqs = [s["seq"] for s in manifest["segments"]]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        gaps = manifest["gaps"]
        assert [g["reason"] for g in gaps] == ["kiosk_restart"], gaps
        assert gaps[0]["start_s"] == manifest["segments"][0]["end_s"]
        resumed = [e for e in log_events(booth, "recording_upload_resumed")]
        assert resumed and resumed[0]["seq"] == 1 and int(resumed[0]["offset"]) > 0, resumed
        assert {"recording_resumed", "session_ended"} <= {m["kind"] for m in manifest["marks"]}


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def test_a_refusal_is_audited_and_follows_the_servers_policy(tmp_path: Path) -> None:
    """Policy in_person (the default): a participant who refuses is not checked in, the
    refusal is audited on their claim and the kiosk knows where to send them. Policy
    unrecorded: the session goes on, the officer is told it is not recorded, and the
    server's recording is a refused one that takes no media."""
    refuse = RecordingConfig(enabled=True, consent="refused", **SMALL)  # type: ignore[arg-type]
    settings = server_settings(tmp_path / "in-person", recording_directions="Loket 3")
    async with (
        running_server(settings) as server,
        running_booths(server, 1, recording=refuse, state_dir=tmp_path / "k1") as (booth,),
    ):

        async def refused() -> bool:
            return booth.recording.refused is not None and not booth.checking_in

        await until(refused, 20, "the refusal")
        assert booth.recording.refused == "Loket 3"
        assert booth.state is SessionState.IDLE and server.app.state.floor.waiting == 0
        entries = [e async for e in server.app.state.records.store.audit_entries()]
        refusals = [e for e in entries if e.action == "recording.consent_refused"]
        assert len(refusals) == 1 and refusals[0].details["policy"] == "in_person"

    settings = server_settings(tmp_path / "unrecorded", recording_refusal="unrecorded")
    async with (
        running_server(settings) as server,
        talking_cso(server, "siti") as cso,
        running_booths(server, 1, recording=refuse, state_dir=tmp_path / "k2") as (booth,),
    ):
        await until(lambda: _state(booth, SessionState.FOCUSED), 60, "a focused call")
        session_id = booth.session_id
        assert session_id is not None
        await until(lambda: _recording_told(cso, session_id, "refused"), 15, "'refused'")
        store = server.app.state.recordings.service.store

        async def opened_refused() -> bool:
            rec = await store.by_session(session_id)
            return rec is not None and rec.state == "refused"

        await until(opened_refused, 15, "a refused recording")
        rec = await store.by_session(session_id)
        assert await store.segments(rec.recording_id) == {}
        assert not any((tmp_path / "k2" / "recordings").glob("**/*.webm*"))


async def test_the_screen_asks_first_and_a_refusal_says_where_to_go(tmp_path: Path) -> None:
    """The kiosk screen (headless pygame, taps) of a kiosk that records: the participant
    is asked before the check-in; refusing (policy in_person) ends on where to go, audited;
    the next one consents and is checked in."""
    from booth_client.screen.model import (
        AnswerConsent,
        ChooseClaimType,
        ChooseLanguage,
        ChooseMethod,
        Finish,
        Key,
        Next,
        Screen,
    )
    from signaling.messages import ClaimType, Language
    from tests.integration.test_kiosk_screen import KPJ, NIK, kiosk, shown, tap

    settings = server_settings(tmp_path / "server", recording_directions="Loket 3")
    async with (
        running_server(settings) as server,
        kiosk(server, tmp_path, recording=RecordingConfig(enabled=True)) as (client, screen),
    ):
        for answer in (False, True):
            await shown(screen, Screen.LANGUAGE, also=lambda m: m.banner is None)
            tap(screen, ChooseLanguage(Language.ENGLISH))
            await shown(screen, Screen.METHOD)
            tap(screen, ChooseMethod("walk_in"))
            await shown(screen, Screen.WALK_IN)
            tap(screen, *(Key(d) for d in NIK + KPJ), ChooseClaimType(ClaimType.TERMINATION))
            await shown(screen, Screen.WALK_IN, also=lambda m: m.fields[2].value != "")
            tap(screen, Next())
            model = await shown(screen, Screen.CONSENT)
            assert model.title == "May we record this session?"
            assert "evidence" in model.lines[0] and "5 years" in model.lines[0]
            tap(screen, AnswerConsent(answer))
            if not answer:
                model = await shown(screen, Screen.ENDED)
                assert "Please go to: Loket 3" in model.text()
                assert server.app.state.floor.waiting == 0
                tap(screen, Finish())
        await shown(screen, Screen.WAITING)
        assert server.app.state.floor.waiting == 1
        assert client.recording.consent is not None and client.recording.consent.given
        entries = [e async for e in server.app.state.records.store.audit_entries()]
        [refusal] = [e for e in entries if e.action == "recording.consent_refused"]
        # (a walk-in has no claim before checking in: the refusal names their reference)
        assert refusal.details["language"] == "en"
        assert refusal.details["reference"]["nik"].endswith(NIK[-4:])
