"""From lines of text to a document's fields: the KTP, the KPJ card, the bank book. Pure.

The lines are put back into rows (left to right, as printed), each row's label is found
(the printed label, allowing OCR's slips and a missing colon) and its value read by the
field's rules: a NIK is 16 digits that can be a NIK, a date is a real date, a sex is one
of the two words. A field that is not found, does not pass its rule, or was read with too
little confidence is `None`: never a guess.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from reading.dates import nik_birth, parse_date
from reading.engine import TextLine
from reading.text import (
    LETTER_LOOKALIKES,
    clean,
    digit_field,
    digit_runs,
    letters,
    ratio,
    split_label,
)

KINDS: tuple[str, ...] = ("ktp", "kpj_card", "buku_tabungan")
KIND_FIELDS: Mapping[str, tuple[str, ...]] = {
    "ktp": ("nik", "name", "birth_place", "birth_date", "sex"),
    "kpj_card": ("kpj", "name"),
    "buku_tabungan": ("account_number", "holder_name"),
}
# Below these a value is reported as unreadable (None). Set from bench/reading_bench.py:
# the lowest confidence at which the rendered set had no wrong value (README).
MIN_CONFIDENCE: Mapping[str, float] = {
    "nik": 0.80, "kpj": 0.80, "account_number": 0.80,
    "name": 0.80, "holder_name": 0.80, "birth_place": 0.75,
    "birth_date": 0.80, "sex": 0.75,
}  # fmt: skip
# Each substituted look-alike letter in a digit field costs this factor of confidence.
LOOKALIKE_COST = 0.95
_PROVINCES = range(11, 97)  # as server/domain/claims.py checks a NIK: a lenient range


@dataclass(frozen=True, slots=True)
class Field:
    """One field as read: its value (normalised: digits only, upper-case names, ISO dates,
    "M"/"F") or None, its confidence (0-1; 0 for None), and the text it came from."""

    value: str | None
    confidence: float
    raw: str | None = None

    @staticmethod
    def unreadable(raw: str | None = None) -> Field:
        return Field(None, 0.0, raw)


@dataclass(frozen=True, slots=True)
class Row:
    """Lines printed on one row, left to right; `text` joins them with spaces."""

    lines: tuple[TextLine, ...]

    @property
    def text(self) -> str:
        return " ".join(clean(line.text) for line in self.lines)

    def score(self, start: int = 0, end: int | None = None) -> float:
        """The OCR confidence of `text[start:end]`: its least confident line (junk
        elsewhere on the row, a blood group misread beside the sex, does not count)."""
        end = len(self.text) if end is None else end
        scores, offset = [], 0
        for line in self.lines:
            length = len(clean(line.text))
            if offset < end and offset + length > start:
                scores.append(line.score)
            offset += length + 1
        return min(scores, default=0.0)


def level(lines: Iterable[TextLine]) -> list[TextLine]:
    """`lines` of a picture taken at a slant (a card turned on the desk, a phone photo),
    their boxes turned about the origin until the text runs level: by the median slope
    of the long lines' long sides, up to 45 degrees either way (a quarter turn is the
    reader's)."""
    found = list(lines)
    slopes = []
    for line in found:
        a, b, c = line.box[0], line.box[1], line.box[2]
        first, second = (b[0] - a[0], b[1] - a[1]), (c[0] - b[0], c[1] - b[1])
        along, across = sorted((first, second), key=lambda v: -math.hypot(*v))
        if math.hypot(*along) < 2 * math.hypot(*across):
            continue  # a short word: its slope says little
        angle = math.atan2(along[1], along[0])
        slopes.append((angle + math.pi / 2) % math.pi - math.pi / 2)  # the same line either way
    if not slopes:
        return found
    angle = statistics.median(slopes)
    if abs(angle) < math.radians(1.5) or abs(angle) > math.radians(45):
        return found
    cos, sin = math.cos(-angle), math.sin(-angle)
    return [
        TextLine(
            line.text,
            line.score,
            tuple((cos * x - sin * y, sin * x + cos * y) for x, y in line.box),
        )
        for line in found
    ]


def rows(lines: Iterable[TextLine]) -> list[Row]:
    """Lines grouped into printed rows, top to bottom, each left to right (levelled
    first). Two lines share a row when they overlap vertically by half the smaller
    one's height."""
    upright = sorted((line for line in level(lines) if line.upright), key=lambda line: line.middle)
    groups: list[list[TextLine]] = []
    for line in upright:
        if groups:
            top = min(x.top for x in groups[-1])
            bottom = max(x.bottom for x in groups[-1])
            overlap = min(bottom, line.bottom) - max(top, line.top)
            smaller = min(line.height, min(x.height for x in groups[-1]))
            if overlap >= 0.5 * smaller:
                groups[-1].append(line)
                continue
        groups.append([line])
    return [Row(tuple(sorted(g, key=lambda line: line.left))) for g in groups]


# --- labels ----------------------------------------------------------------------------------

Labels = Mapping[str, tuple[str, ...]]  # field (or "other") -> label keys, letters only

KTP_LABELS: Labels = {
    "nik": ("NIK",),
    "name": ("NAMA",),
    "birth": ("TEMPATTGLLAHIR", "TEMPATTANGGALLAHIR", "TEMPATLAHIR", "TTL"),
    "sex": ("JENISKELAMIN",),
    # Rows that are not ours, listed so that none of them is taken for one that is.
    "other": ("ALAMAT", "RTRW", "KELDESA", "KELURAHANDESA", "KECAMATAN", "AGAMA",
              "STATUSPERKAWINAN", "PEKERJAAN", "KEWARGANEGARAAN", "BERLAKUHINGGA",
              "GOLDARAH", "PROVINSI", "KOTA", "KABUPATEN"),
}  # fmt: skip
KPJ_LABELS: Labels = {
    "kpj": ("NOKPJ", "NOMORKPJ", "KPJ", "NOMORPESERTA", "NOPESERTA", "NOMORKARTU", "NOKARTU"),
    "name": ("NAMA", "NAMAPESERTA", "NAMALENGKAP"),
    "other": ("TGLLAHIR", "TANGGALLAHIR", "PERUSAHAAN", "NAMAPERUSAHAAN", "NIK", "ALAMAT",
              "KARTUPESERTA", "BPJSKETENAGAKERJAAN", "TANGGALKEPESERTAAN", "TGLKEPESERTAAN"),
}  # fmt: skip
BANK_LABELS: Labels = {
    "account_number": ("NOREKENING", "NOMORREKENING", "NOREK", "REKENING", "NOMORREK",
                       "NOACCOUNT", "ACCOUNTNO", "ACCOUNTNUMBER"),
    "holder_name": ("NAMA", "NAMANASABAH", "ATASNAMA", "NAMAPEMILIK", "PEMILIKREKENING",
                    "NAMAREKENING", "NAMAPEMEGANGREKENING"),
    "other": ("ALAMAT", "CABANG", "KANTORCABANG", "TGLPEMBUKAAN", "TANGGALPEMBUKAAN",
              "NOCIF", "CIF", "JENISTABUNGAN", "PRODUK", "NPWP", "NIK", "MATAUANG"),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Labelled:
    field: str
    value: str
    row: Row
    start: int  # where the value starts in the row's text
    similarity: float  # how well the printed label matched

    def score(self, start: int = 0, end: int | None = None) -> float:
        """Confidence of `value[start:end]`: its OCR confidence, less a little when the
        label itself was misread."""
        end = len(self.value) if end is None else end
        ocr = self.row.score(self.start + start, self.start + end)
        return ocr * min(1.0, self.similarity + 0.1)


def labelled(found_rows: Sequence[Row], labels: Labels) -> list[Labelled]:
    """Every row that starts with a known label, with the field the label names."""
    keys = tuple(key for group in labels.values() for key in group)
    owner = {key: field for field, group in labels.items() for key in group}
    out = []
    for row in found_rows:
        # A label that is a line of its own ("Nama", then "SITI AMINAH" as another line)
        # ends where that line ends, however it was misread; else it is cut from the row.
        alone = split_label(clean(row.lines[0].text), keys)
        if alone is not None and not alone.value and len(row.lines) > 1:
            start = len(clean(row.lines[0].text)) + 1
            value = row.text[start:].lstrip(" :;.=_-")
            start = len(row.text) - len(value)
            out.append(Labelled(owner[alone.key], value, row, start, alone.similarity))
            continue
        split = split_label(row.text, keys)
        if split is not None:
            out.append(Labelled(owner[split.key], split.value, row, split.start, split.similarity))
    return out


def _first(found: list[Labelled], field: str) -> Labelled | None:
    return next((x for x in found if x.field == field), None)


# --- values -----------------------------------------------------------------------------------


def is_nik(digits: str) -> bool:
    """16 digits laid out as a NIK: province, birth date (+40 for women), serial."""
    return (
        len(digits) == 16
        and int(digits[:2]) in _PROVINCES
        and nik_birth(digits) is not None
        and digits[12:] != "0000"
    )


def _digits(text: str, length: range, score: float, check: Callable[[str], bool] | None = None
            ) -> Field:  # fmt: skip
    """A digit field from `text`: the whole of it, or else its one run of the right length."""
    candidates = []
    whole = digit_field(text)
    if whole is not None:
        candidates.append(whole)
    candidates += digit_runs(text)
    for digits, mapped in candidates:
        if len(digits) in length and (check is None or check(digits)):
            return Field(digits, score * LOOKALIKE_COST**mapped, text)
    return Field.unreadable(text)


def _anywhere(
    found_rows: Sequence[Row],
    length: range,
    check: Callable[[str], bool] | None,
    exclude: Iterable[Row] = (),
) -> tuple[Field, int | None]:
    """The one digit run of the right length anywhere (no label seen), and its row's
    index; unreadable when there are several different ones: which is the field would
    be a guess."""
    skip = {id(row) for row in exclude}
    seen: dict[str, tuple[float, int]] = {}
    for i, row in enumerate(found_rows):
        if id(row) in skip:
            continue
        for digits, mapped in digit_runs(row.text):
            if len(digits) in length and (check is None or check(digits)):
                score = row.score() * LOOKALIKE_COST**mapped
                if score > seen.get(digits, (0.0, 0))[0]:
                    seen[digits] = (score, i)
    if len(seen) != 1:
        return Field.unreadable(), None
    digits, (score, index) = next(iter(seen.items()))
    return Field(digits, score * 0.95, found_rows[index].text), index  # no label: less sure


_NAME_CHARS = re.compile(r"[^A-Z .,'\-]")


def _name(text: str, score: float) -> Field:
    """A person's name as printed: upper case, letters and . , ' - only. A digit or two
    inside it are read as the letters they resemble; more make it unreadable."""
    value = clean(text).upper()
    digits = sum(c.isdigit() for c in value)
    if digits > 2:
        return Field.unreadable(text)
    value = "".join(LETTER_LOOKALIKES.get(c, c) for c in value)
    value = re.sub(r"\s+", " ", _NAME_CHARS.sub("", value)).strip(" ,-")
    if len(letters(value)) < 3:
        return Field.unreadable(text)
    return Field(value, score * LOOKALIKE_COST**digits, text)


_DATE_TAIL = re.compile(
    r"(?P<date>\w{1,2}\s*[-/.]\s*\w{1,2}\s*[-/.]\s*\w{2,4}|\w{1,2}[\s.-]+[A-Za-z]{3,9}\.?[\s,.-]+\w{4})\s*$"
)


def _birth(text: str, score: float) -> tuple[Field, Field]:
    """(place, date) from "JAKARTA, 27-08-1990" (comma or not, any date format)."""
    match = _DATE_TAIL.search(text)
    if match is None:
        return Field.unreadable(text), Field.unreadable(text)
    born = parse_date(match.group("date"))
    date_field = Field(born.isoformat(), score, text) if born else Field.unreadable(text)
    place = clean(text[: match.start()]).strip(" ,.:;")
    place_field = _name(place, score) if place else Field.unreadable(text)
    return place_field, date_field


_SEXES = (("LAKILAKI", "M"), ("PEREMPUAN", "F"), ("PRIA", "M"), ("WANITA", "F"))


def _sex(found: Labelled) -> Field:
    """ "M" or "F" from the word the value starts with (LAKI-LAKI / PEREMPUAN)."""
    text = found.value
    plain = letters(text)
    similarity, word, sex = max((ratio(plain[: len(w)], w), w, s) for w, s in _SEXES)
    if similarity < 0.75:
        return Field.unreadable(text)
    # Its confidence is that of the characters the word took, not of what follows it.
    seen, end = 0, len(text)
    for i, c in enumerate(text):
        seen += c.isascii() and c.isalpha()
        if seen >= len(word):
            end = i + 1
            break
    return Field(sex, found.score(0, end) * similarity, text)


def _sex_anywhere(found_rows: Sequence[Row]) -> Field:
    """LAKI-LAKI or PEREMPUAN as a word of its own on some row, read closely."""
    seen = set()
    best = Field.unreadable()
    for row in found_rows:
        for i, line in enumerate(row.lines):
            plain = letters(line.text)
            for word, sex in _SEXES[:2]:
                similarity = ratio(plain[: len(word)], word)
                if similarity >= 0.85:
                    seen.add(sex)
                    offset = sum(len(clean(x.text)) + 1 for x in row.lines[:i])
                    score = row.score(offset, offset + 1) * similarity * 0.95
                    if score > best.confidence:
                        best = Field(sex, score, line.text)
    return best if len(seen) == 1 else Field.unreadable()


def _gate(fields: dict[str, Field]) -> dict[str, Field]:
    """Values read with too little confidence become unreadable."""
    out = {}
    for name, field in fields.items():
        ok = field.value is not None and field.confidence >= MIN_CONFIDENCE.get(name, 0.8)
        out[name] = field if ok else Field.unreadable(field.raw)
    return out


# --- documents --------------------------------------------------------------------------------


def _labelled_as(found: list[Labelled], field: str, read: Callable[[Labelled], Field]) -> Field:
    """`read` applied to the first row labelled as `field`; unreadable without one."""
    row = next((x for x in found if x.field == field), None)
    return Field.unreadable() if row is None else read(row)


# Indonesian account numbers: 10 (BCA, BNI, BSI) to 16 (BTN) digits, BRI 15, Mandiri 13
# (a date read off the page, 8 digits, is not one).
ACCOUNT_DIGITS = range(10, 17)


def parse_ktp(lines: Iterable[TextLine]) -> dict[str, Field]:
    """NIK, name, birth place and date, sex from a KTP's lines."""
    found_rows = rows(lines)
    found = labelled(found_rows, KTP_LABELS)
    nik = _labelled_as(found, "nik", lambda x: _digits(x.value, range(16, 17), x.score(), is_nik))
    if nik.value is None:
        nik, _ = _anywhere(found_rows, range(16, 17), is_nik)
    sex = _labelled_as(found, "sex", _sex)
    if sex.value is None:  # label unreadable: the word itself is on no other row
        sex = _sex_anywhere(found_rows)
    birth = _first(found, "birth")
    place, born = (Field.unreadable(),) * 2 if birth is None else _birth(birth.value, birth.score())
    name = _labelled_as(found, "name", lambda x: _name(x.value, x.score()))
    return _gate({"nik": nik, "name": name, "birth_place": place, "birth_date": born, "sex": sex})


def parse_kpj_card(lines: Iterable[TextLine]) -> dict[str, Field]:
    """KPJ number and name from a BPJS Ketenagakerjaan card: labelled ("No. KPJ", "Nomor
    Peserta", "Nama"), or, on cards that print no labels, the one 11-digit number and the
    name printed on the row just above it."""
    found_rows = rows(lines)
    found = labelled(found_rows, KPJ_LABELS)
    kpj = _labelled_as(found, "kpj", lambda x: _digits(x.value, range(11, 12), x.score()))
    name = _labelled_as(found, "name", lambda x: _name(x.value, x.score()))
    if kpj.value is None:
        kpj, kpj_row = _anywhere(found_rows, range(11, 12), None, [x.row for x in found])
        labelled_name = _first(found, "name") is not None
        if kpj_row is not None and kpj_row > 0 and not labelled_name:
            above = found_rows[kpj_row - 1]
            if not any(x.row is above for x in found):  # a labelled row is some other field
                name = _name(above.text, above.score() * 0.95)
    return _gate({"kpj": kpj, "name": name})


def parse_buku_tabungan(lines: Iterable[TextLine]) -> dict[str, Field]:
    """Account number and holder's name from a passbook's identity page."""
    found = labelled(rows(lines), BANK_LABELS)
    return _gate({
        "account_number": _labelled_as(
            found, "account_number", lambda x: _digits(x.value, ACCOUNT_DIGITS, x.score())
        ),
        "holder_name": _labelled_as(found, "holder_name", lambda x: _name(x.value, x.score())),
    })  # fmt: skip


PARSERS: Mapping[str, Callable[[Iterable[TextLine]], dict[str, Field]]] = {
    "ktp": parse_ktp,
    "kpj_card": parse_kpj_card,
    "buku_tabungan": parse_buku_tabungan,
}


def parse(kind: str, lines: Iterable[TextLine]) -> dict[str, Field]:
    """The fields of a document `kind` (one of KINDS) from its lines of text."""
    try:
        parser = PARSERS[kind]
    except KeyError:
        raise ValueError(f"cannot read {kind!r}: one of {', '.join(KINDS)}") from None
    return parser(list(lines))
