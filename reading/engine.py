"""The OCR engine: rapidocr's PP-OCR detection, orientation and recognition models, run by
onnxruntime on the CPU, from the files inside the rapidocr wheel and nowhere else.

rapidocr downloads a model only when it is given no `model_path` (it then looks in its
model directory and fetches what is missing from the network); it downloads a character
dictionary only when the recognition model carries none; and it fetches an image when
handed a URL string. Here every model is given by path, each file's SHA-256 is checked
against the pins below before it is loaded (a changed wheel fails loudly: re-measure,
then re-pin), the pinned recognition model carries its dictionary, and images are handed
over as arrays. So nothing is fetched, ever; `tests/unit/test_reading_engine.py` checks it
with rapidocr's downloader made to raise, inside a network namespace with no route out.

Loading costs 1-1.6 s, so a process keeps one engine (`shared_engine()`); reading is
CPU-bound and the engine is not shared between threads that read at the same time
(`OcrEngine.lines` holds a lock).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class ModelMismatch(RuntimeError):
    """A model file is missing or is not the one this code was measured with. Reinstall
    the locked rapidocr wheel (`uv sync --frozen`); if the lock moved on purpose, measure
    the new models with bench/reading_bench.py and update `MODELS`."""


@dataclass(frozen=True, slots=True)
class ModelFile:
    role: str  # det, cls, rec
    name: str
    sha256: str


# The models inside rapidocr 3.10.0's wheel (rapidocr/models/), measured by
# bench/reading_bench.py. PP-OCRv6 small detection and recognition (its dictionary is
# inside the ONNX file's metadata), PP-OCR mobile v2 0/180 degree text-line classifier.
MODELS: tuple[ModelFile, ...] = (
    ModelFile("det", "PP-OCRv6_det_small.onnx",
              "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"),
    ModelFile("cls", "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
              "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
    ModelFile("rec", "PP-OCRv6_rec_small.onnx",
              "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TextLine:
    """One line of text the engine found: its text, its mean character confidence (0-1)
    and its box's corners (x, y) in the image's pixels, clockwise from top-left."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...]

    @property
    def left(self) -> float:
        return min(x for x, _ in self.box)

    @property
    def right(self) -> float:
        return max(x for x, _ in self.box)

    @property
    def top(self) -> float:
        return min(y for _, y in self.box)

    @property
    def bottom(self) -> float:
        return max(y for _, y in self.box)

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def upright(self) -> bool:
        """Wider than tall: text that runs across the picture, not down it."""
        return self.right - self.left >= self.height


def models_dir() -> Path:
    import rapidocr

    return Path(rapidocr.__file__).resolve().parent / "models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_models(directory: Path | None = None) -> dict[str, Path]:
    """Each model's path by role, after checking its SHA-256 against `MODELS`."""
    directory = directory or models_dir()
    paths = {}
    for model in MODELS:
        path = directory / model.name
        if not path.is_file():
            raise ModelMismatch(f"OCR model {model.name} ({model.role}) is not in {directory}")
        found = _sha256(path)
        if found != model.sha256:
            raise ModelMismatch(
                f"OCR model {path} has SHA-256 {found}, expected {model.sha256}: not the "
                "model this reader was measured with"
            )
        paths[model.role] = path
    return paths


class OcrEngine:
    """rapidocr loaded once from the pinned models. `threads`: onnxruntime's intra-op
    threads (None: one per core, lowest latency for one reading at a time; 1 for a pool
    worker, most readings per core)."""

    def __init__(self, threads: int | None = None) -> None:
        from rapidocr import RapidOCR

        started = time.perf_counter()
        paths = verify_models()
        params: dict[str, Any] = {
            "Global.log_level": "error",
            # Lines below this confidence are dropped by rapidocr itself; fields apply
            # their own, higher, thresholds (reading/fields.py).
            "Global.text_score": 0.3,
            "Det.model_path": str(paths["det"]),
            "Cls.model_path": str(paths["cls"]),
            "Rec.model_path": str(paths["rec"]),
        }
        if threads is not None:
            for key in ("intra_op_num_threads", "inter_op_num_threads"):
                params[f"EngineConfig.onnxruntime.{key}"] = threads
        self._ocr = RapidOCR(params=params)
        self._lock = threading.Lock()
        # rapidocr loads each model on first use: load them now, so the first reading
        # does not pay for it (and a broken model fails here, not mid-session).
        warm = np.full((48, 200, 3), 255, np.uint8)
        import cv2

        cv2.putText(warm, "KTP 1234", (8, 34), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
        self.lines(warm)
        self.load_seconds = time.perf_counter() - started

    @staticmethod
    def models() -> Mapping[str, str]:
        """Model file name -> SHA-256: what an outcome records as the reader's identity."""
        return {model.name: model.sha256 for model in MODELS}

    def lines(self, image: np.ndarray, *, classify: bool = False) -> list[TextLine]:
        """Every line of text found in `image` (BGR uint8, any size; never a path or URL:
        rapidocr would fetch a URL).

        `classify` runs the 0/180 degree line classifier, which turns upside-down lines
        back. Off by default: on small print (a letter's 10 pt body at 2-3 px/mm) it
        turns a third of the lines that were upright, which then read as noise; a
        document has one orientation, which `reading.document` settles for the page."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise TypeError("image must be a uint8 numpy array (BGR)")
        with self._lock:
            out = self._ocr(image, use_cls=classify)
        txts, scores, boxes = (getattr(out, name, None) for name in ("txts", "scores", "boxes"))
        if txts is None or scores is None or boxes is None:
            return []
        return [
            TextLine(str(text), float(score), tuple((float(x), float(y)) for x, y in box))
            for text, score, box in zip(txts, scores, boxes, strict=True)
        ]


_shared: OcrEngine | None = None
_shared_lock = threading.Lock()


def shared_engine(threads: int | None = None) -> OcrEngine:
    """This process's engine, loaded on first use (`threads` applies to that first load)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = OcrEngine(threads)
        return _shared
