"""The kiosk's signaling loop: log in, hold a websocket, check in, answer the CSO.

Resume is by state sync: on every (re)connect the kiosk rebuilds where it stands from
`welcome.booth` (booth_client.kiosk.resync) and never waits for missed messages to be
replayed. A dropped socket is reconnected with backoff and the `resume` token; the peer
connection is left alone meanwhile, so media keeps flowing through a signaling blip, and
the kiosk re-reports the peer connection's state once it is back.

Every request is matched to its reply (`ack`, or `error` naming the request): a check-in
counts only once acknowledged, and a refused one leaves the kiosk idle with the refusal
recorded (`last_refusal`), never queued.

The access token is refreshed (the refresh token rotates: the newest is always kept) and
sent over the socket with `reauth` before it expires. Close codes: 4401/4403 log in again
with the credential once, then give up (BoothAuthError); 4409 means another process with
this credential took over, so the kiosk backs off instead of fighting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
import websockets
from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.client import ClientConnection

from booth_client.audio import LatestFrameSink, open_audio_sink
from booth_client.capture_agent import (
    CaptureAgent,
    FeedStillCamera,
    SyntheticDocumentCamera,
    SyntheticFaceCamera,
)
from booth_client.codecs import Voice
from booth_client.config import BoothConfig
from booth_client.degrade import Degrader, Policy, voice_on_wire
from booth_client.ice import use_host_addresses
from booth_client.kiosk import (
    CLOSE_FORBIDDEN,
    CLOSE_OVERLOADED,
    CLOSE_PROTOCOL,
    CLOSE_UNAUTHENTICATED,
    TRANSIENT_REFUSALS,
    CloseKind,
    KioskView,
    Reaction,
    Refusal,
    Requests,
    Settled,
    close_reaction,
    refresh_margin,
    resync,
)
from booth_client.monitor import MonitorLinks
from booth_client.outbox import Outbox, default_state_dir
from booth_client.pacing import Pacer
from booth_client.peer import BoothPeer, warm_up
from booth_client.recording.kiosk import KioskRecording
from booth_client.refresh import post_refresh
from booth_client.relay import FrameRelay
from booth_client.sources.documents import ParticipantDocuments, load_portrait, render_document
from booth_client.sources.media import open_media
from booth_client.stats import STATS_INTERVAL_S, StatsSample, peer_stats, sample
from booth_client.uplink import FLOOR_BPS, UplinkPacer, upload_rate
from booth_client.upload import HttpTransport
from booth_client.visit import VisitFile
from signaling.codec import decode_outbound, encode
from signaling.errors import ErrorCode, ProtocolError
from signaling.messages import (
    Ack,
    Answer,
    Assigned,
    BookingRef,
    CalledTicket,
    Candidate,
    CheckIn,
    Envelope,
    Error,
    Focus,
    Hello,
    Language,
    Leave,
    LinkClosed,
    LinkOpened,
    Offer,
    PeerState,
    Ping,
    Pong,
    Queued,
    Reauth,
    RequestCapture,
    Reserved,
    Role,
    SessionEnded,
    SessionEndNote,
    TicketCalled,
    TicketRef,
    TicketWithdrawn,
    WalkInRef,
    Welcome,
)
from signaling.session import IN_CALL, BoothSession, SessionEvent, SessionState

log = structlog.get_logger("loket.booth")

CLIENT_NAME = "loket-booth/0.2"
# peer connection states the protocol carries (aiortc's "new" is not one of them)
REPORTED_PEER_STATES = ("connecting", "connected", "disconnected", "failed", "closed")
# hello refused: the close code the server follows the error with
_HELLO_REFUSALS = {
    ErrorCode.AUTH_FAILED: CLOSE_UNAUTHENTICATED,
    ErrorCode.UNAUTHENTICATED: CLOSE_UNAUTHENTICATED,
    ErrorCode.FORBIDDEN_FOR_ROLE: CLOSE_FORBIDDEN,
    ErrorCode.RATE_LIMITED: CLOSE_OVERLOADED,
}
REPLACED_BACKOFF_MAX = 1800.0


class DocumentRefused(Exception):
    """The server refused an upload; `message` says what the participant should do."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class BoothAuthError(Exception):
    """The server refused the credential: retrying will not help; re-enrol the booth."""


class _HelloRefused(Exception):
    def __init__(self, close_code: int, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code


@dataclass
class Tokens:
    access: str
    refresh: str  # rotates on every refresh: only the newest works
    expires_at: float  # monotonic
    lifetime: float  # seconds the access token was issued for


@dataclass(frozen=True)
class Participant:
    """Who checks in at the kiosk screen (booth_client.screen), as they typed it."""

    claim: BookingRef | WalkInRef | TicketRef  # a ticket: its number, called to this booth
    language: Language = Language.INDONESIAN
    needs_assistance: bool = False


class BoothClient:
    def __init__(self, config: BoothConfig, *, label: str | None = None) -> None:
        self.config = config
        self.view = KioskView()
        self.booth_id: str | None = None
        self.changed = asyncio.Event()  # set on every state change (tests, UI)
        self.last_refusal: Refusal | None = None  # the latest request the server refused
        self.refusals: list[Refusal] = []  # the last few, oldest first
        self.last_close: Reaction | None = None  # how the last connection ended
        self.connections = 0  # welcomes received (1 + reconnects)
        self.reauths = 0  # fresh tokens the server took over the socket (`reauth` acked)
        self._label = label
        # The booth id is in the credential (lkb_<booth id>.<secret>): a name before login.
        self._name = (
            label or config.credential.get_secret_value().removeprefix("lkb_").split(".")[0]
        )
        self._tokens: Tokens | None = None
        self._auth_lock = asyncio.Lock()  # one refresh at a time: a reused token is fatal
        self._resume: str | None = None
        self._ws: ClientConnection | None = None
        self._requests = Requests()
        self._checking_in: str | None = None  # id of the check-in awaiting its reply
        self._wants_check_in = True  # a participant waits to check in
        self._socket_deadline: float | None = None  # monotonic expiry of the socket's token
        self._reauth_deadlines: dict[str, float] = {}
        self._reauthed = asyncio.Event()
        self._auth_strikes = 0
        self._replaced = 0
        self._documents_sent_for: str | None = None
        self._peer: BoothPeer | None = None
        self._relay = FrameRelay()
        # Supervisors' monitor links: send-only peers beside the call (booth_client.monitor).
        self.monitors = MonitorLinks(self._relay, lambda: (self._video, self._audio), self._send)
        # Cameras and microphone (booth_client.sources.media); MediaSourceError if absent.
        self.media = open_media(config, self._name)
        # Until the officer focuses us, the console shows us as a small tile: the face
        # camera's hold layer (from the call's first frame: a smaller first keyframe
        # reaches the tile sooner), and the document camera pauses unless a capture runs.
        self.media.face.held = lambda: self.state is not SessionState.FOCUSED
        self.media.document.held = lambda: (
            self.state is not SessionState.FOCUSED and not self.media.document_rate.capturing
        )
        self._video: MediaStreamTrack = self.media.face
        self._audio: MediaStreamTrack = self.media.audio
        # The officer's voice and picture (booth_client.audio): speaker and kiosk screen.
        self.audio_sink = open_audio_sink(config.audio_sink, config.audio_log)
        self.video_sink = LatestFrameSink()
        self._stopping = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        # Uploads ask it before each piece they send (booth_client.pacing); None: unpaced.
        # The kiosk's: what the uplink has left after the call (booth_client.uplink).
        self.uplink = UplinkPacer(self._upload_rate, on_start=self._upload_began)
        self.upload_pacer: Pacer | None = self.uplink
        # The kiosk's state on disk: its visit (resume token) and its outbox.
        self.state_dir = config.state_dir or (
            config.outbox_dir.parent if config.outbox_dir else default_state_dir(self._name)
        )
        self.visit = VisitFile(
            self.state_dir / "visit.json", server_url=config.server_url, booth=self._name
        )
        self._resume = self.visit.load()  # restarted within the grace period: resume
        # Grants, uploads (chunked, paced) and undeliverable reports (booth_client.upload).
        self.uploads = HttpTransport(
            config.server_url, self._upload_token, pacer=lambda: self.upload_pacer,
            chunk_bytes=config.upload_chunk_bytes,
        )  # fmt: skip
        # Sessions recorded as evidence, with consent (booth_client.recording).
        self.recording = KioskRecording(
            config.recording, self.state_dir, config.server_url, self._upload_token,
            booth=self._name, relay=self._relay, tracks=lambda: (self._video, self._audio),
            officer_picture=self.video_sink, send=self._send,
            in_call=lambda: self._peer is not None, line_rate=self._upload_rate,
            documents_uploading=lambda: self.uplink.uploading,
            chunk_bytes=config.upload_chunk_bytes,
        )  # fmt: skip
        # Document captures the CSO asks for: pipeline, on-disk outbox, delivery.
        # The synthetic participant shows their own KTP (with their face), KPJ card and bank
        # book, and a face still on request; real cameras give the real ones.
        portrait = load_portrait(config.synthetic_portrait)
        documents = ParticipantDocuments(self._participant_numbers, portrait)
        self.capture_agent = CaptureAgent(
            self.media.capture_camera
            or SyntheticDocumentCamera(
                zlib.crc32(self._name.encode()), shaky_first=True, documents=documents
            ),
            Outbox(config.outbox_dir or self.state_dir / "outbox"),
            self.uploads,
            # the document track's rate follows; the recording's timeline is marked
            self.recording.captures(self.media.watch_captures(self._send)),
            session_live=self._session_live,
            face_camera=FeedStillCamera(self.media.face_still)
            if self.media.face_still is not None
            else SyntheticFaceCamera(self._name, portrait),
        )
        if config.ice_host_addresses:
            use_host_addresses(config.ice_host_addresses)
        # With a screen attached, the person at it checks in (attach_screen).
        self._screen_participant = False
        self._participant: Participant | None = None
        self.last_ended: SessionEndNote | None = None  # how the latest session ended
        self.called_ticket: CalledTicket | None = None  # the ticket called to this booth

    # --- what the kiosk shows ---------------------------------------------------------

    @property
    def machine(self) -> BoothSession:
        return self.view.machine

    @property
    def state(self) -> SessionState:
        return self.view.state

    @property
    def session_id(self) -> str | None:
        return self.view.session_id

    @property
    def claim_id(self) -> str | None:
        """The claim being verified in this visit (known from check-in on)."""
        return self.view.claim_id

    @property
    def position(self) -> int | None:
        return self.view.position

    @property
    def focused(self) -> bool:
        return self.view.focused

    @property
    def checking_in(self) -> bool:
        """A check-in was sent and is not answered yet (the kiosk is still idle)."""
        return self._checking_in is not None

    @property
    def peer_state(self) -> str | None:
        return self._peer.state if self._peer is not None else None

    # --- lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Until stop(): connect, serve, reconnect with backoff. Raises BoothAuthError."""
        self._spawn(self._warm_up(), "warm-up")
        self.capture_agent.delivery.start()  # the outbox delivers by itself from now on
        self.recording.start()  # and the recordings on disk
        try:
            await self._run()
        finally:
            await self.recording.close()
            await self.capture_agent.delivery.stop()
            await self.uploads.aclose()
            await self.monitors.close_all()
            await self._close_peer()
            for task in list(self._background):
                task.cancel()

    async def _warm_up(self) -> None:
        took = await warm_up()
        if took is not None:
            log.info("media_warmed_up", seconds=round(took, 3))

    async def _run(self) -> None:
        backoff = self.config.reconnect_min
        async with httpx.AsyncClient(base_url=self.config.server_url, timeout=10) as http:
            while not self._stopping.is_set():
                code: int | None = None
                ws: ClientConnection | None = None
                welcomes = self.connections
                try:
                    await self._ensure_tokens(http)
                    async with websockets.connect(
                        f"{self.config.ws_url}/ws/booth", max_size=2**20, ping_interval=None
                    ) as ws:
                        self._ws = ws
                        await self._serve(ws, http)
                except BoothAuthError:
                    raise
                except _HelloRefused as exc:
                    code = exc.close_code
                    log.warning("hello_refused", error=str(exc), close_code=code)
                except (OSError, TimeoutError, websockets.ConnectionClosed, httpx.HTTPError) as exc:
                    log.info("server_unreachable", error=str(exc) or type(exc).__name__)
                finally:
                    self._ws = None
                    self._socket_deadline = None
                if code is None and ws is not None:
                    code = ws.close_code
                if self._stopping.is_set():
                    break
                if self.connections > welcomes:
                    backoff = self.config.reconnect_min  # it worked for a while: start over
                self._lost_connection()
                if code in (CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN):
                    self._auth_strikes += 1
                reaction = close_reaction(
                    code,
                    auth_strikes=self._auth_strikes,
                    backoff=backoff * (0.5 + random.random()),
                    backoff_max=self.config.reconnect_max,
                    replaced_backoff=min(
                        self.config.replaced_backoff * 2**self._replaced, REPLACED_BACKOFF_MAX
                    ),
                )
                self.last_close = reaction
                delay = await self._react(reaction, code)
                if reaction.kind is CloseKind.RETRY:
                    backoff = min(backoff * 2, self.config.reconnect_max)
                self.changed.set()
                with contextlib.suppress(TimeoutError):  # (not wait_for: see degrade.py)
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()

    async def _react(self, reaction: Reaction, code: int | None) -> float:
        """Carry out what close_reaction decided; returns the delay before reconnecting."""
        match reaction.kind:
            case CloseKind.GIVE_UP:
                raise BoothAuthError(f"{reaction.note} (close code {code})")
            case CloseKind.RELOGIN:
                log.warning("booth_reauthenticating", close_code=code, note=reaction.note)
                self._tokens = None  # log in afresh with the credential
            case CloseKind.REPLACED:
                self._replaced += 1
                log.error(
                    "booth_replaced", close_code=code, note=reaction.note, retry_in_s=reaction.delay
                )
                # The other process holds this booth's visit now; ours is not live.
                await self._close_peer()
                self._resume = None
                await asyncio.to_thread(self.visit.forget)
            case CloseKind.SLOW_DOWN:
                log.warning("server_overloaded", close_code=code, retry_in_s=reaction.delay)
            case CloseKind.RETRY:
                if code not in (None, 1000, 1001, 1006):
                    log.info("connection_closed", close_code=code)
        return reaction.delay

    async def stop(self) -> None:
        self._stopping.set()
        if self._ws is not None:
            await self._ws.close()
        await self._close_peer()
        for task in list(self._background):
            task.cancel()

    async def check_in(self) -> None:
        """The participant (again) asks to check in, e.g. after correcting a refused claim."""
        self._wants_check_in = True
        await self._check_in()

    # --- the participant's screen (booth_client.screen) ---------------------------------

    def attach_screen(self) -> None:
        """From now on the person at the kiosk screen checks in (check_in_participant):
        the synthetic participant never does, and nobody is checked in again by itself
        after a session."""
        self._screen_participant = True
        self._wants_check_in = self._participant is not None

    async def check_in_participant(self, participant: Participant) -> None:
        """Check in what the screen's participant typed (validated there): sent now if the
        socket is up, else right after the next `welcome`. A refusal lands in
        `last_refusal`, and the participant corrects it and calls this again."""
        self._participant = participant
        self._wants_check_in = True
        await self._check_in()

    def forget_participant(self) -> None:
        """The next person is at the screen: drop the last one's check-in data."""
        self._participant = None
        if self._screen_participant:
            self._wants_check_in = False

    @property
    def online(self) -> bool:
        """The socket is up and welcomed, so the view is the server's account."""
        return self._ws is not None and self._socket_deadline is not None

    def self_view(self) -> MediaStreamTrack | None:
        """A new subscription to the camera the booth sends (the screen's self-view), or
        None before the first call. Stop the track when done with it."""
        if self._video is None:
            return None
        return self._relay.subscribe(self._video, buffered=False)

    @property
    def _rejoins(self) -> bool:
        return self.config.rejoin_after_session and not self._screen_participant

    def _check_in_message(self) -> CheckIn | None:
        if self._screen_participant:
            who = self._participant
            if who is None:
                return None
            return CheckIn(
                claim=who.claim, language=who.language, needs_assistance=who.needs_assistance
            )
        if self.config.ticket_participant:  # front of house: only the called ticket's holder
            ticket = self.called_ticket
            if ticket is None or ticket.number in self.config.ticket_absent:
                return None
            return CheckIn(claim=TicketRef(number=ticket.number))
        return CheckIn(
            claim=self.config.claim(self.booth_id or "booth"),
            language=self.config.language,
            needs_assistance=self.config.needs_assistance,
        )

    def _visit_over(self, ended: SessionEndNote) -> None:
        self.last_ended = ended
        if self._screen_participant:
            self._participant = None  # their claim is on the server; not kept here

    # --- auth -------------------------------------------------------------------------

    async def _ensure_tokens(self, http: httpx.AsyncClient, *, force: bool = False) -> Tokens:
        """Fresh tokens: refresh (storing the rotated refresh token) or log in afresh."""
        async with self._auth_lock:
            tokens = self._tokens
            if (
                tokens is not None
                and not force
                and tokens.expires_at - time.monotonic() > refresh_margin(tokens.lifetime)
            ):
                return tokens
            response = None
            if tokens is not None:
                response = await post_refresh(http, tokens.refresh)  # retried if lost
                if response.status_code != 200:
                    log.info("refresh_refused", status=response.status_code)
            if response is None or response.status_code != 200:
                credential = self.config.credential.get_secret_value()
                response = await http.post("/api/auth/booth", json={"credential": credential})
            if response.status_code in (401, 403):
                error = response.json().get("error", {})
                raise BoothAuthError(error.get("message", "the server refused this booth"))
            response.raise_for_status()
            body = response.json()
            self.booth_id = body["subject"]
            lifetime = float(body["expires_in"])
            # `exp` is in whole seconds, so the token may expire up to a second early.
            expires_at = time.monotonic() + lifetime - 1.0
            self._tokens = Tokens(body["access_token"], body["refresh_token"], expires_at, lifetime)
            return self._tokens

    async def _keep_authenticated(self, http: httpx.AsyncClient) -> None:
        """Before the socket's token expires: a fresh token, sent with `reauth`."""
        while True:
            deadline = self._socket_deadline
            if deadline is None:
                return
            lifetime = self._tokens.lifetime if self._tokens else 600.0
            await asyncio.sleep(max(0.0, deadline - refresh_margin(lifetime) - time.monotonic()))
            held = self._tokens
            # The token we hold may already be newer than the socket's (an upload refreshed).
            tokens = await self._ensure_tokens(
                http, force=held is None or held.expires_at <= deadline + 1e-3
            )
            reauth = Reauth(token=tokens.access)
            self._reauth_deadlines[reauth.id] = tokens.expires_at
            self._reauthed.clear()
            await self._request(reauth)
            try:
                async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
                    await self._reauthed.wait()
            except TimeoutError:
                log.warning("reauth_unanswered")
                await self._resync_socket()
                return
            if self._socket_deadline == deadline:  # refused: _settled closes the socket
                return

    async def _access_token(self, http: httpx.AsyncClient) -> str:
        return (await self._ensure_tokens(http)).access

    # --- documents --------------------------------------------------------------------

    async def _show_documents(self) -> None:
        """Demo participant: send one picture for each requirement still missing."""
        # A participant takes a moment to get the papers out; the call settles meanwhile.
        await asyncio.sleep(self.config.documents_after_s)
        if self.claim_id is None or self._tokens is None:
            return
        async with httpx.AsyncClient(base_url=self.config.server_url, timeout=30) as http:
            response = await http.get(
                f"/api/claims/{self.claim_id}",
                headers={"Authorization": f"Bearer {await self._access_token(http)}"},
            )
        if response.status_code != 200:
            log.warning("claim_unreadable", status=response.status_code)
            return
        label = self._label or self.booth_id or "booth"
        for seed, item in enumerate(response.json()["checklist"]["items"]):
            if item["status"] != "missing":
                continue
            picture = render_document(item["names"][0], label, seed)
            try:
                await self.upload_document(item["any_of"][0], picture, "image/jpeg")
            except (DocumentRefused, httpx.HTTPError, RuntimeError) as exc:
                log.warning("document_not_sent", kind=item["any_of"][0], error=str(exc))
                return

    async def upload_document(self, kind: str, data: bytes, content_type: str) -> dict[str, str]:
        """Send a document picture for this session's claim; durable once this returns.

        Retried on network errors with the same Idempotency-Key, so a retry after a lost
        answer never stores the document twice.
        """
        if self.claim_id is None or self._tokens is None:
            raise RuntimeError("no live session: documents are sent during a session")
        key = uuid.uuid4().hex
        delay = self.config.reconnect_min
        async with httpx.AsyncClient(base_url=self.config.server_url, timeout=30) as http:
            for attempt in range(5):
                try:
                    response = await http.post(
                        f"/api/claims/{self.claim_id}/documents",
                        params={"kind": kind},
                        content=data,
                        headers={
                            "Authorization": f"Bearer {await self._access_token(http)}",
                            "Content-Type": content_type,
                            "Idempotency-Key": key,
                        },
                    )
                except httpx.TransportError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.config.reconnect_max)
                    continue
                if response.status_code >= 400:
                    error = response.json().get("error", {})
                    raise DocumentRefused(
                        response.status_code, error.get("code", ""), error.get("message", "")
                    )
                body: dict[str, str] = response.json()
                return body
        raise AssertionError("unreachable")

    # --- the socket ------------------------------------------------------------------

    async def _serve(self, ws: ClientConnection, http: httpx.AsyncClient) -> None:
        tokens = self._tokens
        assert tokens is not None
        self._requests.clear()  # the last socket's requests died with it
        self._checking_in = None
        await self._send(Hello(token=tokens.access, resume=self._resume, client=CLIENT_NAME))
        welcome = await self._expect_welcome(ws)
        self._auth_strikes = 0
        self._replaced = 0
        self.connections += 1
        if welcome.resume_token != self._resume:  # kept for a restart (booth_client.visit)
            await asyncio.to_thread(self.visit.save, welcome.resume_token)
        self._resume = welcome.resume_token
        self._socket_deadline = tokens.expires_at
        if welcome.token_expires_at is not None:
            told = time.monotonic() + (welcome.token_expires_at - time.time())
            self._socket_deadline = min(self._socket_deadline, told)
        helpers = [
            asyncio.create_task(self._heartbeat(welcome.heartbeat_interval)),
            asyncio.create_task(self._keep_authenticated(http)),
        ]
        try:
            await self._resync(welcome)
            async for raw in ws:
                try:
                    message = decode_outbound(raw, Role.BOOTH)
                except ProtocolError as exc:
                    log.warning("bad_server_message", code=str(exc.code), error=exc.message)
                    continue
                await self._on_message(message)
        except websockets.ConnectionClosed:
            pass  # run() reads the close code
        finally:
            for task in helpers:
                task.cancel()

    async def _expect_welcome(self, ws: ClientConnection) -> Welcome:
        raw = await asyncio.wait_for(ws.recv(), 10)
        message = decode_outbound(raw, Role.BOOTH)
        if isinstance(message, Error):
            code = _HELLO_REFUSALS.get(message.code, CLOSE_PROTOCOL)
            raise _HelloRefused(code, f"{message.code}: {message.message}")
        if not isinstance(message, Welcome):
            raise OSError(f"expected welcome, got {type(message).__name__}")
        return message

    async def _resync(self, welcome: Welcome) -> None:
        """Rebuild the kiosk from the server's account of it (state sync)."""
        await self.monitors.close_all()  # a new socket: the server closed our links
        peer = self._peer
        plan = resync(
            welcome.booth,
            peer_session=peer.session_id if peer is not None else None,
            wants_check_in=self._wants_check_in,
            rejoin_after_session=self._rejoins,
            known_ended=self.last_ended.session_id if self.last_ended else None,
        )
        if not plan.keep_peer:
            await self._close_peer()
        self.view = plan.view
        self._spawn(self.recording.reconcile(plan.view.session_id), "rec-reconcile")
        self._wants_check_in = plan.wants_check_in
        self.called_ticket = welcome.booth.ticket if welcome.booth else None
        if self.called_ticket is not None:
            self._ticket_news(TicketCalled(ticket=self.called_ticket))
        log.info(
            "welcome",
            resumed=welcome.resumed,
            state=str(plan.view.state),
            session_id=plan.view.session_id,
            position=plan.view.position,
        )
        if plan.finished is not None:
            log.info(
                "session_ended",
                session_id=plan.finished.session_id,
                reason=plan.finished.reason,
                while_away=True,
            )
            self._visit_over(plan.finished)
        self.changed.set()
        if plan.report_peer and self._peer is not None:
            await self._report_peer(self._peer)
        elif (
            welcome.resumed
            and self._peer is None
            and plan.view.session_id is not None
            and plan.view.state in (SessionState.ON_HOLD, SessionState.FOCUSED)
        ):
            # Resumed mid-call with no peer (the kiosk restarted): the officer's end still
            # holds the old call; saying ours is closed makes the console offer afresh.
            closed = PeerState(session_id=plan.view.session_id, state="closed")
            await self._request(closed)
        if plan.check_in:
            await self._check_in()

    async def _resync_socket(self) -> None:
        """Our view and the server's disagree: reconnect, and rebuild from `welcome`."""
        if self._ws is not None:
            await self._ws.close()

    async def _heartbeat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._send(Ping())

    async def _send(self, message: Envelope) -> None:
        if self._ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._ws.send(encode(message))

    async def _request(self, message: Envelope) -> None:
        """Send a message whose reply (ack or error) we match by its id."""
        self._requests.track(message)
        await self._send(message)

    async def _check_in(self) -> None:
        if self.view.state is not SessionState.IDLE or self._checking_in is not None:
            return
        if self._ws is None or self._stopping.is_set():
            return  # checked in on the next welcome, if still wanted
        message = self._check_in_message()
        if message is None:
            return  # the screen's participant has not checked in yet
        self._checking_in = message.id
        self.changed.set()
        if not self._screen_participant and not await self.recording.consented(
            message.claim, message.language
        ):  # refused: no remote session (the kiosk says where to go: recording.refused)
            self._checking_in, self._wants_check_in = None, False
            self.changed.set()
            return
        await self._request(message)

    # --- messages --------------------------------------------------------------------

    async def _on_message(self, message: Envelope) -> None:
        match message:
            case Ping():
                await self._send(Pong(reply_to=message.id))
            case Ack() | Error():
                settled = self._requests.settle(message)
                if settled is not None:
                    await self._settled(settled)
                elif isinstance(message, Error):
                    log.warning("server_error", code=str(message.code), error=message.message)
            case Queued():
                self._queued(message)
            case Reserved():
                if self.state is SessionState.QUEUED:
                    self._handle(SessionEvent.RESERVE)
                if self.state is SessionState.RESERVED:
                    self.view.session_id = message.session_id
                    self.view.position = None
                self.changed.set()
            case Assigned():
                view = self.view
                view.session_id = message.session_id
                view.claim_id = message.claim_id or view.claim_id
                view.ice_servers = list(message.ice_servers)
                view.cso_name = message.cso_name
                view.position = view.waiting = view.estimated_wait_s = None
                if self.state is SessionState.QUEUED:
                    self._handle(SessionEvent.RESERVE)  # reserved + assigned in one breath
                if self.machine.can(SessionEvent.ACCEPT):
                    self._handle(SessionEvent.ACCEPT)
                log.info("assigned", session_id=message.session_id, cso=message.cso_name)
            case Offer():
                await self._answer(message)
            case Answer() if self.monitors.has(message.session_id):
                await self.monitors.answer(message)
            case Candidate() if self.monitors.has(message.session_id):
                await self.monitors.candidate(message)
            case LinkOpened():
                await self.monitors.link_opened(message, self.view.session_id)
            case LinkClosed():
                await self.monitors.link_closed(message)
            case Candidate():
                if self._peer is not None and self._peer.session_id == message.session_id:
                    await self._peer.add_candidate(message.candidate)
            case Focus():
                self._focus(message)
            case RequestCapture():
                self._capture(message)
            case SessionEnded():
                await self._session_ended(message)
            case TicketCalled() | TicketWithdrawn():
                self._ticket_news(message)
            case _:
                pass

    async def _settled(self, settled: Settled) -> None:
        request, refusal = settled.request, settled.refusal
        if refusal is not None:
            self.last_refusal = refusal
            self.refusals = [*self.refusals[-19:], refusal]
            log.warning("request_refused", request=refusal.request, code=refusal.code,
                        error=refusal.message)  # fmt: skip
        match request:
            case CheckIn():
                if self._checking_in == request.id:
                    self._checking_in = None
                if refusal is None:
                    if isinstance(request.claim, TicketRef):
                        self.called_ticket = None  # confirmed: the visit has begun
                    if self.state is SessionState.IDLE:
                        self._handle(SessionEvent.CHECK_IN)
                        self.view.position = None
                    log.info("checked_in")
                elif refusal.code in TRANSIENT_REFUSALS:
                    self._spawn(self._retry_check_in(), "retry-check-in")
                elif refusal.code == ErrorCode.ILLEGAL_TRANSITION:
                    # The server thinks we are already checked in: our view drifted.
                    await self._resync_socket()
                else:
                    self._wants_check_in = False  # the participant must correct it
            case Reauth():
                deadline = self._reauth_deadlines.pop(request.id, None)
                if refusal is None and deadline is not None:
                    self._socket_deadline = deadline
                    self.reauths += 1
                elif refusal is not None:
                    await self._resync_socket()  # a fresh hello with a fresh token
                self._reauthed.set()
            case _:
                pass  # relayed messages: a refusal is logged above; the CSO re-offers
        self.changed.set()

    def _ticket_news(self, message: TicketCalled | TicketWithdrawn) -> None:
        """Front of house: a ticket called to this booth (its screen shows the number and
        asks for it), or no longer."""
        if isinstance(message, TicketWithdrawn):
            log.info("ticket_withdrawn", number=message.number, reason=message.reason)
            if self.called_ticket is not None and self.called_ticket.number == message.number:
                self.called_ticket = None
        else:
            self.called_ticket = message.ticket
            log.info("ticket_called", number=message.ticket.number, calls=message.ticket.calls)
            if self.config.ticket_participant and not self._screen_participant:
                self._wants_check_in = True
                self._spawn(self._ticket_holder_comes(), "ticket-holder")
        self.changed.set()

    async def _ticket_holder_comes(self) -> None:
        await asyncio.sleep(self.config.ticket_confirm_after_s)
        await self._check_in()

    async def _retry_check_in(self) -> None:
        await asyncio.sleep(self.config.check_in_retry_s)
        await self._check_in()

    def _queued(self, message: Queued) -> None:
        if self.state is SessionState.RESERVED:
            # The offer lapsed (declined or expired): waiting again, at our place.
            log.info("offer_lapsed", session_id=self.view.session_id)
            self._handle(SessionEvent.LAPSE)
            self.view.session_id = None
        if self.state is not SessionState.QUEUED:
            return  # a stale place: we have moved on
        self.view.position = message.position
        self.view.waiting = message.waiting
        self.view.estimated_wait_s = message.estimated_wait_s
        self.changed.set()

    def _focus(self, message: Focus) -> None:
        if message.session_id != self.view.session_id:
            return
        self.view.focused = message.focused
        self.recording.mark("focus" if message.focused else "hold")
        event = SessionEvent.FOCUS if message.focused else SessionEvent.UNFOCUS
        if self.machine.can(event):
            self._handle(event)
        self.changed.set()

    async def _answer(self, offer: Offer) -> None:
        if offer.session_id != self.view.session_id or self.state not in IN_CALL:
            log.warning("offer_for_other_session", session_id=offer.session_id)
            return
        # Each offer starts a fresh peer: a console that reloads negotiates from scratch.
        await self._close_peer()
        session_id = offer.session_id
        peer: BoothPeer | None = None

        def on_state(state: str) -> None:
            if peer is not None:
                self._peer_state(peer, state)

        peer = BoothPeer(
            session_id, self.view.ice_servers, self._video, self._audio, self._relay, on_state,
            audio_sink=self.recording.tap(self.monitors.tee(self.audio_sink)),
            video_sink=self.video_sink,
            document=self.media.document, degrade=self._degrader(),
            voice=Voice(self.config.voice_bitrate, fec=self.config.voice_fec),
        )  # fmt: skip
        self._peer = peer
        sdp = await peer.answer(offer.sdp)
        await self._request(Answer(session_id=session_id, sdp=sdp))

    def _peer_state(self, peer: BoothPeer, state: str) -> None:
        if peer is not self._peer:
            return  # a replaced peer closing: not news
        if state in ("connected", "failed", "disconnected", "closed"):
            message = PeerState(session_id=peer.session_id, state=state)  # type: ignore[arg-type]
            self._spawn(self._request(message), "peer-state")
        if state == "connected":
            self._media_up(peer.session_id)
            self._spawn(self._report_stats(peer), "peer-stats")
        elif state in ("disconnected", "failed"):
            self.recording.mark("call_lost", state)

    async def _report_stats(self, peer: BoothPeer) -> None:
        """While this peer is the call and connected: `peer_stats` every STATS_INTERVAL_S
        (for the supervisors' floor view; the console reports its end the same way)."""
        before: StatsSample | None = None
        while peer is self._peer and peer.state == "connected":
            await asyncio.sleep(STATS_INTERVAL_S)
            if peer is not self._peer or peer.state != "connected":
                return
            now, rtt, remote_loss = await sample(peer.pc, self.video_sink.frames)
            await self._send(peer_stats(peer.session_id, now, before, rtt, remote_loss))
            before = now

    async def _report_peer(self, peer: BoothPeer) -> None:
        """Resumed mid-call: the server did not see our peer connection's changes."""
        state = peer.state
        if state not in REPORTED_PEER_STATES:
            return
        await self._request(PeerState(session_id=peer.session_id, state=state))  # type: ignore[arg-type]
        if state == "connected":
            self._media_up(peer.session_id)

    def _media_up(self, session_id: str) -> None:
        if session_id != self.view.session_id:
            return
        if self.state is SessionState.CONNECTING:
            self._handle(SessionEvent.MEDIA_UP)
            if self.view.focused:  # focus that came before media takes effect now
                self._handle(SessionEvent.FOCUS)
        view = self.view
        self._spawn(self.recording.session_live(session_id, view.claim_id, view.focused), "rec")
        if self.config.show_documents and self._documents_sent_for != session_id:
            self._documents_sent_for = session_id
            self._spawn(self._show_documents(), "show-documents")

    async def _session_ended(self, message: SessionEnded) -> None:
        if message.session_id != self.view.session_id:
            return
        log.info("session_ended", session_id=message.session_id, reason=message.reason)
        self._spawn(self.recording.session_over(message.session_id, message.reason), "rec-end")
        await self.monitors.session_ended(message.session_id)
        await self._close_peer()
        view = self.view
        if message.reason in ("cso_lost", "moved"):
            # Requeued at the front by the server: we are waiting again, not done.
            view.session_id, view.focused, view.cso_name, view.ice_servers = None, False, None, []
            if self.machine.can(SessionEvent.REQUEUE):
                self._handle(SessionEvent.REQUEUE)
            self.changed.set()
            return
        self.view = KioskView()
        self._wants_check_in = self._rejoins
        self._visit_over(SessionEndNote(session_id=message.session_id, reason=message.reason))
        self.changed.set()
        if self._wants_check_in and not self._stopping.is_set():
            await self._check_in()

    def _lost_connection(self) -> None:
        self._checking_in = None
        self.recording.mark("kiosk_offline")  # (the call's media may well go on)
        if self.machine.can(SessionEvent.CONNECTION_LOST):
            self._handle(SessionEvent.CONNECTION_LOST)

    def _handle(self, event: SessionEvent) -> None:
        try:
            self.machine.handle(event)
        except Exception as exc:  # our view drifted from the server's: log, carry on
            log.warning("unexpected_transition", event=str(event), error=str(exc))
        self.changed.set()

    def _capture(self, request: RequestCapture) -> None:
        """The CSO asked for a picture of a document (booth_client.capture_agent)."""
        claim_id = self.view.claim_id
        if request.session_id != self.view.session_id or claim_id is None:
            log.warning("capture_for_other_session", session_id=request.session_id)
            return
        self.recording.mark("capture_requested", str(request.kind))
        self._spawn(self.capture_agent.handle(request, claim_id), "capture")

    def _participant_numbers(self) -> tuple[str, str] | None:
        """The NIK and KPJ of who checks in here (typed at the screen, or configured)."""
        claim = self._participant.claim if self._participant else self.config.claim(
            self.booth_id or self._name
        )  # fmt: skip
        return (claim.nik, claim.kpj) if isinstance(claim, WalkInRef) else None

    def _session_live(self, session_id: str | None) -> bool:
        """A capture of this session may still tell the officer how it goes."""
        return self.online and session_id is not None and session_id == self.view.session_id

    async def _upload_token(self, http: httpx.AsyncClient, force: bool) -> str:
        return (await self._ensure_tokens(http, force=force)).access

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _close_peer(self) -> None:
        peer, self._peer = self._peer, None
        if peer is not None:
            await peer.close()

    # --- the kiosk as a service (booth_client.cli) -------------------------------------

    def _degrader(self) -> Callable[[Any, Any], Degrader] | None:
        """The video ladder for a new call (booth_client.degrade), if on."""
        if not self.config.degrade:
            return None
        policy = Policy(voice_bps=voice_on_wire(self.config.voice_bitrate))
        return lambda pc, encoders: Degrader(
            pc, encoders, self.media, policy, upload=self.uplink.usage
        )

    def _upload_rate(self) -> float | None:
        """What an upload may send beside the call (None: unpaced; no call, or a line
        never seen full)."""
        degrader = self._peer.degrader if self._peer is not None else None
        if degrader is None:
            return None
        return upload_rate(degrader.capacity_bps, degrader.call_bps, FLOOR_BPS)

    def _upload_began(self) -> None:
        if self._peer is not None and self._peer.degrader is not None:
            self._peer.degrader.nudge()  # the face steps down for the upload now

    @property
    def video_level(self) -> str | None:
        """The call's degradation level (full, document_slow, face_360, face_180)."""
        peer = self._peer
        if peer is None or peer.degrader is None:
            return None
        return peer.degrader.state.level.name.lower()

    async def shutdown(self, within: float = 4.0) -> int:
        """A service stop (SIGTERM): leave the queue or the call so the server frees the
        place at once, try the outbox once, then close the peer and the devices, all
        within about `within` seconds. Returns the captures still waiting in the outbox
        (kept on disk: sent after the next start)."""
        self._stopping.set()  # nothing checks in again from here on
        began = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within * 0.4):
                await self._leave()
        outbox = self.capture_agent.outbox
        waiting = len(await asyncio.to_thread(outbox.pending))
        if waiting and self.online:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.1, within * 0.8 - (time.monotonic() - began))):
                    await self.capture_agent.delivery.drain()
            waiting = len(await asyncio.to_thread(outbox.pending))
        log.info("booth_stopping", outbox_pending=waiting)
        await self.stop()
        await self.media.close()
        return waiting

    async def _leave(self) -> None:
        if not self.online or (self.state is SessionState.IDLE and not self.checking_in):
            return
        leave = Leave(reason="kiosk_stopped")
        await self._request(leave)
        while True:
            self.changed.clear()
            if all(m.id != leave.id for m in self._requests.pending(Leave)) or not self.online:
                return
            await self.changed.wait()
