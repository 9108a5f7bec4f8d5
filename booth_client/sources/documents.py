"""Synthetic document pictures, for the demo: what a participant would show the document
camera. Each is a card with the document's name, a few fake fields and the booth's label,
so a CSO can tell them apart in the console.

`document_image` and `letter_image` give the raw pixels (an ID-1 card, an A4 letter) that
`booth_client.sources.scenes` lays on a desk in front of a synthetic document camera.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import cv2
import numpy as np

WIDTH, HEIGHT = 1200, 760

Colour = tuple[int, int, int]  # BGR


def document_image(
    title: str,
    booth_label: str,
    seed: int = 0,
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
    background: Colour = (236, 242, 246),
    header: Colour = (108, 79, 11),
) -> np.ndarray:
    """A BGR card titled `title`: `render_document`'s card, with lengths scaled to `width`
    and colours to choose (the scenes' ID-1 cards)."""
    k = width / WIDTH  # every length below is the demo card's, scaled
    rng = np.random.default_rng(seed)
    card = np.full((height, width, 3), background, dtype=np.uint8)
    cv2.rectangle(card, (0, 0), (width, round(120 * k)), header, thickness=-1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    thick = max(1, round(3 * k))
    fit = 1.4 * k * (width - 80 * k) / max(cv2.getTextSize(title, font, 1.4 * k, thick)[0][0], 1)
    cv2.putText(card, title, (round(40 * k), round(80 * k)), font, min(1.4 * k, fit),
                (255, 255, 255), thick)  # fmt: skip
    fields = ["NAMA: PESERTA DEMO", "NIK: ************0001", "ALAMAT: JL. CONTOH NO. 1",
              f"DIPERLIHATKAN DI {booth_label.upper()}"]  # fmt: skip
    for row, text in enumerate(fields):
        cv2.putText(card, text, (round(40 * k), round((220 + row * 80) * k)), font, 1.1 * k,
                    (40, 40, 40), max(1, round(2 * k)))  # fmt: skip
    # A photo box with texture, so the picture is not trivially compressible.
    top, left = round(200 * k), width - round(300 * k)
    photo = rng.integers(90, 200, size=(round(300 * k), round(240 * k), 3), dtype=np.uint8)
    card[top : top + photo.shape[0], left : left + photo.shape[1]] = photo
    return card


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


_WORDS = (  # fake Indonesian letter prose
    "dengan", "ini", "menerangkan", "bahwa", "saudara", "yang", "namanya", "tersebut",
    "di", "bawah", "telah", "bekerja", "pada", "perusahaan", "kami", "sejak", "tanggal",
    "sampai", "dengan", "sebagai", "karyawan", "tetap", "dan", "selama", "bekerja",
    "menunjukkan", "dedikasi", "serta", "loyalitas", "yang", "baik", "surat",
    "keterangan", "ini", "dibuat", "untuk", "dipergunakan", "sebagaimana", "mestinya",
    "demikian", "atas", "perhatian", "kami", "ucapkan", "terima", "kasih",
)  # fmt: skip


def letter_image(
    title: str,
    seed: int = 0,
    *,
    width: int = 992,
    height: int = 1403,
    paper: Colour = (238, 240, 240),
) -> np.ndarray:
    """A BGR A4-like letter: letterhead, title, paragraphs of words, signature and stamp."""
    rng = np.random.default_rng(seed)
    k = width / 992
    page = np.full((height, width, 3), paper, dtype=np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    margin = round(80 * k)
    ink = (30, 30, 30)
    # Letterhead: a logo disc, the firm's name, a rule.
    logo = tuple(int(c) for c in rng.integers(40, 160, 3))
    cv2.circle(page, (margin + round(40 * k), margin + round(40 * k)), round(40 * k), logo, -1)
    cv2.putText(page, f"PT CONTOH SEJAHTERA {rng.integers(1, 99)}", (margin + round(100 * k),
                margin + round(55 * k)), font, 1.0 * k, logo, max(1, round(2 * k)))  # fmt: skip
    rule_y = margin + round(100 * k)
    cv2.line(page, (margin, rule_y), (width - margin, rule_y), ink, max(1, round(3 * k)))
    size = cv2.getTextSize(title.upper(), font, 0.9 * k, max(1, round(2 * k)))[0]
    cv2.putText(page, title.upper(), ((width - size[0]) // 2, rule_y + round(80 * k)), font,
                0.9 * k, ink, max(1, round(2 * k)))  # fmt: skip
    y = rule_y + round(150 * k)
    line_h = round(38 * k)
    for _paragraph in range(3):
        for _line in range(int(rng.integers(3, 6))):
            words = [str(w) for w in rng.choice(_WORDS, size=int(rng.integers(7, 11)))]
            cv2.putText(page, " ".join(words), (margin, y), font, 0.62 * k, ink, max(1, round(k)))
            y += line_h
        y += line_h // 2
        if y > height - round(420 * k):
            break
    # Signature (a scribble) and a blue stamp overlapping it, as on real letters.
    sx, sy = width - margin - round(300 * k), height - margin - round(160 * k)
    xs = np.linspace(sx, sx + 240 * k, 24)
    ys = sy + rng.normal(0, 18 * k, xs.size)
    cv2.polylines(page, [np.stack([xs, ys], 1).astype(np.int32)], False, (90, 40, 20),
                  max(1, round(2 * k)))  # fmt: skip
    cv2.circle(page, (sx + round(60 * k), sy), round(70 * k), (160, 70, 40), max(1, round(4 * k)))
    return page


# --- the synthetic participant's own documents and face ---------------------------------------

# The e-KTP's photo box (x, y, width, height in mm), as booth_client.sources.id_cards draws it.
KTP_PHOTO_MM = (62.0, 16.5, 20.0, 24.0)


def portrait_crop(portrait: np.ndarray) -> np.ndarray:
    """Head and shoulders out of a portrait, 5:6 like a KTP photo: the middle two thirds of
    its width, from a little below its top (a passport-style picture's framing)."""
    h, w = portrait.shape[:2]
    cw = round(w * 0.66)
    ch = min(round(cw * 6 / 5), h)
    x, y = (w - cw) // 2, min(round(h * 0.08), h - ch)
    return portrait[y : y + ch, x : x + cw]


def with_photo(card: np.ndarray, portrait: np.ndarray, px_per_mm: float) -> np.ndarray:
    """`card` (a KTP texture) with `portrait` printed in its photo box, as a card printer
    prints it: a little softer, paler and blurred."""
    x, y, w, h = (round(v * px_per_mm) for v in KTP_PHOTO_MM)
    head = portrait_crop(portrait)
    shrink = head.shape[1] > w
    photo = cv2.resize(head, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    grey = cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    photo = cv2.convertScaleAbs(cv2.addWeighted(photo, 0.8, grey, 0.2, 0), alpha=0.82, beta=28)
    card = card.copy()
    card[y : y + h, x : x + w] = cv2.GaussianBlur(photo, (0, 0), 1.0)
    return card


class ParticipantDocuments:
    """The synthetic participant's own KTP, KPJ card and bank book, drawn with the data of
    the member their NIK and KPJ stand for (booth_client.sources.id_cards: `person_for`)
    and the portrait on the KTP, so machine reading and the face comparison have something
    true to find. `who()` gives the participant's (NIK, KPJ), None when the kiosk does not
    know them (a booking code). `texture(kind)`: (flat picture, capture format), or None
    for kinds it does not draw."""

    def __init__(
        self, who: Callable[[], tuple[str, str] | None], portrait: np.ndarray | None = None
    ) -> None:
        self.who, self.portrait = who, portrait
        self._drawn: dict[tuple[str, str, str], tuple[np.ndarray, str]] = {}

    def texture(self, kind: str) -> tuple[np.ndarray, str] | None:
        from booth_client.sources import id_cards

        numbers = self.who()
        if numbers is None or kind not in ("ktp", "kpj_card", "buku_tabungan"):
            return None
        key = (*numbers, kind)
        if key not in self._drawn:
            person = id_cards.person_for(*numbers)
            font = "Liberation Sans" if "Liberation Sans" in id_cards.FONTS else id_cards.FONTS[0]
            style = id_cards.CardStyle(font=font)
            if kind == "ktp":
                card = id_cards.render_ktp(person, style)
                if self.portrait is not None:
                    card = with_photo(card, self.portrait, id_cards.PX_PER_MM)
                self._drawn[key] = (card, "id1")
            elif kind == "kpj_card":
                self._drawn[key] = (id_cards.render_kpj_card(person, style), "id1")
            else:  # a landscape passbook page lies across the A4 plate (kept portrait)
                page = id_cards.render_bank_book(person, style)
                self._drawn[key] = (cv2.rotate(page, cv2.ROTATE_90_CLOCKWISE), "a4")
        return self._drawn[key]


def face_frame(
    portrait: np.ndarray | None, size: tuple[int, int], shot: int, label: str = "booth"
) -> np.ndarray:
    """What the face camera sees of the synthetic participant: the portrait's head and
    shoulders filling most of the frame's height against a booth's wall, with sensor
    noise that differs from shot to shot. No portrait: the wall and the booth's label
    (no face to find)."""
    w, h = size
    rng = np.random.default_rng([shot, 0xFACE])
    shade = np.linspace(1.05, 0.8, w, dtype=np.float32)[None, :, None]
    frame = np.broadcast_to(np.array([178, 186, 190], np.float32), (h, w, 3)) * shade
    if portrait is None:
        frame = np.ascontiguousarray(frame)
        cv2.putText(frame, f"{label}: no participant in view", (40, h // 2),
                    cv2.FONT_HERSHEY_SIMPLEX, 1.2, (60, 60, 60), 2)  # fmt: skip
    else:
        head = portrait_crop(portrait)
        ph = round(h * 0.8)
        pw = round(head.shape[1] * ph / head.shape[0])
        frame = np.ascontiguousarray(frame)
        x, y = (w - pw) // 2, h - ph
        frame[y:, x : x + pw] = cv2.resize(head, (pw, ph), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 3.0, frame.shape).astype(np.float32)
    return cv2.convertScaleAbs(frame + noise)


def load_portrait(path: str | os.PathLike[str] | None) -> np.ndarray | None:
    """The synthetic participant's portrait (config `synthetic_portrait`), or None."""
    if path is None:
        return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        from booth_client.sources.media import MediaSourceError

        raise MediaSourceError(
            f"synthetic_portrait {path}: not a picture OpenCV can read; give a JPEG or PNG"
        )
    return image
