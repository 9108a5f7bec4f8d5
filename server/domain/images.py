"""Uploaded document images: recognise, check and strip metadata, without decoding pixels.

Phone photos of an ID card carry GPS position, device serials and sometimes an uncropped
thumbnail. Those are removed here losslessly: the compressed pixel data is copied byte for
byte, so the stored document is exactly what the participant photographed.
"""

from __future__ import annotations

import struct
import zlib
from enum import StrEnum


class ImageKind(StrEnum):
    JPEG = "jpeg"
    PNG = "png"


class RejectCode(StrEnum):
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_TYPE = "unsupported_type"
    TOO_LARGE = "too_large"
    CORRUPT = "corrupt"
    EMPTY = "empty"


_DEFAULT_MESSAGES: dict[str, str] = {
    RejectCode.NOT_AN_IMAGE: "this file is not a picture: upload a photo or scan as JPEG or PNG",
    RejectCode.UNSUPPORTED_TYPE: "this file type is not accepted: upload a JPEG or PNG",
    RejectCode.TOO_LARGE: "the picture is too large: take it again at a lower resolution",
    RejectCode.CORRUPT: "the picture is damaged or incomplete: take or upload it again",
    RejectCode.EMPTY: "the file is empty: choose the picture again and upload it",
}


class ImageRejected(ValueError):
    """An upload that cannot be stored; `message` tells the uploader what to do next."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = RejectCode(code)
        self.message = message or _DEFAULT_MESSAGES[self.code]
        super().__init__(self.message)


JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sniff(data: bytes) -> ImageKind | None:
    if data.startswith(JPEG_MAGIC):
        return ImageKind.JPEG
    if data.startswith(PNG_MAGIC):
        return ImageKind.PNG
    return None


def _other_format(data: bytes) -> str | None:
    """Name formats people commonly upload instead, so the message can say what they sent."""
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data.startswith(b"%PDF-"):
        return "PDF"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIC"
        if brand in (b"avif", b"avis"):
            return "AVIF"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:2] == b"BM":
        return "BMP"
    return None


# --- JPEG ---------------------------------------------------------------------------------

_SOI, _EOI, _SOS, _COM = 0xD8, 0xD9, 0xDA, 0xFE
_APP0, _APP14 = 0xE0, 0xEE
_RST = range(0xD0, 0xD8)
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _corrupt(why: str) -> ImageRejected:
    return ImageRejected(
        RejectCode.CORRUPT, f"the picture is damaged or incomplete ({why}): take or upload it again"
    )


def _jfif_without_thumbnail(payload: bytes) -> bytes | None:
    # JFIF may embed an RGB thumbnail that can show what was cropped away; keep only the
    # fixed header (version, density) and declare a 0x0 thumbnail.
    if not payload.startswith(b"JFIF\x00") or len(payload) < 14:
        return None
    return payload[:12] + b"\x00\x00"


def _keep_jpeg_segment(marker: int, payload: bytes) -> bytes | None:
    """The payload to write for a segment, or None to drop it."""
    if marker == _COM:
        return None
    if marker == _APP0:
        return _jfif_without_thumbnail(payload)
    if marker == _APP14:
        # Adobe's segment says whether the data is YCbCr/YCCK; decoders get colours wrong
        # without it.
        return payload if payload.startswith(b"Adobe") else None
    if 0xE1 <= marker <= 0xEF:  # EXIF/XMP, ICC, MPF, maker notes, ...
        return None
    return payload


def _skip_entropy_data(data: bytes, pos: int) -> int:
    """Index of the 0xFF that starts the next real marker after compressed scan data."""
    n = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= n:
            raise _corrupt("it ends inside the image data")
        nxt = data[pos + 1]
        if nxt == 0x00 or nxt in _RST:  # stuffed 0xFF byte or restart marker: still data
            pos += 2
        elif nxt == 0xFF:  # fill byte before a marker
            pos += 1
        else:
            return pos


def _strip_jpeg(data: bytes) -> bytes:
    out = bytearray(b"\xff\xd8")
    pos, n = 2, len(data)
    seen_sof = seen_sos = False
    while True:
        if pos >= n or data[pos] != 0xFF:
            raise _corrupt("a segment marker is missing")
        while pos < n and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= n:
            raise _corrupt("it ends inside a marker")
        marker = data[pos]
        pos += 1
        if marker == _EOI:
            if not seen_sos:
                raise _corrupt("it has no image data")
            out += b"\xff\xd9"
            # Anything after EOI (phone trailers, MPF second images with their own EXIF)
            # is not part of this picture and is dropped.
            return bytes(out)
        if marker in _RST or marker == 0x01 or marker == _SOI or marker == 0x00:
            raise _corrupt(f"unexpected marker FF{marker:02X}")
        if pos + 2 > n:
            raise _corrupt("it ends inside a segment header")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > n:
            raise _corrupt(f"segment FF{marker:02X} is cut short")
        payload = data[pos + 2 : pos + length]
        pos += length
        if marker in _SOF:
            seen_sof = True
        kept = _keep_jpeg_segment(marker, payload)
        if kept is not None:
            out += bytes((0xFF, marker)) + struct.pack(">H", len(kept) + 2) + kept
        if marker == _SOS:
            if not seen_sof:
                raise _corrupt("the image data comes before the frame header")
            seen_sos = True
            end = _skip_entropy_data(data, pos)
            out += data[pos:end]  # compressed pixels, verbatim
            pos = end


# --- PNG ----------------------------------------------------------------------------------

_PNG_DROP = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"})


def _strip_png(data: bytes) -> bytes:
    out = bytearray(PNG_MAGIC)
    pos, n = len(PNG_MAGIC), len(data)
    first = True
    while True:
        if pos + 12 > n:
            raise _corrupt("it ends inside a chunk header")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > n:
            raise _corrupt(f"chunk {ctype!r} is cut short")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(body, zlib.crc32(ctype)) != crc:
            raise _corrupt(f"chunk {ctype.decode('latin-1')!r} fails its checksum")
        if first and (ctype != b"IHDR" or length != 13):
            raise _corrupt("it does not start with an IHDR header")
        first = False
        if ctype not in _PNG_DROP:
            out += data[pos:end]
        pos = end
        if ctype == b"IEND":
            return bytes(out)  # bytes after IEND are not part of the picture: dropped


def strip_metadata(data: bytes) -> bytes:
    """The same picture without metadata; raises ImageRejected("corrupt") if malformed."""
    kind = sniff(data)
    if kind is ImageKind.JPEG:
        return _strip_jpeg(data)
    if kind is ImageKind.PNG:
        return _strip_png(data)
    raise ImageRejected(RejectCode.NOT_AN_IMAGE)


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) as declared in the header, read before anything decodes the pixels.

    Lets callers refuse decompression bombs (a few KB declaring 50000x50000) up front.
    """
    kind = sniff(data)
    if kind is ImageKind.PNG:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise _corrupt("it does not start with an IHDR header")
        width, height = struct.unpack_from(">II", data, 16)
        return width, height
    if kind is ImageKind.JPEG:
        pos, n = 2, len(data)
        while pos + 4 <= n and data[pos] == 0xFF:
            marker = data[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            (length,) = struct.unpack_from(">H", data, pos + 2)
            if marker in _SOF:
                if pos + 9 > n:
                    break
                height, width = struct.unpack_from(">HH", data, pos + 5)
                return width, height
            if marker == _SOS or length < 2:
                break
            pos += 2 + length
        raise _corrupt("it has no frame header")
    raise ImageRejected(RejectCode.NOT_AN_IMAGE)


def check_image(data: bytes, max_bytes: int) -> tuple[ImageKind, bytes]:
    """The kind and metadata-free bytes of an upload, or ImageRejected saying what to do."""
    if not data:
        raise ImageRejected(RejectCode.EMPTY)
    if len(data) > max_bytes:
        raise ImageRejected(
            RejectCode.TOO_LARGE,
            f"the picture is {len(data) / 1_000_000:.1f} MB, more than the "
            f"{max_bytes / 1_000_000:.1f} MB allowed: take it again at a lower resolution",
        )
    kind = sniff(data)
    if kind is None:
        other = _other_format(data)
        if other is not None:
            raise ImageRejected(
                RejectCode.UNSUPPORTED_TYPE,
                f"this is a {other} file, which is not accepted: upload the picture as JPEG "
                f"or PNG (take a photo or screenshot of it if needed)",
            )
        raise ImageRejected(RejectCode.NOT_AN_IMAGE)
    return kind, strip_metadata(data)
