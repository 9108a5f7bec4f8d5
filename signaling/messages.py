"""Every message on every Loket socket, as pydantic v2 models.

Each message is a flat JSON object: the envelope fields (`v`, `id`, `ts`, `reply_to`) plus a
`type` discriminator and the body. Unknown fields are refused (`extra="forbid"`) so a typo
is an error, not a silently ignored field. Names follow WebRTC (offer, answer, candidate,
sdpMid) and the agency (KPJ, NIK, claim types).

Direction and role: `BOOTH_INBOUND` is what a booth may send to the server, `BOOTH_OUTBOUND`
what the server sends to a booth, and so on for `cso` and `supervisor`.
"""

from __future__ import annotations

import functools
import time
import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from signaling.errors import ErrorCode
from signaling.session import SessionState
from signaling.version import PROTOCOL_VERSION

MessageId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
SessionId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
PeerId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
# An SDP blob for audio + two videos is a few kB; 64 kB leaves room and bounds parsing.
MAX_SDP_FINGERPRINTS = 16  # a=fingerprint lines: one per m-section (bundled), a few at most


def _few_fingerprints(sdp: str) -> str:
    # A description announces its DTLS certificate once per media section; one with many
    # (a hostile peer's 1,500) is refused here, at the edge, before it costs the floor.
    if sdp.count("a=fingerprint:") > MAX_SDP_FINGERPRINTS:
        raise ValueError(f"at most {MAX_SDP_FINGERPRINTS} a=fingerprint lines in an SDP")
    return sdp


Sdp = Annotated[str, Field(min_length=1, max_length=65_536), AfterValidator(_few_fingerprints)]
Nik = Annotated[str, Field(pattern=r"^\d{16}$", description="16-digit national ID (NIK)")]
KpjNumber = Annotated[str, Field(pattern=r"^\d{11}$", description="11-digit KPJ participant no.")]
BookingCode = Annotated[str, Field(pattern=r"^[A-Z0-9-]{4,32}$")]
EndReason = Literal[
    "completed", "booth_left", "cso_ended", "cso_lost", "booth_lost", "moved", "supervisor_ended"
]


def new_message_id() -> str:
    return uuid.uuid4().hex


class Role(StrEnum):
    BOOTH = "booth"
    CSO = "cso"
    SUPERVISOR = "supervisor"
    DISPLAY = "display"  # a waiting room's public calling display (front of house)


class ClaimType(StrEnum):
    """JHT (old-age savings) claim grounds."""

    RESIGNATION = "resignation"
    TERMINATION = "termination"  # PHK, pemutusan hubungan kerja
    RETIREMENT = "retirement"  # reached retirement age (56)
    DISABILITY = "disability"  # total permanent disability
    DEATH = "death"  # claimed by the heirs


class Language(StrEnum):
    INDONESIAN = "id"
    ENGLISH = "en"


class Envelope(BaseModel):
    """Fields every message carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = Field(default=PROTOCOL_VERSION, description="protocol version")
    id: MessageId = Field(default_factory=new_message_id, description="sender's message id")
    ts: float = Field(default_factory=time.time, ge=0, description="unix time, seconds")
    reply_to: MessageId | None = Field(default=None, description="id this message answers")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- shared parts ---------------------------------------------------------------------


class IceServer(Body):
    urls: list[Annotated[str, Field(max_length=512)]] = Field(min_length=1, max_length=8)
    username: str | None = None
    credential: str | None = None


class IceCandidate(Body):
    """As in the browser's RTCIceCandidateInit."""

    candidate: Annotated[str, Field(max_length=1024)]
    sdpMid: str | None = Field(default=None, max_length=64)  # W3C names
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=64)
    usernameFragment: str | None = Field(default=None, max_length=256)


class BookingRef(Body):
    kind: Literal["booking"] = "booking"
    booking_code: BookingCode


class WalkInRef(Body):
    """No booking: the participant identifies themselves at the booth. No quota applies."""

    kind: Literal["walk_in"] = "walk_in"
    nik: Nik
    kpj: KpjNumber
    claim_type: ClaimType


ClaimRef = Annotated[BookingRef | WalkInRef, Field(discriminator="kind")]
TicketNumber = Annotated[str, Field(pattern=r"^[A-Za-z][- ]?\d{1,4}$", max_length=8)]


class TicketRef(Body):
    """At a booth a ticket was called to: the participant confirms with its number; the
    claim typed when the ticket was issued comes with it."""

    kind: Literal["ticket"] = "ticket"
    number: TicketNumber


BoothClaimRef = Annotated[BookingRef | WalkInRef | TicketRef, Field(discriminator="kind")]


class BoothInfo(Body):
    booth_id: PeerId
    branch: str
    label: str


class ClaimSummary(Body):
    """What the CSO sees before accepting: never the full NIK."""

    kind: Literal["booking", "walk_in"]
    claim_id: str | None = Field(default=None, description="for /api/claims/{claim_id}")
    booking_code: str | None = None
    claim_type: ClaimType | None = None
    nik_masked: str | None = None


# --- messages any role sends or receives ------------------------------------------------


class Hello(Envelope):
    """First message on every socket: authenticates it. Tokens never go in the URL."""

    type: Literal["hello"] = "hello"
    token: Annotated[str, Field(min_length=1, max_length=4096)]
    resume: Annotated[str, Field(max_length=4096)] | None = Field(
        default=None, description="resume token from a previous `welcome`"
    )
    client: Annotated[str, Field(max_length=128)] | None = None


class CalledTicket(Body):
    """The ticket a booth expects: its screen shows the number and asks for it."""

    number: str
    expires_in: float = Field(ge=0, description="seconds left to confirm it here")
    calls: int = Field(ge=1, description="how often it was called (2+: a recall)")


class SessionEndNote(Body):
    """How the booth's last session ended, when it ended while the booth was away."""

    session_id: SessionId
    reason: EndReason


class BoothStatus(Body):
    """Where a booth stands, authoritative: a kiosk rebuilds its screen from this."""

    state: SessionState
    session_id: SessionId | None = None
    focused: bool = Field(default=False, description="the CSO is talking to this booth")
    position: int | None = Field(default=None, ge=0, description="0 = next, while queued")
    waiting: int | None = Field(default=None, ge=0)
    estimated_wait_s: float | None = Field(default=None, ge=0)
    cso_name: str | None = None
    claim_id: str | None = None
    ice_servers: list[IceServer] = Field(default_factory=list)
    last_ended: SessionEndNote | None = None
    ticket: CalledTicket | None = Field(
        default=None, description="the ticket called to this booth, while idle"
    )


class CsoSession(Body):
    """One booth a CSO serves (assigned), as its console tile needs it."""

    session_id: SessionId
    booth: BoothInfo
    claim: ClaimSummary
    language: Language
    state: SessionState
    checked_in_at: float
    booth_connected: bool
    ice_servers: list[IceServer] = Field(default_factory=list)
    monitored: bool = False


class PendingOffer(Body):
    session_id: SessionId
    booth: BoothInfo
    claim: ClaimSummary
    language: Language
    expires_in: float = Field(ge=0, description="seconds left to accept")
    ice_servers: list[IceServer] = Field(
        default_factory=list,
        description="the officer's, to prepare the call's peer connection before accepting",
    )


class CsoStatus(Body):
    available: bool
    focused: SessionId | None = None
    sessions: list[CsoSession] = Field(default_factory=list)
    offers: list[PendingOffer] = Field(default_factory=list)


class Welcome(Envelope):
    """Answer to `hello`, and the peer's whole authoritative state: clients rebuild from it
    after every (re)connect instead of relying on replayed messages."""

    type: Literal["welcome"] = "welcome"
    role: Role
    peer_id: PeerId
    display_name: str
    heartbeat_interval: float = Field(description="send `ping` at least this often (s)")
    heartbeat_timeout: float = Field(description="silence after which the peer is dead (s)")
    resume_token: str
    resumed: bool = False
    token_expires_at: float | None = Field(
        default=None, description="unix time the access token expires; send `reauth` before"
    )
    booth: BoothStatus | None = None
    cso: CsoStatus | None = None
    floor: FloorView | None = None


class Reauth(Envelope):
    """A fresh access token for this socket, before the current one expires (else 4401)."""

    type: Literal["reauth"] = "reauth"
    token: Annotated[str, Field(min_length=1, max_length=4096)]


class Ping(Envelope):
    type: Literal["ping"] = "ping"


class Pong(Envelope):
    type: Literal["pong"] = "pong"


class Ack(Envelope):
    type: Literal["ack"] = "ack"


class Error(Envelope):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    hint: str | None = None
    ref: MessageId | None = Field(default=None, description="the offending message's id")


class Offer(Envelope):
    type: Literal["offer"] = "offer"
    session_id: SessionId
    sdp: Sdp


class Answer(Envelope):
    type: Literal["answer"] = "answer"
    session_id: SessionId
    sdp: Sdp


class Candidate(Envelope):
    """A trickled ICE candidate; `candidate: null` means end of candidates."""

    type: Literal["candidate"] = "candidate"
    session_id: SessionId
    candidate: IceCandidate | None


class PeerState(Envelope):
    """Either end reports its RTCPeerConnection's connectionState."""

    type: Literal["peer_state"] = "peer_state"
    session_id: SessionId
    state: Literal["connecting", "connected", "disconnected", "failed", "closed"]


class PeerStats(Envelope):
    """Either end reports how its media is doing (from getStats), every few seconds. Stored
    for supervisors' floor view, never relayed."""

    type: Literal["peer_stats"] = "peer_stats"
    session_id: SessionId
    rtt_ms: float | None = Field(default=None, ge=0, le=600_000)
    loss: float | None = Field(default=None, ge=0, le=1, description="share of packets lost")
    fps: float | None = Field(default=None, ge=0, le=240, description="video frames/s received")


class SessionEnded(Envelope):
    type: Literal["session_ended"] = "session_ended"
    session_id: SessionId
    reason: EndReason


class SessionUpdate(Envelope):
    """To the CSO: a session's state changed on the booth's side (e.g. it is reconnecting)."""

    type: Literal["session_update"] = "session_update"
    session_id: SessionId
    state: SessionState
    booth_connected: bool
    monitored: bool = Field(default=False, description="a supervisor is watching (if shown)")


# --- document capture (CSO asks, booth captures and uploads, server tells the CSO) --------

DocumentKindName = Annotated[
    str, Field(pattern=r"^[a-z][a-z_]{1,31}$", description="a document kind, e.g. ktp, kk")
]
# queued: the picture is kept at the booth, waiting for the server (sent by itself later).
CaptureStage = Literal["capturing", "retrying", "uploading", "queued", "done", "failed"]
CaptureAdvice = Literal["hold_still", "avoid_glare", "place_document", "move_closer"]


class RequestCapture(Envelope):
    """CSO -> booth (relayed): take a full-resolution picture of this document."""

    type: Literal["request_capture"] = "request_capture"
    session_id: SessionId
    capture_id: MessageId = Field(description="chosen by the CSO; every status carries it")
    kind: DocumentKindName


class CaptureStatus(Envelope):
    """Booth -> CSO (relayed): how a capture is going, with the pipeline's scores."""

    type: Literal["capture_status"] = "capture_status"
    session_id: SessionId
    capture_id: MessageId
    kind: DocumentKindName
    stage: CaptureStage
    attempt: int = Field(default=1, ge=1, le=20)
    sharpness: float | None = Field(default=None, ge=0, description="higher is sharper")
    glare: float | None = Field(default=None, ge=0, le=1, description="share of blown pixels")
    advice: CaptureAdvice | None = Field(default=None, description="what the booth told them")
    document_id: str | None = Field(default=None, max_length=64, description="once stored")
    detail: Annotated[str, Field(max_length=300)] | None = None
    bytes_sent: int | None = Field(
        default=None, ge=0, le=2**31, description="uploading: bytes of the picture sent so far"
    )
    bytes_total: int | None = Field(default=None, ge=0, le=2**31, description="the picture's")


class RecordingStatus(Envelope):
    """Booth -> CSO (relayed): whether this session is being recorded as evidence (the
    console shows it). `paused` says why (disk_full, write_failed): a gap is recorded."""

    type: Literal["recording_status"] = "recording_status"
    session_id: SessionId
    state: Literal["recording", "paused", "refused", "off"]
    reason: Annotated[str, Field(max_length=64, pattern=r"^[a-z_]*$")] | None = None


class DocumentAdded(Envelope):
    """Server -> the CSO serving the claim: a picture was stored (show it, no polling)."""

    type: Literal["document_added"] = "document_added"
    session_id: SessionId
    claim_id: str
    document_id: str
    kind: DocumentKindName
    sha256: str
    width: int | None = None
    height: int | None = None


class VerificationUpdated(Envelope):
    """Server -> the CSO serving the claim: machine advice on a document is ready (`what`:
    its reading, or the face comparison of a face still). Carries no personal data: fetch
    GET /api/claims/{claim_id}/verification (an audited read) to show it."""

    type: Literal["verification_updated"] = "verification_updated"
    session_id: SessionId
    claim_id: str
    document_id: str
    what: Literal["reading", "face"]


# --- booth ------------------------------------------------------------------------------


class CheckIn(Envelope):
    type: Literal["check_in"] = "check_in"
    claim: BoothClaimRef
    language: Language = Language.INDONESIAN
    needs_assistance: bool = Field(default=False, description="elderly/disabled: served first")


class Leave(Envelope):
    type: Literal["leave"] = "leave"
    reason: Annotated[str, Field(max_length=200)] = "participant_left"


class Queued(Envelope):
    type: Literal["queued"] = "queued"
    position: int = Field(ge=0, description="0 = next to be served")
    waiting: int = Field(ge=0)
    estimated_wait_s: float | None = Field(
        default=None, ge=0, description="None while no officer is on duty to estimate from"
    )


class Reserved(Envelope):
    """An officer has been picked and is about to take the booth."""

    type: Literal["reserved"] = "reserved"
    session_id: SessionId


class Assigned(Envelope):
    type: Literal["assigned"] = "assigned"
    session_id: SessionId
    cso_name: str
    ice_servers: list[IceServer]
    claim_id: str | None = Field(default=None, description="upload documents against this")


class TicketCalled(Envelope):
    """To an idle booth: this ticket is called to you (the display and voice say so);
    the participant confirms with its number (`check_in` with a `ticket` claim)."""

    type: Literal["ticket_called"] = "ticket_called"
    ticket: CalledTicket


class TicketWithdrawn(Envelope):
    """To a booth: the ticket called to it is not coming here any more."""

    type: Literal["ticket_withdrawn"] = "ticket_withdrawn"
    number: str
    reason: Literal["missed", "recycled", "no_show", "cancelled", "transferred", "served"]


class Focus(Envelope):
    """To a booth: whether the CSO is now talking to it (others see a hold slate)."""

    type: Literal["focus"] = "focus"
    session_id: SessionId
    focused: bool


# --- CSO --------------------------------------------------------------------------------


class SetAvailability(Envelope):
    type: Literal["set_availability"] = "set_availability"
    available: bool


class Accept(Envelope):
    type: Literal["accept"] = "accept"
    session_id: SessionId


class Decline(Envelope):
    type: Literal["decline"] = "decline"
    session_id: SessionId


class FocusBooth(Envelope):
    """From the CSO: talk to this session's booth (null: talk to none)."""

    type: Literal["focus_booth"] = "focus_booth"
    session_id: SessionId | None


class EndSession(Envelope):
    type: Literal["end_session"] = "end_session"
    session_id: SessionId


class BoothOffered(Envelope):
    """A booth is reserved for this CSO; `accept` or `decline` within `expires_in` s."""

    type: Literal["booth_offered"] = "booth_offered"
    session_id: SessionId
    booth: BoothInfo
    claim: ClaimSummary
    language: Language
    expires_in: float
    # The officer's ICE servers: the console prepares the call's peer connection (and its
    # offer) while the booth is offered, so accepting sends the offer at once. Nothing
    # reaches the booth before the accept: the server relays no offer until then.
    ice_servers: list[IceServer] = Field(default_factory=list)


class OfferWithdrawn(Envelope):
    type: Literal["offer_withdrawn"] = "offer_withdrawn"
    session_id: SessionId
    reason: Literal["declined", "expired", "cso_lost", "booth_left"]


class BoothAssigned(Envelope):
    """The CSO now serves this booth: create a peer connection and send an `offer`."""

    type: Literal["booth_assigned"] = "booth_assigned"
    session_id: SessionId
    booth: BoothInfo
    claim: ClaimSummary
    language: Language
    ice_servers: list[IceServer]
    checked_in_at: float = Field(description="unix time the booth checked in")


# --- supervisor -------------------------------------------------------------------------


class BranchQueue(Body):
    branch: str
    waiting: int
    oldest_wait_s: float
    estimated_wait_s: float | None = Field(
        default=None, description="for the branch's last booth in line; None: nobody on duty"
    )


class WaitingBooth(Body):
    """One of the longest-waiting booths (for alerts), not the whole queue."""

    booth_id: PeerId
    branch: str
    label: str
    waited_s: float
    connected: bool = True
    reconnects: int = 0


class QueueStats(Body):
    waiting: int
    oldest_wait_s: float
    by_branch: dict[str, int]
    estimated_wait_s: float | None = Field(default=None, description="for the last in line")
    branches: list[BranchQueue] = Field(default_factory=list)
    longest: list[WaitingBooth] = Field(default_factory=list, description="oldest first")


class PeerQuality(Body):
    """The latest `peer_stats` one end reported."""

    rtt_ms: float | None = None
    loss: float | None = None
    fps: float | None = None
    at: float = Field(description="unix time of the report")


class SessionView(Body):
    session_id: SessionId
    booth_id: PeerId
    branch: str
    state: str
    since: float
    booth_label: str = ""
    state_since: float | None = Field(default=None, description="unix time of the last step")
    booth_connected: bool = True
    reconnects: int = Field(default=0, description="times the booth resumed after a drop")
    monitored: bool = False
    booth_quality: PeerQuality | None = None
    cso_quality: PeerQuality | None = None


class CsoView(Body):
    cso_id: PeerId
    name: str
    state: Literal["available", "paused", "lost"]
    capacity: int
    load: int
    sessions: list[SessionView]
    branch: str = ""


class FloorSample(Body):
    """The queue at one moment, for the dashboard's chart of the last hour."""

    t: float
    waiting: int
    oldest_wait_s: float


class LostCapture(Body):
    """A document picture its booth could not deliver: the server refused it for good (its
    grant expired, the picture is unreadable, ...). The officer is told at once if serving
    the claim; supervisors see it on the floor for an hour."""

    claim_id: Annotated[str, Field(max_length=64)]
    capture_id: Annotated[str, Field(max_length=64)]
    booth_id: PeerId
    branch: Annotated[str, Field(max_length=64)]
    kind: Annotated[str, Field(max_length=32)]
    reason: Annotated[str, Field(max_length=64)]
    at: float = Field(description="unix time it was reported")


# --- front of house: tickets, the desk and the calling display ----------------------------

TicketStateName = Literal["waiting", "called", "served", "no_show", "cancelled"]
TicketActionName = Literal["recall", "transfer", "cancel"]


class TicketView(Body):
    """A ticket as the desk and the supervisors see it (never a full NIK)."""

    ticket_id: Annotated[str, Field(max_length=64)]
    number: str
    branch: str
    category: str
    state: TicketStateName
    arrived_at: float
    waited_s: float
    booth_id: PeerId | None = None
    booth_label: str | None = None
    calls: int = 0
    misses: int = 0
    recycles: int = 0
    claim: ClaimSummary


class LobbyBranch(Body):
    """One branch's waiting room, live."""

    branch: str
    waiting: int
    waiting_by_category: dict[str, int]
    oldest_wait_s: float
    called: int
    booths_free: int
    booths_called: int
    booths_in_use: int
    estimated_wait_s: float | None = Field(
        default=None, description="a new ticket's: lobby (to a booth) plus floor (to an officer)"
    )


class LobbyView(Body):
    branches: list[LobbyBranch] = Field(default_factory=list)
    tickets: list[TicketView] = Field(
        default_factory=list, description="waiting and called, oldest first (at most 200)"
    )
    categories: dict[str, str] = Field(default_factory=dict, description="code -> name")


class FloorView(Body):
    queue: QueueStats
    csos: list[CsoView]
    now: float | None = Field(default=None, description="server unix time of this view")
    history: list[FloorSample] = Field(default_factory=list, description="the last hour")
    lost_captures: list[LostCapture] = Field(default_factory=list, description="the last hour")
    lobby: LobbyView = Field(default_factory=LobbyView)


class FloorSnapshot(Envelope):
    type: Literal["floor_snapshot"] = "floor_snapshot"
    queue: QueueStats
    csos: list[CsoView]
    now: float | None = None
    lost_captures: list[LostCapture] = Field(default_factory=list)
    lobby: LobbyView = Field(default_factory=LobbyView)


class IssueTicket(Envelope):
    """Desk (supervisor socket): a ticket for this participant; answered `ticket_issued`
    (the number to hand over) or an error (`too_early` says when to come back)."""

    type: Literal["issue_ticket"] = "issue_ticket"
    claim: ClaimRef
    branch: Annotated[str, Field(min_length=1, max_length=32)] | None = Field(
        default=None, description="default: the desk's own branch"
    )
    priority: bool = Field(default=False, description="elderly, disabled, pregnant: P")
    language: Language = Language.INDONESIAN


class TicketIssued(Envelope):
    type: Literal["ticket_issued"] = "ticket_issued"
    ticket: TicketView
    ahead: int = Field(ge=0, description="tickets of its line before it")
    estimated_wait_s: float | None = None


class TicketAction(Envelope):
    """Desk: `recall` a called ticket (announce it again), `transfer` it to another
    category or branch pool, or `cancel` it."""

    type: Literal["ticket_action"] = "ticket_action"
    ticket_id: Annotated[str, Field(min_length=1, max_length=64)]
    action: TicketActionName
    category: Annotated[str, Field(pattern=r"^[A-Z]$")] | None = None
    branch: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    reason: Annotated[str, Field(max_length=200)] | None = None


class DisplayCallView(Body):
    """One call, as the waiting room's display lists it."""

    number: str
    booth_id: str
    booth_label: str
    at: float
    recall: bool = False
    spoken: str = Field(description="the words the display says, Bahasa Indonesia")


class DisplayState(Envelope):
    """To a display: its branch's last calls, how many wait, and for how long."""

    type: Literal["display_state"] = "display_state"
    branch: str
    calls: list[DisplayCallView]
    waiting: int
    waiting_by_category: dict[str, int] = Field(default_factory=dict)
    estimated_wait_s: float | None = None
    now: float


class DisplayCall(Envelope):
    """To a display: call this ticket now: show it, chime, and play `audio_url`."""

    type: Literal["display_call"] = "display_call"
    branch: str
    call: DisplayCallView
    audio_url: str = Field(description="the chime and the spoken call, WAV, made offline")


class FloorEvent(Envelope):
    type: Literal["floor_event"] = "floor_event"
    kind: Literal[
        "booth_checked_in",
        "booth_reserved",
        "booth_assigned",
        "booth_requeued",
        "booth_left",
        "booth_lost",
        "booth_resumed",
        "session_ended",
        "cso_joined",
        "cso_lost",
        "cso_paused",
        "cso_resumed",
        "cso_left",
        "peer_state",
        "capture_undeliverable",
        "ticket_issued",
        "ticket_called",
        "ticket_missed",
        "ticket_no_show",
        "ticket_served",
    ]
    booth_id: PeerId | None = None
    cso_id: PeerId | None = None
    session_id: SessionId | None = None
    detail: str | None = None


class Subscribe(Envelope):
    """Supervisor: ask for a fresh `floor_snapshot` now."""

    type: Literal["subscribe"] = "subscribe"


class MoveBooth(Envelope):
    """Supervisor: end this session (reason `moved`) and offer the booth to another CSO
    first; the claim and its documents stay with the booth."""

    type: Literal["move_booth"] = "move_booth"
    session_id: SessionId
    to_cso_id: PeerId


class SetCsoAvailability(Envelope):
    """Supervisor: pause or resume an officer (as if they pressed it themselves)."""

    type: Literal["set_cso_availability"] = "set_cso_availability"
    cso_id: PeerId
    available: bool


class AvailabilityChanged(Envelope):
    """To a CSO: a supervisor paused or resumed you."""

    type: Literal["availability_changed"] = "availability_changed"
    available: bool
    by: str


LinkKind = Literal["monitor", "whisper"]


class OpenLink(Envelope):
    """Supervisor: `monitor` a session (the booth sends the participant's video and audio
    and a relay of the CSO's audio, receive-only for the supervisor) or `whisper` to its
    CSO (the supervisor's audio to the console only). Answered by `link_opened`."""

    type: Literal["open_link"] = "open_link"
    kind: LinkKind
    session_id: SessionId


class CloseLink(Envelope):
    type: Literal["close_link"] = "close_link"
    link_id: SessionId


class LinkOpened(Envelope):
    """To each end of a monitor or whisper link. The `offerer` creates the peer connection
    and sends `offer` with `session_id = link_id`; the other end answers."""

    type: Literal["link_opened"] = "link_opened"
    link_id: SessionId
    kind: LinkKind
    session_id: SessionId
    offerer: bool
    supervisor_name: str
    ice_servers: list[IceServer] = Field(default_factory=list)


class LinkClosed(Envelope):
    type: Literal["link_closed"] = "link_closed"
    link_id: SessionId
    reason: Literal["closed", "session_ended", "peer_gone"]


# --- per-role unions --------------------------------------------------------------------

BOOTH_INBOUND: tuple[type[Envelope], ...] = (
    Hello,
    Reauth,
    Ping,
    Pong,
    CheckIn,
    Leave,
    Answer,
    Candidate,
    PeerState,
    CaptureStatus,
    RecordingStatus,
    Offer,
    PeerStats,
)
BOOTH_OUTBOUND: tuple[type[Envelope], ...] = (
    TicketCalled,
    TicketWithdrawn,
    Welcome,
    Ping,
    Pong,
    Ack,
    Error,
    Queued,
    Reserved,
    Assigned,
    Offer,
    Answer,
    Candidate,
    LinkOpened,
    LinkClosed,
    Focus,
    SessionEnded,
    RequestCapture,
)
CSO_INBOUND: tuple[type[Envelope], ...] = (
    Hello,
    Reauth,
    Ping,
    Pong,
    SetAvailability,
    Accept,
    Decline,
    Offer,
    Candidate,
    PeerState,
    FocusBooth,
    EndSession,
    RequestCapture,
    Answer,
    PeerStats,
)
CSO_OUTBOUND: tuple[type[Envelope], ...] = (
    Welcome,
    Ping,
    Pong,
    Ack,
    Error,
    BoothOffered,
    OfferWithdrawn,
    BoothAssigned,
    Answer,
    Candidate,
    PeerState,
    SessionEnded,
    SessionUpdate,
    CaptureStatus,
    RecordingStatus,
    DocumentAdded,
    VerificationUpdated,
    Offer,
    AvailabilityChanged,
    LinkOpened,
    LinkClosed,
)
SUPERVISOR_INBOUND: tuple[type[Envelope], ...] = (
    Hello,
    Reauth,
    Ping,
    Pong,
    Subscribe,
    MoveBooth,
    SetCsoAvailability,
    EndSession,
    OpenLink,
    CloseLink,
    Offer,
    Answer,
    Candidate,
    IssueTicket,
    TicketAction,
)
SUPERVISOR_OUTBOUND: tuple[type[Envelope], ...] = (
    TicketIssued,
    Welcome,
    Ping,
    Pong,
    Ack,
    Error,
    FloorSnapshot,
    FloorEvent,
    LinkOpened,
    LinkClosed,
    Offer,
    Answer,
    Candidate,
)

# A display only listens: it says hello (its display key) and keeps the socket alive.
DISPLAY_INBOUND: tuple[type[Envelope], ...] = (Hello, Ping, Pong)
DISPLAY_OUTBOUND: tuple[type[Envelope], ...] = (Ping, Pong, Error, DisplayState, DisplayCall)

INBOUND: dict[Role, tuple[type[Envelope], ...]] = {
    Role.BOOTH: BOOTH_INBOUND,
    Role.CSO: CSO_INBOUND,
    Role.SUPERVISOR: SUPERVISOR_INBOUND,
    Role.DISPLAY: DISPLAY_INBOUND,
}
OUTBOUND: dict[Role, tuple[type[Envelope], ...]] = {
    Role.BOOTH: BOOTH_OUTBOUND,
    Role.CSO: CSO_OUTBOUND,
    Role.SUPERVISOR: SUPERVISOR_OUTBOUND,
    Role.DISPLAY: DISPLAY_OUTBOUND,
}


@functools.cache
def type_name(model: type[Envelope]) -> str:
    """The wire `type` of a message class."""
    default = model.model_fields["type"].default
    assert isinstance(default, str)
    return default


ALL_MESSAGES: dict[str, type[Envelope]] = {
    type_name(m): m for group in (*INBOUND.values(), *OUTBOUND.values()) for m in group
}
