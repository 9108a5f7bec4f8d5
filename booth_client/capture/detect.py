"""Find a document's four corners in a document-camera frame, and rectify it.

Detection runs on a downscaled copy (`work_width` pixels wide) with two independent
candidate sources, because neither alone survives every desk:

- edges (colour Canny on a median-filtered image: the median wipes out fabric weave and
  speckle but keeps the document's long straight border; colour, because a blue card
  header on brown wood can have the wood's grey level), and
- a foreground mask (distance, in Lab, from the desk colour seen along the frame border).

Every outline becomes a quad (approxPolyDP on its hull; the four hull vertices spanning
the most area when blur or a shadow cut the corners; else minAreaRect). Each side of a
quad is then snapped to the straight edge that the most profiles across it agree on (a
vote over offset and tilt, so a faint continuous border beats strong print that is only
here and there, and sampling stays clear of a card's rounded corners); the corners are
where adjacent sides meet, i.e. the virtual corners of the card's rectangle. A quad whose
aspect is wrong for the kind is also tried grown across one side to the right aspect
(a dark header band on a dark desk hides one border). Quads are scored by how much of
their outline lies on strong edges and how exactly, their size and their aspect; the
winner is snapped once more at full resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import cv2
import numpy as np

FormatName = Literal["id1", "a4"]


@dataclass(frozen=True, slots=True)
class DocFormat:
    name: FormatName
    long_mm: float
    short_mm: float
    # How the document is normally read: ID-1 cards landscape, A4 letters portrait.
    landscape: bool

    @property
    def aspect(self) -> float:
        """Long side over short side."""
        return self.long_mm / self.short_mm


FORMATS: Mapping[str, DocFormat] = {
    "id1": DocFormat("id1", 85.6, 53.98, landscape=True),  # ISO/IEC 7810 ID-1
    "a4": DocFormat("a4", 297.0, 210.0, landscape=False),  # ISO 216 A4 (and A5, A6: same √2)
}

# Document kinds (server/domain/documents.py names; the kiosk must not import server/).
# buku_tabungan -> "a4": Indonesian passbooks are about A6 (148 x 105 mm), which has A4's
# √2 aspect, so the A4 rectification keeps their proportions (rectify keeps the
# orientation the page was placed in, so a landscape passbook stays landscape).
KIND_FORMATS: Mapping[str, FormatName] = {
    "ktp": "id1",
    "kpj_card": "id1",
    "npwp": "id1",
    "kitas": "id1",
    "kk": "a4",
    "paklaring": "a4",
    "termination_letter": "a4",
    "buku_tabungan": "a4",
    "death_certificate": "a4",
    "heirs_letter": "a4",
    "doctor_statement": "a4",
}


def format_for(kind: str | DocFormat) -> DocFormat:
    """The format of a document kind (`ktp`) or a format name (`id1`, `a4`)."""
    if isinstance(kind, DocFormat):
        return kind
    name = KIND_FORMATS.get(kind, kind)
    try:
        return FORMATS[name]
    except KeyError:
        known = ", ".join([*FORMATS, *KIND_FORMATS])
        raise ValueError(f"unknown document kind {kind!r} (known: {known})") from None


def order_corners(points: np.ndarray) -> np.ndarray:
    """Four points as float32 [TL, TR, BR, BL] (clockwise on screen).

    TL is the corner whose direction from the centre is closest to up-left, which is
    unambiguous for documents turned less than about 40 degrees from upright.
    """
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # ascending angle is clockwise on screen (y points down)
    angles = np.sort(angles)
    off = np.abs((angles + 3 * math.pi / 4 + math.pi) % (2 * math.pi) - math.pi)
    return np.roll(pts, -int(np.argmin(off)), axis=0)


def side_lengths(corners: np.ndarray) -> tuple[float, float]:
    """(mean of top and bottom, mean of left and right) side lengths of ordered corners."""
    c = np.asarray(corners, dtype=np.float64)
    top, bottom = np.linalg.norm(c[1] - c[0]), np.linalg.norm(c[2] - c[3])
    left, right = np.linalg.norm(c[3] - c[0]), np.linalg.norm(c[2] - c[1])
    return float(top + bottom) / 2, float(left + right) / 2


def document_width_px(corners: np.ndarray, kind: str | DocFormat) -> float:
    """The document's width as read (ID-1: long side, A4: short side), in pixels."""
    horizontal, vertical = side_lengths(corners)
    long_px, short_px = max(horizontal, vertical), min(horizontal, vertical)
    return long_px if format_for(kind).landscape else short_px


def rectify(
    image: np.ndarray,
    corners: np.ndarray,
    kind: str | DocFormat,
    *,
    max_long_side: int = 2400,
) -> np.ndarray:
    """The document, warped flat to its true aspect.

    The long side keeps the resolution it has in the frame (longest of its two edges;
    nothing is invented), capped at `max_long_side`. Orientation is kept as placed: a
    card lying portrait comes out portrait at the ID-1 aspect (the CSO rotates it).
    """
    fmt = format_for(kind)
    c = order_corners(corners).astype(np.float64)
    edges = np.linalg.norm(c - np.roll(c, -1, axis=0), axis=1)  # top, right, bottom, left
    horizontal, vertical = side_lengths(c)
    long_px = min(float(max(edges)), float(max_long_side))
    long_side, short_side = max(2, round(long_px)), max(2, round(long_px / fmt.aspect))
    w, h = (long_side, short_side) if horizontal >= vertical else (short_side, long_side)
    # Corners are continuous positions of the paper's edge; pixel centres sit at integers.
    dst = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    m = cv2.getPerspectiveTransform(c.astype(np.float32), dst.astype(np.float32))
    return cv2.warpPerspective(
        image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


@dataclass(frozen=True, slots=True)
class DetectConfig:
    work_width: int = 640  # coarse detection resolution; refinement runs at full resolution
    min_area: float = 0.01  # share of the frame a document must cover to be considered
    max_aspect_error: float = 0.20  # |log(measured / true aspect)| beyond this: not it
    min_edge_support: float = 0.55  # share of the outline that must lie on a real edge
    max_candidates: int = 6  # outlines refined and scored, most promising first


def find_document(
    image: np.ndarray,
    kind: str | DocFormat | None = None,
    config: DetectConfig = DetectConfig(),
) -> np.ndarray | None:
    """The document's corners [TL, TR, BR, BL] in `image` pixels (float32 4x2), or None.

    `kind` (a document kind or format) sets the expected aspect; without it any
    rectangle between 1:1 and 2:1 qualifies. `image` is BGR (grey works too).
    """
    fmt = format_for(kind) if kind is not None else None
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    scale = min(1.0, config.work_width / w)
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    magnitude = _colour_gradient(cv2.GaussianBlur(small, (5, 5), 0))
    edges = _EdgeMap(
        magnitude=magnitude,
        local_max=cv2.dilate(magnitude, np.ones((5, 5), np.uint8)),  # forgive 1-2 px
        # Thresholds from the frame's own statistics (a sparse sample is plenty).
        strong=max(40.0, float(np.percentile(magnitude[::4, ::4], 90))),
        weak=max(12.0, 3.0 * float(np.median(magnitude[::4, ::4]))),
    )
    best: tuple[float, np.ndarray] | None = None

    def consider(quad: np.ndarray, new_side: int | None, weight: float = 1.0) -> None:
        nonlocal best
        score = weight * _score(quad, edges, fmt, config, new_side)
        if score > 0 and (best is None or score > best[0]):
            best = (score, quad)

    # Snapping costs more than the rest: only the most promising outlines get it (big,
    # and already lying on edges), which the document always is in practice.
    outlines = _outlines(small, config)
    outlines.sort(key=lambda q: -math.sqrt(cv2.contourArea(q))
                  * float(_side_support(q, edges.local_max, edges.strong).mean()))  # fmt: skip
    for outline in outlines[: config.max_candidates]:
        # Snap every side to the edge it sits near before judging it: outlines from
        # masks and approxPolyDP are a few pixels off, rounded card corners more.
        snapped = _refine(small, outline, reach=6.0)
        quad = outline if snapped is None else snapped
        consider(quad, None, 1.0 if snapped is not None else 0.8)
        if fmt is not None and _aspect_error(quad, fmt) > 0.04:
            for grown, side in _extensions(quad, fmt):
                if _plausible(grown, *small.shape[1::-1]):
                    # A guessed side counts only if it finds an edge to snap to.
                    found = _refine(small, grown, reach=6.0)
                    if found is not None:
                        consider(found, side)
    if best is None:
        return None
    corners = order_corners(best[1] / scale)
    for reach in (max(3.0, 1.5 / scale), 2.0):  # full resolution: near, then nearer
        refined = _refine(image, corners, reach)
        if refined is None:
            break
        corners = refined
    return corners


def refit(image: np.ndarray, corners: np.ndarray, shake: float = 12.0) -> np.ndarray | None:
    """`corners` found on one frame, re-fitted to the same document in another frame of
    the burst (moved by up to `shake` px); None if a side no longer fits."""
    refined = _refine(image, order_corners(corners), shake)
    return None if refined is None else _refine(image, refined, 2.0)


# --- candidates -------------------------------------------------------------------------------


def _colour_gradient(image: np.ndarray) -> np.ndarray:
    """Per pixel, the largest gradient magnitude of the three channels: a blue card header
    on brown wood can have the same grey level as the wood, but not the same colour."""
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    b, g, r = cv2.split(cv2.magnitude(gx.reshape(-1, 1), gy.reshape(-1, 1)).reshape(gx.shape))
    return cv2.max(cv2.max(b, g), r)


def _outlines(small: np.ndarray, config: DetectConfig) -> list[np.ndarray]:
    """Candidate quads (ordered, plausible, without near-duplicates)."""
    h, w = small.shape[:2]
    seen: list[np.ndarray] = []
    for quad in _candidate_quads(small, config):
        ordered = order_corners(quad)
        if _plausible(ordered, w, h) and all(
            np.abs(ordered - other).max() >= 3.0 for other in seen
        ):
            seen.append(ordered)
    return seen


def _candidate_quads(small: np.ndarray, config: DetectConfig) -> list[np.ndarray]:
    h, w = small.shape[:2]
    min_area = config.min_area * h * w
    outlines: list[np.ndarray] = []
    # 1. Edges (colour Canny: max over channels) of a texture-suppressed image. A
    # document is the outer outline of its edges, or a hole enclosed by them.
    smooth = cv2.medianBlur(small, 5)
    min_extent = 0.5 * math.sqrt(min_area)
    for low, high in ((40, 100), (8, 24)):
        edges = _drop_short(cv2.Canny(smooth, low, high), min_extent)
        edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
        outlines += cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        outlines += _enclosed(edges, min_area)
    # 2. What differs from the desk, whose colours are what the frame's border shows:
    # anything further (in Lab) from the desk's median than the desk's own texture goes.
    lab = cv2.cvtColor(cv2.GaussianBlur(smooth, (0, 0), 2.0), cv2.COLOR_BGR2LAB)
    lab = lab.astype(np.float32)
    band = max(4, h // 40)
    border = np.concatenate(
        [lab[:band].reshape(-1, 3), lab[-band:].reshape(-1, 3),
         lab[:, :band].reshape(-1, 3), lab[:, -band:].reshape(-1, 3)]
    )  # fmt: skip
    desk = np.median(border, axis=0)
    diff = lab - desk
    distance = np.sqrt(cv2.transform(diff * diff, np.ones((1, 3), np.float32)))
    border_distance = np.sqrt(((border - desk) ** 2).sum(axis=1))
    # Two cuts: just beyond the desk's own texture, which keeps a card's darker header;
    # and Otsu's, which keeps a blurred page from merging with blotches of the desk. The
    # texture is measured on the border, robustly: clutter may cover part of it.
    p50, p90 = np.percentile(border_distance, [50, 90])
    spread = max(12.0, min(1.5 * float(p90), 3.0 * float(p50)))
    scaled = cv2.convertScaleAbs(distance, alpha=255.0 / max(float(distance.max()), 1.0))
    otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    open_k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))  # cut pens off the paper
    for cut in {spread, max(12.0, otsu * float(distance.max()) / 255.0)}:
        fg = cv2.morphologyEx((distance > cut).astype(np.uint8) * 255, cv2.MORPH_OPEN, open_k)
        outlines += cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    quads: list[np.ndarray] = []
    for outline in outlines:
        # The hull's area: an outline broken at a blurred corner still spans the page.
        if cv2.contourArea(cv2.convexHull(outline)) >= min_area:
            quad = _quad_of(outline)
            if quad is not None:
                quads.append(quad)
    return quads


def _enclosed(edges: np.ndarray, min_area: float) -> list[np.ndarray]:
    """Outlines of the large regions that edges enclose (not touching the frame)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(255 - edges, connectivity=4)
    h, w = edges.shape
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    bw, bh = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    inside = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)
    out: list[np.ndarray] = []
    for i in np.nonzero(inside & (stats[:, cv2.CC_STAT_AREA] >= min_area))[0]:
        region = (labels[y[i] : y[i] + bh[i], x[i] : x[i] + bw[i]] == i).astype(np.uint8)
        found = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE,
                                 offset=(int(x[i]), int(y[i])))[0]  # fmt: skip
        out += found
    return out


def _drop_short(edges: np.ndarray, min_extent: float) -> np.ndarray:
    """Edge map without the pieces too small to outline a document (texture makes
    thousands; measuring each outline in Python would cost more than the rest)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(edges, connectivity=8)
    extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    keep = extent >= min_extent
    keep[0] = False  # the background
    return (keep.astype(np.uint8) * 255)[labels]


def _quad_of(contour: np.ndarray) -> np.ndarray | None:
    hull = cv2.convexHull(contour)
    perimeter = cv2.arcLength(hull, True)
    for eps in (0.02, 0.035):
        approx = cv2.approxPolyDP(hull, eps * perimeter, True).reshape(-1, 2)
        if len(approx) == 4:
            return approx.astype(np.float32)
        if 4 < len(approx) <= 8:
            # Cut or rounded corners (blur, a shadow) leave extra vertices: the four
            # that span the largest area are the document's corners, roughly.
            best = max(combinations(range(len(approx)), 4),
                       key=lambda ix: cv2.contourArea(approx[list(ix)]))  # fmt: skip
            quad = approx[list(best)].astype(np.float32)
            if cv2.contourArea(quad) > 0.85 * cv2.contourArea(hull):
                return quad
    # Not a clean polygon: the minimum-area rectangle, if the outline fills it (a pen
    # lying on paper does not).
    rect = cv2.minAreaRect(hull)
    box_area = rect[1][0] * rect[1][1]
    if box_area > 0 and cv2.contourArea(hull) / box_area > 0.9:
        return cv2.boxPoints(rect).astype(np.float32)
    return None


# --- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _EdgeMap:
    magnitude: np.ndarray  # colour gradient magnitude
    local_max: np.ndarray  # colour gradient magnitude, max over a 5x5 neighbourhood
    strong: float  # a document's border
    weak: float  # a faint border: well above the desk's own texture, no more


def _plausible(quad: np.ndarray, w: int, h: int) -> bool:
    """Inside the frame (a document cut off by it, or the desk's own edge, is not it),
    convex, and with opposite sides of similar length (a near-overhead camera)."""
    if (quad < 2).any() or (quad[:, 0] > w - 3).any() or (quad[:, 1] > h - 3).any():
        return False
    lengths = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    if lengths.min() < 8 or lengths.min() / lengths.max() < 0.25:
        return False
    return bool(cv2.isContourConvex(quad.astype(np.float32)))


def _aspect_error(quad: np.ndarray, fmt: DocFormat | None) -> float:
    horizontal, vertical = side_lengths(quad)
    aspect = max(horizontal, vertical) / min(horizontal, vertical)
    if fmt is None:
        return 0.0 if aspect <= 2.0 else math.log(aspect / 2.0)
    return abs(math.log(aspect / fmt.aspect))


def _extensions(quad: np.ndarray, fmt: DocFormat) -> list[tuple[np.ndarray, int]]:
    """`quad` (ordered) grown across one side to the format's aspect: (quad, side).

    A card whose dark header band lies on a dark desk shows mostly its light body; its
    outline is the body's, pushed out across the faint side until the aspect is right.
    The pushed side is snapped to, and checked for, a (weak) edge.
    """
    horizontal, vertical = side_lengths(quad)
    out = []
    # Side i runs from corner i to i + 1: 0 top, 1 right, 2 bottom, 3 left. Growing
    # side i moves its two corners away from the opposite ones.
    for side, (grow, keep) in enumerate((((0, 1), (3, 2)), ((1, 2), (0, 3)),
                                         ((2, 3), (1, 0)), ((3, 0), (2, 1)))):  # fmt: skip
        moving, fixed = (vertical, horizontal) if side in (0, 2) else (horizontal, vertical)
        targets = [fixed / fmt.aspect, fixed * fmt.aspect]  # either orientation
        growth = [t / moving for t in targets if 1.04 < t / moving < 2.5]
        if not growth:
            continue
        f = min(growth)
        grown = quad.copy()
        for g, k in zip(grow, keep, strict=True):
            grown[g] = quad[k] + (quad[g] - quad[k]) * f
        out.append((grown, side))
    return out


def _score(
    quad: np.ndarray,
    edges: _EdgeMap,
    fmt: DocFormat | None,
    config: DetectConfig,
    new_side: int | None = None,
) -> float:
    """How much `quad` (ordered) looks like the document; 0 if it cannot be."""
    h, w = edges.local_max.shape
    if not _plausible(quad, w, h):
        return 0.0
    aspect_error = _aspect_error(quad, fmt)
    if aspect_error > config.max_aspect_error:
        return 0.0
    sides = _side_support(quad, edges.local_max, edges.strong)
    if new_side is not None:
        faint = _side_support(quad, edges.local_max, edges.weak)[new_side]
        if faint < 0.6:
            return 0.0
        sides[new_side] = 0.8 * faint  # a guess that found an edge, not a seen border
    support = float(sides.mean())
    if support < config.min_edge_support:
        return 0.0
    area = float(cv2.contourArea(quad)) / (h * w)
    # How exactly the sides sit on their edges (no neighbourhood allowance): of two
    # near-identical quads, the one on the paper's edge beats the one half on its
    # shadow, which a larger area alone would favour.
    alignment = _side_mean(quad, edges.magnitude) / edges.strong
    return (
        math.sqrt(area)
        * support**2
        * math.exp(-((aspect_error / 0.15) ** 2))  # perspective alone moves it ~0.05
        * math.sqrt(min(alignment, 16.0))
    )


def _side_mean(corners: np.ndarray, image: np.ndarray, samples: int = 24) -> float:
    """Mean of `image` (bilinear) at points along the quad's sides, ends excluded."""
    t = np.linspace(0.1, 0.9, samples, dtype=np.float32)[:, None]
    a, b = corners.astype(np.float32), np.roll(corners, -1, axis=0).astype(np.float32)
    points = (a[:, None, :] * (1 - t) + b[:, None, :] * t).reshape(1, -1, 2)
    values = cv2.remap(image, points[..., 0], points[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return float(values.mean())


def _side_support(
    corners: np.ndarray, local_max: np.ndarray, threshold: float, samples: int = 24
) -> np.ndarray:
    """Per side, the share of points along it (ends excluded) on an edge >= threshold."""
    t = np.linspace(0.1, 0.9, samples, dtype=np.float32)[:, None]
    a, b = corners, np.roll(corners, -1, axis=0)
    points = (a[:, None, :] * (1 - t) + b[:, None, :] * t).reshape(-1, 2)
    xs = np.clip(points[:, 0].round().astype(int), 0, local_max.shape[1] - 1)
    ys = np.clip(points[:, 1].round().astype(int), 0, local_max.shape[0] - 1)
    return (local_max[ys, xs] >= threshold).reshape(4, samples).mean(axis=1)


# --- refinement -------------------------------------------------------------------------------


def _refine(image: np.ndarray, corners: np.ndarray, reach: float) -> np.ndarray | None:
    """Corners re-found: per side, the straight edge within `reach` px that the most
    points along the side agree on; adjacent lines intersected. None if a side has no
    such edge."""
    lines = []
    for i in range(4):
        a, b = corners[i].astype(np.float64), corners[(i + 1) % 4].astype(np.float64)
        line = _fit_side(image, a, b, reach)
        if line is None:
            return None
        lines.append(line)
    out = []
    for i in range(4):
        point = _intersect(lines[i - 1], lines[i])  # previous side meets this side
        if point is None:
            return None
        out.append(point)
    refined = np.array(out, dtype=np.float32)
    # Corners are where the lines meet, beyond the sampled stretch: a side that tilted
    # wrongly throws its corners far. That is a failed refinement, not a better quad.
    if np.linalg.norm(refined - corners, axis=1).max() > 3 * reach + 2:
        return None
    return refined


def _fit_side(
    image: np.ndarray, a: np.ndarray, b: np.ndarray, reach: float, samples: int = 40
) -> tuple[np.ndarray, np.ndarray] | None:
    """The edge along segment a-b: (point, unit direction), or None.

    Each of `samples` profiles across the segment (clear of the corners: ID-1 cards
    have rounded ones) gives its strongest colour steps; a vote over lines (offset x
    tilt) picks the line the most profiles agree on, so a border that is faint but
    continuous beats strong print that is only here and there.
    """
    length = float(np.linalg.norm(b - a))
    if length < 10:
        return None
    direction = (b - a) / length
    normal = np.array([-direction[1], direction[0]])
    t = np.linspace(0.12, 0.88, samples)
    offsets = np.arange(-reach, reach + 0.25, 0.5)
    base = a[None, :] + t[:, None] * (b - a)[None, :]
    pts = base[:, None, :] + offsets[None, :, None] * normal[None, None, :]
    profile = cv2.remap(
        image,
        pts[..., 0].astype(np.float32),
        pts[..., 1].astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float32)
    smoothed = cv2.GaussianBlur(profile, (5, 1), 0)  # along the normal only: less noise
    step = np.abs(np.diff(smoothed, axis=1))
    step = step.max(axis=2) if step.ndim == 3 else step  # (samples, len(offsets) - 1)
    if step.shape[1] < 3:
        return None
    # Local maxima of each profile, up to three per profile.
    mid = step[:, 1:-1]
    floor = max(3.0, 0.15 * float(np.median(step.max(axis=1))))
    peak = (mid >= step[:, :-2]) & (mid > step[:, 2:]) & (mid >= floor)
    rows, cols = np.nonzero(peak)
    if rows.size == 0:
        return None
    cols = cols + 1
    strength = step[rows, cols]
    order = np.lexsort((-strength, rows))
    rows, cols, strength = rows[order], cols[order], strength[order]
    first = np.searchsorted(rows, rows)  # index where each row's run starts
    top = (np.arange(rows.size) - first) < 3
    rows, cols, strength = rows[top], cols[top], strength[top]
    # Sub-sample peak position (parabola through the peak and its neighbours).
    left, right = step[rows, cols - 1], step[rows, cols + 1]
    denom = left - 2 * strength + right
    safe = np.where(np.abs(denom) > 1e-6, denom, -1.0)
    frac = np.clip(0.5 * (left - right) / safe, -0.5, 0.5)
    pos = offsets[0] + (cols + 0.5 + frac) * 0.5  # step k lies between samples k, k+1
    u = (t[rows] - 0.5) * length  # along the side, centred
    # Vote: tilts whose ends move by up to `reach`, offsets in 1 px bins; a peak counts
    # 1 to 1.5 by its strength, so agreement (count) matters more than contrast.
    span = 0.38 * length
    tilts = np.linspace(-reach / span, reach / span, int(4 * reach) + 1)
    intercept = pos[None, :] - tilts[:, None] * u[None, :]
    shift = math.ceil(2 * reach) + 1  # |intercept| <= 2 * reach
    bins = np.round(intercept + shift).astype(int)
    n_bins = 2 * shift + 1
    weight = 1.0 + 0.5 * strength / max(float(strength.max()), 1e-6)
    flat = (np.arange(len(tilts))[:, None] * n_bins + bins).ravel()
    votes = np.bincount(flat, weights=np.broadcast_to(weight, bins.shape).ravel(),
                        minlength=len(tilts) * n_bins)  # fmt: skip
    best = int(votes.argmax())
    tilt, offset = tilts[best // n_bins], best % n_bins - shift
    inliers = np.abs(pos - (offset + tilt * u)) <= 1.0
    if np.unique(rows[inliers]).size < samples // 3:
        return None
    found = base[rows[inliers]] + pos[inliers, None] * normal[None, :]
    vx, vy, x0, y0 = cv2.fitLine(found.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01)
    return np.array([x0[0], y0[0]]), np.array([vx[0], vy[0]])


def _intersect(
    p: tuple[np.ndarray, np.ndarray], q: tuple[np.ndarray, np.ndarray]
) -> np.ndarray | None:
    (p0, pd), (q0, qd) = p, q
    det = pd[0] * (-qd[1]) - pd[1] * (-qd[0])
    if abs(det) < 1e-6:
        return None
    d = q0 - p0
    s = (d[0] * (-qd[1]) - d[1] * (-qd[0])) / det
    return p0 + s * pd
