"""Every kiosk screen drawn by the real renderer, in both languages, onto an offscreen
pygame surface: nothing cut off, no buttons on top of each other, readable contrast, the
two languages really different. The PNGs go to the test's tmp dir, and to
$LOKET_TEST_ARTIFACTS/kiosk-screen/ when that is set (docs/kiosk-*.png come from there).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from booth_client.capture import CapturePipeline
from booth_client.screen.model import (
    AnswerConsent,
    CapturePhase,
    CaptureView,
    ChooseClaimType,
    ChooseLanguage,
    ChooseMethod,
    ClientSnapshot,
    Key,
    Kiosk,
    MediaSource,
    Next,
    Screen,
)
from booth_client.screen.render import (
    HEADER,
    INK,
    LINE,
    MUTED,
    PAPER,
    PRIMARY,
    TONES,
    WHITE,
    Renderer,
    pygame,
)
from booth_client.sources.scenes import render_scene
from booth_client.sources.synthetic import SyntheticVideoTrack
from signaling.messages import ClaimType, Language
from signaling.session import SessionState

S = SessionState
NOW = 1000.0
ONLINE = ClientSnapshot(online=True, connections=1)


def _type(kiosk: Kiosk, text: str) -> None:
    for char in text:
        kiosk.press(Key(char), NOW)


def _form(language: Language, method: str | None = None) -> Kiosk:
    kiosk = Kiosk(now=NOW)
    kiosk.observe(ONLINE, NOW)
    kiosk.press(ChooseLanguage(language), NOW)
    if method is not None:
        kiosk.press(ChooseMethod(method), NOW)  # type: ignore[arg-type]
    return kiosk


def _client(kiosk: Kiosk, **state: object) -> Kiosk:
    kiosk.observe(replace(kiosk.client, **state), NOW)  # type: ignore[arg-type]
    return kiosk


def _language(lang: Language) -> Kiosk:
    kiosk = Kiosk(now=NOW)
    kiosk.observe(ONLINE, NOW)
    kiosk.form.language = lang
    return kiosk


def _booking(lang: Language) -> Kiosk:
    kiosk = _form(lang, "booking")
    _type(kiosk, "JKT-0412")
    return kiosk


def _booking_refused(lang: Language) -> Kiosk:
    kiosk = _booking(lang)
    kiosk.press(Next(), NOW)  # submitted ...
    return _client(kiosk, refusal_code="claim_not_found", refusal_seq=1)  # ... and refused


def _walk_in(lang: Language) -> Kiosk:
    kiosk = _form(lang, "walk_in")
    _type(kiosk, "3171015208900001")  # a full NIK moves on to the KPJ number
    _type(kiosk, "12345")
    return kiosk


def _consent(lang: Language) -> Kiosk:
    """A kiosk that records asks before the check-in (issue 23)."""
    kiosk = Kiosk(now=NOW)
    kiosk.observe(ClientSnapshot(online=True, connections=1, recording_years=5.0), NOW)
    kiosk.press(ChooseLanguage(lang), NOW)
    kiosk.press(ChooseMethod("walk_in"), NOW)
    _type(kiosk, "317101520890000112345678901")
    kiosk.press(ChooseClaimType(ClaimType.RESIGNATION), NOW)
    kiosk.press(Next(), NOW)
    return kiosk


def _consent_refused(lang: Language) -> Kiosk:
    kiosk = _consent(lang)
    kiosk.press(AnswerConsent(False), NOW)
    kiosk.consent_refused("Loket 3", NOW)
    return kiosk


def _walk_in_problems(lang: Language) -> Kiosk:
    kiosk = _walk_in(lang)
    kiosk.press(Next(), NOW)  # to the claim type
    kiosk.press(Next(), NOW)  # check in: the KPJ number is short, no claim type chosen
    return kiosk


def _submitting(lang: Language) -> Kiosk:
    kiosk = _booking(lang)
    kiosk.press(Next(), NOW)
    return _client(kiosk, checking_in=True)


def _offline_form(lang: Language) -> Kiosk:
    return _client(_walk_in(lang), online=False)


def _waiting(lang: Language) -> Kiosk:
    return _client(_form(lang), state=S.QUEUED, position=2, estimated_wait_s=420.0)


def _reserved(lang: Language) -> Kiosk:
    return _client(_form(lang), state=S.RESERVED, cso_name="Siti Rahmawati")


def _connecting(lang: Language) -> Kiosk:
    return _client(_form(lang), state=S.CONNECTING, cso_name="Siti Rahmawati")


def _talking(lang: Language) -> Kiosk:
    return _client(_form(lang), state=S.FOCUSED, focused=True, cso_name="Siti Rahmawati",
                   peer_state="connected", officer_video=True, self_video=True)  # fmt: skip


def _talking_no_picture(lang: Language) -> Kiosk:
    return _client(_talking(lang), officer_video=False, self_video=False)


def _on_hold(lang: Language) -> Kiosk:
    return _client(_form(lang), state=S.ON_HOLD, cso_name="Siti Rahmawati",
                   peer_state="connected", self_video=True)  # fmt: skip


def _capture(phase: CapturePhase, **view: object) -> Callable[[Language], Kiosk]:
    def make(lang: Language) -> Kiosk:
        capture = CaptureView("ktp", phase, **view)  # type: ignore[arg-type]
        return _client(_form(lang), state=S.FOCUSED, focused=True, cso_name="Siti",
                       peer_state="connected", capture=capture)  # fmt: skip

    return make


def _call_lost(lang: Language) -> Kiosk:
    return _client(_talking(lang), peer_state="disconnected")


def _ended(lang: Language) -> Kiosk:
    kiosk = _talking(lang)
    return _client(kiosk, state=S.IDLE, focused=False, end_reason="completed", end_seq=1)


def _reconnecting(lang: Language) -> Kiosk:
    return _client(_form(lang), state=S.RECONNECTING, lost_from=S.QUEUED, online=False)


def _out_of_service(lang: Language) -> Kiosk:
    return _client(_form(lang), out_of_service=True, online=False)


def _ticket(lang: Language) -> Kiosk:
    kiosk = _language(lang)
    _client(kiosk, called_ticket="B-034")
    _type(kiosk, "B03")
    return kiosk


def _ticket_refused(lang: Language) -> Kiosk:
    kiosk = _ticket(lang)
    _type(kiosk, "5")
    kiosk.press(Next(), NOW)
    return _client(kiosk, refusal_code="ticket_mismatch", refusal_seq=1)


SAMPLES: dict[str, tuple[Callable[[Language], Kiosk], Screen]] = {
    "ticket": (_ticket, Screen.TICKET),
    "ticket-refused": (_ticket_refused, Screen.TICKET),
    "language": (_language, Screen.LANGUAGE),
    "method": (lambda lang: _form(lang), Screen.METHOD),
    "booking": (_booking, Screen.BOOKING),
    "booking-refused": (_booking_refused, Screen.BOOKING),
    "walk-in": (_walk_in, Screen.WALK_IN),
    "walk-in-problems": (_walk_in_problems, Screen.WALK_IN),
    "walk-in-offline": (_offline_form, Screen.WALK_IN),
    "consent": (_consent, Screen.CONSENT),
    "consent-refused": (_consent_refused, Screen.ENDED),
    "submitting": (_submitting, Screen.SUBMITTING),
    "waiting": (_waiting, Screen.WAITING),
    "reserved": (_reserved, Screen.WAITING),
    "connecting": (_connecting, Screen.CONNECTING),
    "talking": (_talking, Screen.TALKING),
    "talking-no-picture": (_talking_no_picture, Screen.TALKING),
    "talking-call-lost": (_call_lost, Screen.TALKING),
    "on-hold": (_on_hold, Screen.ON_HOLD),
    "capture-countdown": (_capture(CapturePhase.COUNTDOWN, countdown_until=NOW + 2.4),
                          Screen.CAPTURE),
    "capture-retry": (_capture(CapturePhase.RETRYING, attempt=2, advice="hold_still"),
                      Screen.CAPTURE),
    "capture-done": (_capture(CapturePhase.DONE, accepted=True, finished_at=NOW),
                     Screen.CAPTURE),
    "capture-failed": (_capture(CapturePhase.FAILED, finished_at=NOW), Screen.CAPTURE),
    "ended": (_ended, Screen.ENDED),
    "reconnecting": (_reconnecting, Screen.RECONNECTING),
    "out-of-service": (_out_of_service, Screen.OUT_OF_SERVICE),
}  # fmt: skip


@pytest.fixture(scope="module")
def images() -> Callable[[MediaSource], np.ndarray | None]:
    officer = SyntheticVideoTrack("Petugas", 640, 480).render(12)[:, :, ::-1]
    own = SyntheticVideoTrack("booth-3", 640, 480).render(40)[:, :, ::-1]
    scene = render_scene("id1", 7).image
    picture = CapturePipeline().run([scene], "ktp").image
    pixels: dict[str, np.ndarray] = {
        "officer": np.ascontiguousarray(officer),
        "self": np.ascontiguousarray(own),
        "document": np.ascontiguousarray(scene[:, :, ::-1]),
        "picture": np.ascontiguousarray(picture[:, :, ::-1]),
    }
    return pixels.get


def _artifact_dirs(tmp_path: Path) -> list[Path]:
    dirs = [tmp_path]
    if os.environ.get("LOKET_TEST_ARTIFACTS"):
        dirs.append(Path(os.environ["LOKET_TEST_ARTIFACTS"]) / "kiosk-screen")
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080), (1024, 768)])
def test_every_screen_renders_in_both_languages(size, images, tmp_path) -> None:  # type: ignore[no-untyped-def]
    renderer = Renderer()
    dirs = _artifact_dirs(tmp_path)
    for name, (make, expected) in SAMPLES.items():
        drawn: dict[Language, bytes] = {}
        for lang in Language:
            kiosk = make(lang)
            assert kiosk.screen(NOW) is expected, name
            model = kiosk.model(NOW)
            assert model.language is lang
            surface = pygame.Surface(size)
            hits = renderer.draw(surface, model, images, NOW)
            assert renderer.overflows == [], f"{name} ({lang}) cut off: {renderer.overflows}"
            _no_overlaps(name, hits, surface.get_rect())
            drawn[lang] = pygame.image.tobytes(surface, "RGB")
            # Not a blank or black screen: paper, ink and colour are all there.
            pixels = np.frombuffer(drawn[lang], np.uint8).reshape(size[1], size[0], 3)
            assert len(np.unique(pixels.reshape(-1, 3)[::97], axis=0)) > 20, name
            for d in dirs:
                if size == (1280, 800) or d != tmp_path:
                    suffix = "" if size == (1280, 800) else f"-{size[0]}x{size[1]}"
                    pygame.image.save(surface, str(d / f"kiosk-{name}-{lang.value}{suffix}.png"))
        if name != "language":  # the language screen speaks both languages at once
            assert drawn[Language.INDONESIAN] != drawn[Language.ENGLISH], name


def _no_overlaps(name: str, hits, bounds) -> None:  # type: ignore[no-untyped-def]
    rects = [h.rect for h in hits]
    for i, rect in enumerate(rects):
        assert bounds.contains(rect), f"{name}: a button leaves the screen: {hits[i]}"
        for j in range(i + 1, len(rects)):
            assert not rect.colliderect(rects[j]), f"{name}: {hits[i]} overlaps {hits[j]}"


def _luminance(colour: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_every_text_colour_is_readable_on_its_background() -> None:
    # WCAG AA for body text: 4.5:1.
    pairs = [(INK, PAPER), (MUTED, PAPER), (INK, WHITE), (WHITE, PRIMARY), (WHITE, HEADER),
             (HEADER, WHITE), (PRIMARY, WHITE), *TONES.values()]  # fmt: skip
    for ink, background in pairs:
        assert _contrast(ink, background) >= 4.5, (ink, background)
    assert _contrast(LINE, WHITE) < 4.5  # (borders only: the check can tell)
