"""Masking of personal data (NIK) for logs, exports and screens."""

from __future__ import annotations

import re

_NIK = re.compile(r"(?<!\d)(\d{12})(\d{4})(?!\d)")


def mask_nik(nik: str) -> str:
    """All but the last four digits hidden: 3171234567890123 -> ************0123."""
    return "*" * max(len(nik) - 4, 0) + nik[-4:]


def mask_niks_in(text: str) -> str:
    """Mask every 16-digit run in free text (log lines, error messages)."""
    return _NIK.sub(lambda m: "*" * 12 + m.group(2), text)
