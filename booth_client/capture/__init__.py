"""Document capture for the kiosk's document camera: pure OpenCV + numpy, no I/O.

    ring = FrameRing()                       # the camera task pushes every frame
    pipeline = CapturePipeline(CaptureConfig())
    tries = attempts(3)
    for attempt in tries:                    # the loop body may await (show advice, wait)
        result = tries.record(pipeline.run(ring.latest(5), "ktp"))
        if not result.accepted:
            show(result.message("id"))       # "Tahan dokumen agar tidak bergerak", ...
    send(tries.best)                          # accepted, or the best of n failures

`loket capture check IMAGE...` runs the same pipeline on files (camera calibration).
Names are loaded on first use, so `booth_client.capture.cli` (imported by every `loket`
command) does not pull in OpenCV.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "booth_client.capture.detect": (
        "FORMATS", "KIND_FORMATS", "DetectConfig", "DocFormat", "find_document", "format_for",
        "order_corners", "rectify",
    ),
    "booth_client.capture.pipeline": (
        "ADVICE_TEXT", "Advice", "Attempts", "CaptureConfig", "CapturePipeline",
        "CaptureResult", "Timings", "Verdict", "attempts", "encode_jpeg", "jpeg_segments",
    ),
    "booth_client.capture.quality": ("glare_share", "sharpest", "sharpness"),
    "booth_client.capture.ring": ("Frame", "FrameRing"),
}  # fmt: skip
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "ADVICE_TEXT", "FORMATS", "KIND_FORMATS", "Advice", "Attempts", "CaptureConfig",
    "CapturePipeline", "CaptureResult", "DetectConfig", "DocFormat", "Frame", "FrameRing",
    "Timings", "Verdict", "attempts", "encode_jpeg", "find_document", "format_for",
    "glare_share", "jpeg_segments", "order_corners", "rectify", "sharpest", "sharpness",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from booth_client.capture.detect import (
        FORMATS,
        KIND_FORMATS,
        DetectConfig,
        DocFormat,
        find_document,
        format_for,
        order_corners,
        rectify,
    )
    from booth_client.capture.pipeline import (
        ADVICE_TEXT,
        Advice,
        Attempts,
        CaptureConfig,
        CapturePipeline,
        CaptureResult,
        Timings,
        Verdict,
        attempts,
        encode_jpeg,
        jpeg_segments,
    )
    from booth_client.capture.quality import glare_share, sharpest, sharpness
    from booth_client.capture.ring import Frame, FrameRing
