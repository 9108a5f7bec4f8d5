"""Indonesian identity documents rendered with known contents, for the reading tests and
`bench/reading_bench.py`: the KTP (e-KTP layout and labels), the KPJ card (BPJS
Ketenagakerjaan), a bank book's first page (buku tabungan) and A4 letters (paklaring-like:
letterhead, body text at a given point size, signature), in the fonts this machine has,
optionally laid on a desk in front of the synthetic 1080p document camera
(`booth_client.sources.scenes`), so they go through the kiosk's capture pipeline as a
participant's document would.

Everything is drawn from a seed: the same seed gives the same person and the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from PIL import Image, ImageDraw

from booth_client.sources.id_cards import (  # drawn by the kiosk's synthetic participant too
    _FAMILY,
    FONTS,
    PX_PER_MM,
    CardStyle,
    Person,
    _bgr,
    _signature,
    card_style,
    font,
    person,
    render_bank_book,
    render_kpj_card,
    render_ktp,
)
from booth_client.sources.scenes import Scene, SceneSpec, random_spec, render

__all__ = [
    "FONTS", "PX_PER_MM", "RENDERERS", "CardStyle", "Letter", "Person", "card_style", "font",
    "on_desk", "person", "placed", "render_bank_book", "render_kpj_card", "render_ktp",
    "render_letter", "truth",
]  # fmt: skip

# --- A4 letters -------------------------------------------------------------------------------

_PROSE = (
    "dengan ini menerangkan bahwa yang bersangkutan telah bekerja pada perusahaan kami "
    "sejak tanggal tersebut di atas sampai dengan berakhirnya hubungan kerja sebagai "
    "karyawan tetap dan selama bekerja menunjukkan dedikasi serta loyalitas yang baik "
    "surat keterangan ini dibuat untuk dipergunakan sebagaimana mestinya terutama untuk "
    "pengajuan klaim jaminan hari tua pada badan penyelenggara jaminan sosial "
    "ketenagakerjaan demikian atas perhatian dan kerja samanya kami ucapkan terima kasih"
)


@dataclass(frozen=True)
class Letter:
    image: np.ndarray  # BGR, portrait A4
    px_per_mm: float
    body_lines: tuple[str, ...]  # the body text, line by line (what must stay readable)


def render_letter(
    p: Person,
    *,
    body_pt: float = 10.0,
    px_per_mm: float = 8.0,
    seed: int = 0,
    font_name: str = "Liberation Serif",
    paper: tuple[int, int, int] = (250, 250, 248),
) -> Letter:
    """A paklaring (surat keterangan kerja) on A4: letterhead, title, number, the
    employee's details, body paragraphs at `body_pt` points, place and date, signature
    and stamp. `paper` is its RGB tone: white paper is near 255."""
    rng = np.random.default_rng([seed, 0x1E77])
    mm = px_per_mm
    w, h = round(210 * mm), round(297 * mm)
    img = Image.new("RGB", (w, h), paper)
    d = ImageDraw.Draw(img)
    pt = 0.3528 * mm  # px per point
    ink = (20, 20, 20)
    margin = 25 * mm
    firm = f"PT {rng.choice(_FAMILY)} {rng.choice(('ABADI', 'SEJAHTERA', 'MAKMUR'))}"
    logo = tuple(int(c) for c in rng.integers(30, 150, 3))
    d.ellipse([margin, 15 * mm, margin + 20 * mm, 35 * mm], fill=logo)  # type: ignore[arg-type]
    d.text((margin + 25 * mm, 16 * mm), firm, font=font(font_name, round(16 * pt), True), fill=logo)  # type: ignore[arg-type]
    d.text(
        (margin + 25 * mm, 26 * mm),
        f"Jl. Industri Raya No. {rng.integers(1, 99)}, {p.birth_place}",
        font=font(font_name, round(9 * pt)),
        fill=ink,
    )
    d.line([margin, 38 * mm, w - margin, 38 * mm], fill=ink, width=max(1, round(0.6 * mm)))
    title = "SURAT KETERANGAN KERJA"
    tf = font(font_name, round(13 * pt), True)
    d.text(((w - d.textlength(title, font=tf)) / 2, 46 * mm), title, font=tf, fill=ink)
    number = f"Nomor: {rng.integers(100, 999)}/HRD/{rng.integers(1, 12)}/2024"
    nf = font(font_name, round(body_pt * pt))
    d.text(((w - d.textlength(number, font=nf)) / 2, 53 * mm), number, font=nf, fill=ink)
    line_h = body_pt * pt * 1.45
    y = 64 * mm
    details = [
        ("Nama", p.name),
        ("NIK", p.nik),
        ("Jabatan", "Operator Produksi"),
        ("Masa kerja", f"{rng.integers(1, 28):02d}-01-2015 s.d. {rng.integers(1, 28):02d}-06-2024"),
    ]
    lines: list[str] = []
    for label, value in details:
        d.text((margin, y), label, font=nf, fill=ink)
        d.text((margin + 35 * mm, y), f": {value}", font=nf, fill=ink)
        lines.append(f"{label} : {value}")
        y += line_h
    y += line_h
    words = [str(wd) for wd in rng.permutation(np.array(_PROSE.split() * 2))]
    width = w - 2 * margin
    for _paragraph in range(3):
        count = int(rng.integers(25, 45))
        chunk, words = words[:count], words[count:]
        line = ""
        for word in chunk:
            trial = f"{line} {word}".strip()
            if d.textlength(trial, font=nf) > width:
                d.text((margin, y), line, font=nf, fill=ink)
                lines.append(line)
                y += line_h
                line = word
            else:
                line = trial
        if line:
            d.text((margin, y), line, font=nf, fill=ink)
            lines.append(line)
            y += line_h
        y += 0.6 * line_h
    d.text((w - margin - 60 * mm, y + 8 * mm), f"{p.birth_place}, 30 Juni 2024", font=nf, fill=ink)
    _signature(d, w - margin - 55 * mm, y + 30 * mm, 40 * mm, rng)
    cx, cy = w - margin - 45 * mm, y + 30 * mm
    d.ellipse(
        [cx - 15 * mm, cy - 15 * mm, cx + 15 * mm, cy + 15 * mm],
        outline=(60, 70, 160),
        width=max(1, round(0.6 * mm)),
    )
    d.text((w - margin - 60 * mm, y + 48 * mm), "HRD Manager", font=nf, fill=ink)
    return Letter(_bgr(img), px_per_mm, tuple(lines))


# --- on the desk ------------------------------------------------------------------------------


def on_desk(document: np.ndarray, fmt: str, seed: int, **spec: object) -> Scene:
    """`document` (BGR) laid on a random desk (`scenes.random_spec(fmt, seed)`, then any
    `SceneSpec` field overridden by `spec`) and photographed by the 1080p camera."""
    base: SceneSpec = random_spec(fmt, seed)
    return render(replace(base, **spec), texture=document)  # type: ignore[arg-type]


# --- sets -------------------------------------------------------------------------------------

RENDERERS = {"ktp": render_ktp, "kpj_card": render_kpj_card, "buku_tabungan": render_bank_book}


def truth(kind: str, p: Person) -> dict[str, str]:
    """The fields `loket capture read` should give for `p`'s document of `kind`."""
    if kind == "ktp":
        return {"nik": p.nik, "name": p.name, "birth_place": p.birth_place,
                "birth_date": p.birth_date.isoformat(), "sex": p.sex}  # fmt: skip
    if kind == "kpj_card":
        return {"kpj": p.kpj, "name": p.name}
    return {"account_number": p.account_number, "holder_name": p.name}


def placed(kind: str, document: np.ndarray) -> tuple[np.ndarray, str]:
    """(texture, format) to lay `document` on the desk as the kiosk's format expects: a
    landscape passbook page goes across the A4 plate (the kiosk rectifies it portrait)."""
    if kind == "buku_tabungan":
        return cv2.rotate(document, cv2.ROTATE_90_CLOCKWISE), "a4"
    return document, "id1"
