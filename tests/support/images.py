"""Real document pictures for upload tests (cv2-encoded, optionally with EXIF GPS)."""

from __future__ import annotations

import struct

import cv2
import numpy as np

GPS = b"GPS 6.2088S 106.8456E Jl. Sudirman"


def picture(width: int = 320, height: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    image = np.broadcast_to(base, (height, width, 3)).copy()
    image[::8] = rng.integers(0, 255, size=(len(image[::8]), width, 3), dtype=np.uint8)
    return image


def jpeg(seed: int = 0, quality: int = 90, **size: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", picture(seed=seed, **size), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(buf.tobytes())


def png(seed: int = 0, **size: int) -> bytes:
    ok, buf = cv2.imencode(".png", picture(seed=seed, **size))
    assert ok
    return bytes(buf.tobytes())


def jpeg_with_gps(seed: int = 0) -> bytes:
    """A JPEG carrying an EXIF APP1 segment with a location string, as phones write."""
    clean = jpeg(seed)
    payload = b"Exif\x00\x00MM\x00*" + GPS
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return clean[:2] + app1 + clean[2:]
