"""Is this picture good enough: sharpness, glare, and the sharpest frame of a burst.

Scores are computed at a fixed working size (the document's long side resized to
`work_size` pixels), so the same thresholds hold for a 1080p and a 4K document camera and
for an ID card and an A4 letter: what matters is blur relative to the document, which is
what decides whether its text can be read.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

WORK_SIZE = 640


def to_work_size(image: np.ndarray, work_size: int = WORK_SIZE) -> np.ndarray:
    """`image` with its long side resized to `work_size` (area filter down, linear up)."""
    h, w = image.shape[:2]
    k = work_size / max(h, w)
    if abs(k - 1) < 1e-3:
        return image
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)


def to_work_grey(image: np.ndarray, work_size: int = WORK_SIZE) -> np.ndarray:
    """Grey, long side resized to `work_size`."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return to_work_size(grey, work_size)


_ORIENTATIONS = 8  # edge-normal bins of 22.5 degrees
_CONTRAST_RADIUS = 6  # px at working size: wider than any blur worth measuring
_MIN_CONTRAST = 60.0  # grey levels: print on paper, not sensor noise or paper grain


def sharpness(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """How steep the picture's edges are: 0 (smeared) to about 0.5 (a clean step).

    At every pixel with real contrast nearby (max - min around it), the gradient over
    that contrast is 1 / (width of the edge in pixels), whatever the ink's contrast.
    Its 95th percentile is taken per edge orientation and the worst orientation wins:
    motion blur smears only the edges across its direction, and the plain variance of
    the Laplacian, averaged over all of them, hardly moves. `image` should already be
    at working size (`to_work_grey`); a light Gaussian keeps sensor noise out.
    """
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    g = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 0.7)
    # A square window (separable, so cheap): max - min around each pixel.
    window = np.ones((2 * _CONTRAST_RADIUS + 1,) * 2, np.uint8)
    contrast = cv2.dilate(g, window) - cv2.erode(g, window)
    edge = contrast >= _MIN_CONTRAST
    if mask is not None:
        edge &= mask > 0
    if np.count_nonzero(edge) < 50:
        return 0.0  # nothing printed (or nothing left of it) to judge
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)[edge] * 0.125  # Sobel's weights sum to 8
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)[edge] * 0.125
    steepness = cv2.magnitude(gx, gy).ravel() / contrast[edge]
    # Orientation of the edge normal, modulo 180 degrees, in bins.
    angle = cv2.phase(gx, gy).ravel()  # 0..2 pi
    bins = np.round(angle * (_ORIENTATIONS / np.pi)).astype(np.int64) % _ORIENTATIONS
    # 95th percentile per bin from one 2-D histogram (bin x steepness in 1/512 steps).
    levels = np.minimum((steepness * 512).astype(np.int64), 511)
    histogram = np.bincount(bins * 512 + levels, minlength=_ORIENTATIONS * 512)
    histogram = histogram.reshape(_ORIENTATIONS, 512)
    counts = histogram.sum(axis=1)
    cumulative = histogram.cumsum(axis=1)
    per_bin = [
        (int(np.searchsorted(cumulative[i], 0.95 * counts[i])) + 0.5) / 512
        for i in range(_ORIENTATIONS)
        if counts[i] >= 30  # too few edges this way to say anything
    ]
    return min(per_bin) if per_bin else 0.0


def document_sharpness(document: np.ndarray, work_size: int = WORK_SIZE) -> float:
    """Sharpness of a rectified document at working size (border trimmed: desk)."""
    grey = to_work_grey(document, work_size)
    h, w = grey.shape
    m = max(2, round(0.02 * min(h, w)))
    return sharpness(grey[m : h - m, m : w - m])


def glare_share(
    document: np.ndarray,
    *,
    level: int = 248,
    min_blob: float = 0.001,
    min_drop: float = 12.0,
    work_size: int = WORK_SIZE,
) -> float:
    """Share of the document blown out by glare: pixels near white in every channel,
    in blobs. A median filter and an opening drop single noisy pixels and thin white
    print (a card's white title text); blobs smaller than `min_blob` of the document
    are dropped too, so a shiny dot does not fail a capture.

    Glare is a highlight: a saturated spot with a falloff to the paper around it. White
    paper that the camera exposes to its limit is blown out too, but as a plateau, and
    it must not count (a good letter would be refused). A blown blob counts as glare:
    - when the paper in a ring around it (print left out), or the page's paper as a
      whole, is at least `min_drop` grey levels below `level`: it stands above its
      paper (every card, any paper the camera does not itself blow out);
    - on paper that is itself nearly white around it, only when it is a spot (at least
      1% of the page) that erased the print: a hole in the print with print all round
      it. A plateau of white paper keeps its print.
    """
    small = document
    h, w = document.shape[:2]
    k = work_size / max(h, w)
    if k < 1:
        small = cv2.resize(document, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        b, g, r = cv2.split(small)
        raw = cv2.min(cv2.min(b, g), r)
    else:
        raw = small
    darkest = cv2.medianBlur(raw, 5)
    near_white = (darkest >= level).astype(np.uint8)
    blown = cv2.morphologyEx(
        near_white, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    )
    count, labels, stats, _ = cv2.connectedComponentsWithStats(blown, connectivity=8)
    total = blown.shape[0] * blown.shape[1]
    blobs = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= min_blob * total]
    if not blobs:
        return 0.0
    # The paper without its print: the brightest nearby (print is thinner than 9 px here);
    # print: clearly darker than that paper.
    paper = cv2.dilate(darkest, np.ones((9, 9), np.uint8))
    ink = (raw.astype(np.int16) + 50 < paper).astype(np.uint8)
    page_ink = cv2.countNonZero(ink) / total
    # The page's own paper level: a page that is not itself near white cannot blow out
    # by its own light, whatever the paper just around a blob looks like.
    page_paper = float(np.median(paper))
    glare = 0
    for i in blobs:
        area = int(stats[i, cv2.CC_STAT_AREA])
        x0, y0, x1, y1 = _around(stats[i], labels.shape)
        blob = (labels[y0:y1, x0:x1] == i).astype(np.uint8)
        around = min(_paper_around(blob, stats[i], paper[y0:y1, x0:x1]), page_paper)
        highlight = around <= level - min_drop
        if highlight or (area >= 0.01 * total and _erased_spot(blob, (x0, y0), ink, page_ink)):
            glare += area
    return glare / total


def _reach(box: np.ndarray) -> int:
    """Half a blob's radius, at least 6 px: how far around it its paper is looked at."""
    return max(6, round(0.5 * np.sqrt(int(box[cv2.CC_STAT_AREA]) / np.pi)))


def _around(box: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    reach = _reach(box)
    x, y = int(box[cv2.CC_STAT_LEFT]), int(box[cv2.CC_STAT_TOP])
    bw, bh = int(box[cv2.CC_STAT_WIDTH]), int(box[cv2.CC_STAT_HEIGHT])
    return (max(0, x - reach), max(0, y - reach),
            min(shape[1], x + bw + reach), min(shape[0], y + bh + reach))  # fmt: skip


def _paper_around(blob: np.ndarray, box: np.ndarray, paper: np.ndarray) -> float:
    """Median paper level in a ring around `blob`; 0 when the blob leaves no ring inside
    the document (it is the whole page: nothing to compare it with; it counts)."""
    reach = _reach(box)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    ring = cv2.dilate(blob, kernel) > blob
    if np.count_nonzero(ring) < 20:
        return 0.0
    return float(np.median(paper[ring]))


def _erased_spot(blob: np.ndarray, at: tuple[int, int], ink: np.ndarray, page_ink: float) -> bool:
    """Did this blob (its box's pixels, whose top-left is `at` in the page) erase print?
    Inside it lies a disc with no print at all, of a radius over 3.75% of the page's
    long side (11 mm on A4: two lines of body text and their gap, more than any gap a
    page's own layout leaves inside its print), with print all around it: above, below,
    left and right, in 60 degree sectors of the ring out to twice its radius, each at
    half the page's print density or more. A margin, or the blank beside a short block
    of lines, has print on some sides only; a page with hardly any print cannot say."""
    if page_ink < 0.005:
        return False
    x0, y0 = at
    h, w = blob.shape
    filled = cv2.morphologyEx(blob, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    nearby_ink = cv2.dilate(ink[y0 : y0 + h, x0 : x0 + w], np.ones((3, 3), np.uint8))
    clear = (filled > 0) & (nearby_ink == 0)
    distance = cv2.distanceTransform(clear.astype(np.uint8), cv2.DIST_L2, 5)
    _, radius, _, (cx, cy) = cv2.minMaxLoc(distance)
    if radius < 0.0375 * max(ink.shape):
        return False
    cx, cy, reach = cx + x0, cy + y0, round(2 * radius)
    top, left = max(0, cy - reach), max(0, cx - reach)
    around = ink[top : cy + reach + 1, left : cx + reach + 1]
    dy, dx = np.ogrid[
        top - cy : top - cy + around.shape[0], left - cx : left - cx + around.shape[1]
    ]
    r2 = dx * dx + dy * dy
    ring = (r2 >= radius**2) & (r2 <= reach**2)
    # Four sectors of 60 degrees, to the right, left, below and above; each must hold
    # print at half the page's density at least.
    for side in (
        dx >= 1.7 * abs(dy),
        -dx >= 1.7 * abs(dy),
        dy >= 1.7 * abs(dx),
        -dy >= 1.7 * abs(dx),
    ):
        area = ring & side
        if int(np.count_nonzero(around[area])) < 0.5 * page_ink * max(int(area.sum()), 1):
            return False
    return True


def frame_sharpness(
    images: Sequence[np.ndarray], region: np.ndarray | None = None, work_size: int = WORK_SIZE
) -> list[float]:
    """Sharpness of each frame of a burst. With `region` (the document's quad in frame
    pixels) only inside it, shrunk a little so hand shake does not bring the desk in
    (the desk does not shake; the hand holding the document does), at about the scale
    `document_sharpness` uses."""
    if region is None:
        return [sharpness(to_work_grey(image, work_size)) for image in images]
    quad = np.asarray(region, np.float32).reshape(4, 2)
    h, w = images[0].shape[:2]
    x0, y0 = np.floor(quad.min(axis=0)).astype(int).clip(0, None)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 1
    x1, y1 = min(int(x1), w), min(int(y1), h)
    k = min(1.0, work_size / max(x1 - x0, y1 - y0, 1))
    size = (max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k)))
    mask = np.zeros((size[1], size[0]), np.uint8)
    centre = quad.mean(axis=0)
    inner = (centre + 0.85 * (quad - centre) - (x0, y0)) * k
    cv2.fillConvexPoly(mask, inner.round().astype(np.int32), 1)
    scores = []
    for image in images:
        crop = image[y0:y1, x0:x1]
        grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        if k < 1:
            # Linear, not area: 8x cheaper, and its slight aliasing is the same for every
            # frame of the burst, which is all these scores are compared with.
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR)
        scores.append(sharpness(grey, mask))
    return scores


def sharpest(images: Sequence[np.ndarray], region: np.ndarray | None = None) -> int:
    """Index of the sharpest frame of a burst (the latest one on a tie)."""
    scores = frame_sharpness(images, region)
    return max(range(len(scores)), key=lambda i: (scores[i], i))
