"""Names as Indonesian documents print them, normalised for comparison. Pure.

The same member is "MUH. RIZKY SAPUTRA, S.KOM" on one document and "MUHAMMAD RIZKY
SAPUTRA" on another: honorifics (H., HJ.), academic titles (S.E., S.Kom., DRS., IR.) and
the spellings and abbreviations of Muhammad (MUH., MOCH., MOH., M.) do not make another
person. What remains is compared letter by letter, so an OCR slip costs a little of the
score and another person's name costs most of it.
"""

from __future__ import annotations

import re
import unicodedata

from reading.text import ratio

# All spellings of one given name, mapped to one (KTP, bank and employer records each
# choose their own).
_SAME_NAME = {
    **dict.fromkeys(
        ("MUHAMMAD", "MUHAMAD", "MUHAMMED", "MOHAMMAD", "MOHAMAD", "MOHAMMED", "MOCHAMMAD",
         "MOCHAMAD", "MUCHAMMAD", "MUCHAMAD", "MOEHAMMAD", "MUH", "MUHD", "MOH", "MOHD",
         "MOCH", "MUCH", "MHD", "MHMD", "MUHAM", "MOHAM"),
        "MUHAMMAD",
    ),
    **dict.fromkeys(("ABD", "ABDUL"), "ABDUL"),
    **dict.fromkeys(("NUR", "NOOR", "NOER"), "NUR"),
}  # fmt: skip
# Honorifics and degrees: before the name (DR. BUDI, H. AHMAD, HJ. SITI) or after a comma
# (BUDI, S.E., M.M.). Letters only, as `_tokens` leaves them.
_BEFORE = frozenset(
    {"H", "HJ", "HAJI", "HAJJAH", "HJH", "DR", "DRS", "DRA", "IR", "PROF", "KH", "TN", "NY",
     "SDR", "SDRI", "BPK", "IBU", "TUAN", "NYONYA"}
)  # fmt: skip
_DEGREES = frozenset(
    {"SE", "SH", "ST", "SP", "SS", "SSOS", "SKOM", "SPD", "SPDI", "SAG", "SHI", "SKED",
     "SKM", "SIP", "SPSI", "SFARM", "SSI", "SKEP", "STP", "SPT", "SSTP", "SAK", "SM", "SN",
     "SIKOM", "STR", "AMD", "AMA", "AMK", "AMKEB", "AMKEP", "MM", "MSI", "MKOM", "MPD",
     "MT", "MH", "MA", "MSC", "MBA", "MAK", "MKES", "MAP", "MEC", "PHD", "DR", "BSC",
     "SPOG", "SPA", "SPB", "SPPD", "SPM", "SPS", "SPJP", "MPH", "MKN", "LLM"}
)  # fmt: skip
_SPLIT = re.compile(r"[\s,]+")


def _plain(text: str) -> str:
    """Upper case, accents dropped, an apostrophe or backquote removed ("MA'RUF")."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return kept.upper().replace("'", "").replace("`", "").replace("\u2019", "")


def name_tokens(name: str) -> list[str]:
    """The words of a person's name, without honorifics and degrees, each in one
    spelling: "H. MUH. RIZKY SAPUTRA, S.KOM" -> ["MUHAMMAD", "RIZKY", "SAPUTRA"]."""
    text = _plain(name)
    # Everything after the first comma is degrees ("SITI AMINAH, S.E., M.M.").
    main, _, _ = text.partition(",")
    raw = [t for t in _SPLIT.split(main) if t]
    # Dotted abbreviations split at dots: "S.KOM" is one degree, "M.RIZKY" two words.
    tokens: list[str] = []
    for token in raw:
        letters_only = re.sub(r"[^A-Z]", "", token)
        if not letters_only:
            continue
        if "." in token.strip(".") and letters_only in _DEGREES:
            continue  # S.E / S.KOM / A.MD written inside the name
        parts = [re.sub(r"[^A-Z]", "", p) for p in token.split(".")]
        tokens += [p for p in parts if p]
    while tokens and tokens[0] in _BEFORE and len(tokens) > 1:
        tokens.pop(0)
    while len(tokens) > 1 and tokens[-1] in _DEGREES:
        tokens.pop()  # a degree written without its comma ("BUDI SANTOSO SE")
    out = []
    for i, token in enumerate(tokens):
        if token == "M" and i + 1 < len(tokens):
            token = "MUHAMMAD"  # "M. RIZKY": M. before a given name is Muhammad
        out.append(_SAME_NAME.get(token, token))
    return out


def normalise_name(name: str) -> str:
    """The name as compared: `name_tokens` joined by single spaces."""
    return " ".join(name_tokens(name))


def name_similarity(a: str, b: str) -> float:
    """0-1: how alike two names are after normalisation. Word by word when both have the
    same number of words (an initial nearly matches the word it starts: "A. RAHMAN" ~
    "ABDUL RAHMAN", 0.95); otherwise, and at least, the letters with the spaces taken out (OCR drops
    and adds spaces)."""
    ta, tb = name_tokens(a), name_tokens(b)
    if not ta or not tb:
        return 0.0
    whole = ratio("".join(ta), "".join(tb))
    if len(ta) != len(tb):
        return whole
    weights = scores = 0.0
    for x, y in zip(ta, tb, strict=True):
        weight = max(len(x), len(y))
        if (len(x) == 1 and y.startswith(x)) or (len(y) == 1 and x.startswith(y)):
            score = 0.9  # likely the same word, not certainly
        else:
            score = ratio(x, y)
        weights += weight
        scores += weight * score
    return max(whole, scores / weights)
