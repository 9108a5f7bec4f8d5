"""A reading compared with the member record, field by field: matches, differs or
unreadable, with a score the officer can weigh. Pure; advice, never a decision.

The record is a plain mapping from the reading's field names to the record's values
(`str`, or a `date` for birth_date), so this module needs nothing of the server's:

    compare(reading.fields, {"nik": "3174...", "name": "SITI AMINAH", "birth_date": date(...),
                             "birth_place": "JAKARTA", "sex": "F"})

A field the record does not carry (missing or None) is not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from reading.dates import parse_date
from reading.fields import Field
from reading.names import name_similarity
from reading.text import letters, ratio

# Names at or above this similarity (after normalisation) match. Measured on rendered
# documents (bench/reading_bench.py): the same person read by OCR scores >= 0.95, two
# different members of the rendered set at most ~0.8; an OCR slip of one letter in a
# 15-letter name costs ~0.07.
NAME_MATCH = 0.90
PLACE_MATCH = 0.85


class Match(StrEnum):
    MATCHES = "matches"
    DIFFERS = "differs"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class Comparison:
    """One field: the state to pre-fill, the similarity score (1.0 exact; None when
    unreadable), both values as compared, and the reading's confidence."""

    field: str
    state: Match
    score: float | None
    record: str
    read: str | None
    confidence: float


def _unreadable(name: str, record: str, read: Field) -> Comparison:
    return Comparison(name, Match.UNREADABLE, None, record, None, read.confidence)


def compare_exact(name: str, record: str, read: Field) -> Comparison:
    """Digit fields (NIK, KPJ, account number): equal after dropping separators, or not.
    The score is the share of positions that agree (an officer sees one digit off)."""
    if read.value is None:
        return _unreadable(name, record, read)
    want = "".join(c for c in record if c.isdigit())
    same = want == read.value
    agree = sum(a == b for a, b in zip(want, read.value, strict=False))
    score = 1.0 if same else agree / max(len(want), len(read.value), 1)
    return Comparison(name, Match.MATCHES if same else Match.DIFFERS, round(score, 3),
                      want, read.value, read.confidence)  # fmt: skip


def compare_name(name: str, record: str, read: Field, threshold: float = NAME_MATCH) -> Comparison:
    """Names after normalisation (reading.names): case, spacing, punctuation, honorifics,
    degrees and the spellings of Muhammad do not count."""
    if read.value is None:
        return _unreadable(name, record, read)
    score = name_similarity(record, read.value)
    state = Match.MATCHES if score >= threshold else Match.DIFFERS
    return Comparison(name, state, round(score, 3), record, read.value, read.confidence)


_PLACE_PREFIXES = ("KOTA", "KABUPATEN", "KAB")


def _place(text: str) -> str:
    words = text.upper().replace(".", " ").split()
    while len(words) > 1 and words[0] in _PLACE_PREFIXES:
        words.pop(0)
    return letters(" ".join(words))


def compare_place(name: str, record: str, read: Field) -> Comparison:
    """Birth places: letters only, without KOTA / KAB. in front."""
    if read.value is None:
        return _unreadable(name, record, read)
    score = ratio(_place(record), _place(read.value))
    state = Match.MATCHES if score >= PLACE_MATCH else Match.DIFFERS
    return Comparison(name, state, round(score, 3), record, read.value, read.confidence)


def compare_date(name: str, record: date | str, read: Field) -> Comparison:
    """Dates: the record's (a date, or text in any format `parse_date` knows) against the
    reading's ISO date."""
    want = record if isinstance(record, date) else parse_date(record)
    shown = want.isoformat() if want else str(record)
    if read.value is None:
        return _unreadable(name, shown, read)
    got = date.fromisoformat(read.value)
    same = want == got
    return Comparison(name, Match.MATCHES if same else Match.DIFFERS, 1.0 if same else 0.0,
                      shown, read.value, read.confidence)  # fmt: skip


_SEX = {"M": "M", "L": "M", "LAKILAKI": "M", "PRIA": "M", "MALE": "M",
        "F": "F", "P": "F", "PEREMPUAN": "F", "WANITA": "F", "FEMALE": "F"}  # fmt: skip


def sex_code(text: str) -> str | None:
    """ "M" / "F" from the ways records write it (M/F, L/P, LAKI-LAKI/PEREMPUAN...)."""
    return _SEX.get(letters(text))


def compare_sex(name: str, record: str, read: Field) -> Comparison:
    if read.value is None:
        return _unreadable(name, record, read)
    same = sex_code(record) == read.value
    return Comparison(name, Match.MATCHES if same else Match.DIFFERS, 1.0 if same else 0.0,
                      sex_code(record) or record, read.value, read.confidence)  # fmt: skip


_COMPARE = {
    "nik": compare_exact,
    "kpj": compare_exact,
    "account_number": compare_exact,
    "name": compare_name,
    "holder_name": compare_name,
    "birth_place": compare_place,
    "birth_date": compare_date,
    "sex": compare_sex,
}


def compare(fields: Mapping[str, Field], record: Mapping[str, object]) -> dict[str, Comparison]:
    """Each field of the reading that the record carries, compared with it."""
    out = {}
    for name, read in fields.items():
        value = record.get(name)
        if value is None or name not in _COMPARE:
            continue
        rule = _COMPARE[name]
        if name == "birth_date":
            out[name] = compare_date(name, value if isinstance(value, date) else str(value), read)
        else:
            out[name] = rule(name, str(value), read)  # type: ignore[operator]
    return out
