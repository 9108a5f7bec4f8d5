"""The kiosk screen asks for consent to be recorded before the check-in (issue 23), when
the kiosk records: in Bahasa Indonesia by default (English when chosen), the purpose and
the retention in plain words; the answer goes with the check-in; a refusal under the
in-person policy ends on a screen that says where to go instead."""

from __future__ import annotations

from booth_client.recording.consent import Consent, consent_text
from booth_client.screen.model import (
    AnswerConsent,
    Back,
    ChooseClaimType,
    ChooseLanguage,
    ChooseMethod,
    ClientSnapshot,
    Finish,
    Key,
    Kiosk,
    Next,
    Screen,
    SubmitCheckIn,
)
from signaling.messages import ClaimType, Language, WalkInRef

NIK, KPJ = "3171015208900001", "12345678901"
RECORDING = ClientSnapshot(online=True, connections=1, recording_years=5.0)
CLAIM = WalkInRef(nik=NIK, kpj=KPJ, claim_type=ClaimType.TERMINATION)


def filled(snapshot: ClientSnapshot, language: Language = Language.INDONESIAN) -> Kiosk:
    kiosk = Kiosk()
    kiosk.observe(snapshot, 0.0)
    kiosk.press(ChooseLanguage(language), 0.0)
    kiosk.press(ChooseMethod("walk_in"), 0.0)
    for char in NIK + KPJ:
        kiosk.press(Key(char), 0.0)
    kiosk.press(ChooseClaimType(ClaimType.TERMINATION), 0.0)
    return kiosk


def test_the_participant_is_asked_first_and_the_answer_goes_with_the_check_in() -> None:
    kiosk = filled(RECORDING)
    assert kiosk.press(Next(), 0.0) == []  # not checked in yet: asked first
    assert kiosk.screen(0.0) is Screen.CONSENT
    model = kiosk.model(0.0)
    assert model.title == "Bolehkah sesi ini direkam?"
    assert consent_text(Language.INDONESIAN, 5.0) in model.lines
    assert "5 tahun" in model.lines[0] and "bukti" in model.lines[0]  # retention, purpose
    labels = [b.label for b in model.buttons]
    assert {"Ya, silakan rekam", "Tidak", "English"} <= set(labels)
    # English one tap away: the same question in English.
    kiosk.press(ChooseLanguage(Language.ENGLISH), 0.0)
    english = kiosk.model(0.0)
    assert english.title == "May we record this session?"
    assert consent_text(Language.ENGLISH, 5.0) in english.lines
    [effect] = kiosk.press(AnswerConsent(True), 0.0)
    assert effect == SubmitCheckIn(CLAIM, Language.ENGLISH, "given")
    assert kiosk.screen(0.0) is Screen.SUBMITTING


def test_a_refusal_under_the_in_person_policy_says_where_to_go() -> None:
    kiosk = filled(RECORDING)
    kiosk.press(Next(), 0.0)
    [effect] = kiosk.press(AnswerConsent(False), 0.0)
    assert effect == SubmitCheckIn(CLAIM, Language.INDONESIAN, "refused")
    kiosk.consent_refused("Loket 3", 1.0)  # what the kiosk learnt from the server
    assert kiosk.screen(1.0) is Screen.ENDED
    text = kiosk.model(1.0).text()
    assert "Silakan menuju: Loket 3" in text and "secara langsung" in text
    assert not kiosk.form.personal_data and kiosk.form.pending is None
    kiosk.press(Finish(), 2.0)
    assert kiosk.screen(2.0) is Screen.LANGUAGE


def test_back_returns_to_the_form_and_a_kiosk_that_does_not_record_does_not_ask() -> None:
    kiosk = filled(RECORDING)
    kiosk.press(Next(), 0.0)
    kiosk.press(Back(), 0.0)
    assert kiosk.screen(0.0) is Screen.WALK_IN and kiosk.form.nik == NIK
    plain = filled(ClientSnapshot(online=True, connections=1))
    [effect] = plain.press(Next(), 0.0)
    assert effect == SubmitCheckIn(CLAIM, Language.INDONESIAN)


def test_an_abandoned_consent_screen_is_emptied_after_the_idle_time() -> None:
    kiosk = filled(RECORDING)
    kiosk.press(Next(), 0.0)
    kiosk.observe(RECORDING, 200.0)
    assert kiosk.screen(200.0) is Screen.LANGUAGE and kiosk.form.pending is None


def test_the_answer_names_the_words_shown() -> None:
    """The server audits the SHA-256 of the very words the participant was shown."""
    given = Consent.answered("given", Language.INDONESIAN, 5.0).body()
    other = Consent.answered("given", Language.ENGLISH, 5.0).body()
    longer = Consent.answered("given", Language.INDONESIAN, 10.0).body()
    assert len({given["text_sha256"], other["text_sha256"], longer["text_sha256"]}) == 3
    assert given["language"] == "id" and given["answer"] == "given"
