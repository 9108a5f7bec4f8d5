"""The spoken call, made offline: a chime, then espeak-ng's Indonesian voice, one WAV.

Nothing is downloaded at run time: espeak-ng and its `id` voice are a Debian package
(`apt-get install espeak-ng`; scripts/install-test-deps installs it). Each text is made
once and kept under `DATA_DIR/speech/` by its SHA-256 (a branch calls the same few hundred
phrases every day), at most `MAX_AT_ONCE` syntheses run together, each bounded in time.
Without espeak-ng the display still gets the chime (and shows the call); the log says why.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import shutil
import struct
import wave
from pathlib import Path

import structlog

from server.domain.speech import for_synthesis

log = structlog.get_logger("loket.speech")

RATE = 22_050  # espeak-ng's own rate: the chime is made at it, so the two join as one WAV
MAX_AT_ONCE = 2
TIMEOUT = 5.0


def chime(rate: int = RATE) -> bytes:
    """A two-note "ding-dong" (E5, C5) with a soft decay, 16-bit mono PCM, ~0.9 s."""
    frames = bytearray()
    for hz, seconds in ((659.25, 0.42), (523.25, 0.5)):
        n = int(rate * seconds)
        for i in range(n):
            t = i / rate
            envelope = math.exp(-4.0 * t) * min(1.0, i / (0.01 * rate))
            value = (
                0.45
                * envelope
                * (math.sin(2 * math.pi * hz * t) + 0.3 * math.sin(4 * math.pi * hz * t))
            )
            frames += struct.pack("<h", int(max(-1.0, min(1.0, value)) * 32767))
    frames += b"\0\0" * int(rate * 0.15)  # a breath before the voice
    return bytes(frames)


def _wav(pcm: bytes, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


class Speech:
    def __init__(self, cache_dir: Path, voice: str = "id", words_per_minute: int = 145) -> None:
        self._dir = cache_dir
        self._voice = voice
        self._speed = words_per_minute
        self._engine = shutil.which("espeak-ng")
        self._gate = asyncio.Semaphore(MAX_AT_ONCE)
        self._chime = chime()
        self.made = 0  # syntheses run (not served from the cache)

    @property
    def available(self) -> bool:
        return self._engine is not None

    def path_of(self, text: str) -> Path:
        digest = hashlib.sha256(f"{self._voice}:{self._speed}:{text}".encode()).hexdigest()
        return self._dir / f"{digest[:40]}.wav"

    async def wav(self, text: str) -> Path:
        """The chime and the spoken `text`, as a WAV file (made once, then kept)."""
        path = self.path_of(text)
        if path.exists():
            return path
        async with self._gate:
            if path.exists():
                return path
            voice = await self._synthesise(for_synthesis(text))
            self._dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(_wav(self._chime + voice, RATE))
            tmp.replace(path)
            self.made += 1
        return path

    async def _synthesise(self, text: str) -> bytes:
        """16-bit mono PCM at RATE of the voice; empty (the chime alone) if it failed."""
        if self._engine is None:
            log.warning("speech_unavailable", reason="espeak-ng is not installed")
            return b""
        proc = await asyncio.create_subprocess_exec(
            self._engine, "-v", self._voice, "-s", str(self._speed), "--stdout", text,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.warning("speech_failed", reason="espeak-ng took too long")
            return b""
        if proc.returncode != 0:
            log.warning("speech_failed", reason=err.decode(errors="replace")[:200])
            return b""
        with wave.open(io.BytesIO(out), "rb") as w:
            if (w.getframerate(), w.getsampwidth(), w.getnchannels()) != (RATE, 2, 1):
                log.warning("speech_failed", reason="espeak-ng's output is not 22 kHz mono")
                return b""
            return w.readframes(w.getnframes())
