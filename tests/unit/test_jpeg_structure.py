"""The upload path's JPEG walk (server/domain/jpeg.py) held to a real decoder.

The server does not decode uploaded pixels; it relies on this walk refusing every stream a
decoder cannot read. So: pictures as cameras and encoders make them are accepted unchanged,
and for pictures whose headers were damaged at random (a byte changed, bytes cut or
inserted), whatever the walk accepts, OpenCV's libjpeg decodes to the size the walk read.
"""

from __future__ import annotations

import os
import struct

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from server.domain.images import ImageRejected, check_image
from server.domain.jpeg import JpegError, inspect_jpeg


def scene(width: int, height: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(width * 7 + height)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x ^ y) & 0xFF], axis=-1)
    noisy = base + rng.integers(0, 40, base.shape)
    image = np.clip(noisy, 0, 255).astype(np.uint8)
    return image[:, :, 0] if channels == 1 else image


VARIANTS = {
    "baseline 4:2:0": (96, 64, 3, []),
    "grayscale": (80, 72, 1, []),
    "progressive": (96, 64, 3, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    "restart markers": (96, 64, 3, [cv2.IMWRITE_JPEG_RST_INTERVAL, 1]),
    "4:4:4 optimised": (
        72, 80, 3,
        [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
         cv2.IMWRITE_JPEG_OPTIMIZE, 1],
    ),
    "progressive + restarts": (
        64, 64, 3, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_RST_INTERVAL, 2]
    ),
}  # fmt: skip


def encoded(name: str) -> bytes:
    width, height, channels, params = VARIANTS[name]
    ok, buf = cv2.imencode(".jpg", scene(width, height, channels), params)
    assert ok
    return bytes(buf.tobytes())


PICTURES = {name: encoded(name) for name in VARIANTS}


def decodes(data: bytes) -> tuple[int, int] | None:
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # e.g. a declared size past OpenCV's own limit
        return None
    return None if image is None else (image.shape[1], image.shape[0])


def headers_end(data: bytes) -> int:
    """Index just past the first scan header: everything a decoder reads before pixels."""
    pos = 2
    while True:
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
        if marker == 0xDA:
            return pos


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_encoder_output_is_accepted_as_it_is(name: str) -> None:
    data = PICTURES[name]
    info = inspect_jpeg(data)
    assert info.data is data  # nothing to strip: not even copied
    assert (info.width, info.height) == decodes(data)


def accepted(data: bytes) -> tuple[int, int] | None:
    """The size the upload path would store the picture with, or None if refused."""
    try:
        checked = check_image(data, max_bytes=10**7)
    except ImageRejected:
        return None
    return checked.width, checked.height


def assert_decoder_agrees(data: bytes) -> None:
    size = accepted(data)
    if size is not None:
        assert decodes(data) == size, "the walk accepted a picture the decoder cannot read"


mutation_settings = settings(
    max_examples=int(os.environ.get("LOKET_JPEG_MUTANTS", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@mutation_settings
@given(name=st.sampled_from(sorted(VARIANTS)), where=st.floats(0, 1), value=st.integers(0, 255))
@example(name="baseline 4:2:0", where=0.0, value=0)
@example(name="baseline 4:2:0", where=0.001953125, value=0xCC)  # APP0 made a DAC segment
def test_a_changed_header_byte_is_refused_unless_it_still_decodes(
    name: str, where: float, value: int
) -> None:
    data = bytearray(PICTURES[name])
    position = 2 + int(where * (headers_end(bytes(data)) - 3))
    data[position] = value
    assert_decoder_agrees(bytes(data))


@mutation_settings
@given(
    name=st.sampled_from(sorted(VARIANTS)),
    where=st.floats(0, 1),
    cut=st.integers(1, 40),
    inserted=st.binary(max_size=8),
)
def test_cut_or_inserted_header_bytes_are_refused_unless_it_still_decodes(
    name: str, where: float, cut: int, inserted: bytes
) -> None:
    data = PICTURES[name]
    position = 2 + int(where * (headers_end(data) - 3))
    assert_decoder_agrees(data[:position] + inserted + data[position + cut :])


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(VARIANTS)), keep=st.floats(0, 0.999))
def test_a_cut_off_picture_is_refused(name: str, keep: float) -> None:
    data = PICTURES[name]
    with pytest.raises(JpegError):
        inspect_jpeg(data[: max(2, int(len(data) * keep))])


def test_lossless_and_twelve_bit_pictures_are_named_unsupported() -> None:
    data = bytearray(PICTURES["baseline 4:2:0"])
    sof = data.index(b"\xff\xc0")
    lossless = bytes(data[:sof]) + b"\xff\xc3" + bytes(data[sof + 2 :])
    with pytest.raises(JpegError, match="lossless") as exc:
        inspect_jpeg(lossless)
    assert exc.value.unsupported
    data[sof + 4] = 12
    with pytest.raises(JpegError, match="12-bit") as twelve:
        inspect_jpeg(bytes(data))
    assert twelve.value.unsupported


def test_a_motion_jpeg_frame_without_huffman_tables_is_accepted() -> None:
    # Webcams' MJPEG frames leave out the standard Huffman tables; decoders fill them in.
    data = PICTURES["baseline 4:2:0"]
    out, pos = bytearray(data[:2]), 2
    while True:
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker != 0xC4:
            out += data[pos : pos + 2 + length]
        pos += 2 + length
        if marker == 0xDA:
            break
    frame = bytes(out + data[pos:])
    assert accepted(frame) == decodes(frame) == (96, 64)
