"""The kiosk screen's catalogues: every string on the screen has its Bahasa Indonesia,
placeholders match, and the committed .mo files are what the .po files compile to."""

from __future__ import annotations

import io
import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from booth_client.screen.i18n import DOMAIN, LOCALE_DIR, translator
from signaling.messages import Language

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _po(language: str):  # type: ignore[no-untyped-def]
    with (LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as f:
        return read_po(f, locale=language)


def _source_messages() -> set[str]:
    found = extract_from_dir(
        str(ROOT / "booth_client" / "screen"),
        method_map=[("**.py", "python")],
    )
    return {message for _, _, message, _, _ in found if isinstance(message, str)}


def test_every_string_on_the_screen_is_in_the_catalogues_with_its_indonesian() -> None:
    in_source = _source_messages()
    assert len(in_source) > 80
    for language in ("id", "en"):
        catalogue = _po(language)
        ids = {m.id for m in catalogue if m.id}
        missing = in_source - ids
        assert not missing, f"{language}: run the pybabel steps in booth_client/screen/i18n.py"
    indonesian = _po("id")
    for message in indonesian:
        if not message.id:
            continue
        assert message.string, f"no Indonesian for {message.id!r}"
        assert not message.fuzzy, f"fuzzy: {message.id!r}"
        ours = sorted(PLACEHOLDER.findall(message.string))
        assert ours == sorted(PLACEHOLDER.findall(message.id)), message.id


def test_the_committed_mo_files_are_the_compiled_po_files() -> None:
    for language in ("id", "en"):
        compiled = io.BytesIO()
        write_mo(compiled, _po(language))
        compiled.seek(0)
        fresh = {m.id: m.string for m in read_mo(compiled) if m.id}
        with (LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo").open("rb") as f:
            committed = {m.id: m.string for m in read_mo(f) if m.id}
        assert committed == fresh, (
            f"{language}: run `pybabel compile` (booth_client/screen/i18n.py)"
        )


def test_gettext_loads_both_languages() -> None:
    message = "The officer is serving another participant — please wait"
    assert translator(Language.INDONESIAN).gettext(message) == (
        "Petugas sedang melayani peserta lain — mohon tunggu"
    )
    assert translator(Language.ENGLISH).gettext(message) == message
