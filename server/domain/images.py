"""Uploaded document images: recognise, check and strip metadata, without decoding pixels.

Phone photos of an ID card carry GPS position, device serials and sometimes an uncropped
thumbnail. Those are removed here losslessly: the compressed pixel data is copied byte for
byte, so the stored document is exactly what the participant photographed.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import StrEnum

from server.domain.jpeg import JpegError, inspect_jpeg


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


def _corrupt(why: str) -> ImageRejected:
    return ImageRejected(
        RejectCode.CORRUPT, f"the picture is damaged or incomplete ({why}): take or upload it again"
    )


def _jpeg(data: bytes) -> tuple[bytes, int, int]:
    try:
        info = inspect_jpeg(data)
    except JpegError as exc:
        if exc.unsupported:
            raise ImageRejected(
                RejectCode.UNSUPPORTED_TYPE,
                f"this JPEG cannot be read here ({exc}): save or photograph it again as an "
                f"ordinary JPEG",
            ) from None
        raise _corrupt(str(exc)) from None
    return info.data, info.width, info.height


# --- PNG ----------------------------------------------------------------------------------

_PNG_DROP = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"})
# Colour type -> the bit depths the PNG specification allows for it.
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def _check_ihdr(body: bytes) -> tuple[int, int, int]:
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", body
    )
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise _corrupt("its header declares no pixels")
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise _corrupt("its header declares an impossible pixel format")
    return width, height, colour


def _png(data: bytes) -> tuple[bytes, int, int]:
    """Every chunk's checksum and the chunk order a decoder needs; metadata chunks dropped.

    The compressed pixels are not inflated (see server/domain/jpeg.py for why the upload
    path does not decode): a damaged stream fails its chunk checksum instead.
    """
    view = memoryview(data)
    pieces: list[memoryview] = [view[: len(PNG_MAGIC)]]
    pos, n = len(PNG_MAGIC), len(data)
    kept_from = pos  # the run of kept chunks not yet in `pieces` starts here
    width = height = colour = 0
    previous = b""
    seen: set[bytes] = set()
    while True:
        if pos + 12 > n:
            raise _corrupt("it ends inside a chunk header")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > n:
            raise _corrupt(f"chunk {ctype!r} is cut short")
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(view[pos + 8 : pos + 8 + length], zlib.crc32(ctype)) != crc:
            raise _corrupt(f"chunk {ctype.decode('latin-1')!r} fails its checksum")
        if not seen:
            if ctype != b"IHDR" or length != 13:
                raise _corrupt("it does not start with an IHDR header")
            width, height, colour = _check_ihdr(data[pos + 8 : pos + 21])
        elif ctype == b"IDAT":
            if b"IDAT" in seen and previous != b"IDAT":
                raise _corrupt("its image data is split by other chunks")
            if b"IDAT" not in seen:
                if colour == 3 and b"PLTE" not in seen:
                    raise _corrupt("its palette is missing")
                cmf_flg = data[pos + 8 : pos + 10]
                if len(cmf_flg) == 2 and (cmf_flg[0] & 0x0F != 8 or int.from_bytes(cmf_flg) % 31):
                    raise _corrupt("its image data is not a zlib stream")
        elif ctype == b"IEND":
            if b"IDAT" not in seen:
                raise _corrupt("it has no image data")
            if kept_from == len(PNG_MAGIC) and end == n:
                return data, width, height  # nothing dropped: the very same bytes
            # Bytes after IEND are not part of the picture: dropped.
            pieces.append(view[kept_from:end])
            return b"".join(pieces), width, height
        if ctype in _PNG_DROP:
            pieces.append(view[kept_from:pos])
            kept_from = end
        seen.add(ctype)
        previous = ctype
        pos = end


def strip_metadata(data: bytes) -> bytes:
    """The same picture without metadata; raises ImageRejected("corrupt") if malformed."""
    kind = sniff(data)
    if kind is ImageKind.JPEG:
        return _jpeg(data)[0]
    if kind is ImageKind.PNG:
        return _png(data)[0]
    raise ImageRejected(RejectCode.NOT_AN_IMAGE)


@dataclass(frozen=True, slots=True)
class CheckedImage:
    kind: ImageKind
    data: bytes  # without metadata
    width: int
    height: int


# Smaller than this, no document is legible; larger, the officer's browser would need
# gigabytes to show it (a few KB can declare 50000x50000).
MIN_SIDE = 64
MAX_PIXELS = 64_000_000


def check_image(data: bytes, max_bytes: int, *, max_pixels: int = MAX_PIXELS) -> CheckedImage:
    """The upload checked and without metadata, or ImageRejected saying what to do."""
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
    clean, width, height = _jpeg(data) if kind is ImageKind.JPEG else _png(data)
    if width * height > max_pixels:
        raise ImageRejected(
            RejectCode.TOO_LARGE,
            f"the picture is {width}x{height} pixels, too many to show: take it again at a "
            f"lower resolution",
        )
    if min(width, height) < MIN_SIDE:
        raise ImageRejected(
            RejectCode.CORRUPT, "the picture is too small to read: take the picture again closer"
        )
    return CheckedImage(kind, clean, width, height)
