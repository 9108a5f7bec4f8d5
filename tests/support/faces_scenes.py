"""Face pictures for the face tests and bench: a real portrait printed on a KTP (the
reading tests' e-KTP, tests/support/id_documents.py), photographed on a desk by the 1080p
document camera and passed through the kiosk's capture pipeline, against the same
portrait as the face camera would see it.

The only real faces this machine had are two public-domain portraits that Python wheels
ship as sample data (no face dataset is installed, and none may be downloaded), copied
into faces_photos/:

- hopper.jpg: Rear Admiral Grace M. Hopper, US Navy official portrait (a work of the US
  government), byte for byte matplotlib 3.11's mpl-data/sample_data/grace_hopper.jpg.
- collins.jpg: astronaut Eileen Collins, NASA photograph ("no known copyright
  restrictions, released into the public domain"), a 280x330 crop (JPEG q95) of
  scikit-image 0.26's skimage/data/astronaut.png.

So "same person" here always means the same photograph seen through two different paths
(print, desk, document camera, rectification and JPEG against scale, turn, light, noise
and JPEG), never two photographs of one person taken apart: that is all this data can say.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from booth_client.capture import CapturePipeline
from tests.support.id_documents import PX_PER_MM, on_desk, person, render_ktp

PHOTOS = Path(__file__).resolve().parent / "faces_photos"
PEOPLE = ("hopper", "collins")
# Where render_ktp pastes its photo (x, y, width, height in mm).
KTP_PHOTO_MM = (62.0, 16.5, 20.0, 24.0)
LIVE_SIZE = (1280, 720)


@lru_cache(maxsize=4)
def portrait(name: str) -> np.ndarray:
    image = cv2.imread(str(PHOTOS / f"{name}.jpg"), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(PHOTOS / f"{name}.jpg")
    image.setflags(write=False)
    return image


# Head-and-shoulders boxes (x, y, w, h) in each photo, 5:6 like the KTP's photo box, and
# the face's centre: drawn by hand from the pictures, not from the detector under test.
_HEAD = {"hopper": (97, 50, 340, 408), "collins": (40, 5, 200, 240)}
_FACE_CENTRE = {"hopper": (268, 226), "collins": (134, 118)}
_EYES_PX = {"hopper": 80.0, "collins": 46.0}  # about, in the photo (for scaling only)


def ktp_card(name: str | None, seed: int = 0) -> np.ndarray:
    """An e-KTP (BGR, 15 px/mm) with `name`'s portrait printed into its photo box (softer
    contrast, some desaturation and blur, as a card printer gives); None keeps the
    card's drawn placeholder, which has no eyes, nose or mouth."""
    card = render_ktp(person(seed), seed=seed)
    if name is None:
        return card
    x, y, w, h = (round(v * PX_PER_MM) for v in KTP_PHOTO_MM)
    hx, hy, hw, hh = _HEAD[name]
    head = portrait(name)[hy : hy + hh, hx : hx + hw]
    photo = cv2.resize(head, (w, h), interpolation=cv2.INTER_AREA if hw > w else cv2.INTER_CUBIC)
    grey = cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    photo = cv2.addWeighted(photo, 0.8, grey, 0.2, 0)
    photo = cv2.convertScaleAbs(photo, alpha=0.82, beta=28)
    card[y : y + h, x : x + w] = cv2.GaussianBlur(photo, (0, 0), 1.0)
    return card


@dataclass(frozen=True)
class CapturedCard:
    image: np.ndarray  # the rectified KTP as the kiosk uploads it (decoded JPEG)
    frame: np.ndarray  # the document camera's 1920x1080 frame
    px_per_mm: float
    accepted: bool


@lru_cache(maxsize=16)
def captured_ktp(
    name: str | None, seed: int = 0, *, doc_scale: float | None = None, upside_down: bool = False
) -> CapturedCard:
    """`name`'s KTP on a desk (id_documents.on_desk: booth_client.sources.scenes' desk,
    light, perspective, noise), laid upright or upside down, through the kiosk's capture
    pipeline (corners, rectification that keeps the card as it lies, blur/glare/resolution
    gate, metadata-free JPEG), decoded as the server would."""
    spec = {} if doc_scale is None else {"doc_scale": doc_scale}
    card = ktp_card(name, seed)
    if upside_down:
        card = cv2.rotate(card, cv2.ROTATE_180)
    frame = on_desk(card, "id1", seed, **spec).image
    result = CapturePipeline().run([frame], "ktp")
    assert result.jpeg is not None
    image = cv2.imdecode(np.frombuffer(result.jpeg, np.uint8), cv2.IMREAD_COLOR)
    image.setflags(write=False)  # cached: shared by every caller
    return CapturedCard(image, frame, result.px_per_mm or 0.0, result.accepted)


def _booth_wall(seed: int, size: tuple[int, int] = LIVE_SIZE) -> np.ndarray:
    rng = np.random.default_rng([seed, 0xBA11])
    w, h = size
    base = np.array(rng.integers(150, 210, 3), np.float32)
    shade = np.linspace(1.05, 0.8, w, dtype=np.float32)[None, :, None]
    return np.broadcast_to(base, (h, w, 3)) * shade


def _place_face(
    frame: np.ndarray, name: str, centre: tuple[float, float], eyes_px: float, angle_deg: float
) -> None:
    """The portrait scaled so its eyes are ~eyes_px apart, turned, centred on its face at
    `centre`, its rectangle feathered into the frame (in place, float32)."""
    photo = portrait(name).astype(np.float32)
    scale = eyes_px / _EYES_PX[name]
    fx, fy = _FACE_CENTRE[name]
    m = cv2.getRotationMatrix2D((fx, fy), angle_deg, scale)
    m[:, 2] += np.array(centre) - np.array([fx, fy])
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpAffine(
        photo, m, size, flags=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_LINEAR
    )
    mask = np.zeros(photo.shape[:2], np.float32)
    border = max(4, photo.shape[1] // 12)
    mask[border:-border, border:-border] = 1
    mask = cv2.GaussianBlur(mask, (0, 0), border / 2)
    alpha = cv2.warpAffine(mask, m, size)[..., None]
    frame *= 1 - alpha
    frame += warped * alpha


def live_still(
    names: tuple[str, ...] | str,
    seed: int = 0,
    *,
    eyes_px: float | tuple[float, ...] = 90.0,
    angle_deg: float | None = None,
    size: tuple[int, int] = LIVE_SIZE,
    quality: int = 85,
) -> np.ndarray:
    """What the face camera's still would show: each portrait in `names` (side by side),
    its eyes `eyes_px` apart (one value, or one per person), turned a few degrees, under
    warmer, dimmer light with a gamma change, sensor noise, then a JPEG round trip (the
    still travels as a JPEG)."""
    people = (names,) if isinstance(names, str) else names
    rng = np.random.default_rng([seed, 0x11FE])
    frame = _booth_wall(seed, size).copy()
    w, h = size
    sizes = (eyes_px,) * len(people) if isinstance(eyes_px, int | float) else eyes_px
    for i, (name, eyes) in enumerate(zip(people, sizes, strict=True)):
        angle = float(rng.uniform(-7, 7)) if angle_deg is None else angle_deg
        centre = (
            w * (i + 1) / (len(people) + 1) + rng.uniform(-20, 20),
            h * 0.45 + rng.uniform(-15, 15),
        )
        _place_face(frame, name, centre, eyes * float(rng.uniform(0.95, 1.05)), angle)
    gain = np.array(
        [rng.uniform(0.80, 0.90), rng.uniform(0.90, 0.97), rng.uniform(0.98, 1.05)], np.float32
    )
    frame = 255 * (np.clip(frame * gain, 0, 255) / 255) ** float(rng.uniform(0.8, 1.15))
    frame += rng.normal(0, 3.0, frame.shape).astype(np.float32)
    ok, buf = cv2.imencode(
        ".jpg", np.clip(frame, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def empty_still(seed: int = 0, size: tuple[int, int] = LIVE_SIZE) -> np.ndarray:
    """The booth with nobody in it."""
    rng = np.random.default_rng([seed, 0xE111])
    frame = _booth_wall(seed, size) + rng.normal(0, 3.0, (size[1], size[0], 3))
    return np.clip(frame, 0, 255).astype(np.uint8)
