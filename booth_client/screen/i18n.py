"""The kiosk screen's words: gettext catalogues (domain `loket_kiosk`) managed with Babel.

Message ids are English; `booth_client/locale/id/LC_MESSAGES/loket_kiosk.po` holds the
Bahasa Indonesia the screen shows by default, `en/` the English one. The compiled `.mo`
files are committed so a kiosk needs no build step and no Babel at run time;
tests/unit/test_kiosk_screen_i18n.py fails when a `.mo` is stale or a string lacks its
Indonesian. After changing a string on the screen:

    uv run pybabel extract -F babel.cfg --no-location -o booth_client/locale/loket_kiosk.pot .
    uv run pybabel update -i booth_client/locale/loket_kiosk.pot -d booth_client/locale \
        -D loket_kiosk --no-fuzzy-matching
    (translate the new entries in id/…/loket_kiosk.po)
    uv run pybabel compile -d booth_client/locale -D loket_kiosk
"""

from __future__ import annotations

import functools
import gettext
from pathlib import Path
from typing import Protocol

from signaling.messages import Language

DOMAIN = "loket_kiosk"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


class Translator(Protocol):
    def gettext(self, message: str, /) -> str: ...


@functools.cache
def translator(language: Language) -> gettext.GNUTranslations:
    """The catalogue for `language`; raises FileNotFoundError if it is not installed
    (a packaging fault: the kiosk must not fall back to untranslated words silently)."""
    found = gettext.translation(DOMAIN, LOCALE_DIR, languages=[language.value])
    assert isinstance(found, gettext.GNUTranslations)
    return found


def N_(message: str) -> str:  # gettext's name for it, which Babel looks for
    """Mark a message for extraction where it is translated later, into two languages."""
    return message
