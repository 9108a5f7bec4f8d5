"""A document read from any picture: the kiosk's rectified capture, or a plain photo with
the document somewhere in it (then it is found and flattened first, as the kiosk would).

    reading, located = read_picture(image, "ktp")
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from booth_client.capture.detect import find_document, format_for, rectify
from reading.document import Reading, read_image
from reading.engine import OcrEngine, shared_engine

# A document found in a photo must cover at least this share of it: a smaller "document"
# is more likely the KTP's own photo box than the card.
MIN_SHARE = 0.12


def locate(image: np.ndarray, kind: str) -> np.ndarray | None:
    """The document of `kind` in a photo, flattened to its true aspect, or None when the
    picture shows no such document with desk around it (a rectified capture, a crop)."""
    corners = find_document(image, kind)
    if corners is None:
        return None
    h, w = image.shape[:2]
    x, y = corners[:, 0], corners[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    if area < MIN_SHARE * w * h:
        return None
    return rectify(image, corners, format_for(kind))


def read_picture(
    image: np.ndarray, kind: str, engine: OcrEngine | None = None
) -> tuple[Reading, bool]:
    """(reading, whether a document was located and flattened first). When the flattened
    document reads fewer fields than the picture as given, the picture's reading wins."""
    started = time.perf_counter()
    engine = engine or shared_engine()
    flat = locate(image, kind)
    if flat is None:
        reading = read_image(kind, image, engine)
        located = False
    else:
        reading = read_image(kind, flat, engine)
        located = True
        if not reading.complete():
            whole = read_image(kind, image, engine)
            if _filled(whole) > _filled(reading):
                reading, located = whole, False
    return replace(reading, ms=(time.perf_counter() - started) * 1000), located


def _filled(reading: Reading) -> tuple[int, float]:
    fields = reading.fields.values()
    return sum(f.value is not None for f in fields), sum(f.confidence for f in fields)
