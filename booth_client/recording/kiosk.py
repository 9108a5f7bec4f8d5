"""The kiosk's recording, as the kiosk client (booth_client.client) uses it: one object
that holds the recorder, the store on disk, the delivery loop and the consent.

The client calls, at its points: `consented` before a check-in, `session_live` when the
session's media is up, `mark` on floor events, `session_over` when the session ends,
`reconcile` after every `welcome`, `start`/`close` with the kiosk itself, and wraps the
sink the call writes the officer's voice to with `tap`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiortc.mediastreams import MediaStreamTrack

from booth_client.recording.config import RecordingConfig
from booth_client.recording.consent import DEFAULT_YEARS, Answer, Consent
from booth_client.recording.delivery import RecordingDelivery
from booth_client.recording.pacer import RecordingPacer
from booth_client.recording.recorder import KioskRecorder
from booth_client.recording.store import RecordingInfo, RecordingStore, safe_name
from booth_client.recording.transport import RecordingTransport
from booth_client.relay import FrameRelay
from booth_client.upload import TokenSource
from signaling.messages import (
    BookingRef,
    CaptureStatus,
    Language,
    RecordingStatus,
    TicketRef,
    WalkInRef,
)

log = structlog.get_logger("loket.booth.recording")

Claim = BookingRef | WalkInRef | TicketRef
# A session ended so that its participant waits for the next officer (booth_client.client):
# the same visit, the same consent, a new session and recording.
REQUEUED = ("cso_lost", "moved")
CAPTURE_MARKS = {"uploading": "capture_taken", "done": "capture_stored", "failed": "capture_failed"}


class KioskRecording:
    def __init__(
        self,
        config: RecordingConfig,
        state_dir: Path,
        server_url: str,
        token: TokenSource,
        *,
        booth: str,
        relay: FrameRelay,
        tracks: Callable[[], tuple[MediaStreamTrack | None, MediaStreamTrack | None]],
        officer_picture: Any,
        send: Callable[[Any], Awaitable[None]],
        in_call: Callable[[], bool],
        line_rate: Callable[[], float | None],
        documents_uploading: Callable[[], bool],
        chunk_bytes: int = 64 * 1024,
    ) -> None:
        self.config = config
        # Per booth: two kiosks given one state directory never deliver each other's.
        self.store = RecordingStore(state_dir / "recordings" / safe_name(booth))
        self.pacer = RecordingPacer(
            in_call=in_call, line_rate=line_rate, document_uploading=documents_uploading,
            during_call_bps=config.during_call_bps,
        )  # fmt: skip
        self.transport = RecordingTransport(
            server_url, token, pacer=lambda: self.pacer, chunk_bytes=chunk_bytes
        )
        self.delivery = RecordingDelivery(self.store, self.transport)
        self._send = send

        async def send_status(session_id: str, state: str, reason: str | None) -> None:
            await send(RecordingStatus(session_id=session_id, state=state, reason=reason))  # type: ignore[arg-type]

        self.recorder = KioskRecorder(
            config, self.store, relay, tracks, officer_picture, send_status,
            self.delivery.wake,
        )  # fmt: skip
        self.recorder.alert = self.delivery.alert
        self.policy: dict[str, Any] | None = None  # the server's, once asked
        self.refused: str | None = None  # a refusal's directions (policy in_person)
        self._fetching: asyncio.Task[Any] | None = None

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def consent(self) -> Consent | None:
        return self.recorder.consent

    def tap(self, sink: Any) -> Any:
        return self.recorder.tap(sink) if self.enabled else sink

    # --- the kiosk's life -------------------------------------------------------------

    def start(self) -> None:
        if self.enabled or self.store.root.is_dir():  # what an earlier run left is sent
            self.delivery.start()
        if self.enabled:  # the retention the consent's words say, before anyone asks
            self._fetching = asyncio.get_running_loop().create_task(self._policy())

    async def close(self) -> None:
        if self._fetching is not None:
            self._fetching.cancel()
        await self.recorder.close()
        await self.delivery.stop()
        await self.transport.aclose()

    # --- consent ----------------------------------------------------------------------

    async def years(self) -> float:
        policy = await self._policy()
        return float(policy.get("retention_years", DEFAULT_YEARS)) if policy else DEFAULT_YEARS

    async def _policy(self) -> dict[str, Any] | None:
        if self.policy is None:
            # Unreachable, or the booth not logged in (yet): the defaults, asked again later.
            with contextlib.suppress(Exception):
                answer = await self.transport.policy()
                if answer.delivered:
                    self.policy = answer.body
        return self.policy

    @property
    def retention_years(self) -> float:
        """What the consent's words say (the server's policy once known)."""
        return float((self.policy or {}).get("retention_years", DEFAULT_YEARS))

    async def answer(
        self, answer: Answer, language: Language, claim: Claim | None, years: float | None = None
    ) -> bool:
        """The participant answered (to the words with `years` in them, as shown): whether
        they may check in. A refusal under the `in_person` policy is told to the server
        (audited on their claim) and `refused` says where to go instead."""
        shown = years if years is not None else await self.years()
        consent = Consent.answered(answer, language, shown)
        self.recorder.consent = consent
        self.refused = None
        if consent.given:
            return True
        policy = await self._policy()
        refusal = str((policy or {}).get("refusal", "in_person"))
        if refusal == "unrecorded":
            return True
        self.refused = str((policy or {}).get("directions") or "")
        if claim is not None:
            body = claim.model_dump(mode="json", exclude_none=True)
            try:
                told = await self.transport.refuse(body, consent.body("in_person"))
                if not told.delivered:
                    log.error("consent_refusal_not_recorded", status=told.status,
                              error=told.message)  # fmt: skip
            except OSError as exc:
                log.error("consent_refusal_not_recorded", error=str(exc))
        log.info("recording_refused", policy=refusal)
        return False

    async def consented(self, claim: Claim, language: Language) -> bool:
        """Before a synthetic participant's check-in: answer as configured."""
        if not self.enabled:
            return True
        answer: Answer = "refused" if self.config.consent == "refused" else "given"
        return await self.answer(answer, language, claim)

    # --- a session --------------------------------------------------------------------

    async def session_live(self, session_id: str, claim_id: str | None, focused: bool) -> None:
        """The session's media is up (the first time, or again after a reconnect)."""
        if not self.enabled or claim_id is None:
            return
        consent = self.recorder.consent
        if consent is None or consent.given:
            # (None: restarted mid-session; it goes on with what was consented to)
            await self.recorder.start(session_id, claim_id, resume=consent is None)
            self.recorder.mark("call_connected")
            if focused:
                self.recorder.mark("focus")
            return
        if await asyncio.to_thread(self.store.find, session_id) is None:
            # Refused, the session goes on (policy unrecorded): the server audits it.
            info = RecordingInfo(
                session_id=session_id, claim_id=claim_id, origin=time.time(),
                consent=consent.body("unrecorded"),
                media=self.config.evidence_format().describe(),
                segment_s=self.config.segment_s,
            )  # fmt: skip
            recording = await asyncio.to_thread(self.store.open, info)
            await asyncio.to_thread(recording.close, 0.0, "refused", None)
            self.delivery.wake()
        with contextlib.suppress(Exception):
            await self._send(RecordingStatus(session_id=session_id, state="refused"))

    def mark(self, kind: str, detail: str = "") -> None:
        if self.enabled:
            self.recorder.mark(kind, detail)

    def captures(self, send: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        """`send` for the capture agent: a capture's picture taken, stored or failed is
        marked on the timeline (once a stage: its progress is not)."""
        seen: dict[str, str] = {}

        async def marked(message: Any) -> None:
            if isinstance(message, CaptureStatus) and seen.get(message.capture_id) != (
                stage := message.stage
            ):
                if len(seen) > 64:
                    seen.clear()
                seen[message.capture_id] = stage
                if kind := CAPTURE_MARKS.get(stage):
                    self.mark(kind, str(message.kind))
            await send(message)

        return marked

    async def session_over(self, session_id: str | None, reason: str) -> None:
        if self.enabled:
            await self.recorder.end(session_id, reason)
            if reason not in REQUEUED:  # the visit is over: the next participant answers
                self.recorder.consent = None

    async def reconcile(self, live_session: str | None) -> None:
        """After a `welcome`: a session that ended while the socket was down ends its
        recording; those an earlier run left open are closed."""
        active = self.recorder.active
        if active is not None and active.session_id != live_session:
            await self.recorder.end(active.session_id, "ended_while_offline")
        elif active is not None:
            self.recorder.mark("kiosk_online")  # the same session: recorded on meanwhile
        if self.enabled or self.store.root.is_dir():
            await self.recorder.reconcile(live_session)
