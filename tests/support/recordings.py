"""Recordings for tests: real WebM segments (the kiosk's own encoder), the booth's side of
the recording API over HTTP, and what the server's store holds."""

from __future__ import annotations

import hashlib
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np

from booth_client.recording.media import (
    Composer,
    EvidenceFormat,
    SegmentEncoder,
    VoiceMixer,
    kiosk_stamp,
)

SMALL = EvidenceFormat(cell_width=96, cell_height=72, fps=5.0, video_bps=40_000, audio_bps=24_000)
TEXT_SHA = hashlib.sha256(b"consent text").hexdigest()


def webm_segment(start_s: float, end_s: float, fmt: EvidenceFormat = SMALL) -> bytes:
    """A real segment on the recording's clock from `start_s` to `end_s`: both sides'
    pictures and a tone on each channel."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "segment.webm"
        encoder = SegmentEncoder(path, fmt)
        composer, mixer = Composer(fmt), VoiceMixer(start_sample=round(start_s * 48_000))
        picture = av.VideoFrame.from_ndarray(
            np.full((120, 160, 3), 128, dtype=np.uint8), format="bgr24"
        )
        t = start_s
        while t < end_s:
            tone = (np.sin(np.arange(9600) / 7.0) * 6000).astype(np.int16).reshape(1, -1)
            for voice in (0, 1):
                frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
                frame.sample_rate = 48_000
                mixer.push(voice, frame)
            for audio in mixer.pull(round((t + 1 / fmt.fps) * 48_000)):
                encoder.audio(audio)
            encoder.video(composer.compose((picture, picture), kiosk_stamp(time.time())), t)
            t += 1 / fmt.fps
        encoder.close()
        return path.read_bytes()


def media_json(fmt: EvidenceFormat = SMALL) -> dict[str, Any]:
    return fmt.describe()


def consent_json(answer: str = "given") -> dict[str, Any]:
    return {"answer": answer, "answered_at": time.time(), "language": "id", "text_sha256": TEXT_SHA}


class BoothRecorder:
    """The booth's calls, plainly over HTTP (the kiosk's own client is tested elsewhere)."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http, self.token = http, token
        self.grant: str | None = None
        self.recording_id: str | None = None

    def headers(self, **extra: str) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": uuid.uuid4().hex}
        if self.grant:
            out["Loket-Recording-Grant"] = self.grant
        return {**out, **extra}

    async def open(self, session_id: str, claim_id: str, answer: str = "given") -> httpx.Response:
        body = {
            "session_id": session_id,
            "claim_id": claim_id,
            "consent": consent_json(answer),
            "media": media_json(),
            "started_at": time.time(),
        }
        res = await self.http.post("/api/recordings", json=body, headers=self.headers())
        if res.status_code == 201:
            self.recording_id = res.json()["recording_id"]
            self.grant = res.json().get("grant")
        return res

    async def segment(
        self, seq: int, data: bytes, start_s: float, end_s: float, *, chunk: int = 0, **extra: Any
    ) -> httpx.Response:
        body = {
            "seq": seq,
            "length": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "start_s": start_s,
            "end_s": end_s,
            "frames": 1,
            **extra,
        }
        rid = self.recording_id
        res = await self.http.post(
            f"/api/recordings/{rid}/segments", json=body, headers=self.headers()
        )
        if res.status_code != 201:
            return res
        location, offset = res.json()["location"], 0
        step = chunk or len(data)
        while offset < len(data):
            piece = data[offset : offset + step]
            res = await self.http.patch(
                location,
                content=piece,
                headers=self.headers(
                    **{
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                    }
                ),
            )
            if res.status_code not in (201, 204):
                return res
            offset += len(piece)
        return res

    async def close(
        self, listed: list[tuple[int, bytes]], ended_s: float, **extra: Any
    ) -> httpx.Response:
        body = {
            "segments": [{"seq": s, "sha256": hashlib.sha256(d).hexdigest()} for s, d in listed],
            "ended_s": ended_s,
            "end_reason": "completed",
            **extra,
        }
        return await self.http.post(
            f"/api/recordings/{self.recording_id}/close", json=body, headers=self.headers()
        )
