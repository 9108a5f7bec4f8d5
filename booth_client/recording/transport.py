"""The recording's way to the server over HTTP (server/api/recordings.py).

The same client, tokens and piece-by-piece pacing as the outbox's
(booth_client.upload.HttpTransport). A segment is declared (its description, the kiosk's
backlog and clock), then sent as a resumable upload from the server's offset, chunk by
chunk, so a cut line costs at most the chunk in flight. Each answer carries the server's
time: the kiosk keeps the offset between its clock and the server's measured over the
fastest round trip so far (NTP's idea), for the timeline.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from booth_client.delivery import Delivery
from booth_client.pacing import Pacer
from booth_client.recording.store import Closing, RecordingInfo, Sealed
from booth_client.upload import CHUNK_TYPE, HttpTransport, TokenSource, _crash

GRANT_HEADER = "Loket-Recording-Grant"
MAX_CLOCK_RTT_S = 5.0
MARK_FIELDS = ("at_s", "kind", "detail")


@dataclass
class Clock:
    """The best measure so far of the server's clock against ours."""

    offset_s: float | None = None
    rtt_s: float | None = None

    def sample(self, sent: float, received: float, server_time: object) -> None:
        if not isinstance(server_time, int | float):
            return
        rtt = received - sent
        if not 0 <= rtt <= MAX_CLOCK_RTT_S or (self.rtt_s is not None and rtt >= self.rtt_s):
            return
        self.offset_s, self.rtt_s = float(server_time) - (sent + received) / 2, rtt


async def _no_progress(sent: int, total: int) -> None:
    return None


def _marks(marks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: m[k] for k in MARK_FIELDS if k in m} for m in marks][:200]


class RecordingTransport(HttpTransport):
    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        pacer: Callable[[], Pacer | None] = lambda: None,
        chunk_bytes: int = 64 * 1024,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(base_url, token, pacer=pacer, chunk_bytes=chunk_bytes, timeout=timeout)
        self.clock = Clock()

    async def _timed(self, method: str, url: str, **kw: Any) -> Delivery:
        sent = time.time()
        answer = await self._send(method, url, **kw)
        self.clock.sample(sent, time.time(), answer.body.get("server_time"))
        return answer

    async def _with_grant(self, info: RecordingInfo, key: str) -> dict[str, str]:
        headers = await self._headers(**{"Idempotency-Key": key})
        if info.grant:
            headers[GRANT_HEADER] = info.grant
        return headers

    async def policy(self) -> Delivery:
        return await self._timed("GET", "/api/recording-policy", headers=await self._headers())

    async def open(self, info: RecordingInfo) -> Delivery:
        body = {
            "session_id": info.session_id,
            "claim_id": info.claim_id,
            "consent": info.consent,
            "media": info.media,
            "started_at": info.origin,
        }
        headers = await self._headers(**{"Idempotency-Key": f"rec-open-{info.session_id}"})
        return await self._timed("POST", "/api/recordings", json=body, headers=headers)

    async def refuse(self, claim: dict[str, Any], consent: dict[str, Any]) -> Delivery:
        """A refusal before check-in (policy in_person), audited on the claim."""
        headers = await self._headers(**{"Idempotency-Key": f"consent-{uuid.uuid4().hex}"})
        body = {"claim": claim, "consent": consent}
        return await self._timed("POST", "/api/recording-consents", json=body, headers=headers)

    async def declare(self, info: RecordingInfo, sealed: Sealed, pending: int) -> Delivery:
        body: dict[str, Any] = {
            "seq": sealed.seq,
            "length": sealed.size,
            "sha256": sealed.sha256,
            "start_s": sealed.start_s,
            "end_s": sealed.end_s,
            "frames": sealed.frames,
            "marks": _marks(sealed.marks),
            "gap_before": sealed.gap_before,
            "pending_bytes": pending,
        }
        if self.clock.offset_s is not None:
            body.update(clock_offset_s=self.clock.offset_s, clock_rtt_s=self.clock.rtt_s)
        key = f"rec-seg-{info.session_id}-{sealed.seq}-{sealed.sha256[:16]}"
        url = f"/api/recordings/{info.recording_id}/segments"
        return await self._timed("POST", url, json=body, headers=await self._with_grant(info, key))

    async def send(self, location: str, offset: int, data: bytes) -> Delivery:
        """PATCH from `offset` to the end, chunk by chunk, each piece paced; the server's
        answer to the last chunk (or the first one it refused)."""
        total, strikes = len(data), 0
        while True:
            end = min(total, offset + self.chunk_bytes)
            digest = base64.b64encode(hashlib.sha256(data[offset:end]).digest()).decode()
            headers = await self._headers(
                **{
                    "Upload-Offset": str(offset),
                    "Content-Type": CHUNK_TYPE,
                    "Content-Length": str(end - offset),
                    "Upload-Checksum": f"sha256 {digest}",
                }
            )
            content = self._paced(data, offset, end, total, _no_progress)
            answer = await self._timed("PATCH", location, content=content, headers=headers)
            if answer.status == 204:
                offset, strikes = end, 0
                _crash("recording_mid_upload")  # tests: a kiosk killed with a segment half up
                continue
            if answer.status == 409 and answer.code == "offset_mismatch" and strikes < 3:
                offset, strikes = int(answer.body["error"]["offset"]), strikes + 1
                continue
            if answer.status == 460 and strikes < 3:  # a chunk damaged on the way: again
                strikes += 1
                continue
            return answer

    async def close(self, info: RecordingInfo, closing: Closing, listed: list[Sealed]) -> Delivery:
        body = {
            "segments": [{"seq": s.seq, "sha256": s.sha256} for s in listed],
            "ended_s": closing.ended_s,
            "end_reason": _word(closing.reason),
            "gap_after": closing.gap_after,
            "marks": _marks(closing.marks),
        }
        key = f"rec-close-{info.session_id}"
        url = f"/api/recordings/{info.recording_id}/close"
        return await self._timed("POST", url, json=body, headers=await self._with_grant(info, key))

    async def alert(self, info: RecordingInfo, reason: str, detail: str) -> Delivery:
        key = f"rec-alert-{uuid.uuid4().hex}"
        url = f"/api/recordings/{info.recording_id}/alerts"
        body = {"reason": reason, "detail": _text(detail)}
        return await self._timed("POST", url, json=body, headers=await self._with_grant(info, key))


def _word(text: str) -> str:
    """A reason as the server takes it: lowercase letters and underscores."""
    word = "".join(c if c.isalpha() and c.islower() else "_" for c in text.lower())
    return word.strip("_")[:32] or "ended"


def _text(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)[:300]
