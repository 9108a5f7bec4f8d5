"""Read one document picture: decode it (bounded), find its text the right way up, parse
its fields, cross-check a KTP's NIK against its own birth date and sex."""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from reading.dates import nik_birth
from reading.engine import OcrEngine, TextLine, shared_engine
from reading.fields import KIND_FIELDS, Field, parse

# Bounds on one picture: a rectified document is at most 2400 px long (the kiosk's cap),
# a phone photo 12-50 Mpx. Larger is refused before it is decoded.
MAX_BYTES = 16 * 1024 * 1024
MAX_PIXELS = 50_000_000
# The engine finds text at any size; beyond this long side the picture is shrunk first
# (rapidocr would shrink it to 2000 anyway, after a slower resize of the full picture).
MAX_SIDE = 2000


class ImageRejected(ValueError):
    """The bytes are not a picture this reader takes (not a JPEG/PNG, or too large):
    send the kiosk's rectified JPEG, or a photo below the bounds in the message."""


@dataclass(frozen=True, slots=True)
class Reading:
    """What was read from one picture of a document of `kind`: every field of that kind
    (None when unreadable), how long it took, and how the picture was turned to read it."""

    kind: str
    fields: Mapping[str, Field]
    ms: float
    rotation: int = 0  # degrees clockwise the picture was turned before it read best
    lines: int = 0  # lines of text found
    # KTP: does the NIK's birth-date part agree with the birth date and sex read beside it
    # (None when either side was unreadable)?
    checks: Mapping[str, bool | None] = field(default_factory=dict)

    def values(self) -> dict[str, str | None]:
        return {name: f.value for name, f in self.fields.items()}

    def confidence(self) -> dict[str, float]:
        return {name: round(f.confidence, 3) for name, f in self.fields.items()}

    def complete(self) -> bool:
        return all(f.value is not None for f in self.fields.values())

    def to_json(self) -> dict[str, Any]:
        """The shape `loket capture read --json` prints (without "file")."""
        return {
            "kind": self.kind,
            "fields": self.values(),
            "confidence": self.confidence(),
            "checks": dict(self.checks),
            "rotation": self.rotation,
            "ms": round(self.ms, 1),
        }


def check_image(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG or PNG, from its header alone (cheap: no pixels are
    decoded); ImageRejected when it is something else or too large."""
    if len(data) > MAX_BYTES:
        raise ImageRejected(f"picture is {len(data)} bytes; at most {MAX_BYTES}")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            kind = header.format
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"picture is too large; at most {MAX_PIXELS} pixels") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageRejected("not a picture (expected a JPEG or PNG)") from exc
    if kind not in ("JPEG", "PNG"):
        raise ImageRejected(f"a {kind} picture; expected a JPEG or PNG")
    if width * height > MAX_PIXELS:
        raise ImageRejected(f"picture is {width}x{height}; at most {MAX_PIXELS} pixels")
    return width, height


def decode_image(data: bytes) -> np.ndarray:
    """BGR pixels of a JPEG or PNG, after `check_image`."""
    check_image(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageRejected("the picture's data is damaged: it cannot be decoded")
    return image


def _shrink(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    k = MAX_SIDE / max(h, w)
    if k >= 1:
        return image
    return cv2.resize(image, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)


def _rank(fields: Mapping[str, Field]) -> tuple[int, float]:
    return (
        sum(f.value is not None for f in fields.values()),
        sum(f.confidence for f in fields.values()),
    )


def turn_lines(lines: list[TextLine], turn: int, width: int, height: int) -> list[TextLine]:
    """`lines` found in a `width` x `height` picture, placed where they would be had the
    picture been turned `turn` degrees clockwise (the text itself does not change)."""

    def move(x: float, y: float) -> tuple[float, float]:
        if turn == 90:
            return height - y, x
        if turn == 180:
            return width - x, height - y
        if turn == 270:
            return y, width - x
        return x, y

    return [TextLine(line.text, line.score, tuple(move(x, y) for x, y in line.box))
            for line in lines]  # fmt: skip


def read_image(kind: str, image: np.ndarray, engine: OcrEngine | None = None) -> Reading:
    """Read a document of `kind` ("ktp", "kpj_card", "buku_tabungan") from BGR pixels.

    First read as given, lines as they stand. When fields are missing and there is text,
    the picture may lie turned: it is read again with the engine's line classifier,
    which turns upside-down lines back (lines that run down the picture are turned by
    the engine either way). Each reading's lines are also laid out as the picture would
    be turned (a quarter turn either way when most lines run down it, else half a turn),
    which costs nothing. The layout that reads the most fields wins. At most two
    readings, so a bad picture costs a bounded time.
    """
    if kind not in KIND_FIELDS:
        raise ValueError(f"cannot read {kind!r}: one of {', '.join(KIND_FIELDS)}")
    started = time.perf_counter()
    engine = engine or shared_engine()
    image = _shrink(image)
    height, width = image.shape[:2]
    best: tuple[dict[str, Field], int, int] = ({}, 0, 0)
    for classify in (False, True):
        lines = engine.lines(image, classify=classify)
        down = sum(not line.upright for line in lines) > len(lines) / 2
        for turn in (0, 90, 270) if down else (0, 180):
            fields = parse(kind, turn_lines(lines, turn, width, height) if turn else lines)
            if not best[0] or _rank(fields) > _rank(best[0]):
                best = (fields, turn, len(lines))
            if _complete(best[0]):
                break
        if _complete(best[0]) or len(lines) < 3:
            break
    fields, rotation, found = best
    return Reading(
        kind=kind,
        fields=fields,
        ms=(time.perf_counter() - started) * 1000,
        rotation=rotation,
        lines=found,
        checks=_checks(kind, fields),
    )


def read_bytes(kind: str, data: bytes, engine: OcrEngine | None = None) -> Reading:
    """`read_image` on a JPEG or PNG (see `decode_image` for what is refused)."""
    return read_image(kind, decode_image(data), engine)


def _complete(fields: Mapping[str, Field]) -> bool:
    return all(f.value is not None for f in fields.values())


def _checks(kind: str, fields: Mapping[str, Field]) -> dict[str, bool | None]:
    if kind != "ktp":
        return {}
    from datetime import date

    nik = fields["nik"].value
    encoded = nik_birth(nik) if nik else None
    born, sex = fields["birth_date"].value, fields["sex"].value
    return {
        "nik_birth_date": None
        if encoded is None or born is None
        else encoded.agrees_with(born=date.fromisoformat(born)),
        "nik_sex": None if encoded is None or sex is None else encoded.agrees_with(sex=sex),
    }
