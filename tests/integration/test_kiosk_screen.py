"""The kiosk screen, headless, on a real BoothClient against a real server: a participant
checks in by tapping and typing (pygame mouse and key events into the screen), the server
gets exactly what they typed, and the screen follows the visit through the queue, a lost
socket, the call (on hold, talking, a document capture) and its end.

The PNGs each screen change writes go to the test's tmp dir, and to
$LOKET_TEST_ARTIFACTS/kiosk-screen-live/ when that is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from booth_client.client import BoothClient
from booth_client.config import BoothConfig
from booth_client.peer import rtc_configuration
from booth_client.screen import KioskScreen, ScreenSettings, add_screen
from booth_client.screen.model import (
    ChooseClaimType,
    ChooseLanguage,
    ChooseMethod,
    Finish,
    Key,
    Next,
    Screen,
    ScreenModel,
)
from booth_client.screen.render import pygame
from booth_client.sources.synthetic import SyntheticToneTrack, SyntheticVideoTrack
from signaling.messages import (
    Accept,
    Answer,
    BoothAssigned,
    BoothOffered,
    CaptureStatus,
    ClaimType,
    EndSession,
    FocusBooth,
    Language,
    Offer,
    RequestCapture,
    Role,
)
from signaling.session import SessionState
from tests.support.accounts import add_user, enrol_booth, login
from tests.support.booths import LOOPBACK, drop_signaling
from tests.support.claims import seed_claim, valid_nik
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.ws_client import SignalClient

S = SessionState
NIK = valid_nik(4242)
KPJ = "98765432109"


@contextlib.asynccontextmanager
async def kiosk(
    server: LiveServer, tmp_path: Path, **config: object
) -> AsyncIterator[tuple[BoothClient, KioskScreen]]:
    """A kiosk with its screen attached, headless, running until the block ends."""
    _, credential = await enrol_booth(server, "booth-1")
    client = BoothClient(
        BoothConfig(
            server_url=server.base_url,
            credential=credential,  # type: ignore[arg-type]
            ice_host_addresses=LOOPBACK,
            outbox_dir=tmp_path / "outbox",
            **config,  # type: ignore[arg-type]
        ),
        label="booth-1",
    )
    options = ScreenSettings(mode="headless", out_dir=tmp_path / "screen", fps=30,
                             png_every_s=0.5, capture_countdown_s=0.6,
                             capture_retry_countdown_s=0.3, capture_result_s=1.0)  # fmt: skip
    screen = add_screen(client, options)
    assert screen is not None
    task = asyncio.create_task(client.run())
    try:
        yield client, screen
    finally:
        await client.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await screen.close()
        _keep_artifacts(screen, tmp_path.name)


def _keep_artifacts(screen: KioskScreen, test: str) -> None:
    target = os.environ.get("LOKET_TEST_ARTIFACTS")
    if target:
        out = Path(target) / "kiosk-screen-live" / test
        out.mkdir(parents=True, exist_ok=True)
        for path in screen.saved:
            if path.exists():
                shutil.copy(path, out / path.name)


async def shown(
    screen: KioskScreen,
    kind: Screen,
    within: float = 15.0,
    also: Callable[[ScreenModel], bool] = lambda _: True,
) -> ScreenModel:
    """Wait until the screen shows `kind` (and `also` holds) and has been drawn."""
    async with asyncio.timeout(within):
        while True:
            model = screen.model
            if model is not None and model.screen is kind and also(model) and screen.hits:
                return model
            await asyncio.sleep(0.02)


def tap(screen: KioskScreen, *actions: object) -> None:
    """Touch the buttons (mouse down and up where each was drawn)."""
    for action in actions:
        pos = screen.where(action)  # type: ignore[arg-type]
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1))
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=pos, button=1))


def type_keys(text: str) -> None:
    """Type on the physical keyboard; '\\n' is Enter."""
    for char in text:
        key = pygame.K_RETURN if char == "\n" else pygame.key.key_code(char.lower())
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode=char))


def saved_screens(screen: KioskScreen) -> list[str]:
    return [p.name.split("-", 1)[1].rsplit("-", 1)[0] for p in screen.saved]


async def test_a_check_in_typed_on_the_screen_reaches_the_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with (
        running_server(server_settings(tmp_path / "server")) as server,
        kiosk(server, tmp_path, reconnect_min=0.6, reconnect_max=0.6) as (client, screen),
    ):
        await shown(screen, Screen.LANGUAGE, also=lambda m: m.banner is None)  # online
        await asyncio.sleep(0.5)
        # With a screen, nobody is checked in until the participant does it.
        assert client.state is S.IDLE and server.app.state.floor.waiting == 0

        tap(screen, ChooseLanguage(Language.ENGLISH))
        model = await shown(screen, Screen.METHOD)
        assert model.title == "How would you like to check in?"
        tap(screen, ChooseLanguage(Language.INDONESIAN))
        await shown(screen, Screen.METHOD, also=lambda m: m.language is Language.INDONESIAN)
        tap(screen, ChooseMethod("booking"))
        await shown(screen, Screen.BOOKING)
        type_keys("nope-42\n")
        # The server does not know the code: back to the form, with what to do about it.
        model = await shown(screen, Screen.BOOKING, also=lambda m: m.notice is not None)
        assert model.notice is not None and model.notice.text.startswith("Kode booking tidak")
        assert model.fields[0].value == "NOPE-42"
        assert client.last_refusal is not None and client.last_refusal.code == "claim_not_found"

        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0))
        await shown(screen, Screen.METHOD)
        tap(screen, ChooseMethod("walk_in"))
        await shown(screen, Screen.WALK_IN)
        tap(screen, *(Key(d) for d in NIK))  # the NIK on the on-screen keypad
        await shown(screen, Screen.WALK_IN, also=lambda m: m.fields[0].value == NIK)
        type_keys(KPJ)  # the KPJ number on the keyboard
        await shown(screen, Screen.WALK_IN, also=lambda m: m.fields[1].value == KPJ)
        tap(screen, ChooseClaimType(ClaimType.TERMINATION))
        await shown(screen, Screen.WALK_IN, also=lambda m: m.buttons[-1].label == "Daftar")
        tap(screen, Next())
        model = await shown(screen, Screen.WAITING, also=lambda m: m.big is not None)
        assert model.big == "1" and "Anda berikutnya." in model.lines
        assert NIK not in model.text()

        # What the server got is what was typed: the CSO's offer names the claim.
        await add_user(server, "siti", capacity=1)
        token = (await login(server, "siti"))["access_token"]
        cso = await SignalClient.connect(server.ws_url, Role.CSO, token)
        offered = await cso.expect(BoothOffered, timeout=10)
        assert offered.claim.kind == "walk_in"
        assert offered.claim.claim_type is ClaimType.TERMINATION
        assert offered.claim.nik_masked is not None and offered.claim.nik_masked.endswith(NIK[-4:])
        assert offered.language is Language.INDONESIAN
        await cso.close()  # the offer lapses: the booth waits at its place again

        # A lost socket says so at once, and the queue comes back.
        await shown(screen, Screen.WAITING)
        drop_signaling(client)
        await shown(screen, Screen.RECONNECTING, within=5)
        await shown(screen, Screen.WAITING, within=15)

    names = saved_screens(screen)
    for expected in ("language", "method", "booking", "submitting", "walk_in", "waiting",
                     "reconnecting"):  # fmt: skip
        assert expected in names, names
    assert all(p.exists() for p in screen.saved)
    assert (tmp_path / "screen" / "current.png").exists()


class Officer:
    """The CSO's side in a few lines: a raw console socket and an aiortc peer that sends
    a camera (a synthetic picture) and a voice, as the console does."""

    def __init__(self, socket: SignalClient) -> None:
        self.socket = socket
        self.pc: RTCPeerConnection | None = None

    async def take(self) -> BoothAssigned:
        offered = await self.socket.expect(BoothOffered, timeout=20)
        await self.socket.send(Accept(session_id=offered.session_id))
        assigned = await self.socket.expect(BoothAssigned, timeout=10)
        pc = self.pc = RTCPeerConnection(rtc_configuration(list(assigned.ice_servers)))
        pc.addTransceiver(SyntheticVideoTrack("Petugas", 320, 240), direction="sendrecv")
        pc.addTransceiver(SyntheticToneTrack(660), direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        await self.socket.send(Offer(session_id=assigned.session_id, sdp=pc.localDescription.sdp))
        answer = await self.socket.expect(Answer, timeout=20, session_id=assigned.session_id)
        await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        return assigned

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        await self.socket.close()


@pytest.mark.media
async def test_the_screen_follows_the_call_hold_capture_and_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with (
        running_server(server_settings(tmp_path / "server")) as server,
        kiosk(server, tmp_path) as (client, screen),
    ):
        await seed_claim(server, "JKT-2026-0412", nik=NIK)
        await add_user(server, "siti", capacity=2)
        token = (await login(server, "siti"))["access_token"]
        officer = Officer(await SignalClient.connect(server.ws_url, Role.CSO, token))
        try:
            await shown(screen, Screen.LANGUAGE, also=lambda m: m.banner is None)
            tap(screen, ChooseLanguage(Language.INDONESIAN))
            await shown(screen, Screen.METHOD)
            tap(screen, ChooseMethod("booking"))
            await shown(screen, Screen.BOOKING)
            type_keys("jkt-2026-0412\n")
            assigned = await officer.take()
            session = assigned.session_id
            assert assigned.claim.booking_code == "JKT-2026-0412"

            # In the call, not focused: on hold, with the booth's own camera.
            model = await shown(screen, Screen.ON_HOLD, within=20,
                                also=lambda m: m.media[0].available)  # fmt: skip
            assert model.title == "Petugas sedang melayani peserta lain — mohon tunggu"

            await officer.socket.send(FocusBooth(session_id=session))
            model = await shown(screen, Screen.TALKING, within=20,
                                also=lambda m: all(s.available for s in m.media))  # fmt: skip
            assert client.video_sink.frames > 0 and model.media[0].source == "officer"

            ask = RequestCapture(session_id=session, capture_id="cap-ktp", kind="ktp")
            await officer.socket.send(ask)
            model = await shown(screen, Screen.CAPTURE, within=10, also=lambda m: m.big is not None)
            assert model.title == "Tunjukkan KTP Anda" and model.media[0].source == "document"
            # The synthetic participant's hand shakes at first: the advice is shown.
            model = await shown(
                screen,
                Screen.CAPTURE,
                within=30,
                also=lambda m: m.notice is not None and m.notice.tone == "warning",
            )
            assert model.notice is not None
            assert model.notice.text == "Tahan dokumen agar tidak bergerak"
            model = await shown(
                screen,
                Screen.CAPTURE,
                within=30,
                also=lambda m: "Foto sudah diterima petugas." in m.lines,
            )
            assert model.media[0].source == "picture" and model.media[0].available
            status = await officer.socket.expect(CaptureStatus, timeout=10, stage="done")
            assert status.document_id
            await shown(screen, Screen.TALKING, within=10)  # back to the officer

            await officer.socket.send(EndSession(session_id=session))
            model = await shown(screen, Screen.ENDED, within=10)
            assert "Petugas telah menyelesaikan verifikasi Anda." in model.lines
            await asyncio.sleep(0.5)
            # A screen's participant is not checked in again by itself.
            assert client.state is S.IDLE and server.app.state.floor.waiting == 0
            tap(screen, Finish())
            await shown(screen, Screen.LANGUAGE)
            assert screen.watch.picture is None  # no document stays for the next person
        finally:
            await officer.close()

    names = saved_screens(screen)
    for expected in ("submitting", "connecting", "on_hold", "talking", "capture", "ended"):
        assert expected in names, names
