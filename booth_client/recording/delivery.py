"""Getting recordings from the kiosk's disk to the server, by themselves.

One loop per kiosk, from its start: a *pass* over every recording on disk (oldest first),
after every sealed segment and ended session, and on a backoff timer while something is
left (1 s doubling to 30 s, jittered; booth_client.delivery.backoff). For each recording:

1. **open** it on the server (`POST /api/recordings`, with the consent's answer; the
   same Idempotency-Key on every try: a retry finds the same recording), keeping the
   recording id and its grant (so it may go on after the session ended);
2. each sealed segment the server does not have: **declare** it, then **send** its bytes
   as a resumable upload from the server's offset (a cut line or a restart costs at most
   the chunk in flight), paced by the recording's pacer; once stored, its bytes leave
   the kiosk's disk (its record with the hash stays until the recording closes);
3. when the session is over and every segment is up: **close** it with the list of what
   was sealed, its end, the gap after and the last marks; the server puts the manifest's
   hash in the audit chain. Then the directory goes.

A refusal that will not change (a 4xx other than 401/408/409-offset/425/429) is logged and
the server told (`alerts`: upload_refused); nothing is deleted that the server does not
have, except a recording the server would never open (its session over before it could
be: the kiosk was down for the whole of it), which is logged at error and removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable
from typing import NoReturn

import structlog

from booth_client.delivery import Delivery, Verdict, backoff, judge
from booth_client.recording.store import Recording, RecordingStore
from booth_client.recording.transport import RecordingTransport

log = structlog.get_logger("loket.booth.recording")


class _Retry(Exception):
    """The pass stops here; the timer tries again."""


class RecordingDelivery:
    def __init__(self, store: RecordingStore, transport: RecordingTransport) -> None:
        self.store, self.transport = store, transport
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        self.closed = 0  # recordings closed on the server (tests, benches)
        self.last_error: str | None = None
        self._alerts: set[asyncio.Task[None]] = set()
        self._told: set[tuple[str, str]] = set()  # refusals the server was alerted of

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="rec-delivery")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        self._wake.set()

    def alert(self, recording: Recording, reason: str, detail: str) -> None:
        """Tell the server the kiosk could not record (best effort: logged anyway)."""
        info = recording.info
        if info.recording_id is None:
            return

        async def send() -> None:
            with contextlib.suppress(OSError):
                await self.transport.alert(info, reason, detail)

        task = asyncio.get_running_loop().create_task(send(), name="rec-alert")
        self._alerts.add(task)
        task.add_done_callback(self._alerts.discard)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                _, failed = await self.deliver_all()
            except Exception as exc:  # a bug must not stop the deliveries for good
                log.exception("recording_delivery_failed", error=repr(exc))
                failed = True
            self.failures = self.failures + 1 if failed else 0
            delay = backoff(self.failures, random.random()) if self.failures else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def deliver_all(self) -> tuple[bool, bool]:
        """One pass: (anything left to send, a try failed: the timer tries again)."""
        left = failed = False
        for recording in await asyncio.to_thread(self.store.all):
            try:
                left = await self._deliver(recording) or left
            except _Retry:
                left = failed = True
        return left, failed

    async def _deliver(self, rec: Recording) -> bool:
        # Closed only after its last segment was sealed: the closing is read first, so a
        # close never lists fewer segments than were sealed.
        closing = rec.closing()
        if rec.info.recording_id is None and not await self._open(rec):
            return False
        if rec.info.server_state == "refused":
            await asyncio.to_thread(rec.remove)  # not recorded (the participant refused)
            return False
        for sealed in rec.waiting():
            await self._segment(rec, sealed.seq)
        if closing is None:
            return bool(rec.waiting())
        answer = await self._call(self.transport.close(rec.info, closing, rec.sealed()))
        if answer.delivered:
            log.info("recording_closed", session_id=rec.info.session_id,
                     manifest_sha256=answer.body.get("manifest_sha256"),
                     segments=len(rec.sealed()))  # fmt: skip
            self.closed += 1
            await asyncio.to_thread(rec.remove)
            return False
        if answer.code == "segments_missing":  # lost on the server's side: send them again
            log.error("recording_segments_missing", session_id=rec.info.session_id,
                      detail=answer.message)  # fmt: skip
        self._refused(rec, "close", answer)
        raise AssertionError("unreachable")

    async def _open(self, rec: Recording) -> bool:
        answer = await self._call(self.transport.open(rec.info))
        if answer.delivered:
            body = answer.body
            await asyncio.to_thread(
                rec.update, recording_id=body["recording_id"], grant=body.get("grant"),
                server_state=body.get("state"), clock_offset_s=self.transport.clock.offset_s,
                clock_rtt_s=self.transport.clock.rtt_s,
            )  # fmt: skip
            log.info("recording_opened", session_id=rec.info.session_id,
                     recording_id=body["recording_id"], state=body.get("state"))  # fmt: skip
            return True
        if answer.status in (403, 404) and rec.closing() is not None:
            # Its session was over before the server heard of it: no one may add to it.
            log.error("recording_never_opened", session_id=rec.info.session_id,
                      status=answer.status, error=answer.message,
                      segments=len(rec.sealed()))  # fmt: skip
            await asyncio.to_thread(rec.remove)
            return False
        self._refused(rec, "open", answer)
        raise AssertionError("unreachable")

    async def _segment(self, rec: Recording, seq: int) -> None:
        sealed = next(s for s in rec.sealed() if s.seq == seq)
        pending = rec.pending_bytes()
        for _ in range(3):
            declared = await self._call(self.transport.declare(rec.info, sealed, pending))
            if not declared.delivered:
                self._refused(rec, f"segment {seq}", declared)
                raise _Retry
            if declared.body.get("stored"):
                break
            data = await asyncio.to_thread(rec.segment_bytes, seq)
            location, offset = str(declared.body["location"]), int(declared.body["offset"])
            if offset:
                log.info("recording_upload_resumed", seq=seq, offset=offset, total=len(data))
            answer = await self._call(self.transport.send(location, offset, data))
            if answer.delivered:
                break
            if answer.status != 404:  # 404: the staged upload expired: declare it again
                self._refused(rec, f"segment {seq}", answer)
                raise _Retry
        else:
            raise _Retry
        await asyncio.to_thread(rec.uploaded, seq)
        log.info("recording_segment_stored", session_id=rec.info.session_id, seq=seq,
                 bytes=sealed.size, pending_bytes=rec.pending_bytes())  # fmt: skip

    async def _call(self, request: Awaitable[Delivery]) -> Delivery:
        """An answer, after a fresh token once if the old one was refused; the pass stops
        (_Retry) when the server cannot be reached or asks to come back later."""
        try:
            answer = await request
        except OSError as exc:
            self.last_error = str(exc)
            log.info("recording_server_unreachable", error=str(exc))
            raise _Retry from None
        verdict = judge(answer)
        if verdict is Verdict.REAUTH:
            with contextlib.suppress(OSError):
                await self.transport.reauthenticate()
            raise _Retry
        if verdict is Verdict.RETRY:
            self.last_error = f"{answer.status} {answer.code}"
            raise _Retry
        return answer

    def _refused(self, rec: Recording, what: str, answer: Delivery) -> NoReturn:
        """Refused for a reason a retry will not change: kept on disk and tried again on
        the timer (an operator may fix the server's side), logged, and the server alerted
        once (what is kept is never deleted unseen)."""
        self.last_error = f"{what}: {answer.status} {answer.code} {answer.message}"
        log.error("recording_refused", session_id=rec.info.session_id, what=what,
                  status=answer.status, code=answer.code, error=answer.message)  # fmt: skip
        told = (rec.info.session_id, what)
        if told not in self._told and len(self._told) < 1000:
            self._told.add(told)
            self.alert(rec, "upload_refused", f"{what}: {answer.status} {answer.code}")
        raise _Retry
