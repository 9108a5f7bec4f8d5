"""One capture attempt: burst in, verdict and a JPEG out; and the retry policy around it.

    result = CapturePipeline(CaptureConfig()).run(frames, "ktp")

picks the sharpest frame of the burst (sharpness measured inside the document, since
only the document moves in a participant's hand), finds the document's corners,
rectifies it to its true aspect, scores resolution, blur and glare, and encodes the
rectified document (or, with no document found, the whole frame) as a JPEG with no
metadata, with its SHA-256. It never raises on a bad picture: the verdict says what is
wrong and `advice` what the participant should do about it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import cv2
import numpy as np

from booth_client.capture.detect import (
    DetectConfig,
    DocFormat,
    document_width_px,
    find_document,
    format_for,
    rectify,
    refit,
)
from booth_client.capture.quality import (
    document_sharpness,
    frame_sharpness,
    glare_share,
    to_work_size,
)
from booth_client.capture.ring import Frame


class Verdict(StrEnum):
    ACCEPT = "accept"
    NO_DOCUMENT = "no_document"
    TOO_SMALL = "too_small"
    BLUR = "blur"
    GLARE = "glare"


class Advice(StrEnum):
    """What the participant is told (signaling.messages.CaptureAdvice has the same names)."""

    PLACE_DOCUMENT = "place_document"
    MOVE_CLOSER = "move_closer"
    HOLD_STILL = "hold_still"
    AVOID_GLARE = "avoid_glare"


ADVICE_FOR: Mapping[Verdict, Advice] = {
    Verdict.NO_DOCUMENT: Advice.PLACE_DOCUMENT,
    Verdict.TOO_SMALL: Advice.MOVE_CLOSER,
    Verdict.BLUR: Advice.HOLD_STILL,
    Verdict.GLARE: Advice.AVOID_GLARE,
}

# Default sentences ("id" first: Bahasa Indonesia is the kiosk's default language). The
# kiosk screen may translate the advice code through its own catalogue instead.
ADVICE_TEXT: Mapping[Advice, Mapping[str, str]] = {
    Advice.PLACE_DOCUMENT: {
        "id": "Letakkan dokumen di bawah kamera dokumen, seluruhnya terlihat",
        "en": "Place the whole document under the document camera",
    },
    Advice.MOVE_CLOSER: {
        "id": "Dekatkan dokumen ke kamera",
        "en": "Bring the document closer to the camera",
    },
    Advice.HOLD_STILL: {
        "id": "Tahan dokumen agar tidak bergerak",
        "en": "Hold the document still",
    },
    Advice.AVOID_GLARE: {
        "id": "Hindari pantulan cahaya",
        "en": "Avoid light reflections: tilt the document slightly",
    },
}


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """Thresholds; `loket capture check` prints the scores they are compared with."""

    jpeg_quality: int = 90
    # Document sharpness (quality.sharpness at 640 px long side, about 1 / edge width):
    # a sharp print on a 1080p camera scores 0.27-0.31; a 6 px smear (a hand moving)
    # at most 0.21, 10 px or a defocused lens at most 0.16.
    min_sharpness: float = 0.22
    # Share of the document blown out in blobs (quality.glare_share).
    max_glare: float = 0.005
    glare_level: int = 248
    # Pixels per millimetre of paper: below this the print cannot be read. A4: the least
    # at which a letter's 10 pt body text is read by the reading engine (bench/
    # reading_bench.py, 28 letters in 7 fonts at 1080p: at 2.6 px/mm the median letter
    # reads 98.9% of its body words and the NIK and name are read in 100% and 96% of
    # letters; at 2.5, 89% NIK; at 2.4, 64% of letters read 90% of their words). A
    # 1080p camera gives an A4 page at most ~3.4 px/mm: the page must fill 72% of the
    # frame's height.
    min_px_per_mm: Mapping[str, float] = field(default_factory=lambda: {"id1": 6.0, "a4": 2.6})
    max_long_side: int = 2400  # rectified output cap (A4 at ~200 dpi)
    burst: int = 5  # frames the kiosk should take from its ring per attempt
    attempts: int = 3  # attempts before the best one is sent anyway
    detect: DetectConfig = field(default_factory=DetectConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be 1..100")
        if self.attempts < 1 or self.burst < 1:
            raise ValueError("attempts and burst must be >= 1")


@dataclass(frozen=True, slots=True)
class Timings:
    pipeline_ms: float  # frame choice, detection, rectification, scores
    encode_ms: float  # JPEG encode and the metadata check
    hash_ms: float

    @property
    def total_ms(self) -> float:
        return self.pipeline_ms + self.encode_ms + self.hash_ms


@dataclass(frozen=True, eq=False)
class CaptureResult:
    kind: str
    format: str  # "id1" or "a4"
    verdict: Verdict
    corners: tuple[tuple[float, float], ...] | None  # TL, TR, BR, BL in frame pixels
    frame_index: int  # which frame of the burst was used
    frame_sharpness: tuple[float, ...]
    sharpness: float | None  # of the rectified document; None without a document
    glare: float | None
    px_per_mm: float | None
    image: np.ndarray  # what was encoded: the rectified document, or the whole frame
    jpeg: bytes | None
    sha256: str | None
    timings: Timings

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.ACCEPT

    @property
    def advice(self) -> Advice | None:
        return ADVICE_FOR.get(self.verdict)

    def message(self, language: str = "id") -> str | None:
        """The advice as a sentence ("id" or "en"); None when accepted."""
        advice = self.advice
        return None if advice is None else ADVICE_TEXT[advice].get(language, "")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the encoded picture."""
        return int(self.image.shape[1]), int(self.image.shape[0])

    def scores(self) -> dict[str, Any]:
        """JSON-ready summary (no pixels): what `loket capture check --json` prints and
        what a `capture_status` message carries."""
        return {
            "kind": self.kind,
            "format": self.format,
            "verdict": self.verdict.value,
            "advice": None if self.advice is None else self.advice.value,
            "corners": None if self.corners is None else [list(p) for p in self.corners],
            "sharpness": _round(self.sharpness),
            "glare": _round(self.glare),
            "px_per_mm": _round(self.px_per_mm, 2),
            "frame_index": self.frame_index,
            "frame_sharpness": [_round(s) for s in self.frame_sharpness],
            "width": self.size[0],
            "height": self.size[1],
            "jpeg_bytes": None if self.jpeg is None else len(self.jpeg),
            "sha256": self.sha256,
            "timings_ms": {
                "pipeline": round(self.timings.pipeline_ms, 2),
                "encode": round(self.timings.encode_ms, 2),
                "hash": round(self.timings.hash_ms, 2),
            },
        }

    def margin(self, config: CaptureConfig) -> float:
        """How close to acceptable (>= 1 passes every score): the worst score over its
        threshold. Ranks failed attempts: the best one is sent after the last."""
        if self.sharpness is None or self.glare is None or self.px_per_mm is None:
            return -1.0
        return min(
            self.sharpness / config.min_sharpness,
            config.max_glare / max(self.glare, 1e-9),
            self.px_per_mm / config.min_px_per_mm[self.format],
        )


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


class CapturePipeline:
    def __init__(self, config: CaptureConfig | None = None) -> None:
        self.config = config or CaptureConfig()

    def run(
        self,
        frames: Sequence[Frame | np.ndarray],
        kind: str | DocFormat,
        *,
        encode: bool = True,
    ) -> CaptureResult:
        """One attempt on a burst (oldest first; BGR arrays or ring `Frame`s)."""
        if not frames:
            raise ValueError("a capture needs at least one frame")
        cfg = self.config
        fmt = format_for(kind)
        kind_name = kind.name if isinstance(kind, DocFormat) else kind
        started = time.perf_counter()
        images = [f.image if isinstance(f, Frame) else f for f in frames]
        index, corners, scores = self._choose(images, fmt)
        frame = images[index]
        if corners is None:
            verdict, document = Verdict.NO_DOCUMENT, frame
            sharp = glare = px_per_mm = None
        else:
            document = rectify(frame, corners, fmt, max_long_side=cfg.max_long_side)
            paper_mm = fmt.long_mm if fmt.landscape else fmt.short_mm
            px_per_mm = document_width_px(corners, fmt) / paper_mm
            work = to_work_size(document)  # both scores at one working size, resized once
            sharp = document_sharpness(work)
            glare = glare_share(work, level=cfg.glare_level)
            if px_per_mm < cfg.min_px_per_mm[fmt.name]:
                verdict = Verdict.TOO_SMALL  # first: blur and glare mean little when tiny
            elif sharp < cfg.min_sharpness:
                verdict = Verdict.BLUR
            elif glare > cfg.max_glare:
                verdict = Verdict.GLARE
            else:
                verdict = Verdict.ACCEPT
        pipeline_done = time.perf_counter()
        jpeg = digest = None
        if encode:
            jpeg = encode_jpeg(document, cfg.jpeg_quality)
        encoded = time.perf_counter()
        if jpeg is not None:
            digest = hashlib.sha256(jpeg).hexdigest()
        hashed = time.perf_counter()
        return CaptureResult(
            kind=kind_name,
            format=fmt.name,
            verdict=verdict,
            corners=None
            if corners is None
            else tuple((round(float(x), 2), round(float(y), 2)) for x, y in corners),
            frame_index=index,
            frame_sharpness=tuple(scores),
            sharpness=sharp,
            glare=glare,
            px_per_mm=px_per_mm,
            image=document,
            jpeg=jpeg,
            sha256=digest,
            timings=Timings(
                pipeline_ms=(pipeline_done - started) * 1000,
                encode_ms=(encoded - pipeline_done) * 1000,
                hash_ms=(hashed - encoded) * 1000,
            ),
        )

    def _choose(
        self, images: list[np.ndarray], fmt: DocFormat
    ) -> tuple[int, np.ndarray | None, list[float]]:
        """(frame index, its corners or None, per-frame sharpness).

        The document is found once, on the newest frame that shows it; the frames are
        compared inside that outline (the desk does not shake, the hand does); and when
        the winner is another frame, the corners are re-fitted on it (a hand shakes a
        document by a few pixels between frames), or found afresh if that fails.
        """
        detect = self.config.detect
        reference, corners = len(images) - 1, None
        for i in reversed(range(len(images))):
            corners = find_document(images[i], fmt, detect)
            if corners is not None:
                reference = i
                break
        scores = frame_sharpness(images, corners)
        best = max(range(len(images)), key=lambda i: (scores[i], i))
        if corners is None or best == reference:
            return best, corners, scores
        again = refit(images[best], corners)
        if again is None:
            again = find_document(images[best], fmt, detect)
        if again is None:  # hand in the way on that frame: keep the one we could read
            return reference, corners, scores
        return best, again, scores


# --- JPEG ---------------------------------------------------------------------------------------

# APP1 (EXIF, XMP), APP2 (ICC), ..., APP13 (IPTC), APP15, and comments carry metadata.
# APP0 (JFIF: version and pixel density) and APP14 (Adobe: colour transform) do not.
METADATA_MARKERS = frozenset({*range(0xE1, 0xEE), 0xEF, 0xFE})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset, length) of every segment from SOI up to and including SOS."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out = [(0xD8, 0, 2)]
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            out.append((marker, pos, 2))
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        out.append((marker, pos, length + 2))
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        pos += 2 + length
    return out


def strip_jpeg_metadata(data: bytes) -> bytes:
    """`data` without metadata segments (header segments only; scan data untouched)."""
    segments = jpeg_segments(data)
    if not any(marker in METADATA_MARKERS for marker, _, _ in segments):
        return data
    kept = b"".join(data[o : o + n] for m, o, n in segments if m not in METADATA_MARKERS)
    _, last_offset, last_length = segments[-1]
    return kept + data[last_offset + last_length :]


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes with no metadata. cv2.imencode writes none today (SOI, APP0 JFIF, DQT,
    SOF, DHT, SOS); the check costs microseconds and keeps it true if that changes."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return strip_jpeg_metadata(buf.tobytes())


# --- retries ----------------------------------------------------------------------------------


class Attempts:
    """The retry policy: up to `n` attempts, stop at the first accepted one, and keep the
    best so far, which is what is sent after `n` failures (with its scores).

        tries = attempts(3)
        for attempt in tries:             # 1, 2, 3; stops early once one is accepted
            result = tries.record(pipeline.run(ring.latest(5), kind))
            if not result.accepted:
                show(result.message(language))   # and give them a moment
        send(tries.best)
    """

    def __init__(self, n: int, config: CaptureConfig | None = None) -> None:
        if n < 1:
            raise ValueError("at least one attempt")
        self.n = n
        self.config = config or CaptureConfig()
        self.history: list[CaptureResult] = []
        self._best: CaptureResult | None = None

    def __iter__(self) -> Iterator[int]:
        while len(self.history) < self.n and not self.accepted:
            before = len(self.history)
            yield before + 1
            if len(self.history) == before:
                raise RuntimeError("each attempt must record() a result")

    def record(self, result: CaptureResult) -> CaptureResult:
        self.history.append(result)
        if self._best is None or self._rank(result) >= self._rank(self._best):
            self._best = result
        return result

    @property
    def accepted(self) -> bool:
        return self._best is not None and self._best.accepted

    @property
    def done(self) -> bool:
        return self.accepted or len(self.history) >= self.n

    @property
    def best(self) -> CaptureResult | None:
        """The accepted result, else the failure closest to passing (a later one on a
        tie: the participant has had the most advice by then)."""
        return self._best

    def _rank(self, result: CaptureResult) -> tuple[bool, float]:
        return (result.accepted, result.margin(self.config))


def attempts(n: int | None = None, config: CaptureConfig | None = None) -> Attempts:
    """The retry policy for one capture request (`n` defaults to `config.attempts`)."""
    config = config or CaptureConfig()
    return Attempts(config.attempts if n is None else n, config)
