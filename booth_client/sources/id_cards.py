"""Indonesian identity documents drawn with known contents: the e-KTP (its layout and
labels), the BPJS Ketenagakerjaan KPJ card and a bank book's first page (buku tabungan),
in the fonts this machine has. The synthetic participant shows these to the kiosk's
document camera (`booth_client.sources.documents`), and the reading tests and
`bench/reading_bench.py` read them (tests/support/id_documents.py adds A4 letters).

Everything is drawn from a seed: the same seed gives the same person and the same pixels.
`person_for(nik, kpj)` is the member a synthetic kiosk's NIK and KPJ stand for.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[2]  # the checkout (or site-packages)
_SYSTEM = Path("/usr/share/fonts/truetype")
# (name, regular, bold): the repo's DejaVu always; system fonts when installed.
_FONT_FILES = (
    (
        "DejaVu Sans",
        ROOT / "booth_client/screen/fonts/DejaVuSans.ttf",
        ROOT / "booth_client/screen/fonts/DejaVuSans-Bold.ttf",
    ),
    (
        "Liberation Sans",
        _SYSTEM / "liberation/LiberationSans-Regular.ttf",
        _SYSTEM / "liberation/LiberationSans-Bold.ttf",
    ),
    (
        "Liberation Sans Narrow",
        _SYSTEM / "liberation/LiberationSansNarrow-Regular.ttf",
        _SYSTEM / "liberation/LiberationSansNarrow-Bold.ttf",
    ),
    (
        "DejaVu Sans Condensed",
        _SYSTEM / "dejavu/DejaVuSansCondensed.ttf",
        _SYSTEM / "dejavu/DejaVuSansCondensed-Bold.ttf",
    ),
    (
        "Liberation Serif",
        _SYSTEM / "liberation/LiberationSerif-Regular.ttf",
        _SYSTEM / "liberation/LiberationSerif-Bold.ttf",
    ),
    ("DejaVu Serif", _SYSTEM / "dejavu/DejaVuSerif.ttf", _SYSTEM / "dejavu/DejaVuSerif-Bold.ttf"),
    (
        "Liberation Mono",
        _SYSTEM / "liberation/LiberationMono-Regular.ttf",
        _SYSTEM / "liberation/LiberationMono-Bold.ttf",
    ),
)
FONTS: tuple[str, ...] = tuple(
    name for name, regular, bold in _FONT_FILES if regular.exists() and bold.exists()
)
_PATHS = {name: (regular, bold) for name, regular, bold in _FONT_FILES}


@lru_cache(maxsize=128)
def font(name: str, size_px: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_PATHS[name][1 if bold else 0]), max(6, size_px))


# --- people -----------------------------------------------------------------------------------

_PROVINCES = (
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    21,
    31,
    32,
    33,
    34,
    35,
    36,
    51,
    52,
    53,
    61,
    62,
    63,
    64,
    65,
    71,
    72,
    73,
    74,
    75,
    76,
    81,
    82,
    91,
    92,
)
_MEN = (
    "AHMAD",
    "BUDI",
    "AGUS",
    "RIZKY",
    "DENI",
    "HENDRA",
    "ANDI",
    "EKO",
    "YUSUF",
    "FAJAR",
    "IRFAN",
    "WAHYU",
    "SLAMET",
    "JOKO",
    "DIMAS",
    "ARIF",
    "BAYU",
    "HADI",
    "RUDI",
    "TAUFIK",
)
_WOMEN = (
    "SITI",
    "DEWI",
    "SRI",
    "RINA",
    "AYU",
    "FITRI",
    "NUR",
    "LESTARI",
    "WULAN",
    "INDAH",
    "PUTRI",
    "MEGA",
    "YULIA",
    "RATNA",
    "DIAN",
    "NOVI",
    "ANISA",
    "MAYA",
    "TUTI",
    "LINDA",
)
_FAMILY = (
    "SANTOSO",
    "WIJAYA",
    "HIDAYAT",
    "SETIAWAN",
    "PRATAMA",
    "SAPUTRA",
    "KURNIAWAN",
    "NURHALIZA",
    "RAHAYU",
    "HASIBUAN",
    "SIREGAR",
    "LUBIS",
    "NASUTION",
    "SIMANJUNTAK",
    "PURNAMASARI",
    "HANDAYANI",
    "SUSANTO",
    "GUNAWAN",
    "HARAHAP",
    "MANURUNG",
    "WIBOWO",
    "SUDARSONO",
    "HAKIM",
    "RAMADHAN",
    "MAULANA",
    "FIRMANSYAH",
)
_PREFIXES = ("MUH.", "MOCH.", "MUHAMMAD", "H.", "HJ.")
_TITLES = ("S.E.", "S.KOM", "S.PD", "S.H.", "A.MD")
_PLACES = (
    "JAKARTA",
    "BANDUNG",
    "SURABAYA",
    "MEDAN",
    "SEMARANG",
    "MAKASSAR",
    "PALEMBANG",
    "YOGYAKARTA",
    "DENPASAR",
    "MALANG",
    "BOGOR",
    "TANGERANG",
    "BEKASI",
    "PADANG",
    "PONTIANAK",
    "BALIKPAPAN",
    "MANADO",
    "KUPANG",
    "JAYAPURA",
    "PEKANBARU",
)
_BANKS = (
    "BANK RAKYAT INDONESIA",
    "BANK MANDIRI",
    "BANK NEGARA INDONESIA",
    "BANK CENTRAL ASIA",
    "BANK TABUNGAN NEGARA",
    "BANK SYARIAH INDONESIA",
)
_STREETS = (
    "JL. MAWAR",
    "JL. MELATI",
    "JL. SUDIRMAN",
    "JL. DIPONEGORO",
    "JL. KENANGA",
    "GG. MANGGA",
    "JL. MERDEKA",
    "JL. PAHLAWAN",
)
_JOBS = ("KARYAWAN SWASTA", "BURUH HARIAN LEPAS", "WIRASWASTA", "PEDAGANG", "KARYAWAN BUMN")
_RELIGIONS = ("ISLAM", "KRISTEN", "KATHOLIK", "HINDU", "BUDDHA")


@dataclass(frozen=True)
class Person:
    """What a member's documents say (and, unless a test changes it, the member record)."""

    nik: str
    name: str
    birth_place: str
    birth_date: date
    sex: str  # "M" or "F"
    kpj: str
    account_number: str  # digits only
    account_display: str  # as the bank prints it: dashes, dots, spaces
    bank: str
    address: str
    religion: str
    job: str

    @property
    def sex_label(self) -> str:
        return "LAKI-LAKI" if self.sex == "M" else "PEREMPUAN"


def person(seed: int, *, titled: bool | None = None) -> Person:
    """A plausible member: a NIK whose digits 7-12 are the birth date (+40 for women),
    an Indonesian name (sometimes with an honorific, abbreviation or degree)."""
    rng = np.random.default_rng([seed, 0x9E250])
    sex = "F" if rng.random() < 0.5 else "M"
    first = str(rng.choice(_WOMEN if sex == "F" else _MEN))
    family = str(rng.choice(_FAMILY))
    parts = [first, family] if rng.random() < 0.6 else [first, str(rng.choice(_FAMILY)), family]
    if titled if titled is not None else rng.random() < 0.35:
        if rng.random() < 0.5:
            prefix = str(rng.choice(_PREFIXES[:3] if sex == "M" else ("HJ.",)))
            parts.insert(0, prefix)
        else:
            parts[-1] += ","
            parts.append(str(rng.choice(_TITLES)))
    name = " ".join(parts)
    born = date(int(rng.integers(1962, 2004)), int(rng.integers(1, 13)), int(rng.integers(1, 29)))
    day = born.day + (40 if sex == "F" else 0)
    nik = (
        f"{rng.choice(_PROVINCES):02d}{rng.integers(1, 80):02d}{rng.integers(1, 40):02d}"
        f"{day:02d}{born.month:02d}{born.year % 100:02d}{rng.integers(1, 9999):04d}"
    )
    kpj = "".join(str(d) for d in rng.integers(0, 10, 11))
    kpj = str(rng.integers(1, 10)) + kpj[1:]
    bank = str(rng.choice(_BANKS))
    account, display = _account(rng, bank)
    address = f"{rng.choice(_STREETS)} NO. {rng.integers(1, 120)}"
    return Person(
        nik,
        name,
        str(rng.choice(_PLACES)),
        born,
        sex,
        kpj,
        account,
        display,
        bank,
        address,
        str(rng.choice(_RELIGIONS)),
        str(rng.choice(_JOBS)),
    )


def _account(rng: np.random.Generator, bank: str) -> tuple[str, str]:
    """(digits, as printed): BRI 15 digits 4-2-6-2-1, Mandiri 13 (3-2-7-1), others 10."""

    def digits(n: int) -> str:
        return str(rng.integers(1, 10)) + "".join(str(d) for d in rng.integers(0, 10, n - 1))

    if bank == "BANK RAKYAT INDONESIA":
        d = digits(15)
        return d, f"{d[:4]}-{d[4:6]}-{d[6:12]}-{d[12:14]}-{d[14]}"
    if bank == "BANK MANDIRI":
        d = digits(13)
        return d, f"{d[:3]}-{d[3:5]}-{d[5:12]}-{d[12]}"
    d = digits(10)
    return d, (d if rng.random() < 0.5 else f"{d[:3]}.{d[3:6]}.{d[6:]}")


# --- drawing helpers --------------------------------------------------------------------------


def _bgr(image: Image.Image) -> np.ndarray:
    return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)


def _guilloche(
    draw: ImageDraw.ImageDraw,
    w: int,
    h: int,
    colour: tuple[int, int, int],
    rng: np.random.Generator,
) -> None:
    """Security-print waves: thin, light, everywhere (OCR must ignore them)."""
    xs = np.arange(0, w, 4, dtype=np.float64)
    for k in range(14):
        phase, amp, period = rng.uniform(0, 6.3), rng.uniform(8, 30), rng.uniform(120, 300)
        y0 = (k + 0.5) * h / 14
        ys = y0 + amp * np.sin(xs / period * 2 * math.pi + phase)
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=colour, width=1)


def _photo(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A passport-style photo: plain red or blue background, a head and shoulders."""
    w, h = size
    bg = (190, 40, 40) if rng.random() < 0.5 else (40, 80, 170)
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    skin = tuple(int(c) for c in rng.integers([150, 110, 80], [225, 175, 140]))
    d.ellipse([w * 0.1, h * 0.68, w * 0.9, h * 1.3], fill=(40, 40, 50))  # shoulders
    d.ellipse([w * 0.27, h * 0.15, w * 0.73, h * 0.7], fill=skin)  # face
    d.ellipse([w * 0.25, h * 0.08, w * 0.75, h * 0.35], fill=(25, 20, 20))  # hair
    return img


def _fit(
    draw: ImageDraw.ImageDraw, text: str, face: ImageFont.FreeTypeFont, width: float
) -> ImageFont.FreeTypeFont:
    """`face`, made smaller until `text` fits in `width` (as cards print long names)."""
    while draw.textlength(text, font=face) > width and face.size > 12:
        face = face.font_variant(size=face.size - 2)
    return face


def _signature(
    draw: ImageDraw.ImageDraw,
    x: float,
    y: float,
    w: float,
    rng: np.random.Generator,
    colour: tuple[int, int, int] = (30, 30, 60),
) -> None:
    xs = np.linspace(x, x + w, 30)
    ys = y + np.cumsum(rng.normal(0, w * 0.03, xs.size))
    draw.line(
        list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=colour, width=max(1, round(w / 80))
    )


# --- the KTP ----------------------------------------------------------------------------------

PX_PER_MM = 15  # card textures: 1284 x 810 for 85.6 x 54 mm


@dataclass(frozen=True)
class CardStyle:
    font: str = "Liberation Sans"
    size: float = 1.0  # body text scale
    label_colon: bool = True  # "Nama : X" or "Nama X"
    bold_values: bool = False


def card_style(seed: int) -> CardStyle:
    rng = np.random.default_rng([seed, 0x57E1])
    return CardStyle(
        font=str(rng.choice(FONTS)),
        size=float(rng.uniform(0.92, 1.1)),
        label_colon=bool(rng.random() < 0.85),
        bold_values=bool(rng.random() < 0.3),
    )


def render_ktp(p: Person, style: CardStyle | None = None, seed: int = 0) -> np.ndarray:
    """An e-KTP front (BGR, 15 px/mm): province and regency, NIK, the labelled rows, the
    photo with the place and date of issue under it."""
    style = style or CardStyle()
    rng = np.random.default_rng([seed, 0x4B7])
    w, h = round(85.6 * PX_PER_MM), round(54 * PX_PER_MM)
    img = Image.new("RGB", (w, h), (205, 225, 240))
    d = ImageDraw.Draw(img)
    for row in range(0, h, 6):  # a pale blue gradient, lighter at the bottom
        t = row / h
        d.rectangle([0, row, w, row + 6], fill=(round(195 + 40 * t), round(220 + 25 * t), 245))
    _guilloche(d, w, h, (175, 205, 230), rng)
    mm = PX_PER_MM
    head = font(style.font, round(2.6 * mm), bold=True)
    for text, y in (
        (f"PROVINSI {rng.choice(('JAWA BARAT', 'DKI JAKARTA', 'JAWA TIMUR'))}", 3.0),
        (f"KOTA {p.birth_place}", 6.6),
    ):
        tw = d.textlength(text, font=head)
        d.text(((w - tw) / 2, y * mm), text, font=head, fill=(20, 20, 20))
    body_px = round(2.15 * mm * style.size)
    label_font = font(style.font, body_px)
    value_font = font(style.font, body_px, bold=style.bold_values)
    nik_font = font(style.font, round(3.4 * mm * style.size), bold=True)
    x_label, x_colon = 3.5 * mm, 24 * mm
    sep = " : " if style.label_colon else "  "
    d.text((x_label, 10.8 * mm), "NIK", font=nik_font, fill=(10, 10, 10))
    d.text(
        (x_colon - 2 * mm, 10.8 * mm),
        f"{sep.strip() or ' '} {p.nik}",
        font=nik_font,
        fill=(10, 10, 10),
    )
    rows = [
        ("Nama", p.name),
        ("Tempat/Tgl Lahir", f"{p.birth_place}, {p.birth_date:%d-%m-%Y}"),
        ("Jenis Kelamin", p.sex_label),
        ("Alamat", p.address),
        ("RT/RW", f"{rng.integers(1, 20):03d}/{rng.integers(1, 15):03d}"),
        ("Kel/Desa", str(rng.choice(("SUKAMAJU", "MEKARSARI", "CIBEUNYING", "KEBON JERUK")))),
        ("Kecamatan", str(rng.choice(("COBLONG", "ANDIR", "SUKASARI", "TEBET")))),
        ("Agama", p.religion),
        ("Status Perkawinan", str(rng.choice(("KAWIN", "BELUM KAWIN")))),
        ("Pekerjaan", p.job),
        ("Kewarganegaraan", "WNI"),
        ("Berlaku Hingga", "SEUMUR HIDUP"),
    ]
    pitch = 2.75 * mm
    y = 17.0 * mm
    for label, value in rows:
        indent = 2 * mm if label in ("RT/RW", "Kel/Desa", "Kecamatan") else 0
        d.text((x_label + indent, y), label, font=label_font, fill=(25, 25, 25))
        if style.label_colon:
            d.text((x_colon, y), ":", font=label_font, fill=(25, 25, 25))
        # Long names are printed smaller, to end before the photo.
        fitted = _fit(d, value, value_font, 60 * mm - x_colon)
        d.text((x_colon + 1.6 * mm, y), value, font=fitted, fill=(15, 15, 15))
        if label == "Jenis Kelamin":
            gx = 45 * mm
            d.text(
                (gx, y),
                f"Gol. Darah{sep}{rng.choice(('A', 'B', 'AB', 'O', '-'))}",
                font=label_font,
                fill=(25, 25, 25),
            )
        y += pitch
    photo = _photo((round(20 * mm), round(24 * mm)), rng)
    img.paste(photo, (round(62 * mm), round(16.5 * mm)))
    small = font(style.font, round(2.0 * mm))
    for text, yy in (
        (p.birth_place, 41.5),
        (f"{rng.integers(1, 28):02d}-{rng.integers(1, 13):02d}-2019", 44.0),
    ):
        tw = d.textlength(text, font=small)
        d.text((71.5 * mm - tw / 2, yy * mm), text, font=small, fill=(20, 20, 20))
    _signature(d, 64 * mm, 49 * mm, 15 * mm, rng)
    return _bgr(img)


# --- the KPJ card -----------------------------------------------------------------------------


def render_kpj_card(p: Person, style: CardStyle | None = None, seed: int = 0) -> np.ndarray:
    """A BPJS Ketenagakerjaan participant card (BGR, 15 px/mm): green band with the
    agency's name, the participant's name and KPJ number, labelled as several card
    generations label them (or not at all), the birth date and the employer."""
    style = style or CardStyle()
    rng = np.random.default_rng([seed, 0x4B9])
    w, h = round(85.6 * PX_PER_MM), round(54 * PX_PER_MM)
    mm = PX_PER_MM
    img = Image.new("RGB", (w, h), (245, 248, 244))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, w, 12 * mm], fill=(20, 130, 60))
    d.ellipse([3 * mm, 2 * mm, 11 * mm, 10 * mm], fill=(250, 250, 250))
    d.text(
        (13 * mm, 2.5 * mm),
        "BPJS Ketenagakerjaan",
        font=font(style.font, round(3.6 * mm), True),
        fill=(255, 255, 255),
    )
    d.text(
        (13 * mm, 7.4 * mm),
        "KARTU PESERTA",
        font=font(style.font, round(2.3 * mm)),
        fill=(230, 240, 230),
    )
    _guilloche(d, w, h, (222, 236, 222), rng)
    d.rectangle([0, 12 * mm, w, 12.8 * mm], fill=(240, 170, 30))
    body = font(style.font, round(2.7 * mm * style.size))
    value = font(style.font, round(2.9 * mm * style.size), bold=True)
    variant = int(rng.integers(3))
    y: float = 17 * mm
    x, xv = 5 * mm, 30 * mm
    if variant == 2:  # no labels: the name, then the number, as printed on older cards
        d.text((x, y), p.name, font=_fit(d, p.name, value, w - x - 4 * mm), fill=(15, 15, 15))
        d.text(
            (x, y + 5.5 * mm),
            p.kpj,
            font=font(style.font, round(3.6 * mm), True),
            fill=(15, 15, 15),
        )
        y += 13 * mm
    else:
        kpj_label = ("No. KPJ", "Nomor Peserta")[variant]
        for label, text in (("Nama", p.name), (kpj_label, p.kpj)):
            d.text((x, y), label, font=body, fill=(40, 40, 40))
            shown = (": " if style.label_colon else "") + text
            d.text((xv, y), shown, font=_fit(d, shown, value, w - xv - 4 * mm), fill=(15, 15, 15))
            y += 5 * mm
    for label, text in (
        ("Tgl. Lahir", f"{p.birth_date:%d-%m-%Y}"),
        ("Perusahaan", f"PT {rng.choice(_FAMILY)} {rng.choice(('ABADI', 'JAYA', 'MANDIRI'))}"),
    ):
        d.text((x, y), label, font=body, fill=(40, 40, 40))
        d.text((xv, y), (": " if style.label_colon else "") + text, font=body, fill=(15, 15, 15))
        y += 4.6 * mm
    d.text(
        (x, h - 6 * mm),
        "www.bpjsketenagakerjaan.go.id",
        font=font(style.font, round(2 * mm)),
        fill=(20, 110, 50),
    )
    return _bgr(img)


# --- the bank book ----------------------------------------------------------------------------


def render_bank_book(p: Person, style: CardStyle | None = None, seed: int = 0) -> np.ndarray:
    """A passbook's identity page (BGR): 148 x 105 mm (A6, the √2 aspect of A4) placed
    landscape, at 10 px/mm: the bank, the account number and the holder's name (labels
    vary by bank), address, branch, opening date, an officer's stamp."""
    style = style or CardStyle()
    rng = np.random.default_rng([seed, 0xB00C])
    mm = 10
    w, h = 148 * mm, 105 * mm
    img = Image.new("RGB", (w, h), (248, 246, 238))
    d = ImageDraw.Draw(img)
    _guilloche(d, w, h, (232, 232, 218), rng)
    colour = tuple(int(c) for c in rng.integers([10, 40, 90], [60, 110, 170]))
    d.rectangle([0, 0, w, 14 * mm], fill=colour)  # type: ignore[arg-type]
    d.text(
        (8 * mm, 3.5 * mm),
        p.bank,
        font=font(style.font, round(5.5 * mm), True),
        fill=(255, 255, 255),
    )
    d.text(
        (8 * mm, 19 * mm),
        "BUKU TABUNGAN",
        font=font(style.font, round(4.5 * mm), True),
        fill=(30, 30, 30),
    )
    labels = [
        ("No. Rekening", "Nomor Rekening", "No. Rek")[int(rng.integers(3))],
        ("Nama", "Nama Nasabah", "Atas Nama")[int(rng.integers(3))],
    ]
    body = font(style.font, round(4.0 * mm * style.size))
    bold = font(style.font, round(4.2 * mm * style.size), bold=True)
    rows = [
        (labels[0], p.account_display, bold),
        (labels[1], p.name, bold),
        ("Alamat", p.address, body),
        ("Cabang", f"KC {p.birth_place}", body),
        ("Tgl. Pembukaan", f"{rng.integers(1, 28):02d}-{rng.integers(1, 13):02d}-2015", body),
    ]
    if rng.random() < 0.5:
        rows[0], rows[1] = rows[1], rows[0]
    y = 32 * mm
    for label, text, f in rows:
        d.text((8 * mm, y), label, font=body, fill=(40, 40, 40))
        shown = (": " if style.label_colon else "") + text
        d.text((48 * mm, y), shown, font=_fit(d, shown, f, w - 54 * mm), fill=(10, 10, 10))
        y += 9 * mm
    cx, cy = 120 * mm, 88 * mm
    d.ellipse(
        [cx - 14 * mm, cy - 10 * mm, cx + 14 * mm, cy + 10 * mm], outline=(150, 60, 40), width=4
    )
    _signature(d, 100 * mm, 92 * mm, 30 * mm, rng)
    return _bgr(img)


# --- the synthetic participant's own documents -------------------------------------------------


def person_for(nik: str, kpj: str) -> Person:
    """The member a (structurally valid) NIK and KPJ stand for, the same every time: born
    on the date and of the sex the NIK's digits 7-12 say (a two-digit year above 25 is the
    1900s), with a name, birth place, address and bank account drawn from the two numbers."""
    day, month, year2 = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    sex = "F" if day > 40 else "M"
    born = date(1900 + year2 if year2 > 25 else 2000 + year2, month, day - (40 if day > 40 else 0))
    seed = zlib.crc32(f"{nik}:{kpj}".encode())
    drawn = person(seed, titled=False)
    while drawn.sex != sex:  # half the seeds draw the other sex: the next one will do
        seed += 1
        drawn = person(seed, titled=False)
    return replace(drawn, nik=nik, kpj=kpj, birth_date=born)
