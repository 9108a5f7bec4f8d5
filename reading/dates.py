"""Dates as Indonesian documents print them, and the birth date a NIK carries. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from reading.text import clean, digit_field, letters

# Indonesian month names and their usual abbreviations (English ones too: bank forms).
MONTHS: dict[str, int] = {}
for _month, _names in enumerate(
    (
        ("JANUARI", "JAN", "JANUARY"),
        ("FEBRUARI", "FEB", "PEBRUARI", "FEBRUARY"),
        ("MARET", "MAR", "MARCH"),
        ("APRIL", "APR"),
        ("MEI", "MAY"),
        ("JUNI", "JUN", "JUNE"),
        ("JULI", "JUL", "JULY"),
        ("AGUSTUS", "AGU", "AGS", "AGT", "AUG", "AUGUST", "AGUST"),
        ("SEPTEMBER", "SEP", "SEPT"),
        ("OKTOBER", "OKT", "OCT", "OCTOBER"),
        ("NOVEMBER", "NOV", "NOP", "NOPEMBER"),
        ("DESEMBER", "DES", "DEC", "DECEMBER"),
    ),
    start=1,
):
    for _name in _names:
        MONTHS[_name] = _month

_NUMERIC = re.compile(r"^(\w{1,2})\s*[-/.\s]\s*(\w{1,2})\s*[-/.\s]\s*(\w{2,4})$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_NAMED = re.compile(r"^(\w{1,2})[\s.-]*([A-Za-z]{3,9})\.?[\s,.-]*(\w{2,4})$")


def _year(text: str, pivot: int) -> int | None:
    found = digit_field(text)
    if found is None or len(found[0]) not in (2, 4):
        return None
    value = int(found[0])
    if len(found[0]) == 2:  # 1900s unless that would be in the future
        value += 2000 if value <= pivot % 100 else 1900
    return value


def _number(text: str) -> int | None:
    found = digit_field(text)
    return None if found is None else int(found[0])


def parse_date(text: str, *, pivot: int | None = None) -> date | None:
    """A calendar date from DD-MM-YYYY, DD/MM/YYYY, DD.MM.YYYY, DD MM YYYY, YYYY-MM-DD,
    "DD MMM YYYY" and "DD MMMM YYYY" with Indonesian (or English) month names, 2-digit
    years (19xx, or 20xx up to `pivot`, default this year). Digit look-alikes are
    mapped in the number parts (OCR reads "O1-O7-1997"). None when it is not a real date.
    """
    pivot = pivot or date.today().year
    text = clean(text).strip(" ,.:")
    iso = _ISO.match(text)
    if iso:
        y, m, d = int(iso.group(1)), int(iso.group(2)), int(iso.group(3))
        return _valid(y, m, d)
    named = _NAMED.match(text)
    if named:
        month = MONTHS.get(letters(named.group(2)))
        day, year = _number(named.group(1)), _year(named.group(3), pivot)
        if month is not None and day is not None and year is not None:
            return _valid(year, month, day)
    numeric = _NUMERIC.match(text)
    if numeric:
        day, month, year = (_number(numeric.group(1)), _number(numeric.group(2)),
                            _year(numeric.group(3), pivot))  # fmt: skip
        if day is not None and month is not None and year is not None:
            return _valid(year, month, day)
    return None


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class NikBirth:
    """The birth date and sex a NIK encodes in digits 7-12 (DDMMYY; day + 40 for women).
    The century is not in the NIK: `year2` is the year's last two digits."""

    day: int
    month: int
    year2: int
    sex: str  # "M" or "F"

    def agrees_with(self, born: date | None = None, sex: str | None = None) -> bool:
        """True when the NIK says what `born` and `sex` say (either may be left out)."""
        if born is not None and (born.day, born.month, born.year % 100) != (
            self.day, self.month, self.year2,
        ):  # fmt: skip
            return False
        return sex is None or sex == self.sex


def nik_birth(nik: str) -> NikBirth | None:
    """The birth date digits of a 16-digit NIK, or None when they cannot be a date."""
    if len(nik) != 16 or not nik.isascii() or not nik.isdigit():
        return None
    day, month, year2 = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    sex = "F" if day > 40 else "M"
    day -= 40 if day > 40 else 0
    # Any year: 29 February is checked against a leap year (2000), the one thing the
    # NIK cannot settle; a day that no month has is refused.
    if not 1 <= month <= 12 or _valid(2000, month, day) is None:
        return None
    return NikBirth(day, month, year2, sex)
