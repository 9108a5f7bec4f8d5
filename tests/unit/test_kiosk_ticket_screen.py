"""The kiosk screen when a ticket is called to its booth (front of house): the number the
booth expects, shown large in Bahasa Indonesia; its holder types it (a letter, then
digits) and the check-in goes with the ticket, the claim typed at the desk; a wrong
number is said so and typed again; the screen never shows a form or a goodbye then."""

from __future__ import annotations

from dataclasses import replace

from booth_client.screen.model import (
    Backspace,
    ChooseLanguage,
    ClientSnapshot,
    Key,
    Kiosk,
    Next,
    Screen,
    Step,
    SubmitCheckIn,
)
from signaling.messages import Language, TicketRef
from signaling.session import SessionState

CALLED = ClientSnapshot(online=True, connections=1, called_ticket="B-034")


def test_the_called_ticket_takes_the_screen_in_indonesian() -> None:
    kiosk = Kiosk()
    kiosk.observe(CALLED, 0.0)
    screen = kiosk.model(0.0)
    assert screen.screen is Screen.TICKET and screen.big == "B-034"
    assert screen.title == "Nomor antrean B-034, silakan ke bilik ini"
    assert "Data Anda sudah ada di sini" in screen.text()
    kiosk.press(ChooseLanguage(Language.ENGLISH), 0.0)
    assert kiosk.model(0.0).title == "Ticket B-034, please come to this booth"


def test_typing_the_number_checks_in_with_the_ticket() -> None:
    kiosk = Kiosk()
    kiosk.observe(CALLED, 0.0)
    for char in "3Bx4":  # a digit before the letter, and a stray letter, are ignored
        kiosk.press(Key(char), 1.0)
    assert kiosk.form.ticket == "B4"
    kiosk.press(Backspace(), 1.0)
    for char in "034":
        kiosk.press(Key(char), 1.0)
    effects = kiosk.press(Next(), 2.0)
    assert effects == [SubmitCheckIn(TicketRef(number="B034"), Language.INDONESIAN)]
    assert kiosk.screen(2.0) is Screen.SUBMITTING
    # Accepted: the visit begins (the screen follows the client; no typed data is kept).
    kiosk.observe(replace(CALLED, state=SessionState.QUEUED, called_ticket=None), 3.0)
    assert kiosk.form.step is Step.VISIT and kiosk.form.ticket == ""


def test_a_wrong_number_is_said_and_typed_again() -> None:
    kiosk = Kiosk()
    kiosk.observe(CALLED, 0.0)
    for char in "B35":
        kiosk.press(Key(char), 1.0)
    kiosk.press(Next(), 1.0)
    refused = replace(CALLED, refusal_code="ticket_mismatch", refusal_seq=1)
    kiosk.observe(refused, 2.0)
    screen = kiosk.model(2.0)
    assert screen.screen is Screen.TICKET and kiosk.form.ticket == ""
    assert screen.notice is not None and "bukan nomor yang dipanggil" in screen.notice.text


def test_the_next_person_is_called_over_the_goodbye() -> None:
    kiosk = Kiosk()
    kiosk.observe(replace(CALLED, called_ticket=None, state=SessionState.QUEUED), 0.0)
    kiosk.observe(replace(CALLED, called_ticket=None, end_reason="completed", end_seq=1), 1.0)
    assert kiosk.screen(1.0) is Screen.ENDED
    kiosk.observe(replace(CALLED, end_reason="completed", end_seq=1), 2.0)
    assert kiosk.screen(2.0) is Screen.TICKET
