"""What the kiosk screen shows, without pixels or I/O.

    BoothClient ──snapshot()──▶ ClientSnapshot ─┐
                                                ├─▶ Kiosk.observe / Kiosk.press ─▶ effects
    touch, mouse, keys ──▶ Action ──────────────┘          │
                                                 Kiosk.model(now) ─▶ ScreenModel ─▶ renderer

`ClientSnapshot` is plain data read from the client (booth_client.screen.observe); `Kiosk`
holds only the participant's form (language, what they typed, where they are in it) and
decides the screen from the client's state first: the form is shown only while the booth is
idle. The renderer (booth_client.screen.render) draws a `ScreenModel` and nothing else, so
every rule here is tested without pygame (tests/unit/test_kiosk_screen.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

from pydantic import ValidationError

from booth_client.kiosk import TRANSIENT_REFUSALS  # refusals the client retries itself
from booth_client.recording.consent import DEFAULT_YEARS, consent_text
from booth_client.screen import texts
from booth_client.screen.i18n import N_, Translator, translator
from booth_client.screen.texts import Problem
from signaling.messages import BookingRef, ClaimType, Language, TicketRef, WalkInRef
from signaling.session import ACTIVE, IN_CALL, SessionState

S = SessionState
Method = Literal["booking", "walk_in"]
FieldName = Literal["booking_code", "nik", "kpj", "claim_type", "ticket"]
FIELD_LENGTH: dict[str, int] = {"booking_code": 32, "nik": 16, "kpj": 11, "ticket": 5}
BOOKING_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


class Screen(StrEnum):
    LANGUAGE = "language"
    METHOD = "method"  # booking code, or walk-in with NIK and KPJ
    BOOKING = "booking"
    WALK_IN = "walk_in"
    SUBMITTING = "submitting"
    WAITING = "waiting"
    CONNECTING = "connecting"
    TALKING = "talking"
    ON_HOLD = "on_hold"
    CAPTURE = "capture"
    ENDED = "ended"
    RECONNECTING = "reconnecting"
    OUT_OF_SERVICE = "out_of_service"
    TICKET = "ticket"  # a ticket is called to this booth: its holder types the number
    CONSENT = "consent"  # before check-in: may the session be recorded (issue 23)


FORM_SCREENS = frozenset({Screen.METHOD, Screen.BOOKING, Screen.WALK_IN})
CALL_SCREENS = frozenset({Screen.CONNECTING, Screen.TALKING, Screen.ON_HOLD, Screen.CAPTURE})


class Step(StrEnum):
    """Where the participant is in the form; `VISIT` once the server has their check-in."""

    LANGUAGE = "language"
    METHOD = "method"
    BOOKING = "booking"
    WALK_IN = "walk_in"
    CONSENT = "consent"
    SUBMITTING = "submitting"
    VISIT = "visit"
    ENDED = "ended"


# --- what the client says ----------------------------------------------------------------


class CapturePhase(StrEnum):
    COUNTDOWN = "countdown"
    CAPTURING = "capturing"
    RETRYING = "retrying"  # the last attempt was refused: advice shown
    UPLOADING = "uploading"
    QUEUED = "queued"  # kept at the booth: the server is out of reach, retried by itself
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class CaptureView:
    kind: str  # the document the CSO asked for
    phase: CapturePhase
    attempt: int = 1
    countdown_until: float | None = None  # monotonic: the picture is taken then
    advice: str | None = None  # booth_client.capture.Advice code of the last refusal
    accepted: bool = False  # the sent picture passed every check (else: best effort)
    finished_at: float | None = None  # DONE/FAILED since
    capture_id: str | None = None
    sent: int = 0  # bytes of the picture sent so far (UPLOADING)
    total: int = 0  # ... of its size (0: not known yet)

    @property
    def percent(self) -> int | None:
        return min(100, self.sent * 100 // self.total) if self.total else None


@dataclass(frozen=True)
class ClientSnapshot:
    """The BoothClient, as plain data (booth_client.screen.observe.snapshot)."""

    state: SessionState = S.IDLE
    lost_from: SessionState | None = None  # before `reconnecting`
    online: bool = False  # socket up and welcomed
    connections: int = 0  # welcomes so far: 0 while the kiosk starts
    checking_in: bool = False
    position: int | None = None  # 0: next
    estimated_wait_s: float | None = None
    focused: bool = False
    cso_name: str | None = None
    peer_state: str | None = None  # aiortc connectionState of the call
    refusal_code: str | None = None  # the latest refused check-in ...
    refusal_seq: int = 0  # ... and how many refusals have been seen (a new one: +1)
    end_reason: str | None = None  # the latest session end ...
    end_seq: int = 0
    capture: CaptureView | None = None
    out_of_service: bool = False  # the server refused this booth's credential
    officer_video: bool = False  # a fresh frame from the officer's camera
    self_video: bool = False  # a frame of the booth's own camera
    called_ticket: str | None = None  # front of house: the number called to this booth
    recording_years: float | None = None  # sessions are recorded (kept this long): ask first


# --- what the participant does -----------------------------------------------------------


@dataclass(frozen=True)
class ChooseLanguage:
    language: Language


@dataclass(frozen=True)
class ChooseMethod:
    method: Method


@dataclass(frozen=True)
class Back:
    pass


@dataclass(frozen=True)
class FocusField:
    name: FieldName


@dataclass(frozen=True)
class Key:
    char: str


@dataclass(frozen=True)
class Backspace:
    pass


@dataclass(frozen=True)
class ChooseClaimType:
    claim_type: ClaimType


@dataclass(frozen=True)
class Next:
    """Enter, or the form's forward button: the next field, or check in from the last."""


@dataclass(frozen=True)
class Finish:
    """The end screen's button: ready for the next person."""


@dataclass(frozen=True)
class AnswerConsent:
    """The consent screen's buttons: the session may be recorded, or not."""

    given: bool


Action = (
    ChooseLanguage
    | ChooseMethod
    | Back
    | FocusField
    | Key
    | Backspace
    | ChooseClaimType
    | Next
    | Finish
    | AnswerConsent
)


# --- what the kiosk does about it ----------------------------------------------------------


@dataclass(frozen=True)
class SubmitCheckIn:
    claim: BookingRef | WalkInRef | TicketRef
    language: Language
    consent: Literal["given", "refused"] | None = None  # to be recorded (asked: issue 23)


@dataclass(frozen=True)
class ForgetParticipant:
    """Reset for the next person: the client drops the check-in data it kept."""


Effect = SubmitCheckIn | ForgetParticipant


# --- the participant's form --------------------------------------------------------------


@dataclass
class FormState:
    language: Language = Language.INDONESIAN
    step: Step = Step.LANGUAGE
    method: Method | None = None
    booking_code: str = ""
    nik: str = ""
    kpj: str = ""
    claim_type: ClaimType | None = None
    ticket: str = ""  # the ticket number typed (front of house)
    active: FieldName = "booking_code"
    problems: dict[str, Problem] = field(default_factory=dict)
    refused: str | None = None  # code of the server's refusal of our check-in
    end_reason: str | None = None
    pending: BookingRef | WalkInRef | TicketRef | None = None  # checked in once consent is answered
    directions: str | None = None  # where to go instead: recording refused (policy in_person)
    last_input_at: float = 0.0
    refusal_seen: int = 0
    end_seen: int = 0

    @property
    def personal_data(self) -> tuple[str, ...]:
        """What identifies the participant (must be empty after a reset)."""
        return tuple(v for v in (self.booking_code, self.nik, self.kpj) if v)


def validate(form: FormState) -> tuple[BookingRef | WalkInRef | None, dict[str, Problem]]:
    """The claim reference as the protocol models check it, or a problem per field."""
    values: dict[str, object]
    model: type[BookingRef] | type[WalkInRef]
    if form.method == "booking":
        model, values = BookingRef, {"booking_code": form.booking_code}
    else:
        model, values = WalkInRef, {"nik": form.nik, "kpj": form.kpj}
        if form.claim_type is not None:
            values["claim_type"] = form.claim_type
    try:
        return model.model_validate(values), {}
    except ValidationError as exc:
        problems: dict[str, Problem] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "claim_type"
            typed = len(str(values.get(name, "") or ""))
            problems.setdefault(name, Problem(name, typed))
        return None, problems


FIELDS: dict[Method, tuple[FieldName, ...]] = {
    "booking": ("booking_code",),
    "walk_in": ("nik", "kpj", "claim_type"),
}


# --- the screen's contents ---------------------------------------------------------------


Tone = Literal["info", "warning", "error", "success"]
Place = Literal["choice", "nav", "primary", "lang", "key", "field"]
MediaSource = Literal["officer", "self", "document", "picture"]


@dataclass(frozen=True)
class ButtonView:
    label: str
    action: Action
    place: Place
    sublabel: str | None = None
    selected: bool = False


@dataclass(frozen=True)
class FieldView:
    name: FieldName
    label: str
    value: str
    hint: str  # how many digits, where to find it
    problem: str | None
    active: bool


@dataclass(frozen=True)
class MediaSlot:
    source: MediaSource
    available: bool  # false: draw the placeholder text, never a black box
    placeholder: str
    caption: str | None = None


@dataclass(frozen=True)
class Banner:
    text: str
    tone: Tone


@dataclass(frozen=True)
class ScreenModel:
    screen: Screen
    language: Language
    step: int  # 1..5 in the progress bar (language, check-in, waiting, officer, done)
    steps: tuple[str, ...]
    title: str
    lines: tuple[str, ...] = ()
    big: str | None = None  # queue number, countdown
    big_caption: str | None = None
    notice: Banner | None = None  # a message inside the content (advice, refusal)
    banner: Banner | None = None  # above everything: connection trouble
    fields: tuple[FieldView, ...] = ()
    buttons: tuple[ButtonView, ...] = ()
    keypad: tuple[tuple[ButtonView, ...], ...] = ()
    media: tuple[MediaSlot, ...] = ()
    busy: bool = False  # draw a spinner: something is under way

    @property
    def reconnecting(self) -> bool:
        return self.screen is Screen.RECONNECTING or (
            self.banner is not None and self.banner.tone == "warning"
        )

    def text(self) -> str:
        """Every word on the screen (tests look for personal data and translations)."""
        parts = [self.title, *self.lines, self.big or "", self.big_caption or "", *self.steps]
        for extra in (self.notice, self.banner):
            if extra is not None:
                parts.append(extra.text)
        for f in self.fields:
            parts += [f.label, f.value, f.hint, f.problem or ""]
        for b in (*self.buttons, *(k for row in self.keypad for k in row)):
            parts += [b.label, b.sublabel or ""]
        for m in self.media:
            parts += [m.placeholder, m.caption or ""]
        return "\n".join(p for p in parts if p)


# --- the controller ----------------------------------------------------------------------


class Kiosk:
    """The participant's side of the screen: feed it client snapshots (`observe`) and
    actions (`press`), carry out the effects they return, draw `model(now)`."""

    def __init__(
        self, *, idle_reset_s: float = 90.0, capture_result_s: float = 5.0, now: float = 0.0
    ) -> None:
        self.idle_reset_s = idle_reset_s
        self.capture_result_s = capture_result_s
        self.form = FormState(last_input_at=now)
        self.client = ClientSnapshot()

    # -- which screen --

    def screen(self, now: float) -> Screen:
        """The screen for the client's state; the form's own steps only while idle."""
        c, f = self.client, self.form
        if c.out_of_service:
            return Screen.OUT_OF_SERVICE
        state = c.state
        if state is S.RECONNECTING:
            # Media may still flow through a signaling blip: keep the call on screen.
            if c.lost_from in IN_CALL and c.peer_state == "connected":
                return self._call_screen(c.lost_from, now)
            return Screen.RECONNECTING
        if state in IN_CALL:
            return self._call_screen(state, now)
        if state in (S.QUEUED, S.RESERVED):
            return Screen.WAITING
        if f.step is Step.SUBMITTING:
            return Screen.SUBMITTING
        if f.step is Step.CONSENT and state is S.IDLE:
            return Screen.CONSENT
        if c.called_ticket is not None and state is S.IDLE:
            return Screen.TICKET  # the next person, called here: before any form or goodbye
        if state is S.ENDED or f.step in (Step.ENDED, Step.VISIT):
            return Screen.ENDED
        return Screen(f.step.value)

    def _call_screen(self, state: SessionState, now: float) -> Screen:
        if self._capture_showing(now):
            return Screen.CAPTURE
        if state is S.CONNECTING:
            return Screen.CONNECTING
        return Screen.TALKING if self.client.focused else Screen.ON_HOLD

    def _capture_showing(self, now: float) -> bool:
        capture = self.client.capture
        if capture is None:
            return False
        return capture.finished_at is None or now - capture.finished_at < self.capture_result_s

    # -- the client changed --

    def observe(self, client: ClientSnapshot, now: float) -> list[Effect]:
        f = self.form
        self.client = client
        if client.refusal_seq > f.refusal_seen:
            f.refusal_seen = client.refusal_seq
            if f.step is Step.SUBMITTING and client.refusal_code is not None:
                f.refused = client.refusal_code
                if client.refusal_code not in TRANSIENT_REFUSALS:
                    # Back to the form, typed data kept, to correct it.
                    f.step = Step.BOOKING if f.method == "booking" else Step.WALK_IN
                    if f.ticket:  # a ticket's number: typed again, from empty
                        f.step, f.ticket = Step.LANGUAGE, ""
                    f.last_input_at = now
        if client.state in ACTIVE and f.step is not Step.VISIT:
            # The server has the check-in: the form's copy of the personal data goes.
            self.form = f = self._fresh(f.language, now, seen=f)
            f.step = Step.VISIT
        ended = client.end_seq > f.end_seen
        f.end_seen = client.end_seq
        if f.step is Step.VISIT and client.state in (S.IDLE, S.ENDED) and not client.checking_in:
            f.step, f.end_reason, f.last_input_at = Step.ENDED, client.end_reason, now
            if not ended:
                f.end_reason = None  # the visit vanished without an end we were told of
        if self._idle(now):
            self.form = self._fresh(Language.INDONESIAN, now, seen=f)
            return [ForgetParticipant()]
        return []

    def _idle(self, now: float) -> bool:
        f = self.form
        if now - f.last_input_at < self.idle_reset_s:
            return False
        if f.step in (Step.METHOD, Step.BOOKING, Step.WALK_IN, Step.CONSENT, Step.ENDED):
            return True
        return f.step is Step.LANGUAGE and (
            f.language is not Language.INDONESIAN or bool(f.personal_data)
        )

    def tick(self, now: float) -> list[Effect]:
        return self.observe(self.client, now)

    @staticmethod
    def _fresh(language: Language, now: float, *, seen: FormState) -> FormState:
        return FormState(
            language=language,
            last_input_at=now,
            refusal_seen=seen.refusal_seen,
            end_seen=seen.end_seen,
        )

    # -- the participant did something --

    def press(self, action: Action, now: float) -> list[Effect]:
        f = self.form
        screen = self.screen(now)
        f.last_input_at = now
        match action:
            case ChooseLanguage(language):
                f.language = language
                if screen is Screen.LANGUAGE:
                    f.step = Step.METHOD
            case ChooseMethod(method) if screen is Screen.METHOD:
                f.method, f.step = method, Step(method)
                f.active = FIELDS[method][0]
                f.problems, f.refused = {}, None
            case Back() if screen is Screen.METHOD:
                # Back to the start: what was typed goes with it.
                self.form = self._fresh(f.language, now, seen=f)
            case Back() if screen in FORM_SCREENS:
                f.step = Step.METHOD
            case AnswerConsent(given) if screen is Screen.CONSENT and f.pending is not None:
                f.step = Step.SUBMITTING
                answer: Literal["given", "refused"] = "given" if given else "refused"
                return [SubmitCheckIn(f.pending, f.language, answer)]
            case Back() if screen is Screen.CONSENT:
                f.step = Step(f.method) if f.method else Step.LANGUAGE
                f.pending = None
            case Finish() if screen is Screen.ENDED and f.step is Step.ENDED:
                self.form = self._fresh(Language.INDONESIAN, now, seen=f)
                return [ForgetParticipant()]
            case _ if screen in (Screen.BOOKING, Screen.WALK_IN):
                return self._edit(action)
            case _ if screen is Screen.TICKET:
                return self._ticket(action)
        return []

    def _ticket(self, action: Action) -> list[Effect]:
        """The called ticket's number, typed: a letter, then up to four digits."""
        f = self.form
        match action:
            case Key(char) if len(f.ticket) < FIELD_LENGTH["ticket"]:
                char = char.upper()
                first = not f.ticket
                if (first and char.isalpha() and char.isascii()) or (not first and char.isdigit()):
                    f.ticket += char
                    f.refused = None
            case Backspace():
                f.ticket = f.ticket[:-1]
            case Next() if len(f.ticket) >= 2:
                f.step, f.refused, f.method = Step.SUBMITTING, None, None
                return self._check_in(TicketRef(number=f.ticket))
        return []

    def _edit(self, action: Action) -> list[Effect]:
        f = self.form
        assert f.method is not None
        fields = FIELDS[f.method]
        match action:
            case FocusField(name) if name in fields:
                f.active = name
            case Key(char):
                self._type(char)
            case Backspace():
                if f.active == "claim_type":
                    f.active = "kpj"  # the keypad's ⌫ steps back into the last typed field
                setattr(f, f.active, getattr(f, f.active)[:-1])
                f.problems.pop(f.active, None)
            case ChooseClaimType(claim_type) if f.method == "walk_in":
                f.claim_type, f.active = claim_type, "claim_type"
                f.problems.pop("claim_type", None)
            case Next():
                at = fields.index(f.active)
                # Forward through unfinished fields; from the last (or a full form), submit.
                if at + 1 < len(fields) and not self._complete():
                    f.active = fields[at + 1]
                    return []
                return self._submit()
        return []

    def _type(self, char: str) -> None:
        f = self.form
        name = f.active
        if name == "claim_type":
            return
        char = char.upper()
        allowed = BOOKING_CHARS if name == "booking_code" else frozenset("0123456789")
        value: str = getattr(f, name)
        if len(char) != 1 or char not in allowed or len(value) >= FIELD_LENGTH[name]:
            return
        setattr(f, name, value + char)
        f.problems.pop(name, None)
        f.refused = None
        fields = FIELDS[f.method or "booking"]
        if len(value) + 1 == FIELD_LENGTH[name] and name != "booking_code":
            # A full NIK moves on to the KPJ number, a full KPJ number to the claim type.
            f.active = fields[fields.index(name) + 1]

    def _complete(self) -> bool:
        return validate(self.form)[0] is not None

    def _submit(self) -> list[Effect]:
        f = self.form
        claim, problems = validate(f)
        f.problems = problems
        if claim is None:
            assert f.method is not None
            f.active = next(n for n in FIELDS[f.method] if n in problems)
            return []
        f.step, f.refused = Step.SUBMITTING, None
        return self._check_in(claim)

    def _check_in(self, claim: BookingRef | WalkInRef | TicketRef) -> list[Effect]:
        """Check in now, or first ask whether the session may be recorded."""
        f = self.form
        if self.client.recording_years is not None:
            f.step, f.pending = Step.CONSENT, claim
            return []
        return [SubmitCheckIn(claim, f.language)]

    def consent_refused(self, directions: str, now: float) -> None:
        """Recording refused, and the policy is in person: no remote session; say where."""
        f = self.form
        self.form = f = self._fresh(f.language, now, seen=f)
        f.step, f.end_reason, f.directions = Step.ENDED, "recording_refused", directions

    # -- the screen --

    def model(self, now: float) -> ScreenModel:
        screen = self.screen(now)
        return build(screen, self.form, self.client, now)


# --- building the screen -----------------------------------------------------------------


def _steps(tr: Translator) -> tuple[str, ...]:
    return (
        tr.gettext("Language"),
        tr.gettext("Check in"),
        tr.gettext("Waiting"),
        tr.gettext("Officer"),
        tr.gettext("Done"),
    )


STEP_OF: dict[Screen, int] = {
    Screen.LANGUAGE: 1,
    Screen.METHOD: 2,
    Screen.BOOKING: 2,
    Screen.WALK_IN: 2,
    Screen.SUBMITTING: 2,
    Screen.WAITING: 3,
    Screen.CONNECTING: 4,
    Screen.TALKING: 4,
    Screen.ON_HOLD: 4,
    Screen.CAPTURE: 4,
    Screen.ENDED: 5,
    Screen.RECONNECTING: 3,
    Screen.OUT_OF_SERVICE: 1,
    Screen.TICKET: 2,
    Screen.CONSENT: 2,
}


def build(screen: Screen, form: FormState, client: ClientSnapshot, now: float) -> ScreenModel:
    tr = translator(form.language)
    base = ScreenModel(
        screen=screen,
        language=form.language,
        step=STEP_OF[screen],
        steps=_steps(tr),
        title="",
        buttons=_language_buttons(form.language),
        banner=_banner(tr, screen, client),
    )
    builder = _BUILDERS[screen]
    return builder(tr, base, form, client, now)


def _language_buttons(current: Language) -> tuple[ButtonView, ...]:
    # Each language named in itself, so a participant finds theirs whatever is shown.
    return (
        ButtonView("Bahasa Indonesia", ChooseLanguage(Language.INDONESIAN), "lang",
                   selected=current is Language.INDONESIAN),
        ButtonView("English", ChooseLanguage(Language.ENGLISH), "lang",
                   selected=current is Language.ENGLISH),
    )  # fmt: skip


def _banner(tr: Translator, screen: Screen, c: ClientSnapshot) -> Banner | None:
    if screen in (Screen.RECONNECTING, Screen.OUT_OF_SERVICE):
        return None  # the whole screen says it
    if not c.online and c.connections == 0:
        return Banner(tr.gettext("Connecting to the service…"), "warning")
    if not c.online:
        return Banner(tr.gettext("Connection lost: reconnecting…"), "warning")
    if screen in CALL_SCREENS and c.peer_state in ("disconnected", "failed"):
        return Banner(tr.gettext("The call's connection was lost: reconnecting…"), "warning")
    return None


def _with(base: ScreenModel, **changes: object) -> ScreenModel:
    """`base` with `changes`; buttons are added to the language switch, not replacing it."""
    if "buttons" in changes:
        changes["buttons"] = (*base.buttons, *changes["buttons"])  # type: ignore[misc]
    return replace(base, **changes)  # type: ignore[arg-type]


def _language(tr: Translator, base: ScreenModel, *_: object) -> ScreenModel:
    # Both languages at once: the participant has not chosen yet.
    def both(message: str) -> str:
        ours = translator(Language.INDONESIAN).gettext(message)
        return f"{ours} · {translator(Language.ENGLISH).gettext(message)}"

    return _with(
        base,
        title=both(N_("Welcome")),
        lines=(both(N_("Choose your language")),),
        buttons=(
            ButtonView("Bahasa Indonesia", ChooseLanguage(Language.INDONESIAN), "choice"),
            ButtonView("English", ChooseLanguage(Language.ENGLISH), "choice"),
        ),
    )


def _method(tr: Translator, base: ScreenModel, form: FormState, *_: object) -> ScreenModel:
    return _with(
        base,
        title=tr.gettext("How would you like to check in?"),
        buttons=(
            ButtonView(tr.gettext("I have a booking code"), ChooseMethod("booking"), "choice",
                       sublabel=tr.gettext("From your online booking confirmation")),
            ButtonView(tr.gettext("I have no booking"), ChooseMethod("walk_in"), "choice",
                       sublabel=tr.gettext("Check in with your NIK and KPJ number")),
            ButtonView(tr.gettext("Back"), Back(), "nav"),
        ),
    )  # fmt: skip


def _field(tr: Translator, form: FormState, name: FieldName) -> FieldView:
    labels = {
        "booking_code": (tr.gettext("Booking code"),
                         tr.gettext("4 to 32 letters and digits, on your booking confirmation")),
        "nik": (tr.gettext("NIK"), tr.gettext("16 digits, on your KTP")),
        "kpj": (tr.gettext("KPJ number"), tr.gettext("11 digits, on your KPJ card")),
        "claim_type": (tr.gettext("Reason for the claim"), tr.gettext("Choose one")),
    }  # fmt: skip
    label, hint = labels[name]
    if name == "claim_type":
        value = texts.claim_type_name(tr, form.claim_type) if form.claim_type else ""
    else:
        value = getattr(form, name)
        if name in ("nik", "kpj"):
            hint = f"{hint} · {len(value)}/{FIELD_LENGTH[name]}"
    problem = form.problems.get(name)
    return FieldView(
        name=name,
        label=label,
        value=value,
        hint=hint,
        problem=texts.field_problem(tr, problem) if problem is not None else None,
        active=form.active == name,
    )


def _refusal_notice(tr: Translator, form: FormState) -> Banner | None:
    if form.refused is None:
        return None
    return Banner(texts.check_in_refusal(tr, form.refused, form.method), "error")


def _keypad_digits(tr: Translator) -> tuple[tuple[ButtonView, ...], ...]:
    def key(c: str) -> ButtonView:
        return ButtonView(c, Key(c), "key")

    rows = [tuple(key(c) for c in r) for r in ("123", "456", "789")]
    rows.append((ButtonView("⌫", Backspace(), "key"), key("0"),
                 ButtonView(tr.gettext("Next"), Next(), "key")))  # fmt: skip
    return tuple(rows)


def _keypad_letters(tr: Translator) -> tuple[tuple[ButtonView, ...], ...]:
    rows = ["1234567890", "QWERTYUIOP", "ASDFGHJKL-", "ZXCVBNM"]
    keypad = [tuple(ButtonView(c, Key(c), "key") for c in r) for r in rows]
    keypad[-1] = (*keypad[-1], ButtonView("⌫", Backspace(), "key"))
    return tuple(keypad)


def _booking(tr: Translator, base: ScreenModel, form: FormState, *_: object) -> ScreenModel:
    return _with(
        base,
        title=tr.gettext("Type your booking code"),
        fields=(_field(tr, form, "booking_code"),),
        keypad=_keypad_letters(tr),
        notice=_refusal_notice(tr, form),
        buttons=(
            ButtonView(tr.gettext("Back"), Back(), "nav"),
            ButtonView(tr.gettext("Check in"), Next(), "primary"),
        ),
    )


def _walk_in(tr: Translator, base: ScreenModel, form: FormState, *_: object) -> ScreenModel:
    last = form.active == "claim_type" or validate(form)[0] is not None
    claim_types = tuple(
        ButtonView(texts.claim_type_name(tr, ct), ChooseClaimType(ct), "field",
                   selected=form.claim_type is ct)
        for ct in ClaimType
    )  # fmt: skip
    return _with(
        base,
        title=tr.gettext("Check in without a booking"),
        fields=tuple(_field(tr, form, n) for n in FIELDS["walk_in"]),
        keypad=_keypad_digits(tr),
        notice=_refusal_notice(tr, form),
        buttons=(
            *claim_types,
            ButtonView(tr.gettext("Back"), Back(), "nav"),
            ButtonView(tr.gettext("Check in") if last else tr.gettext("Next"), Next(), "primary"),
        ),
    )


def _ticket(
    tr: Translator, base: ScreenModel, form: FormState, c: ClientSnapshot, now: float
) -> ScreenModel:
    number = c.called_ticket or ""
    keypad = [
        tuple(ButtonView(ch, Key(ch), "key") for ch in row) for row in ("ABP", "123", "456", "789")
    ]
    keypad.append((ButtonView("⌫", Backspace(), "key"), ButtonView("0", Key("0"), "key"),
                   ButtonView(tr.gettext("OK"), Next(), "key")))  # fmt: skip
    notice = None
    if form.refused == "ticket_mismatch":
        notice = Banner(tr.gettext("That is not the number called to this booth. Check your "
                                   "ticket, or ask at the desk."), "error")  # fmt: skip
    elif form.refused is not None:
        notice = _refusal_notice(tr, form)
    field = FieldView(name="ticket", label=tr.gettext("Your ticket number"), value=form.ticket,
                      hint=tr.gettext("A letter, then the digits: as printed on your ticket"),
                      problem=None, active=True)  # fmt: skip
    return _with(
        base,
        title=tr.gettext("Ticket %(number)s, please come to this booth") % {"number": number},
        big=number,
        big_caption=tr.gettext("Called to this booth"),
        lines=(
            tr.gettext("Type the number on your ticket to begin. Your details are already here."),
        ),
        fields=(field,),
        keypad=tuple(keypad),
        notice=notice,
        buttons=(ButtonView(tr.gettext("Begin"), Next(), "primary"),),
    )


def _submitting(
    tr: Translator, base: ScreenModel, form: FormState, c: ClientSnapshot, now: float
) -> ScreenModel:
    notice = _refusal_notice(tr, form)
    return _with(
        base,
        title=tr.gettext("Checking you in…"),
        lines=(tr.gettext("This takes a few seconds."),),
        notice=Banner(notice.text, "info") if notice is not None else None,
        busy=True,
    )


def _waiting(
    tr: Translator, base: ScreenModel, form: FormState, c: ClientSnapshot, now: float
) -> ScreenModel:
    if c.state is S.RESERVED:
        return _with(
            base,
            title=tr.gettext("An officer will be with you in a moment"),
            lines=(tr.gettext("Please stay in front of the screen."),),
            busy=True,
        )
    if c.position is None:
        ahead = tr.gettext("Finding your place in the queue…")
    elif c.position == 0:
        ahead = tr.gettext("You are next.")
    else:
        ahead = tr.gettext("People ahead of you: %(ahead)d") % {"ahead": c.position}
    return _with(
        base,
        title=tr.gettext("You are in the queue"),
        big=str(c.position + 1) if c.position is not None else None,
        big_caption=tr.gettext("Your place in the queue"),
        lines=(
            ahead,
            texts.waiting_time(tr, c.estimated_wait_s),
            tr.gettext("An officer will call you on this screen. Please stay nearby."),
            tr.gettext("Have your KTP, KPJ card and savings book ready."),
        ),
    )


def _self_slot(tr: Translator, c: ClientSnapshot) -> MediaSlot:
    return MediaSlot("self", c.self_video, tr.gettext("Your camera is starting…"),
                     caption=tr.gettext("You"))  # fmt: skip


def _officer(c: ClientSnapshot, tr: Translator) -> str:
    return c.cso_name or tr.gettext("the officer")


def _connecting(
    tr: Translator, base: ScreenModel, form: FormState, c: ClientSnapshot, now: float
) -> ScreenModel:
    return _with(
        base,
        title=tr.gettext("Connecting you to %(officer)s…") % {"officer": _officer(c, tr)},
        lines=(tr.gettext("The picture and sound start in a moment."),),
        busy=True,
    )


def _talking(
    tr: Translator, base: ScreenModel, form: FormState, c: ClientSnapshot, now: float
) -> ScreenModel:
    officer = _officer(c, tr)
    return _with(
        base,
        title=tr.gettext("You are talking with %(officer)s") % {"officer": officer},
        lines=(tr.gettext("Speak normally; the microphone is on."),),
        media=(
            MediaSlot("officer", c.officer_video,
                      tr.gettext("Waiting for the officer's picture…"), caption=officer),
            _self_slot(tr, c),
        ),
    )  # fmt: skip


def _on_hold(
    tr: Translator, base: ScreenModel, form: FormState, c: ClientSnapshot, now: float
) -> ScreenModel:
    return _with(
        base,
        title=tr.gettext("The officer is serving another participant — please wait"),
        lines=(
            tr.gettext("Stay in front of the screen: %(officer)s will come back to you.")
            % {"officer": _officer(c, tr)},
            tr.gettext("You can get your documents ready meanwhile."),
        ),
        media=(_self_slot(tr, c),),
    )


def _capture(
    tr: Translator, base: ScreenModel, form: FormState, c: ClientSnapshot, now: float
) -> ScreenModel:
    capture = c.capture
    assert capture is not None
    name = texts.document_name(tr, capture.kind)
    preview = MediaSlot("document", True, tr.gettext("Document camera"),
                        caption=tr.gettext("Document camera"))  # fmt: skip
    picture = MediaSlot("picture", True, tr.gettext("The picture"),
                        caption=tr.gettext("The picture sent"))  # fmt: skip
    advice = (
        Banner(texts.capture_advice(tr, capture.advice), "warning")
        if capture.advice is not None and capture.phase in (CapturePhase.RETRYING,
                                                            CapturePhase.COUNTDOWN)
        else None
    )  # fmt: skip
    title = tr.gettext("Show your %(document)s") % {"document": name}
    place = tr.gettext("Lay the %(document)s flat under the document camera.") % {"document": name}
    match capture.phase:
        case CapturePhase.COUNTDOWN:
            left = max(0.0, (capture.countdown_until or now) - now)
            return _with(
                base, title=title, lines=(place, tr.gettext("Hold it still: the picture is "
                                                            "taken when the countdown ends.")),
                big=str(math.ceil(left)), notice=advice, media=(preview,),
            )  # fmt: skip
        case CapturePhase.CAPTURING | CapturePhase.RETRYING:
            return _with(
                base, title=title, lines=(place, tr.gettext("Taking the picture…")),
                notice=advice, media=(preview,), busy=True,
            )  # fmt: skip
        case CapturePhase.UPLOADING | CapturePhase.QUEUED | CapturePhase.DONE:
            done = capture.phase is CapturePhase.DONE
            percent = capture.percent
            if done:
                first = tr.gettext("The picture has reached the officer.")
            elif capture.phase is CapturePhase.QUEUED:
                first = tr.gettext(
                    "The picture is kept at this booth and is sent by itself as soon as the "
                    "connection is back."
                )
            elif percent is None:
                first = tr.gettext("Sending the picture to the officer…")
            else:
                first = tr.gettext("Sending the picture to the officer: %(percent)d%%") % {
                    "percent": percent
                }
            lines = (
                first,
                tr.gettext("You can take the document back.")
                if capture.accepted
                else tr.gettext("The officer will check whether it can be read."),
            )
            notice = Banner(tr.gettext("Picture accepted"), "success") if capture.accepted else None
            if capture.phase is CapturePhase.QUEUED:
                notice = Banner(tr.gettext("Picture waiting to be sent"), "info")
            return _with(base, title=title, lines=lines, notice=notice, media=(picture,),
                         busy=not done)  # fmt: skip
        case CapturePhase.FAILED:
            return _with(
                base,
                title=title,
                lines=(tr.gettext("The picture could not be sent. The officer will help you."),),
                notice=Banner(tr.gettext("Picture not sent"), "error"),
            )
    raise AssertionError(capture.phase)


def _consent(
    tr: Translator, base: ScreenModel, form: FormState, c: ClientSnapshot, now: float
) -> ScreenModel:
    years = c.recording_years if c.recording_years is not None else DEFAULT_YEARS
    return _with(
        base,
        title=tr.gettext("May we record this session?"),
        lines=(consent_text(form.language, years),),  # (its hash is audited: not gettext)
        buttons=(
            ButtonView(tr.gettext("Yes, record it"), AnswerConsent(True), "choice"),
            ButtonView(tr.gettext("No"), AnswerConsent(False), "choice",
                       sublabel=tr.gettext("Then you will be served at the counter instead")),
            ButtonView(tr.gettext("Back"), Back(), "nav"),
        ),
    )  # fmt: skip


def _ended(
    tr: Translator, base: ScreenModel, form: FormState, c: ClientSnapshot, now: float
) -> ScreenModel:
    if form.end_reason == "recording_refused":
        where = form.directions or tr.gettext("the service counter")
        return _with(
            base,
            title=tr.gettext("Thank you"),
            lines=(
                tr.gettext("Without a recording, your claim is verified in person."),
                tr.gettext("Please go to: %(where)s") % {"where": where},
                tr.gettext("Please take all your documents with you."),
            ),
            buttons=(ButtonView(tr.gettext("Finish"), Finish(), "primary"),),
        )
    return _with(
        base,
        title=tr.gettext("Thank you"),
        lines=texts.session_end(tr, form.end_reason),
        buttons=(ButtonView(tr.gettext("Finish"), Finish(), "primary"),),
    )


def _reconnecting(tr: Translator, base: ScreenModel, *_: object) -> ScreenModel:
    return _with(
        base,
        title=tr.gettext("Reconnecting…"),
        lines=(
            tr.gettext("The connection to the service was lost. You keep your place."),
            tr.gettext("Please stay here; this usually takes a few seconds."),
        ),
        busy=True,
    )


def _out_of_service(tr: Translator, base: ScreenModel, *_: object) -> ScreenModel:
    return _with(
        base,
        title=tr.gettext("This booth is out of service"),
        lines=(tr.gettext("Please ask the branch staff for help, or use another booth."),),
        notice=Banner(tr.gettext("Out of service"), "error"),
    )


_BUILDERS: dict[Screen, Callable[..., ScreenModel]] = {
    Screen.LANGUAGE: _language,
    Screen.CONSENT: _consent,
    Screen.METHOD: _method,
    Screen.BOOKING: _booking,
    Screen.WALK_IN: _walk_in,
    Screen.SUBMITTING: _submitting,
    Screen.WAITING: _waiting,
    Screen.CONNECTING: _connecting,
    Screen.TALKING: _talking,
    Screen.ON_HOLD: _on_hold,
    Screen.CAPTURE: _capture,
    Screen.ENDED: _ended,
    Screen.RECONNECTING: _reconnecting,
    Screen.OUT_OF_SERVICE: _out_of_service,
    Screen.TICKET: _ticket,
}
