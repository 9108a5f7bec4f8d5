"""Synthetic document-camera frames with known ground truth, for tests and rehearsals.

A rendered document (an ID-1 card or an A4 letter from `documents.py`) lies on a textured
desk (wood, fabric, speckled laminate, plain) seen by a 1920x1080 overhead camera: turned,
in slight perspective, with a soft shadow, clutter beside it (pens, other papers of other
colours), uneven light and sensor noise; optionally motion blur (the hand moving the
document, so only the document smears), defocus (the whole frame), a specular glare blob
on the document, and hand shake between the frames of a burst.

Everything is drawn from `seed`: the same seed gives the same pixels. `Scene.corners` are
the document's true corners [TL, TR, BR, BL] in image pixels (the corners of its
rectangle, also for a card's rounded corners), or None when no document was placed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

import cv2
import numpy as np

from booth_client.capture.detect import FORMATS, format_for
from booth_client.sources.documents import document_image, letter_image

Background = Literal["wood", "fabric", "speckle", "plain"]
BACKGROUNDS: tuple[Background, ...] = ("wood", "fabric", "speckle", "plain")
BlurKind = Literal["motion", "defocus"]
FRAME_SIZE = (1920, 1080)

_CARD_TITLES = ("KARTU TANDA PENDUDUK", "KARTU PESERTA BPJS", "NPWP", "KITAS")
_LETTER_TITLES = ("Surat keterangan kerja", "Surat pemutusan hubungan kerja",
                  "Kartu keluarga", "Surat keterangan ahli waris")  # fmt: skip
# Card colours (background, header), BGR: pale blue KTP, green KPJ, grey NPWP, cream.
CARD_STYLES = (((246, 228, 200), (140, 90, 20)), ((214, 236, 214), (40, 120, 30)),
               ((226, 226, 222), (60, 60, 60)), ((205, 236, 244), (30, 100, 160)))  # fmt: skip
DESK_COLOURS: dict[Background, tuple[tuple[int, int, int], ...]] = {
    "wood": ((40, 75, 120), (70, 110, 160), (30, 50, 80)),
    "fabric": ((110, 70, 50), (70, 90, 70), (90, 90, 95)),
    "speckle": ((150, 150, 145), (100, 120, 130), (60, 60, 60)),
    "plain": ((70, 70, 70), (120, 100, 80), (50, 60, 90)),
}
# A document in a good scene can be seen: its border (a card's header band reaches the
# edge) differs from the desk by at least this much (CIE Lab distance, OpenCV 8-bit
# scale). Below it the border is invisible to any camera, e.g. a brown band on brown
# wood; kiosks should have a plain mat of a contrasting colour (see the README).
MIN_BORDER_CONTRAST = 30.0


@dataclass(frozen=True, slots=True)
class SceneSpec:
    """Every knob of a scene; `random_spec` draws them from a seed."""

    fmt: Literal["id1", "a4"] = "id1"
    seed: int = 0
    size: tuple[int, int] = FRAME_SIZE
    document: bool = True
    background: Background = "wood"
    desk_colour: tuple[int, int, int] = (40, 75, 120)  # BGR
    card_style: int = 0  # index into CARD_STYLES (ID-1 only)
    # Document width as read (ID-1 long side, A4 short side) as a share of frame width.
    doc_scale: float = 0.45
    centre: tuple[float, float] = (0.5, 0.5)  # share of frame width, height
    rotation_deg: float = 0.0
    perspective: float = 0.03  # corner displacement, share of document size
    clutter: int = 2  # items beside the document
    blur: float = 0.0  # px: motion-blur length, or defocus radius
    blur_kind: BlurKind = "motion"
    blur_angle_deg: float = 0.0
    glare: float = 0.0  # 0, or the blob's radius as a share of the document width
    sheen: float = 0.0  # a soft, never-saturating highlight (0..1): not glare
    light: float = 1.0  # overall exposure
    noise: float = 2.5  # sensor noise sigma (grey levels)
    shake: tuple[float, float, float] = (0.0, 0.0, 0.0)  # dx, dy px; rotation deg


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # BGR uint8
    corners: np.ndarray | None  # float64 4x2 [TL, TR, BR, BL] in image pixels
    spec: SceneSpec
    glare_share: float = 0.0  # true share of the document's pixels blown out by glare
    extra: dict[str, Any] = field(default_factory=dict)

    def truth(self) -> dict[str, Any]:
        """JSON-ready ground truth (the CLI writes it next to the picture)."""
        return {
            "format": self.spec.fmt,
            "corners": None if self.corners is None else self.corners.round(2).tolist(),
            "glare_share": round(self.glare_share, 4),
            "spec": asdict(self.spec),
        }


def random_spec(
    kind: str = "id1",
    seed: int = 0,
    *,
    blur: float | None = None,
    glare: bool = False,
    background: Background | None = None,
    clutter: int | None = None,
    document: bool = True,
    doc_scale: float | None = None,
) -> SceneSpec:
    """A plausible scene for `kind` (a format or document kind), drawn from `seed`.

    Good scenes (defaults) are what a participant placing a document well gives: sharp,
    no blown highlight (maybe a soft sheen). `blur` (px) and `glare` make bad ones.
    """
    fmt = format_for(kind)
    rng = np.random.default_rng([seed, 0x5CE7E])
    background = background or BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    palette = DESK_COLOURS[background]
    desk_colour = palette[int(rng.integers(len(palette)))]
    visible = [i for i, (_, header) in enumerate(CARD_STYLES)
               if _lab_distance(header, desk_colour) >= MIN_BORDER_CONTRAST]  # fmt: skip
    card_style = int(rng.choice(visible))
    if doc_scale is None:
        # ID-1 card 36-54% of the frame width; A4 portrait 74-88% of the frame height.
        height_share = rng.uniform(0.74, 0.88)  # A4 portrait: of the frame height
        doc_scale = (
            rng.uniform(0.36, 0.54)
            if fmt.landscape
            else height_share * (FRAME_SIZE[1] / FRAME_SIZE[0] / fmt.aspect)
        )
    rotation = rng.uniform(-25, 25) if fmt.landscape else rng.uniform(-8, 8)
    return SceneSpec(
        fmt=fmt.name,
        seed=seed,
        document=document,
        background=background,
        desk_colour=desk_colour,
        card_style=card_style,
        doc_scale=float(doc_scale),
        centre=(float(rng.uniform(0.42, 0.58)), float(rng.uniform(0.45, 0.55))),
        rotation_deg=float(rotation),
        perspective=float(rng.uniform(0.0, 0.05)),
        clutter=int(rng.integers(1, 4)) if clutter is None else clutter,
        blur=float(blur or 0.0),
        blur_kind="motion" if rng.random() < 0.6 else "defocus",
        blur_angle_deg=float(rng.uniform(0, 180)),
        glare=float(rng.uniform(0.045, 0.07)) if glare else 0.0,
        sheen=float(rng.uniform(0.2, 0.5)) if rng.random() < 0.4 else 0.0,
        light=float(rng.uniform(0.85, 1.0)),
        noise=float(rng.uniform(1.5, 3.5)),
    )


def render_scene(
    kind: str = "id1",
    seed: int = 0,
    *,
    blur: float | None = None,
    glare: bool = False,
    background: Background | None = None,
    clutter: int | None = None,
    document: bool = True,
    doc_scale: float | None = None,
) -> Scene:
    """A random scene for `kind` (see `random_spec`), rendered."""
    spec = random_spec(
        kind, seed, blur=blur, glare=glare, background=background, clutter=clutter,
        document=document, doc_scale=doc_scale,
    )  # fmt: skip
    return render(spec)


def render_burst(
    kind: str,
    seed: int,
    blur_levels: Sequence[float],
    *,
    shake_px: float = 3.0,
    texture: np.ndarray | None = None,
    **kw: Any,
) -> list[Scene]:
    """Frames of one placement with hand shake; frame i has motion blur `blur_levels[i]`.
    `texture`: a flat document of `kind`'s format to lay there (see `render`)."""
    base = random_spec(kind, seed, **kw)
    rng = np.random.default_rng([seed, 0xB0257])
    frames = []
    for i, level in enumerate(blur_levels):
        shake = (float(rng.normal(0, shake_px)), float(rng.normal(0, shake_px)),
                 float(rng.normal(0, 0.25)))  # fmt: skip
        spec = replace(base, blur=float(level), blur_kind="motion", shake=shake)
        frames.append(render(spec, frame=i, texture=texture))
    return frames


def render(spec: SceneSpec, frame: int = 0, texture: np.ndarray | None = None) -> Scene:
    """Render a scene; `frame` varies only the sensor noise (for bursts). `texture` (a
    flat BGR document, placed as read) replaces the generated card or letter."""
    width, height = spec.size
    rng = np.random.default_rng([spec.seed, 0xDE5C])
    light = _lighting(rng, width, height, spec.light)
    # Light falls on the desk's tone before it gets its colour: one channel, not three.
    scene = _desk(spec.background, spec.desk_colour, rng, width, height, light)
    fmt = FORMATS[spec.fmt]
    corners = _placement(spec, fmt.landscape, fmt.aspect) if spec.document else None
    _clutter(scene, rng, spec.clutter, corners, light)
    glare_share = 0.0
    if corners is not None:
        if texture is None:
            texture = _texture(spec.fmt, spec.seed, spec.card_style)
        else:
            texture = np.dstack([texture, _alpha(spec.fmt, *texture.shape[1::-1])])
        glare_share = _lay_document(scene, texture, corners, spec, fmt.landscape, light)
    if spec.blur > 0 and spec.blur_kind == "defocus":
        scene = cv2.filter2D(scene, -1, _disk(spec.blur))
    # Sensor noise, correlated over 2x2 pixels as demosaicing leaves it.
    noise_rng = np.random.default_rng([spec.seed, frame, 0x2015E])
    half = noise_rng.standard_normal((height // 2, width // 2), dtype=np.float32)
    grain = cv2.resize(half * (spec.noise * 1.6), (width, height))
    scene = cv2.add(scene, cv2.merge([grain, grain, grain]))
    image = cv2.convertScaleAbs(scene)  # saturates to 0..255 like a sensor
    return Scene(image, corners, spec, glare_share)


# --- the document -----------------------------------------------------------------------------


def _lab_distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    lab = cv2.cvtColor(np.array([[a, b]], np.uint8), cv2.COLOR_BGR2LAB).astype(np.float32)
    return float(np.linalg.norm(lab[0, 0] - lab[0, 1]))


@lru_cache(maxsize=16)
def _texture(fmt: str, seed: int, card_style: int = 0) -> np.ndarray:
    """The flat document (BGRA: alpha shapes a card's rounded corners)."""
    rng = np.random.default_rng([seed, 0x7E87])
    if fmt == "id1":
        w, h = 1284, 810  # 15 px/mm
        background, header = CARD_STYLES[card_style]
        title = _CARD_TITLES[int(rng.integers(len(_CARD_TITLES)))]
        image = document_image(title, "booth", seed, width=w, height=h,
                               background=background, header=header)  # fmt: skip
        alpha = _alpha(fmt, w, h)
    else:
        w, h = 992, 1403
        tone = int(rng.integers(216, 236))
        image = letter_image(_LETTER_TITLES[int(rng.integers(len(_LETTER_TITLES)))], seed,
                             width=w, height=h, paper=(tone - 4, tone, tone))  # fmt: skip
        alpha = np.full((h, w), 255, np.uint8)
    return np.dstack([image, alpha])


def _alpha(fmt: str, w: int, h: int) -> np.ndarray:
    """Coverage of a flat document: an ID-1 card's rounded corners, a letter's square ones."""
    alpha = np.full((h, w), 255, np.uint8)
    if fmt == "id1":
        alpha[:] = 0
        r = round(3.18 * max(w, h) / 85.6)  # ISO/IEC 7810 corner radius
        cv2.rectangle(alpha, (r, 0), (w - 1 - r, h - 1), 255, -1)
        cv2.rectangle(alpha, (0, r), (w - 1, h - 1 - r), 255, -1)
        for cx, cy in ((r, r), (w - 1 - r, r), (w - 1 - r, h - 1 - r), (r, h - 1 - r)):
            cv2.circle(alpha, (cx, cy), r, 255, -1, lineType=cv2.LINE_AA)
    return alpha


def _placement(spec: SceneSpec, landscape: bool, aspect: float) -> np.ndarray:
    """True corners [TL, TR, BR, BL]: size, turn, shake, then a perspective nudge."""
    width, height = spec.size
    rng = np.random.default_rng([spec.seed, 0x91ACE])
    doc_w = spec.doc_scale * width
    doc_h = doc_w / aspect if landscape else doc_w * aspect
    half = np.array([[-doc_w, -doc_h], [doc_w, -doc_h], [doc_w, doc_h], [-doc_w, doc_h]]) / 2
    nudge = rng.uniform(-1, 1, (4, 2)) * spec.perspective * np.array([doc_w, doc_h])
    dx, dy, turn = spec.shake
    theta = math.radians(spec.rotation_deg + turn)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    centre = np.array([spec.centre[0] * width + dx, spec.centre[1] * height + dy])
    corners = (half + nudge) @ rot.T + centre
    # Keep the whole document in view with a margin: shrink it if it cannot fit, then
    # shift it back in.
    margin = 0.03 * height
    room = np.array([width, height]) - 2 * margin
    extent = corners.max(axis=0) - corners.min(axis=0)
    if (extent > room).any():
        middle = corners.mean(axis=0)
        corners = middle + (corners - middle) * float((room / extent).min())
    low = corners.min(axis=0) - margin
    high = corners.max(axis=0) - np.array([width, height]) + margin
    corners -= np.minimum(low, 0) + np.maximum(high, 0)
    return corners.astype(np.float64)


def _lay_document(
    scene: np.ndarray,
    texture: np.ndarray,
    corners: np.ndarray,
    spec: SceneSpec,
    landscape: bool,
    light: np.ndarray,
) -> float:
    """Composite the document (shadow, glare, motion blur) into `scene`, in place; returns
    the share of the document's pixels that glare blew out (the sensor clips after the
    light falls on the paper, so glare is added to the lit colour)."""
    height, width = scene.shape[:2]
    pad = int(spec.blur) + 40
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + pad
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    roi_w, roi_h = x1 - x0, y1 - y0
    th, tw = texture.shape[:2]
    # Pre-shrink the texture to about its size in the frame (warpPerspective has no area
    # filter), keeping the mapping exact through the corner coordinates.
    target = max(np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[2] - corners[3]))
    if not landscape:
        target = max(
            np.linalg.norm(corners[3] - corners[0]), np.linalg.norm(corners[2] - corners[1])
        )
    k = min(1.0, 1.15 * target / (tw if landscape else th))
    if k < 1.0:
        texture = cv2.resize(texture, (round(tw * k), round(th * k)), interpolation=cv2.INTER_AREA)
        th, tw = texture.shape[:2]
    src = np.array([[-0.5, -0.5], [tw - 0.5, -0.5], [tw - 0.5, th - 0.5], [-0.5, th - 0.5]])
    dst = corners - np.array([x0, y0], dtype=np.float32)
    m = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    warped = cv2.warpPerspective(texture, m, (roi_w, roi_h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
    lit = light[y0:y1, x0:x1]
    colour = cv2.multiply(warped[..., :3].astype(np.float32), cv2.merge([lit, lit, lit]))
    alpha = warped[..., 3].astype(np.float32) * (1 / 255)
    roi = scene[y0:y1, x0:x1]
    # A soft shadow down and to the right of the document.
    shadow = cv2.GaussianBlur(np.roll(alpha, (6, 8), axis=(0, 1)), (0, 0), 6)
    shade = 1 - 0.35 * shadow
    roi[:] = cv2.multiply(roi, cv2.merge([shade, shade, shade]))
    rng = np.random.default_rng([spec.seed, 0x6A2E])
    doc_w = float(np.linalg.norm(corners[1] - corners[0]))
    if spec.sheen > 0:  # broad highlight that stays well below saturation
        colour += _blob(rng, alpha, doc_w * 0.35, 20.0 * spec.sheen)
    blown = 0
    if spec.glare > 0:
        colour += _blob(rng, alpha, doc_w * spec.glare, 600.0)
        blown = int(np.count_nonzero((colour.min(axis=2) >= 255) & (alpha > 0.99)))
    colour = np.minimum(colour, 255, out=colour)  # the sensor clips here
    if spec.blur > 0 and spec.blur_kind == "motion":
        # The document moves, the desk does not: blur colour and coverage together.
        kernel = _line_kernel(spec.blur, spec.blur_angle_deg)
        a3 = cv2.merge([alpha, alpha, alpha])
        smeared = cv2.filter2D(cv2.multiply(colour, a3), -1, kernel)
        coverage = cv2.filter2D(alpha, -1, kernel)
        keep = 1 - coverage
        roi[:] = cv2.add(cv2.multiply(roi, cv2.merge([keep, keep, keep])), smeared)
    else:
        roi[:] = cv2.blendLinear(colour, roi, alpha, 1 - alpha)
    inside = int(np.count_nonzero(warped[..., 3] == 255))
    return blown / inside if inside else 0.0


def _blob(rng: np.random.Generator, alpha: np.ndarray, radius: float, peak: float) -> np.ndarray:
    """An elliptical Gaussian highlight (3 channels) centred somewhere on the document."""
    ys, xs = np.nonzero(alpha > 0.99)
    pick = rng.integers(len(xs))
    # Pull the centre towards the document's middle so the blob lands on it.
    cx = 0.5 * xs[pick] + 0.5 * xs.mean()
    cy = 0.5 * ys[pick] + 0.5 * ys.mean()
    h, w = alpha.shape
    stretch = rng.uniform(0.6, 1.0)
    # Separable: an outer product of two 1-D Gaussians.
    gx = np.exp(-(((np.arange(w, dtype=np.float32) - cx) / radius) ** 2) / 2)
    gy = np.exp(-(((np.arange(h, dtype=np.float32) - cy) / (radius * stretch)) ** 2) / 2)
    blob = np.outer(gy * peak, gx).astype(np.float32)
    return cv2.merge([blob, blob, blob])


def _line_kernel(length: float, angle_deg: float) -> np.ndarray:
    size = math.ceil(length) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    half = length / 2
    p0 = (round(c - dx * half), round(c - dy * half))
    p1 = (round(c + dx * half), round(c + dy * half))
    cv2.line(kernel, p0, p1, 1.0, 1, lineType=cv2.LINE_AA)
    return kernel / kernel.sum()


def _disk(radius: float) -> np.ndarray:
    size = math.ceil(radius) * 2 + 1
    kernel = np.zeros((size, size), np.float32)
    cv2.circle(kernel, (size // 2, size // 2), round(radius), 1.0, -1, lineType=cv2.LINE_AA)
    return kernel / kernel.sum()


def _lighting(rng: np.random.Generator, width: int, height: int, level: float) -> np.ndarray:
    """Exposure times vignetting and a slow unevenness; at most `level` (never brightens:
    a well-exposed camera leaves headroom below white)."""
    hw, hh = width // 4, height // 4
    y = np.linspace(-1, 1, hh, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, hw, dtype=np.float32)[None, :]
    field = 1 - 0.08 * (x * x + y * y) - 0.06 * _smooth_noise(rng, hw, hh, (3, 2))
    return cv2.resize(level * field, (width, height), interpolation=cv2.INTER_LINEAR)


# --- the desk ---------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cells: tuple[int, int]) -> np.ndarray:
    """Value noise in [0, 1): random cells, bicubic-upscaled."""
    grid = rng.random((cells[1], cells[0]), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _desk(
    kind: Background,
    colour: tuple[int, int, int],
    rng: np.random.Generator,
    width: int,
    height: int,
    light: np.ndarray,
) -> np.ndarray:
    """A float32 BGR desk, lit. Textures are built at half resolution (they are smooth) with
    full-resolution detail only where the material has it (fabric weave)."""
    hw, hh = width // 2, height // 2
    if kind == "wood":
        y = np.arange(hh, dtype=np.float32)[:, None]
        warp = _smooth_noise(rng, hw, hh, (6, 4)) * 40 + _smooth_noise(rng, hw, hh, (30, 8)) * 6
        period = rng.uniform(9, 16)
        grain = 0.5 + 0.5 * np.sin((y + warp) * (2 * math.pi / period))
        streaks = _smooth_noise(rng, hw, hh, (3, hh // 2))
        tone = 0.72 + 0.22 * grain + 0.12 * streaks
        rot = cv2.getRotationMatrix2D((hw / 2, hh / 2), rng.uniform(-30, 30), 1.25)
        tone = cv2.warpAffine(tone, rot, (hw, hh), borderMode=cv2.BORDER_REFLECT)
        tone = cv2.resize(tone, (width, height), interpolation=cv2.INTER_LINEAR)
    elif kind == "fabric":
        p = rng.uniform(4, 7)
        x = np.sin(np.arange(width, dtype=np.float32) * (2 * math.pi / p))[None, :]
        y = np.sin(np.arange(height, dtype=np.float32) * (2 * math.pi / p))[:, None]
        mottle = cv2.resize(_smooth_noise(rng, hw, hh, (20, 12)), (width, height))
        tone = 0.75 + 0.05 * (x * y) + 0.05 * np.abs(x + y) + 0.15 * mottle
    elif kind == "speckle":
        tone = 0.85 + 0.2 * _smooth_noise(rng, hw, hh, (40, 24))
        dots = rng.random((hh, hw), dtype=np.float32)
        tone[dots > 0.97] *= 0.45
        tone[dots < 0.02] += 0.5
        tone = cv2.resize(cv2.GaussianBlur(tone, (3, 3), 0), (width, height))
    else:
        tone = np.ones((height, width), np.float32)
    base = colour
    tone = cv2.multiply(np.ascontiguousarray(tone, dtype=np.float32), light)
    return cv2.merge([tone * float(base[0]), tone * float(base[1]), tone * float(base[2])])


def _clutter(
    desk: np.ndarray,
    rng: np.random.Generator,
    count: int,
    corners: np.ndarray | None,
    light: np.ndarray,
) -> None:
    """Pens and other papers beside (never on) the document, drawn into `desk`, lit by
    the light where they lie (it varies slowly). Overlap is checked on a quarter-size
    mask: the gap it leaves is at least ~20 px."""
    height, width = desk.shape[:2]
    q = 4
    keep_out = np.zeros((height // q, width // q), np.uint8)
    if corners is not None:
        cv2.fillConvexPoly(keep_out, (corners / q).round().astype(np.int32), 255)
        keep_out = cv2.dilate(keep_out, np.ones((11, 11), np.uint8))
    for _ in range(count):
        for _try in range(12):
            item = np.zeros_like(keep_out)
            if rng.random() < 0.5:  # a pen
                length, angle = rng.uniform(220, 380), rng.uniform(0, math.pi)
                cx, cy = rng.uniform(0, width), rng.uniform(0, height)
                lit = float(light[min(int(cy), height - 1), min(int(cx), width - 1)])
                dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
                p0 = np.array([cx - dx, cy - dy])
                p1 = np.array([cx + dx, cy + dy])
                thickness = int(rng.integers(10, 18))
                colour = tuple(lit * float(c) for c in rng.choice([(120, 40, 20), (25, 25, 25),
                                                                   (30, 30, 170)]))  # fmt: skip
                cv2.line(item, tuple((p0 / q).round().astype(int)),
                         tuple((p1 / q).round().astype(int)), 255, thickness // q + 1)  # fmt: skip
                if np.any(item & keep_out):
                    continue
                cv2.line(desk, tuple(p0.round().astype(int)), tuple(p1.round().astype(int)),
                         colour, thickness, lineType=cv2.LINE_AA)  # fmt: skip
            else:  # a paper of another colour and shape: sticky note, receipt
                pw = rng.uniform(150, 300)
                ph = pw * rng.choice([1.0, 2.6])
                cx, cy = rng.uniform(0, width), rng.uniform(0, height)
                lit = float(light[min(int(cy), height - 1), min(int(cx), width - 1)])
                box = cv2.boxPoints(((cx, cy), (pw, ph), rng.uniform(0, 90)))
                colour = tuple(lit * float(c) for c in rng.choice([(120, 230, 245), (200, 170, 250),
                                                                   (230, 200, 160)]))  # fmt: skip
                cv2.fillConvexPoly(item, (box / q).round().astype(np.int32), 255)
                if np.any(item & keep_out):
                    continue
                cv2.fillConvexPoly(desk, box.round().astype(np.int32), colour,
                                   lineType=cv2.LINE_AA)  # fmt: skip
            break
