"""The kiosk screen's model (booth_client.screen.model), without pygame or a network:
which screen the client's state calls for, the check-in form and its validation by the
protocol's own models, resets for the next person, and the capture watch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from booth_client.capture_agent import CaptureAgent, SyntheticDocumentCamera
from booth_client.delivery import Delivery
from booth_client.outbox import Outbox, OutboxItem
from booth_client.screen.i18n import translator
from booth_client.screen.model import (
    CALL_SCREENS,
    FORM_SCREENS,
    Back,
    Backspace,
    CapturePhase,
    CaptureView,
    ChooseClaimType,
    ChooseLanguage,
    ChooseMethod,
    ClientSnapshot,
    Finish,
    FocusField,
    ForgetParticipant,
    Key,
    Kiosk,
    Next,
    Screen,
    Step,
    SubmitCheckIn,
)
from booth_client.screen.observe import CaptureWatch
from signaling.messages import BookingRef, CaptureStatus, ClaimType, Language, WalkInRef
from signaling.session import IN_CALL, SessionState

S = SessionState
NIK = "3171015208900001"
KPJ = "12345678901"
ONLINE = ClientSnapshot(online=True, connections=1)


def typed(kiosk: Kiosk, text: str, now: float = 0.0) -> None:
    for char in text:
        kiosk.press(Key(char), now)


def walk_in(kiosk: Kiosk | None = None, language: Language = Language.INDONESIAN) -> Kiosk:
    kiosk = kiosk or Kiosk()
    kiosk.observe(ONLINE, 0.0)
    kiosk.press(ChooseLanguage(language), 0.0)
    kiosk.press(ChooseMethod("walk_in"), 0.0)
    return kiosk


def booking(language: Language = Language.INDONESIAN) -> Kiosk:
    kiosk = Kiosk()
    kiosk.observe(ONLINE, 0.0)
    kiosk.press(ChooseLanguage(language), 0.0)
    kiosk.press(ChooseMethod("booking"), 0.0)
    return kiosk


# --- the form -------------------------------------------------------------------------


def test_a_walk_in_typed_on_the_keypad_is_the_protocols_walk_in() -> None:
    kiosk = walk_in()
    assert kiosk.screen(0) is Screen.WALK_IN
    typed(kiosk, NIK)  # a full NIK moves on by itself
    assert kiosk.form.active == "kpj"
    typed(kiosk, KPJ)
    assert kiosk.form.active == "claim_type"
    kiosk.press(ChooseClaimType(ClaimType.TERMINATION), 0)
    assert kiosk.model(0).buttons[-1].label == "Daftar"  # the form is complete: check in
    [effect] = kiosk.press(Next(), 0)
    assert effect == SubmitCheckIn(
        WalkInRef(nik=NIK, kpj=KPJ, claim_type=ClaimType.TERMINATION), Language.INDONESIAN
    )
    assert kiosk.screen(0) is Screen.SUBMITTING


def test_keys_that_do_not_belong_in_a_field_are_ignored() -> None:
    kiosk = walk_in()
    typed(kiosk, "12ab-3")
    assert kiosk.form.nik == "123"
    typed(kiosk, "4" * 30)  # a full NIK moves on to the KPJ number; the rest is dropped
    assert (kiosk.form.nik, kiosk.form.kpj) == ("123" + "4" * 13, "4" * 11)
    kiosk.press(Backspace(), 0)
    kiosk.press(FocusField("nik"), 0)
    kiosk.press(Backspace(), 0)
    assert (kiosk.form.nik, kiosk.form.kpj) == ("123" + "4" * 12, "4" * 10)
    kiosk = booking()
    typed(kiosk, "jkt-01 x!")
    assert kiosk.form.booking_code == "JKT-01X"  # upper case, as printed on the booking


@pytest.mark.parametrize(
    ("language", "nik", "kpj", "expected"),
    [
        (Language.INDONESIAN, "", "", {"nik": "Ketik NIK Anda: 16 angka pada KTP.",
                                       "kpj": "Ketik nomor KPJ Anda: 11 angka pada kartu KPJ."}),
        (Language.INDONESIAN, "31710152", KPJ,
         {"nik": "NIK terdiri dari 16 angka; baru 8 angka diketik."}),
        (Language.ENGLISH, NIK, "123", {"kpj": "A KPJ number has 11 digits; 3 typed so far."}),
    ],
)  # fmt: skip
def test_validation_errors_become_sentences_under_their_fields(
    language: Language, nik: str, kpj: str, expected: dict[str, str]
) -> None:
    kiosk = walk_in(language=language)
    kiosk.form.nik, kiosk.form.kpj = nik, kpj
    kiosk.form.active = "claim_type"
    assert kiosk.press(Next(), 0) == []  # not sent: the models refuse it
    problems = {f.name: f.problem for f in kiosk.model(0).fields if f.problem}
    claim = "Pilih alasan klaim Anda." if language is Language.INDONESIAN else (
        "Choose why you are claiming.")  # fmt: skip
    assert problems == {**expected, "claim_type": claim}
    # The cursor goes to the first field to correct.
    assert kiosk.form.active == next(iter(expected))


def test_a_booking_code_is_checked_by_the_booking_model() -> None:
    kiosk = booking(Language.ENGLISH)
    typed(kiosk, "AB")
    assert kiosk.press(Next(), 0) == []
    [field] = kiosk.model(0).fields
    assert field.problem is not None and "4 to 32" in field.problem
    typed(kiosk, "C-9")
    [effect] = kiosk.press(Next(), 0)
    assert effect == SubmitCheckIn(BookingRef(booking_code="ABC-9"), Language.ENGLISH)


def test_a_refused_check_in_goes_back_to_the_form_with_the_reason() -> None:
    kiosk = booking()
    typed(kiosk, "JKT-404")
    kiosk.press(Next(), 0)
    kiosk.observe(replace(ONLINE, checking_in=True), 1)
    assert kiosk.screen(1) is Screen.SUBMITTING
    kiosk.observe(replace(ONLINE, refusal_code="claim_not_found", refusal_seq=1), 2)
    model = kiosk.model(2)
    assert model.screen is Screen.BOOKING
    assert model.notice is not None and model.notice.text.startswith("Kode booking tidak")
    assert model.fields[0].value == "JKT-404"  # kept, to correct
    # A passing server fault: the client retries by itself, the participant waits.
    kiosk.press(Next(), 3)
    kiosk.observe(replace(ONLINE, refusal_code="internal", refusal_seq=2), 4)
    assert kiosk.screen(4) is Screen.SUBMITTING
    assert "sibuk" in kiosk.model(4).text()


def test_once_checked_in_the_form_forgets_what_was_typed() -> None:
    kiosk = walk_in()
    typed(kiosk, NIK + KPJ)
    kiosk.press(ChooseClaimType(ClaimType.RESIGNATION), 0)
    kiosk.press(Next(), 0)
    kiosk.observe(replace(ONLINE, state=S.QUEUED, position=0), 1)
    assert kiosk.screen(1) is Screen.WAITING
    assert kiosk.form.personal_data == ()
    assert NIK not in kiosk.model(1).text()
    assert "Anda berikutnya." in kiosk.model(1).lines


def test_language_can_be_switched_on_any_screen() -> None:
    kiosk = walk_in()
    typed(kiosk, "3171")
    kiosk.press(ChooseLanguage(Language.ENGLISH), 0)
    model = kiosk.model(0)
    assert model.screen is Screen.WALK_IN and model.title == "Check in without a booking"
    assert kiosk.form.nik == "3171"  # switching language keeps the form
    kiosk.observe(replace(ONLINE, state=S.ON_HOLD, peer_state="connected"), 1)
    assert kiosk.model(1).title == "The officer is serving another participant — please wait"
    kiosk.press(ChooseLanguage(Language.INDONESIAN), 1)
    assert kiosk.model(1).title == "Petugas sedang melayani peserta lain — mohon tunggu"


# --- the visit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snapshot", "screen"),
    [
        (ClientSnapshot(state=S.QUEUED, online=True, position=3), Screen.WAITING),
        (ClientSnapshot(state=S.RESERVED, online=True), Screen.WAITING),
        (ClientSnapshot(state=S.CONNECTING, online=True), Screen.CONNECTING),
        (ClientSnapshot(state=S.ON_HOLD, online=True), Screen.ON_HOLD),
        (ClientSnapshot(state=S.FOCUSED, online=True, focused=True), Screen.TALKING),
        (ClientSnapshot(state=S.RECONNECTING, lost_from=S.QUEUED), Screen.RECONNECTING),
        # Signaling dropped mid-call but media flows: the call stays, with a banner.
        (ClientSnapshot(state=S.RECONNECTING, lost_from=S.FOCUSED, focused=True,
                        peer_state="connected"), Screen.TALKING),
        (ClientSnapshot(state=S.RECONNECTING, lost_from=S.FOCUSED, focused=True,
                        peer_state="failed"), Screen.RECONNECTING),
        (ClientSnapshot(out_of_service=True), Screen.OUT_OF_SERVICE),
    ],
)  # fmt: skip
def test_the_screen_follows_the_client(snapshot: ClientSnapshot, screen: Screen) -> None:
    kiosk = Kiosk()
    kiosk.observe(snapshot, 0)
    model = kiosk.model(0)
    assert model.screen is screen
    if not snapshot.online and screen is not Screen.OUT_OF_SERVICE:
        assert model.reconnecting


def test_the_banner_tells_starting_from_reconnecting() -> None:
    kiosk = Kiosk()
    kiosk.observe(ClientSnapshot(), 0)
    assert kiosk.model(0).banner.text == "Menghubungkan ke layanan…"  # type: ignore[union-attr]
    kiosk.observe(ONLINE, 1)
    assert kiosk.model(1).banner is None
    kiosk.observe(replace(ONLINE, online=False), 2)
    assert kiosk.model(2).banner.text == (  # type: ignore[union-attr]
        "Koneksi terputus: menyambungkan kembali…"
    )


def test_a_finished_session_says_what_next_then_resets_for_the_next_person() -> None:
    kiosk = walk_in(Kiosk(idle_reset_s=90))
    kiosk.press(ChooseLanguage(Language.ENGLISH), 0)
    kiosk.observe(replace(ONLINE, state=S.FOCUSED, focused=True), 1)
    kiosk.observe(replace(ONLINE, end_reason="completed", end_seq=1), 10)
    model = kiosk.model(10)
    assert model.screen is Screen.ENDED
    assert "The officer has finished your verification." in model.lines
    assert kiosk.observe(kiosk.client, 99) == []  # 89 s: still there
    assert kiosk.observe(kiosk.client, 100) == [ForgetParticipant()]
    assert kiosk.screen(100) is Screen.LANGUAGE
    assert kiosk.form.language is Language.INDONESIAN  # the next person starts in Bahasa


def test_finish_on_the_end_screen_resets_at_once() -> None:
    kiosk = walk_in()
    kiosk.observe(replace(ONLINE, state=S.QUEUED), 1)
    kiosk.observe(replace(ONLINE, end_reason="cso_ended", end_seq=1), 2)
    assert kiosk.press(Finish(), 3) == [ForgetParticipant()]
    assert kiosk.screen(3) is Screen.LANGUAGE


def test_an_abandoned_form_is_emptied_after_the_idle_time() -> None:
    kiosk = walk_in(Kiosk(idle_reset_s=90))
    typed(kiosk, NIK, now=5)
    assert kiosk.observe(ONLINE, 94) == []
    assert kiosk.form.nik == NIK
    assert kiosk.observe(ONLINE, 95) == [ForgetParticipant()]
    assert kiosk.form.personal_data == ()
    assert kiosk.screen(95) is Screen.LANGUAGE


def test_a_waiting_participant_is_never_reset() -> None:
    kiosk = walk_in(Kiosk(idle_reset_s=90))
    kiosk.observe(replace(ONLINE, state=S.QUEUED), 0)
    assert kiosk.observe(replace(ONLINE, state=S.QUEUED), 10_000) == []
    assert kiosk.screen(10_000) is Screen.WAITING


def test_capture_guidance_countdown_advice_and_the_picture() -> None:
    kiosk = Kiosk(capture_result_s=5)
    call = replace(ONLINE, state=S.FOCUSED, focused=True, peer_state="connected")
    capture = CaptureView("buku_tabungan", CapturePhase.COUNTDOWN, countdown_until=12.5)
    kiosk.observe(replace(call, capture=capture), 10)
    model = kiosk.model(10)
    assert model.screen is Screen.CAPTURE and model.big == "3"
    assert model.title == "Tunjukkan buku tabungan Anda"
    assert [m.source for m in model.media] == ["document"]
    retry = replace(capture, phase=CapturePhase.RETRYING, attempt=2, advice="avoid_glare")
    kiosk.observe(replace(call, capture=retry), 11)
    assert kiosk.model(11).notice.text == "Hindari pantulan cahaya"  # type: ignore[union-attr]
    done = replace(retry, phase=CapturePhase.DONE, accepted=True, finished_at=20)
    kiosk.observe(replace(call, capture=done), 20)
    model = kiosk.model(20)
    assert [m.source for m in model.media] == ["picture"]
    assert "Foto sudah diterima petugas." in model.lines
    assert kiosk.screen(24.9) is Screen.CAPTURE
    assert kiosk.screen(25) is Screen.TALKING  # back to the officer


def test_the_picture_on_its_way_sending_percent_queued_and_not_sent() -> None:
    kiosk = Kiosk(capture_result_s=5)
    call = replace(ONLINE, state=S.FOCUSED, focused=True, peer_state="connected")
    sending = CaptureView("ktp", CapturePhase.UPLOADING, sent=30_000, total=120_000)
    kiosk.observe(replace(call, capture=sending), 10)
    assert "Mengirim foto ke petugas: 25%" in kiosk.model(10).lines
    queued = replace(sending, phase=CapturePhase.QUEUED, finished_at=11)
    kiosk.observe(replace(call, capture=queued), 11)
    model = kiosk.model(11)
    assert model.notice is not None and model.notice.text == "Foto menunggu dikirim"
    assert any("terkirim sendiri" in line for line in model.lines)
    assert kiosk.screen(16) is Screen.TALKING  # kept safe: the call goes on meanwhile
    failed = replace(sending, phase=CapturePhase.FAILED, finished_at=20)
    kiosk.observe(replace(call, capture=failed), 20)
    assert kiosk.model(20).notice.text == "Foto tidak terkirim"  # type: ignore[union-attr]


# --- any order of events ----------------------------------------------------------------

ACTIONS = st.one_of(
    st.sampled_from("0123456789AZ-").map(Key),
    st.just(Backspace()),
    st.just(Next()),
    st.just(Back()),
    st.just(Finish()),
    st.sampled_from(["booking", "walk_in"]).map(lambda m: ChooseMethod(m)),  # type: ignore[arg-type]
    st.sampled_from(["booking_code", "nik", "kpj", "claim_type"]).map(
        lambda f: FocusField(f)  # type: ignore[arg-type]
    ),
    st.sampled_from(list(ClaimType)).map(ChooseClaimType),
)
CAPTURES = st.one_of(
    st.none(),
    st.builds(CaptureView, kind=st.sampled_from(["ktp", "kk", "npwp", "paklaring"]),
              phase=st.sampled_from(list(CapturePhase)), attempt=st.integers(1, 3),
              countdown_until=st.floats(0, 2000), advice=st.sampled_from(
                  [None, "hold_still", "avoid_glare", "move_closer", "place_document"]),
              finished_at=st.one_of(st.none(), st.floats(0, 2000))),
)  # fmt: skip


class KioskMachine(RuleBasedStateMachine):
    """Client changes, keypad input, language switches and the clock, in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.kiosk = Kiosk(idle_reset_s=90, now=0.0)
        self.client = ClientSnapshot()
        self.typed: set[str] = set()  # every value the form held
        self.reset = False

    def _effects(self, effects: Sequence[object]) -> None:
        if ForgetParticipant() in effects:
            self.reset = True

    def _remember(self) -> None:
        for value in self.kiosk.form.personal_data:
            if len(value) >= 6:
                self.typed.add(value)

    @rule(
        state=st.sampled_from(list(SessionState)),
        lost_from=st.sampled_from([None, *SessionState]),
        online=st.booleans(),
        connections=st.integers(0, 2),
        focused=st.booleans(),
        peer=st.sampled_from([None, "connecting", "connected", "disconnected", "failed"]),
        position=st.one_of(st.none(), st.integers(0, 50)),
        capture=CAPTURES,
        out_of_service=st.sampled_from([False] * 9 + [True]),
    )
    def client_changes(self, state, lost_from, online, connections, focused, peer, position,
                       capture, out_of_service) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
        self.client = replace(self.client, state=state, lost_from=lost_from, online=online,
                              connections=connections, focused=focused, peer_state=peer,
                              position=position, capture=capture,
                              out_of_service=out_of_service)  # fmt: skip
        self._effects(self.kiosk.observe(self.client, self.now))  # type: ignore[arg-type]

    @rule(code=st.sampled_from(["claim_not_found", "claim_refused", "internal", "conflict"]))
    def check_in_refused(self, code: str) -> None:
        self.client = replace(self.client, refusal_code=code,
                              refusal_seq=self.client.refusal_seq + 1)  # fmt: skip
        self._effects(self.kiosk.observe(self.client, self.now))  # type: ignore[arg-type]

    @rule(reason=st.sampled_from(["completed", "booth_left", "cso_ended", "supervisor_ended"]))
    def session_ends(self, reason: str) -> None:
        self.client = replace(self.client, state=S.IDLE, end_reason=reason,
                              end_seq=self.client.end_seq + 1, focused=False,
                              capture=None)  # fmt: skip
        self._effects(self.kiosk.observe(self.client, self.now))  # type: ignore[arg-type]

    @rule(action=ACTIONS)
    def participant_presses(self, action) -> None:  # type: ignore[no-untyped-def]
        self._effects(self.kiosk.press(action, self.now))  # type: ignore[arg-type]
        self._remember()

    @rule(language=st.sampled_from(list(Language)))
    def language_switch(self, language: Language) -> None:
        self._effects(self.kiosk.press(ChooseLanguage(language), self.now))

    @rule(seconds=st.sampled_from([0.5, 5.0, 89.0, 91.0, 400.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self._effects(self.kiosk.tick(self.now))

    @invariant()
    def the_screen_matches_the_client(self) -> None:
        c, model = self.kiosk.client, self.kiosk.model(self.now)
        screen = model.screen
        assert model.language is self.kiosk.form.language
        if c.out_of_service:
            assert screen is Screen.OUT_OF_SERVICE
        elif c.state in (S.QUEUED, S.RESERVED):
            assert screen is Screen.WAITING
        elif c.state in IN_CALL:
            assert screen in CALL_SCREENS
            if screen is Screen.TALKING:
                assert c.focused
            if screen is Screen.ON_HOLD:
                assert not c.focused
                assert model.title == translator(model.language).gettext(
                    "The officer is serving another participant — please wait"
                )
        elif c.state is S.RECONNECTING:
            assert screen is Screen.RECONNECTING or (
                screen in CALL_SCREENS and c.peer_state == "connected")  # fmt: skip
        else:
            assert screen in {*FORM_SCREENS, Screen.LANGUAGE, Screen.SUBMITTING, Screen.ENDED}

    @invariant()
    def reconnecting_is_shown_whenever_the_socket_is_down(self) -> None:
        model = self.kiosk.model(self.now)
        if not self.kiosk.client.online and model.screen is not Screen.OUT_OF_SERVICE:
            assert model.reconnecting

    @invariant()
    def no_personal_data_after_a_reset_or_a_check_in(self) -> None:
        form = self.kiosk.form
        if self.reset:
            self.reset = False
            assert form.personal_data == ()
            assert form.step is Step.LANGUAGE
            text = self.kiosk.model(self.now).text()
            assert not any(value in text for value in self.typed)
        if self.kiosk.client.state in IN_CALL or self.kiosk.client.state is S.QUEUED:
            assert form.personal_data == ()

    @invariant()
    def every_screen_has_words(self) -> None:
        model = self.kiosk.model(self.now)
        assert model.title and model.steps and 1 <= model.step <= 5


TestKioskMachine = KioskMachine.TestCase
TestKioskMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip


# --- the capture agent, watched ------------------------------------------------------------


async def test_the_capture_watch_follows_a_real_capture(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sent: list[CaptureStatus] = []

    async def send(message) -> None:  # type: ignore[no-untyped-def]
        sent.append(message)

    async def upload(item: OutboxItem, data: bytes) -> Delivery:
        return Delivery(201, {"document_id": "doc-1"})

    agent = CaptureAgent(
        SyntheticDocumentCamera(3, shaky_first=True), Outbox(tmp_path), upload, send
    )
    watch = CaptureWatch(agent, countdown_s=0.3, retry_countdown_s=0.2)
    phases: list[tuple[CapturePhase, str | None]] = []

    async def follow() -> None:
        while True:
            view = watch.view
            if view is not None and (not phases or phases[-1] != (view.phase, view.advice)):
                phases.append((view.phase, view.advice))
                assert watch.preview() is not None or view.phase is CapturePhase.CAPTURING
            await asyncio.sleep(0.01)

    from signaling.messages import RequestCapture

    follower = asyncio.create_task(follow())
    request = RequestCapture(session_id="s1", capture_id="c1", kind="ktp")
    await agent.handle(request, "claim-1")
    await asyncio.sleep(0.05)
    follower.cancel()
    assert [s.stage for s in sent] == ["capturing", "retrying", "uploading", "done"]
    assert (CapturePhase.COUNTDOWN, None) in phases
    assert (CapturePhase.COUNTDOWN, "hold_still") in phases  # the advice stays on screen
    assert phases[-1][0] is CapturePhase.DONE
    assert watch.picture is not None and watch.view is not None and watch.view.accepted
    watch.forget()
    assert watch.picture is None and watch.preview() is None


# --- a window needs a display ---------------------------------------------------------------


async def test_a_window_without_a_display_is_refused_not_drawn_nowhere(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from booth_client.client import BoothClient
    from booth_client.config import BoothConfig
    from booth_client.screen import ScreenSettings, ScreenUnavailable, add_screen

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    config = BoothConfig(credential="lkb_booth.secret", outbox_dir=tmp_path, audio_sink="null")  # type: ignore[arg-type]
    with pytest.raises(ScreenUnavailable, match="headless"):
        add_screen(BoothClient(config), ScreenSettings(mode="window"))
