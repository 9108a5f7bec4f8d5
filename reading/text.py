"""Text as OCR gives it back: normalised, digit fields with their look-alike letters
mapped, labels told apart from values. Pure functions."""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

# Letters OCR returns for digits in a digit field (and only there: "SITI" stays a name).
DIGIT_LOOKALIKES = {
    "O": "0", "o": "0", "D": "0", "Q": "0", "U": "0",
    "I": "1", "l": "1", "i": "1", "|": "1", "!": "1", "L": "1", "j": "1", "J": "1",
    "Z": "2", "z": "2",
    "S": "5", "s": "5", "$": "5",
    "G": "6", "b": "6",
    "T": "7",
    "B": "8",
    "g": "9", "q": "9",
}  # fmt: skip
# And back, for a name field that came out with digits in it.
LETTER_LOOKALIKES = {"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z", "6": "G", "4": "A"}
_SPACES = re.compile(r"\s+")


def clean(text: str) -> str:
    """NFKC (full-width commas and colons from the recogniser's Chinese alphabet become
    ASCII), one space between words, no space around the ends."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def letters(text: str) -> str:
    """Only the letters, upper-cased, accents dropped: what labels are compared on."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalpha()).upper()


def distance(a: str, b: str, limit: int | None = None) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions that
    turn `a` into `b` (what an OCR slip costs: one per misread, dropped or extra letter).
    With `limit`, stops as soon as the distance must exceed it (and returns limit + 1)."""
    if len(a) < len(b):
        a, b = b, a
    if limit is not None and len(a) - len(b) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if limit is not None and min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def ratio(a: str, b: str, floor: float | None = None) -> float:
    """Similarity 0-1 of two strings: 1 - edit distance / the longer length. With
    `floor`, a similarity below it comes back as 0 (and costs less to find)."""
    if not a and not b:
        return 1.0
    longest = max(len(a), len(b))
    limit = None if floor is None else int((1.0 - floor) * longest + 1e-9)
    found = distance(a, b, limit)
    if limit is not None and found > limit:
        return 0.0
    return 1.0 - found / longest


def digit_field(text: str, separators: str = " -./") -> tuple[str, int] | None:
    """(digits, letters mapped) of a field that should be all digits, or None when it is
    not one: separators dropped, look-alike letters mapped, and at most a third of the
    characters (or one, in a short number) may have been letters: a word is not a number."""
    out: list[str] = []
    mapped = 0
    for c in text:
        if c.isascii() and c.isdigit():
            out.append(c)
        elif c in DIGIT_LOOKALIKES:
            out.append(DIGIT_LOOKALIKES[c])
            mapped += 1
        elif c in separators:
            continue
        else:
            return None
    if not out or mapped > max(1, len(out) // 3):
        return None
    return "".join(out), mapped


def digit_runs(text: str, separators: str = " -./") -> list[tuple[str, int]]:
    """Every maximal stretch of `text` that reads as a digit field (see `digit_field`),
    longest first within the text's order: "NIK: 3174O56708900002" -> [("3174056708900002", 1)].
    A stretch starts and ends on a digit, so words around the number stay out."""
    runs: list[tuple[str, int]] = []
    pattern = re.compile(
        r"[0-9][0-9" + re.escape("".join(DIGIT_LOOKALIKES) + separators) + r"]*[0-9]|[0-9]"
    )
    for match in pattern.finditer(text):
        found = digit_field(match.group(0).strip(), separators)
        if found is not None:
            runs.append(found)
    return runs


class LabelSplit(NamedTuple):
    key: str  # the label it starts with, letters only
    value: str  # what follows the label and its colon
    similarity: float  # how closely the printed label matched the key (0.8-1)
    start: int  # where the value starts in the text


def split_label(text: str, keys: tuple[str, ...], threshold: float = 0.8) -> LabelSplit | None:
    """The label `text` starts with, when it starts with one of the labels `keys` (letters
    only, upper case: "TEMPATTGLLAHIR"), allowing OCR's slips: a letter more or less, a
    misread letter ("Tg1"), a missing colon or space ("NamaBUDI"). The value is what
    follows the label, without the colon. The longest label that fits wins ("NAMA
    NASABAH" over "NAMA")."""
    # Positions in `text` of each letter, for cutting after the n-th letter.
    positions = [i for i, c in enumerate(text) if c.isascii() and c.isalpha()]
    upper = "".join(text[i] for i in positions).upper()
    # Digits inside a label ("Tg1") count as the letter they replace.
    slots = [i for i, c in enumerate(text) if (c.isascii() and c.isalnum())]
    mixed = "".join(LETTER_LOOKALIKES.get(text[i], text[i]).upper() for i in slots)
    best: LabelSplit | None = None
    for key in keys:
        for source, index in ((mixed, slots), (upper, positions)):
            for n in (len(key), len(key) - 1, len(key) + 1):
                if n <= 0 or n > len(source):
                    continue
                score = ratio(source[:n], key, threshold)
                if score < threshold:
                    continue
                cut = index[n - 1] + 1
                rest = text[cut:]
                value = rest.lstrip(" :;.=_-")
                start = cut + len(rest) - len(value)
                # Ranked by similarity to a tenth, then length: "NAMA NASABAH" is the
                # longer label when both fit, but a long label that barely fits does
                # not beat a short one read exactly.
                rank = (round(score, 1), len(key), score)
                if best is None or rank > (
                    round(best.similarity, 1),
                    len(best.key),
                    best.similarity,
                ):
                    best = LabelSplit(key, value.rstrip(), score, start)
    return best
