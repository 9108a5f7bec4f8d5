"""`loket capture read` as an operator (or the measurer) runs it: a real process, on
picture files: a plain 1080p photo of a KTP on a desk, the kiosk's rectified capture of
it, a KPJ card, and a file that is not a picture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from booth_client.capture import CapturePipeline
from tests.support.id_documents import CardStyle, on_desk, person, render_kpj_card, render_ktp

ROOT = Path(__file__).resolve().parents[2]
PERSON = person(71, titled=True)


def _loket(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # rich tables: no wrapping
    argv = [sys.executable, "-m", "server.cli", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, text=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("read")
    scene = on_desk(render_ktp(PERSON, CardStyle(font="DejaVu Serif"), 71), "id1", 71)
    cv2.imwrite(str(folder / "photo.jpg"), scene.image)  # the card somewhere on a desk
    result = CapturePipeline().run([scene.image], "ktp")
    assert result.jpeg is not None
    (folder / "rectified.jpg").write_bytes(result.jpeg)
    card = on_desk(render_kpj_card(PERSON, CardStyle(), 71), "id1", 72)
    cv2.imwrite(str(folder / "kpj.png"), card.image)
    (folder / "notes.jpg").write_text("not a picture")
    return folder


def test_read_json_gives_one_line_per_picture_with_the_kinds_fields(pictures: Path) -> None:
    files = [str(pictures / n) for n in ("photo.jpg", "rectified.jpg", "notes.jpg")]
    done = _loket("capture", "read", *files, "--kind", "ktp", "--json")
    assert done.returncode == 1, done.stderr  # one file could not be read
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [Path(r["file"]).name for r in rows] == ["photo.jpg", "rectified.jpg", "notes.jpg"]
    expected = {"nik": PERSON.nik, "name": PERSON.name, "birth_place": PERSON.birth_place,
                "birth_date": PERSON.birth_date.isoformat(), "sex": PERSON.sex}  # fmt: skip
    for row, located in zip(rows[:2], (True, False), strict=True):
        assert row["kind"] == "ktp" and row["fields"] == expected, row
        assert set(row["confidence"]) == set(expected)
        assert all(0.8 <= c <= 1 for c in row["confidence"].values())
        assert row["located"] is located and row["ms"] > 0
        assert row["checks"] == {"nik_birth_date": True, "nik_sex": True}
    assert rows[2] == {
        "file": files[2],
        "kind": "ktp",
        "error": "not a picture (expected a JPEG or PNG)",
    }


def test_read_kpj_card_as_a_table_and_help(pictures: Path) -> None:
    table = _loket("capture", "read", str(pictures / "kpj.png"), "--kind", "kpj_card")
    assert table.returncode == 0, table.stderr
    assert "kpj.png" in table.stdout and PERSON.kpj in table.stdout and PERSON.name in table.stdout
    wrong = _loket("capture", "read", str(pictures / "kpj.png"), "--kind", "passport")
    assert wrong.returncode == 2 and "ktp, kpj_card, buku_tabungan" in wrong.stderr
    helped = _loket("capture", "read", "--help")
    assert helped.returncode == 0
    for words in ("never a guess", "--kind", "nothing is downloaded", "birth_date"):
        assert words in helped.stdout, words
