"""YuNet face detection over onnxruntime, with OpenCV's `FaceDetectorYN` arithmetic.

Ported from OpenCV's modules/objdetect/src/face_detect.cpp (read at 5.x; 4.14 agrees): the
image goes in as BGR 0..255 floats, zero-padded at the bottom and right; twelve output
heads come back, a class score, an objectness, a box and five landmarks per cell of the
stride 8, 16 and 32 grids (anchor-free: offsets from the cell, sizes as exp() times the
stride); score = sqrt(clamp(cls) * clamp(obj)); then `cv::dnn::NMSBoxes` on the boxes
truncated to integers, best score first.

One difference, forced by the model file: its input is fixed at 640x640, where OpenCV
feeds the image's own size rounded up to 32. Larger images are shrunk to fit (INTER_AREA)
and the results scaled back; smaller ones are only padded. Padding with zeros to 640
instead of to the next multiple of 32 leaves the results nearly unchanged (measured
against OpenCV 5.0's FaceDetectorYN in tests/unit/test_faces_models.py: identical on three
pictures, within 0.1 px and 1e-4 of score on a 280x330 one). It also bounds the cost:
every image costs one 640x640 run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort

STRIDES = (8, 16, 32)
HEADS = ("cls", "obj", "bbox", "kps")
LANDMARKS = ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner")


@dataclass(frozen=True, slots=True)
class DetectedFace:
    """One face, in the analysed image's pixels. Landmarks are the subject's: the right
    eye is on the image's left in a frontal face."""

    box: tuple[float, float, float, float]  # x, y, width, height
    landmarks: tuple[tuple[float, float], ...]  # in LANDMARKS order
    score: float  # 0..1

    @property
    def eye_distance(self) -> float:
        (rx, ry), (lx, ly) = self.landmarks[0], self.landmarks[1]
        return math.hypot(lx - rx, ly - ry)

    def row(self) -> np.ndarray:
        """As OpenCV's FaceDetectorYN row: x, y, w, h, 5 landmarks (x, y), score."""
        return np.array(
            [*self.box, *(v for p in self.landmarks for v in p), self.score], np.float32
        )

    def summary(self) -> dict[str, object]:
        return {
            "box": [round(v, 1) for v in self.box],
            "landmarks": {
                n: [round(x, 1), round(y, 1)]
                for n, (x, y) in zip(LANDMARKS, self.landmarks, strict=True)
            },
            "score": round(self.score, 3),
            "eye_distance_px": round(self.eye_distance, 1),
        }


@dataclass(frozen=True, slots=True)
class Prepared:
    """What one detector run sees: the padded blob and how to map back to the image."""

    blob: np.ndarray  # 1x3xHxW float32, BGR 0..255
    scale_x: float  # blob pixels per image pixel
    scale_y: float


class YuNet:
    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
    ) -> None:
        """Thresholds as OpenCV's FaceDetectorYN.create takes them (its defaults are
        0.9, 0.3 and 5000; FaceAnalyser passes its own score limit)."""
        self.session = session
        shape = session.get_inputs()[0].shape
        self.input_name = session.get_inputs()[0].name
        self.height, self.width = (
            (int(shape[2]), int(shape[3]))
            if all(isinstance(d, int) for d in shape[2:])
            else (640, 640)
        )
        self.output_names = [f"{head}_{s}" for head in HEADS for s in STRIDES]
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k

    def prepare(self, image: np.ndarray) -> Prepared:
        h, w = image.shape[:2]
        scale = min(1.0, self.width / w, self.height / h)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        blob = np.zeros((1, 3, self.height, self.width), np.float32)  # padded with zeros
        blob[0, :, : image.shape[0], : image.shape[1]] = image.transpose(2, 0, 1)
        return Prepared(blob, image.shape[1] / w, image.shape[0] / h)

    def run(self, prepared: Prepared) -> list[np.ndarray]:
        """The bare model run (what the bench's baseline times)."""
        return list(self.session.run(self.output_names, {self.input_name: prepared.blob}))

    def decode(self, outputs: Sequence[np.ndarray], prepared: Prepared) -> list[DetectedFace]:
        rows = decode_rows(outputs, self.width, self.height, self.score_threshold)
        rows = rows[nms(rows, self.score_threshold, self.nms_threshold, self.top_k)]
        sx, sy = prepared.scale_x, prepared.scale_y
        faces = []
        for r in rows.astype(np.float64):
            marks = tuple((float(r[4 + 2 * i] / sx), float(r[5 + 2 * i] / sy)) for i in range(5))
            box = (float(r[0] / sx), float(r[1] / sy), float(r[2] / sx), float(r[3] / sy))
            faces.append(DetectedFace(box, marks, float(r[14])))
        return faces

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in a BGR uint8 image, best score first."""
        prepared = self.prepare(image)
        return self.decode(self.run(prepared), prepared)


def decode_rows(
    outputs: Sequence[np.ndarray], width: int, height: int, threshold: float
) -> np.ndarray:
    """N x 15 float32 rows (FaceDetectorYN's layout) of the cells scoring >= threshold,
    stride 8 first, each grid row by row, as OpenCV's postProcess emits them."""
    n = len(STRIDES)
    found = []
    for i, stride in enumerate(STRIDES):
        cols = width // stride
        cls = np.clip(outputs[i].reshape(-1), 0, 1)
        obj = np.clip(outputs[i + n].reshape(-1), 0, 1)
        bbox = outputs[i + 2 * n].reshape(-1, 4)
        kps = outputs[i + 3 * n].reshape(-1, 10)
        score = np.sqrt(cls * obj)
        idx = np.flatnonzero(score >= threshold)
        if idx.size == 0:
            continue
        c = (idx % cols).astype(np.float32)
        r = (idx // cols).astype(np.float32)
        b = bbox[idx]
        w = np.exp(b[:, 2]) * stride
        h = np.exp(b[:, 3]) * stride
        cx = (c + b[:, 0]) * stride
        cy = (r + b[:, 1]) * stride
        k = kps[idx]
        marks = np.empty((idx.size, 10), np.float32)
        marks[:, 0::2] = (k[:, 0::2] + c[:, None]) * stride
        marks[:, 1::2] = (k[:, 1::2] + r[:, None]) * stride
        found.append(np.column_stack([cx - w / 2, cy - h / 2, w, h, marks, score[idx]]))
    return np.concatenate(found).astype(np.float32) if found else np.zeros((0, 15), np.float32)


def nms(rows: np.ndarray, score_threshold: float, nms_threshold: float, top_k: int) -> list[int]:
    """Indices kept by `cv::dnn::NMSBoxes(Rect2i boxes, scores, score_threshold,
    nms_threshold, indices, eta=1, top_k)`, in its order; like FaceDetectorYN, a single
    row is kept without NMS."""
    if len(rows) <= 1:
        return list(range(len(rows)))
    scores = rows[:, 14]
    order = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > score_threshold]
    order = order[:top_k] if top_k > 0 else order
    boxes = np.trunc(rows[:, :4]).astype(np.int64)  # Rect2i(int(x), int(y), int(w), int(h))
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    kept: list[int] = []
    for i in order:
        if kept:
            k = np.array(kept)
            iw = np.minimum(x2[i], x2[k]) - np.maximum(x1[i], x1[k])
            ih = np.minimum(y2[i], y2[k]) - np.maximum(y1[i], y1[k])
            inter = np.where((iw > 0) & (ih > 0), iw * ih, 0)
            union = area[i] + area[k] - inter
            # OpenCV's jaccardDistance: two empty boxes are the same box.
            overlap = np.where(area[i] + area[k] > 0, inter / np.maximum(union, 1), 1.0)
            if (overlap > nms_threshold).any():
                continue
        kept.append(i)
    return kept
