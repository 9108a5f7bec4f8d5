"""What the waiting room hears: numbers in Indonesian words and the spoken call.

Pure text; the sound is made offline from it (server/adapters/speech.py: espeak-ng's
Indonesian voice). Numbers are spelled out here rather than left to the synthesiser, so
"B-034" is read "B tiga puluh empat", never "B nol tiga empat" or "B minus tiga puluh".
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import urlencode

UNITS = ("nol", "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan")
SCALES = ((1_000_000_000, "miliar"), (1_000_000, "juta"), (1_000, "ribu"))
# Letters as Indonesians read them aloud (a ticket's prefix), so the voice says "be", not
# an English "bee".
LETTERS = {
    "A": "a", "B": "be", "C": "ce", "D": "de", "E": "e", "F": "ef", "G": "ge", "H": "ha",
    "I": "i", "J": "je", "K": "ka", "L": "el", "M": "em", "N": "en", "O": "o", "P": "pe",
    "Q": "ki", "R": "er", "S": "es", "T": "te", "U": "u", "V": "ve", "W": "we", "X": "eks",
    "Y": "ye", "Z": "zet",
}  # fmt: skip


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds == 1:
        words.append("seratus")
    elif hundreds:
        words += [UNITS[hundreds], "ratus"]
    if rest == 0:
        return words
    if rest < 10:
        words.append(UNITS[rest])
    elif rest == 10:
        words.append("sepuluh")
    elif rest == 11:
        words.append("sebelas")
    elif rest < 20:
        words += [UNITS[rest - 10], "belas"]
    else:
        tens, ones = divmod(rest, 10)
        words += [UNITS[tens], "puluh"] + ([UNITS[ones]] if ones else [])
    return words


def number_words(n: int) -> str:
    """0 -> "nol", 11 -> "sebelas", 34 -> "tiga puluh empat", 100 -> "seratus",
    1000 -> "seribu", 2_500_000 -> "dua juta lima ratus ribu"."""
    if n < 0:
        return "minus " + number_words(-n)
    if n == 0:
        return UNITS[0]
    words: list[str] = []
    for scale, name in SCALES:
        count, n = divmod(n, scale)
        if count == 1 and scale == 1000:
            words.append("seribu")
        elif count:
            words += [*number_words(count).split(), name]
    words += _below_thousand(n)
    return " ".join(words)


_TICKET = re.compile(r"^([A-Z])-?(\d+)$")
_TRAILING_NUMBER = re.compile(r"(\d+)\s*$")


def ticket_words(number: str) -> str:
    """ "B-034" -> "B tiga puluh empat" (the letter as written: the voice reads it)."""
    found = _TICKET.match(number.strip().upper())
    if found is None:
        return number
    return f"{found.group(1)} {number_words(int(found.group(2)))}"


def booth_words(label: str) -> str:
    """ "Bilik 3" / "Booth 3" / "Demo booth 3" -> "tiga"; a label without a number as is."""
    found = _TRAILING_NUMBER.search(label)
    return number_words(int(found.group(1))) if found else label.strip()


def spoken_call(number: str, booth_label: str, *, recall: bool = False) -> str:
    """ "Nomor antrean B tiga puluh empat, silakan ke bilik tiga" (a recall says so first)."""
    first = "Panggilan ulang. " if recall else ""
    booth = booth_words(booth_label)
    return f"{first}Nomor antrean {ticket_words(number)}, silakan ke bilik {booth}"


def for_synthesis(text: str) -> str:
    """The text as the synthesiser should read it: a lone capital letter spelled as
    Indonesians say it ("B" -> "be")."""
    return re.sub(r"\b([A-Z])\b", lambda m: LETTERS.get(m.group(1), m.group(1)), text)


SPEECH_PATH = "/api/display/speech.wav"
MAX_SPOKEN = 200  # characters: a call is about 70


def speech_signature(text: str, key: bytes) -> str:
    """Only what the floor decided to say is synthesised: the URL carries this keyed hash
    of its text (the server checks it before running the synthesiser)."""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def speech_url(text: str, key: bytes) -> str:
    return f"{SPEECH_PATH}?{urlencode({'t': text, 's': speech_signature(text, key)})}"
