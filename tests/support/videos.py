"""Small video files written with PyAV: the kiosk's file source in tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_video(
    path: Path, seconds: float = 0.5, fps: int = 15, size: tuple[int, int] = (320, 240)
) -> Path:
    """An MPEG-4 file whose frames differ in brightness (each one a new picture)."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(round(seconds * fps)):
            image = np.full((height, width, 3), 20 + i * 25 % 220, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
