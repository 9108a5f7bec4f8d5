"""Silent monitoring with aiortc at both ends of the link: a real kiosk process (`loket
booth --source synthetic`, its participant speaking) is served by an aiortc officer who
talks; an aiortc supervisor opens a monitor link and answers the booth's send-only offer.
It receives the participant's video, the participant's voice and the officer's voice (as
the booth hears it), while what the booth and the officer hear from each other is
unchanged (the booth's side read from the kiosk process's audio log). The audit holds
start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from booth_client.audio import MeasuringAudioSink
from booth_client.peer import rtc_configuration
from signaling.messages import Ack, Answer, CloseLink, LinkClosed, LinkOpened, Offer, OpenLink, Role
from tests.support.accounts import user_token
from tests.support.booths import (
    booth_processes,
    conversation_levels,
    describe,
    log_events,
    mean_level,
    session_of,
)
from tests.support.live_server import running_server, server_settings
from tests.support.talking_cso import talking_cso, wait_until
from tests.support.ws_client import SignalClient

WINDOW = 2.0


async def test_monitor_link_carries_video_and_both_voices(tmp_path) -> None:
    async with running_server(server_settings(tmp_path, broadcast_interval=0.1)) as server:
        token = await user_token(server, "budi", role="supervisor")
        async with (
            talking_cso(server, "siti", capacity=1) as siti,
            booth_processes(server, 1, tmp_path / "booths", speak={1: "always"}) as [booth],
        ):
            try:
                await wait_until(lambda: session_of(server, booth) is not None, 90)
            except TimeoutError:
                raise AssertionError(f"no call:\n{describe(server, [booth])}") from None
            session = str(session_of(server, booth))
            heard_by_cso = siti.heard_from(session).audio

            def energies(since: float) -> tuple[float, float]:
                return conversation_levels(heard_by_cso, booth, since, WINDOW)

            await wait_until(lambda: mean_level(booth, time.monotonic() - 1) > 0.02, 30)
            t0 = time.monotonic()
            await asyncio.sleep(WINDOW + 0.5)  # and the last frames of the window logged
            before = energies(t0)

            sup = await SignalClient.connect(server.ws_url, Role.SUPERVISOR, token)
            ask = OpenLink(kind="monitor", session_id=session)
            await sup.send(ask)
            await sup.expect(Ack, reply_to=ask.id)
            link = await sup.expect(LinkOpened)
            assert not link.offerer
            offer = await sup.expect(Offer, timeout=30)
            assert offer.session_id == link.link_id
            pc = RTCPeerConnection(rtc_configuration([]))
            voices = [MeasuringAudioSink(), MeasuringAudioSink()]
            frames = {"video": 0}
            tasks: list[asyncio.Task[None]] = []

            def on_track(track: MediaStreamTrack) -> None:
                index = sum(1 for t in pc.getTransceivers() if t.kind == "audio" and
                            t.receiver.track is not None and t.mid is not None and
                            t.receiver.track is not track and t.mid < _mid(pc, track))  # fmt: skip

                async def run() -> None:
                    while True:
                        try:
                            frame = await track.recv()
                        except MediaStreamError:
                            return
                        if track.kind == "video":
                            frames["video"] += 1
                        else:
                            voices[index].write(frame)  # type: ignore[arg-type]

                tasks.append(asyncio.create_task(run()))

            pc.on("track", on_track)
            await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await sup.send(Answer(session_id=link.link_id, sdp=pc.localDescription.sdp))
            await wait_until(lambda: frames["video"] > 15, 30)
            try:
                await wait_until(
                    lambda: all(v.energy(time.monotonic() - 1) > 0.02 for v in voices), 30
                )
            except TimeoutError:
                states = [e.get("state") for e in log_events(booth, "monitor_state")]
                levels = [(len(v.levels), v.energy(0)) for v in voices]
                sdp = (offer.sdp + pc.localDescription.sdp).splitlines()
                lines = [ln for ln in sdp if ln.startswith(("m=", "a=mid", "a=send", "a=recv"))]
                raise AssertionError(f"voices {levels}; booth's link {states}; {lines}") from None
            t1 = time.monotonic()
            await asyncio.sleep(WINDOW + 0.5)
            during = energies(t1)
            for b, d in zip(before, during, strict=True):
                assert 0.75 < d / b < 1.25, (before, during)
            # The participant's voice is the kiosk's tone; the officer's voice is Siti's.
            assert all(v.energy(t1) > 0.02 for v in voices)

            stop = CloseLink(link_id=link.link_id)
            await sup.send(stop)
            await sup.expect(LinkClosed, link_id=link.link_id)
            # The kiosk process closed its end of the link (and opened no other).
            await wait_until(lambda: log_events(booth, "monitor_stopped"), 10)
            logged = [(e["event"], e["link_id"]) for e in log_events(booth) if "link_id" in e]
            assert ("monitor_started", link.link_id) in logged
            assert {lid for _, lid in logged} == {link.link_id}
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await pc.close()
            await sup.close()
        store = server.app.state.records.store
        actions = [(e.action, e.details.get("session_id")) async for e in store.audit_entries()]
        assert ("monitor.started", session) in actions
        assert ("monitor.stopped", session) in actions


def _mid(pc: RTCPeerConnection, track: MediaStreamTrack) -> str:
    for t in pc.getTransceivers():
        if t.receiver.track is track:
            return str(t.mid)
    return ""
