"""One pass over a JPEG's segments: check its structure and drop its metadata.

The upload path must not decode pixels: a full entropy decode of a 1.5 MB picture costs
three durable bare POSTs (bench/upload_bench.py), and it proves little more than this walk
does, because libjpeg decodes a stream whose entropy-coded bytes were damaged (it warns and
paints grey) but refuses one whose tables, frame or scan headers are wrong or that ends
early. So every header a decoder depends on is checked here as libjpeg checks it (table
ids, Huffman code space, DC symbol range, component references, spectral selection, one
frame of a supported coding, a scan before EOI), the compressed data is only walked to the
next marker, and tests/unit/test_jpeg_structure.py holds this walk to OpenCV's decoder on
mutated pictures: whatever it accepts, the decoder reads.

Metadata is removed losslessly: the compressed pixel data is kept byte for byte, and a
picture that carries nothing to remove is returned as the very same object (no copy).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

_SOI, _EOI, _SOS, _COM, _DQT, _DHT, _DRI = 0xD8, 0xD9, 0xDA, 0xFE, 0xDB, 0xC4, 0xDD
_APP0, _APP14 = 0xE0, 0xEE
_RST = range(0xD0, 0xD8)
_DAC, _DNL = 0xCC, 0xDC
# Huffman-coded frames libjpeg reads: baseline, extended sequential, progressive.
_SOF_SUPPORTED = frozenset({0xC0, 0xC1, 0xC2})
# Lossless, hierarchical and arithmetic-coded frames: valid JPEG nobody photographs with.
_SOF_OTHER = frozenset({0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Segments libjpeg reads (besides APPn); any other marker makes it stop with an error.
_KNOWN = _SOF_SUPPORTED | _SOF_OTHER | {_DQT, _DHT, _DRI, _SOS, _COM, _DAC, _DNL}
# A real marker after entropy-coded data: 0xFF followed by anything but a stuffed zero or a
# restart marker (0xFF 0xFF is a fill byte before a marker: coded data never holds it).
# No `\xff+`: a repeated first item stops the regex engine's fast scan for the literal
# (25 ms instead of 1.2 ms over 1.5 MB).
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


class JpegError(ValueError):
    """The stream is not a decodable JPEG; the message says which part is wrong."""

    def __init__(self, why: str, *, unsupported: bool = False) -> None:
        super().__init__(why)
        self.unsupported = unsupported


@dataclass(frozen=True, slots=True)
class JpegInfo:
    data: bytes  # the picture without metadata (the input object itself if nothing went)
    width: int
    height: int


@dataclass(slots=True)
class _Frame:
    width: int
    height: int
    progressive: bool
    quant_of: dict[int, int]  # component id -> quantisation table id
    blocks_of: dict[int, int]  # component id -> blocks per MCU (h x v sampling)


@dataclass(slots=True)
class _Walk:
    quant: set[int] = field(default_factory=set)
    huffman: set[tuple[int, int]] = field(default_factory=set)  # (0 DC / 1 AC, id)
    frame: _Frame | None = None
    scans: int = 0


def _check_dqt(payload: bytes, walk: _Walk) -> None:
    pos = 0
    while pos < len(payload):
        precision, table = divmod(payload[pos], 16)
        size = 64 * (1 + precision)
        if precision > 1 or table > 3 or pos + 1 + size > len(payload):
            raise JpegError("a quantisation table is malformed")
        walk.quant.add(table)
        pos += 1 + size


def _check_dht(payload: bytes, walk: _Walk) -> None:
    pos = 0
    while pos < len(payload):
        if pos + 17 > len(payload):
            raise JpegError("a Huffman table is cut short")
        table_class, table = divmod(payload[pos], 16)
        counts = payload[pos + 1 : pos + 17]
        total = sum(counts)
        if table_class > 1 or table > 3 or total > 256 or pos + 17 + total > len(payload):
            raise JpegError("a Huffman table is malformed")
        # The code lengths must fit the code space (libjpeg: "Bogus Huffman table").
        code = 0
        for length, count in enumerate(counts, start=1):
            code += count
            if code > 1 << length:
                raise JpegError("a Huffman table has more codes than fit")
            code <<= 1
        values = payload[pos + 17 : pos + 17 + total]
        if table_class == 0 and any(v > 15 for v in values):
            raise JpegError("a DC Huffman table holds an impossible symbol")
        walk.huffman.add((table_class, table))
        pos += 17 + total


def _check_dac(payload: bytes, walk: _Walk) -> None:
    # Arithmetic-coding conditioning: only arithmetic-coded frames use it (refused as
    # unsupported), but libjpeg reads it wherever it stands and stops on a bad entry.
    if len(payload) % 2:
        raise JpegError("the arithmetic-coding conditioning segment is malformed")
    for index, value in zip(payload[::2], payload[1::2], strict=True):
        if index >= 32 or (index < 16 and value & 0x0F > value >> 4):
            raise JpegError("the arithmetic-coding conditioning segment is malformed")


def _check_sof(marker: int, payload: bytes, walk: _Walk) -> None:
    if marker in _SOF_OTHER:
        raise JpegError("it uses lossless, hierarchical or arithmetic coding", unsupported=True)
    if walk.frame is not None:
        raise JpegError("it has two frame headers")
    if len(payload) < 6:
        raise JpegError("the frame header is cut short")
    precision, height, width, count = struct.unpack_from(">BHHB", payload)
    if precision != 8:
        raise JpegError(f"it uses {precision}-bit samples", unsupported=True)
    if width == 0 or height == 0:
        raise JpegError("the frame declares no pixels")
    if not 1 <= count <= 4 or len(payload) != 6 + 3 * count:
        raise JpegError("the frame header lists its colour components wrongly")
    quant_of: dict[int, int] = {}
    blocks_of: dict[int, int] = {}
    samplings = []
    for i in range(count):
        ident, sampling, table = payload[6 + 3 * i : 9 + 3 * i]
        h, v = divmod(sampling, 16)
        if ident in quant_of or not (1 <= h <= 4 and 1 <= v <= 4) or table > 3:
            raise JpegError("a colour component is declared wrongly")
        quant_of[ident], blocks_of[ident] = table, h * v
        samplings.append((h, v))
    max_h = max(h for h, _ in samplings)
    max_v = max(v for _, v in samplings)
    if any(max_h % h or max_v % v for h, v in samplings):
        raise JpegError("it uses fractional chroma subsampling", unsupported=True)
    walk.frame = _Frame(width, height, marker == 0xC2, quant_of, blocks_of)


def _check_sos(payload: bytes, walk: _Walk) -> None:
    frame = walk.frame
    if frame is None:
        raise JpegError("the image data comes before the frame header")
    if not payload or not 1 <= payload[0] <= 4 or len(payload) != 4 + 2 * payload[0]:
        raise JpegError("a scan header is malformed")
    count = payload[0]
    idents = payload[1 : 1 + 2 * count : 2]
    tables = payload[2 : 2 + 2 * count : 2]
    start, end, approx = payload[1 + 2 * count :]
    if len(set(idents)) != count or any(c not in frame.quant_of for c in idents):
        raise JpegError("a scan refers to a colour component the frame does not have")
    if any(frame.quant_of[c] not in walk.quant for c in idents):
        raise JpegError("a quantisation table is used before it is defined")
    if count > 1 and sum(frame.blocks_of[c] for c in idents) > 10:
        raise JpegError("a scan's colour sampling needs more blocks than decoders allow")
    high, low = divmod(approx, 16)
    if frame.progressive:
        if end > 63 or start > end or (start == 0) != (end == 0) or high > 13 or low > 13:
            raise JpegError("a progressive scan's parameters are out of range")
        if high and low != high - 1:
            raise JpegError("a progressive scan refines by more than one bit")
        if start > 0 and count != 1:
            raise JpegError("a progressive AC scan holds more than one component")
    elif start != 0 or end != 63 or approx != 0:
        raise JpegError("a sequential scan's parameters are out of range")
    # Missing tables are allowed only when none was sent at all (Motion-JPEG cameras rely
    # on the standard tables, which decoders fill in); otherwise each must be defined.
    if walk.huffman:
        for table in tables:
            dc, ac = divmod(table, 16)
            if dc > 3 or ac > 3:
                raise JpegError("a scan names a Huffman table that cannot exist")
            needs_dc = not frame.progressive or (start == 0 and high == 0)
            needs_ac = not frame.progressive or start > 0
            if (needs_dc and (0, dc) not in walk.huffman) or (
                needs_ac and (1, ac) not in walk.huffman
            ):
                raise JpegError("a Huffman table is used before it is defined")
    walk.scans += 1


def _without_thumbnail(payload: bytes) -> bytes | None:
    # JFIF may embed an RGB thumbnail that can show what was cropped away; keep only the
    # fixed header (version, density) and declare a 0x0 thumbnail.
    if not payload.startswith(b"JFIF\x00") or len(payload) < 14:
        return None
    if len(payload) == 14 and payload[12:] == b"\x00\x00":
        return payload  # no thumbnail: kept as it is
    return payload[:12] + b"\x00\x00"


def _kept_payload(marker: int, payload: bytes) -> bytes | None:
    """The payload to write for a segment, or None to drop it."""
    if marker == _COM:
        return None
    if marker == _APP0:
        return _without_thumbnail(payload)
    if marker == _APP14:
        # Adobe's segment says whether the data is YCbCr/YCCK; decoders get colours wrong
        # without it.
        return payload if payload.startswith(b"Adobe") else None
    if 0xE1 <= marker <= 0xEF:  # EXIF/XMP, ICC, MPF, maker notes, ...
        return None
    return payload


_CHECKS: dict[int, Callable[[bytes, _Walk], None]] = {
    _DQT: _check_dqt,
    _DHT: _check_dht,
    _SOS: _check_sos,
    _DAC: _check_dac,
}


def inspect_jpeg(data: bytes) -> JpegInfo:
    """Check `data` is a whole, decodable JPEG and return it without metadata.

    Raises JpegError saying what is wrong.
    """
    if not data.startswith(b"\xff\xd8"):
        raise JpegError("it does not start like a JPEG")
    view = memoryview(data)
    pieces: list[bytes | memoryview] = [view[:2]]
    walk = _Walk()
    pos, n, copied_to = 2, len(data), 2  # copied_to: input up to here is in `pieces`
    while True:
        if pos >= n or data[pos] != 0xFF:
            raise JpegError("a segment marker is missing")
        start = pos
        while pos < n and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= n:
            raise JpegError("it ends inside a marker")
        marker = data[pos]
        pos += 1
        if marker == _EOI:
            if walk.scans == 0:
                raise JpegError("it has no image data")
            assert walk.frame is not None
            if len(pieces) == 1 and start + 2 == n:
                return JpegInfo(data, walk.frame.width, walk.frame.height)  # nothing to drop
            # Anything after EOI (phone trailers, MPF second images with their own EXIF)
            # is not part of this picture and is dropped.
            pieces += [view[copied_to:start], b"\xff\xd9"]
            return JpegInfo(b"".join(pieces), walk.frame.width, walk.frame.height)
        if marker in _RST or marker in (0x00, 0x01, _SOI):
            raise JpegError(f"unexpected marker FF{marker:02X}")
        if pos + 2 > n:
            raise JpegError("it ends inside a segment header")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > n:
            raise JpegError(f"segment FF{marker:02X} is cut short")
        if not (marker in _KNOWN or 0xE0 <= marker <= 0xEF):
            raise JpegError(f"it holds marker FF{marker:02X}, which decoders do not read")
        payload = data[pos + 2 : pos + length]
        end = pos + length
        if marker in _SOF_SUPPORTED or marker in _SOF_OTHER:
            _check_sof(marker, payload, walk)
        elif marker in _CHECKS:
            _CHECKS[marker](payload, walk)
        elif marker == _DRI and length != 4:
            raise JpegError("the restart interval segment is malformed")
        kept = _kept_payload(marker, payload)
        if start != pos - 2 or kept is not payload:  # fill bytes or a changed segment
            pieces.append(view[copied_to:start])
            if kept is not None:
                pieces.append(bytes((0xFF, marker)) + struct.pack(">H", len(kept) + 2) + kept)
            copied_to = end
        pos = end
        if marker == _SOS:
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                raise JpegError("it ends inside the image data")
            pos = found.start()
