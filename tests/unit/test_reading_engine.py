"""Reading real pictures with the real engine: the models from the rapidocr wheel, pinned
by SHA-256, loaded and run with every way out of this process closed (rapidocr's
downloader, requests, sockets: each raises if touched; scripts/test also runs this inside a
network namespace with no route out). Cards rendered with known contents, flat and
through the kiosk's capture pipeline on a synthetic 1080p desk.

Lean on purpose: each picture costs the engine ~1-2 s. bench/reading_bench.py measures
the large set.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import pytest

from booth_client.capture import CapturePipeline, Verdict
from reading.compare import Match, compare
from reading.document import Reading, read_bytes, read_image
from reading.engine import MODELS, ModelMismatch, OcrEngine, models_dir, verify_models
from tests.support.id_documents import (
    CardStyle,
    Person,
    on_desk,
    person,
    render_bank_book,
    render_kpj_card,
    render_ktp,
)

PIPELINE = CapturePipeline()


class NetworkUsed(AssertionError):
    pass


def _refuse(*args: object, **kwargs: object) -> None:
    raise NetworkUsed(f"the reader tried to reach the network: {args[:2]!r}")


@pytest.fixture(scope="module")
def engine() -> Iterator[OcrEngine]:
    """An engine loaded, and used for every reading here, with the network forbidden."""
    import requests
    from rapidocr.utils import download_file

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(download_file.DownloadFile, "run", classmethod(_refuse))
        patch.setattr(requests, "get", _refuse)
        patch.setattr(requests.Session, "request", _refuse)
        patch.setattr(socket.socket, "connect", _refuse)
        patch.setattr(socket.socket, "connect_ex", _refuse)
        yield OcrEngine()


def _record(p: Person) -> dict[str, object]:
    return {"nik": p.nik, "name": p.name, "birth_place": p.birth_place,
            "birth_date": p.birth_date, "sex": p.sex}  # fmt: skip


def _assert_identity(reading: Reading, p: Person) -> None:
    values = reading.values()
    assert values["nik"] == p.nik, reading
    assert values["name"] == p.name, reading
    assert values["birth_date"] == p.birth_date.isoformat(), reading
    assert values["sex"] == p.sex, reading
    assert reading.checks == {"nik_birth_date": True, "nik_sex": True}


def _through_the_kiosk(
    document: np.ndarray, fmt: str, kind: str, seed: int, **spec: object
) -> bytes:
    scene = on_desk(document, fmt, seed, **spec)
    result = PIPELINE.run([scene.image], kind)
    assert result.verdict is Verdict.ACCEPT and result.jpeg is not None, result.scores()
    return result.jpeg


def test_the_models_are_the_pinned_files_and_carry_their_dictionary() -> None:
    paths = verify_models()
    assert {role: path.name for role, path in paths.items()} == {m.role: m.name for m in MODELS}
    import onnxruntime

    rec = onnxruntime.InferenceSession(str(paths["rec"]), providers=["CPUExecutionProvider"])
    # With its alphabet inside the model, rapidocr never fetches a dictionary file.
    assert "character" in rec.get_modelmeta().custom_metadata_map


def test_a_changed_or_missing_model_is_refused(tmp_path: Path) -> None:
    for model in MODELS:
        shutil.copyfile(models_dir() / model.name, tmp_path / model.name)
    verify_models(tmp_path)
    cls = tmp_path / MODELS[1].name
    data = bytearray(cls.read_bytes())
    data[-1] ^= 0xFF
    cls.write_bytes(bytes(data))
    with pytest.raises(ModelMismatch, match="not the model this reader was measured with"):
        verify_models(tmp_path)
    cls.unlink()
    with pytest.raises(ModelMismatch, match="is not in"):
        verify_models(tmp_path)


def test_a_clean_ktp_reads_exactly(engine: OcrEngine) -> None:
    p = person(11, titled=True)
    ok, jpeg = cv2.imencode(".jpg", render_ktp(p, CardStyle(font="DejaVu Sans"), 11))
    assert ok
    reading = read_bytes("ktp", jpeg.tobytes(), engine)
    _assert_identity(reading, p)
    assert reading.values()["birth_place"] == p.birth_place
    assert all(c >= 0.8 for c in reading.confidence().values())


def test_ktps_through_the_capture_pipeline_read_exactly(engine: OcrEngine) -> None:
    # Another font, a tilt and perspective, a soft sheen; and a card placed upside down.
    p = person(12)
    card = render_ktp(p, CardStyle(font="Liberation Sans Narrow", size=0.95), 12)
    jpeg = _through_the_kiosk(card, "id1", "ktp", 12, perspective=0.05, sheen=0.5)
    _assert_identity(read_bytes("ktp", jpeg, engine), p)
    q = person(13)
    card = render_ktp(q, CardStyle(font="Liberation Serif", label_colon=False), 13)
    jpeg = _through_the_kiosk(card, "id1", "ktp", 13, rotation_deg=180.0)
    reading = read_bytes("ktp", jpeg, engine)
    _assert_identity(reading, q)
    assert reading.rotation == 180


def test_someone_elses_ktp_is_flagged_as_differing(engine: OcrEngine) -> None:
    member, other = person(21), person(22)
    jpeg = _through_the_kiosk(render_ktp(other, CardStyle(), 22), "id1", "ktp", 22)
    result = compare(read_bytes("ktp", jpeg, engine).fields, _record(member))
    for name in ("nik", "name", "birth_date"):
        assert result[name].state is Match.DIFFERS, result[name]
    assert result["name"].score is not None and result["name"].score < 0.9


def test_kpj_card_and_bank_book_through_the_capture_pipeline(engine: OcrEngine) -> None:
    p = person(31, titled=True)
    card = _through_the_kiosk(render_kpj_card(p, CardStyle(font="DejaVu Sans"), 31), "id1",
                              "kpj_card", 31)  # fmt: skip
    assert read_bytes("kpj_card", card, engine).values() == {"kpj": p.kpj, "name": p.name}
    # A passbook page lying across the plate: rectified portrait, read turned back.
    page = cv2.rotate(
        render_bank_book(p, CardStyle(font="Liberation Sans"), 31), cv2.ROTATE_90_CLOCKWISE
    )
    book = read_bytes("buku_tabungan", _through_the_kiosk(page, "a4", "buku_tabungan", 31), engine)
    assert book.values() == {"account_number": p.account_number, "holder_name": p.name}
    assert book.rotation == 270


def test_unreadable_pictures_give_null_not_a_guess(engine: OcrEngine) -> None:
    p = person(41)
    card = render_ktp(p, CardStyle(), 41)
    blank = np.full_like(card, 235)
    assert set(read_image("ktp", blank, engine).values().values()) == {None}
    # Smeared far past the capture gate's blur limit: nothing can be read with confidence.
    smeared = cv2.GaussianBlur(cv2.resize(card, None, fx=0.5, fy=0.5), (0, 0), 4.0)
    reading = read_image("ktp", smeared, engine)
    assert set(reading.values().values()) == {None}, reading
    assert set(reading.confidence().values()) == {0.0}
    assert compare(reading.fields, _record(p))["nik"].state is Match.UNREADABLE
    assert reading.checks == {"nik_birth_date": None, "nik_sex": None}


def test_the_birth_date_rule_matches_the_record_in_its_own_format(engine: OcrEngine) -> None:
    p = person(51)
    reading = read_image("ktp", render_ktp(p, CardStyle(font="Liberation Mono"), 51), engine)
    record = {
        "birth_date": p.birth_date.strftime("%d/%m/%Y"),
        "sex": "PEREMPUAN" if p.sex == "F" else "LAKI-LAKI",
    }
    result = compare(reading.fields, record)
    assert result["birth_date"].state is Match.MATCHES and result["sex"].state is Match.MATCHES
    assert date.fromisoformat(str(reading.values()["birth_date"])) == p.birth_date
