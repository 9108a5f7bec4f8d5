"""Synthetic document pictures, for the demo: what a participant would show the document
camera. Each is a card with the document's name, a few fake fields and the booth's label,
so a CSO can tell them apart in the console."""

from __future__ import annotations

import cv2
import numpy as np

WIDTH, HEIGHT = 1200, 760


def render_document(title: str, booth_label: str, seed: int = 0) -> bytes:
    """A JPEG of a document card titled `title` (e.g. "KTP (identity card)")."""
    rng = np.random.default_rng(seed)
    card = np.full((HEIGHT, WIDTH, 3), (236, 242, 246), dtype=np.uint8)
    cv2.rectangle(card, (0, 0), (WIDTH, 120), (108, 79, 11), thickness=-1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = min(1.4, 1.4 * (WIDTH - 80) / max(cv2.getTextSize(title, font, 1.4, 3)[0][0], 1))
    cv2.putText(card, title, (40, 80), font, scale, (255, 255, 255), 3)
    fields = ["NAMA: PESERTA DEMO", "NIK: ************0001", "ALAMAT: JL. CONTOH NO. 1",
              f"DIPERLIHATKAN DI {booth_label.upper()}"]  # fmt: skip
    for row, text in enumerate(fields):
        cv2.putText(card, text, (40, 220 + row * 80), font, 1.1, (40, 40, 40), 2)
    # A photo box with texture, so the picture is not trivially compressible.
    photo = rng.integers(90, 200, size=(300, 240, 3), dtype=np.uint8)
    card[200:500, WIDTH - 300 : WIDTH - 60] = photo
    ok, buf = cv2.imencode(".jpg", card, [cv2.IMWRITE_JPEG_QUALITY, 88])
    assert ok
    return bytes(buf.tobytes())
