"""Document images (sniff, metadata stripping) and the encrypted blob store, on real files."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import stat
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.adapters.blobs import (
    BlobCorrupt,
    BlobMissing,
    BlobStore,
    load_or_create_key,
)
from server.domain.images import (
    ImageKind,
    ImageRejected,
    check_image,
    sniff,
    strip_metadata,
)

GPS = b"GPS 6.2088S 106.8456E Jl. Sudirman"
KEY = bytes(range(32))


def gradient(w: int = 200, h: int = 150) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    return np.dstack([np.broadcast_to(x, (h, w)), np.broadcast_to(y, (h, w)), (x // 2 + y // 2)])


def encode(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return bytes(buf.tobytes())


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def jpeg_with_metadata() -> tuple[bytes, bytes]:
    clean = encode(".jpg", gradient())
    exif = jpeg_segment(0xE1, b"Exif\x00\x00MM\x00*" + GPS)
    xmp = jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x>" + GPS + b"</x>")
    comment = jpeg_segment(0xFE, b"shot by " + GPS)
    trailer = b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00" + GPS  # MPF-style image after EOI
    return clean, clean[:2] + exif + comment + xmp + clean[2:] + trailer


def png_with_metadata() -> tuple[bytes, bytes]:
    clean = encode(".png", gradient())
    ihdr_end = 8 + 12 + 13
    extra = (
        png_chunk(b"tEXt", b"Location\x00" + GPS)
        + png_chunk(b"eXIf", b"MM\x00*" + GPS)
        + png_chunk(b"tIME", b"\x07\xe8\x05\x01\x08\x00\x00")
        + png_chunk(b"iTXt", b"Comment\x00\x00\x00\x00\x00" + GPS)
    )
    return clean, clean[:ihdr_end] + extra + clean[ihdr_end:]


# --- images ---------------------------------------------------------------------------------


def test_sniff_by_magic_bytes() -> None:
    assert sniff(encode(".jpg", gradient())) is ImageKind.JPEG
    assert sniff(encode(".png", gradient())) is ImageKind.PNG
    assert sniff(b"GIF89a....") is None and sniff(b"") is None


def test_jpeg_metadata_is_removed_and_pixels_are_untouched() -> None:
    clean, dirty = jpeg_with_metadata()
    assert GPS in dirty and np.array_equal(decode(dirty), decode(clean))
    stripped = strip_metadata(dirty)
    assert GPS not in stripped
    assert b"Exif" not in stripped and b"http://ns.adobe.com" not in stripped
    assert np.array_equal(decode(stripped), decode(clean))
    assert stripped.endswith(b"\xff\xd9")
    assert strip_metadata(stripped) == stripped  # idempotent


def test_jpeg_keeps_jfif_without_thumbnail_and_adobe_segment() -> None:
    clean = encode(".jpg", gradient())
    thumb = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x02\x02" + GPS[:12]
    adobe = jpeg_segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01")
    # cv2's output already starts with an APP0 JFIF segment; replace it with one holding a
    # (fake) 2x2 thumbnail whose "pixels" are the GPS text.
    app0_len = struct.unpack(">H", clean[4:6])[0]
    rest = clean[4 + app0_len :]
    dirty = clean[:2] + jpeg_segment(0xE0, thumb) + adobe + rest
    stripped = strip_metadata(dirty)
    assert GPS[:12] not in stripped
    assert stripped[2:20] == jpeg_segment(0xE0, thumb[:12] + b"\x00\x00")
    assert adobe in stripped
    assert np.array_equal(decode(stripped), decode(clean))


def test_progressive_jpeg_with_restart_markers_survives_stripping() -> None:
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_RST_INTERVAL, 2]
    ok, buf = cv2.imencode(".jpg", gradient(333, 211), params)
    assert ok
    clean = bytes(buf.tobytes())
    dirty = clean[:2] + jpeg_segment(0xFE, GPS) + clean[2:]
    stripped = strip_metadata(dirty)
    assert GPS not in stripped and stripped == clean
    checked = check_image(dirty, max_bytes=len(dirty))
    assert (checked.width, checked.height, checked.data) == (333, 211, clean)


def test_png_metadata_is_removed_and_pixels_are_identical() -> None:
    clean, dirty = png_with_metadata()
    assert GPS in dirty and np.array_equal(decode(dirty), decode(clean))
    stripped = strip_metadata(dirty)
    assert GPS not in stripped and b"tIME" not in stripped
    assert stripped == clean
    assert np.array_equal(decode(stripped), decode(clean))
    assert strip_metadata(stripped + b"trailing junk") == clean


def test_png_with_a_bad_crc_or_no_ihdr_first_is_corrupt() -> None:
    clean = encode(".png", gradient())
    flipped = bytearray(clean)
    flipped[40] ^= 0x01  # inside the first IDAT
    with pytest.raises(ImageRejected) as bad_crc:
        strip_metadata(bytes(flipped))
    assert bad_crc.value.code == "corrupt"
    no_ihdr = clean[:8] + png_chunk(b"tEXt", b"a\x00b") + clean[8:]
    with pytest.raises(ImageRejected, match="IHDR"):
        strip_metadata(no_ihdr)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from([".jpg", ".png"]), frac=st.floats(0.0, 0.995))
def test_truncated_files_are_corrupt(kind: str, frac: float) -> None:
    clean = encode(kind, gradient())
    cut = max(8, int(len(clean) * frac))  # keep the magic so it is recognised
    with pytest.raises(ImageRejected) as exc:
        check_image(clean[:cut], max_bytes=10_000_000)
    assert exc.value.code == "corrupt"
    assert "again" in exc.value.message


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "GIF"),
        (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "PDF"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WebP"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
    ],
)
def test_other_formats_are_named_as_unsupported(data: bytes, name: str) -> None:
    with pytest.raises(ImageRejected) as exc:
        check_image(data, max_bytes=1000)
    assert exc.value.code == "unsupported_type"
    assert name in exc.value.message and "JPEG or PNG" in exc.value.message


@settings(max_examples=100)
@given(st.binary(min_size=1, max_size=256))
def test_random_bytes_are_not_an_image(data: bytes) -> None:
    if data.startswith((b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"%PDF", b"RIFF", b"II*", b"MM")):
        return
    if data[:2] == b"BM" or data[4:8] == b"ftyp":
        return
    with pytest.raises(ImageRejected) as exc:
        check_image(data, max_bytes=1000)
    assert exc.value.code == "not_an_image"


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_after_a_magic_number_never_crashes(tail: bytes) -> None:
    for magic in (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"):
        try:
            strip_metadata(magic + tail)
        except ImageRejected as exc:
            assert exc.code == "corrupt"


def test_empty_and_too_large_uploads() -> None:
    clean = encode(".png", gradient())
    with pytest.raises(ImageRejected) as empty:
        check_image(b"", max_bytes=1000)
    assert empty.value.code == "empty"
    with pytest.raises(ImageRejected) as large:
        check_image(clean, max_bytes=len(clean) - 1)
    assert large.value.code == "too_large" and "lower resolution" in large.value.message
    checked = check_image(clean, max_bytes=len(clean))
    assert (checked.kind, checked.data) == (ImageKind.PNG, clean)


def test_check_image_returns_the_stripped_bytes() -> None:
    _, dirty = jpeg_with_metadata()
    checked = check_image(dirty, max_bytes=len(dirty))
    assert checked.kind is ImageKind.JPEG and GPS not in checked.data


def test_a_picture_with_nothing_to_strip_is_not_copied() -> None:
    for ext in (".jpg", ".png"):
        clean = encode(ext, gradient())
        assert check_image(clean, max_bytes=len(clean)).data is clean


# --- size limits ----------------------------------------------------------------------------


def test_check_image_reads_the_declared_size() -> None:
    jpeg, png = encode(".jpg", gradient()), encode(".png", gradient(64, 64))
    assert (check_image(jpeg, 10**7).width, check_image(jpeg, 10**7).height) == (200, 150)
    assert (check_image(png, 10**7).width, check_image(png, 10**7).height) == (64, 64)


def test_tiny_truncated_and_mislabelled_images_are_refused() -> None:
    with pytest.raises(ImageRejected, match="too small to read") as tiny:
        check_image(encode(".png", gradient(10, 10)), 10**7)
    assert tiny.value.code == "corrupt"
    jpeg = encode(".jpg", gradient())
    with pytest.raises(ImageRejected) as cut:
        check_image(jpeg[: len(jpeg) // 2], 10**7)
    assert cut.value.code == "corrupt"


def test_decompression_bombs_are_refused_from_the_header() -> None:
    png = bytearray(encode(".png", gradient()))
    ihdr = bytes(png[12:16]) + struct.pack(">II", 60_000, 60_000) + bytes(png[24:29])
    png[16:24] = ihdr[4:12]
    png[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    with pytest.raises(ImageRejected) as exc:
        check_image(bytes(png), 10**7)
    assert exc.value.code == "too_large"


# --- blobs ----------------------------------------------------------------------------------


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_get_round_trip_and_layout(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", KEY)
    data = encode(".png", gradient())
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    path = tmp_path / "blobs" / sha[:2] / sha[2:4] / sha
    assert files_under(tmp_path / "blobs") == [path]
    assert store.get(sha) == data and store.exists(sha)
    raw = path.read_bytes()
    assert raw[0] == 1 and len(raw) == 1 + 12 + len(data) + 16
    assert data not in raw and data[:64] not in raw and b"IHDR" not in raw
    # Another store with the same key reads it; one with another key cannot.
    assert BlobStore(tmp_path / "blobs", KEY).get(sha) == data
    with pytest.raises(BlobCorrupt):
        BlobStore(tmp_path / "blobs", bytes(32)).get(sha)


def test_put_dedupes_and_repairs_an_unreadable_copy(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, KEY)
    sha = store.put(b"same document")
    before = store.path_for(sha).read_bytes()
    assert store.put(b"same document") == sha
    assert store.path_for(sha).read_bytes() == before  # not rewritten
    assert len(files_under(tmp_path)) == 1
    store.path_for(sha).write_bytes(b"\x01" + b"\x00" * 40)
    assert store.put(b"same document") == sha
    assert store.get(sha) == b"same document" and len(files_under(tmp_path)) == 1


@settings(max_examples=40, deadline=None)
@given(position=st.integers(0, 1 + 12 + 20 + 16 - 1), bit=st.integers(0, 7))
def test_flipping_any_stored_bit_is_detected(
    tmp_path_factory: pytest.TempPathFactory, position: int, bit: int
) -> None:
    store = BlobStore(tmp_path_factory.mktemp("flip"), KEY)
    sha = store.put(b"twenty bytes of text")
    path = store.path_for(sha)
    raw = bytearray(path.read_bytes())
    raw[position] ^= 1 << bit
    path.write_bytes(bytes(raw))
    with pytest.raises(BlobCorrupt):
        store.get(sha)


def test_a_blob_moved_to_another_address_does_not_decrypt(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, KEY)
    a, b = store.put(b"document of participant A"), store.put(b"document of participant B")
    store.path_for(b).write_bytes(store.path_for(a).read_bytes())
    with pytest.raises(BlobCorrupt, match="moved"):
        store.get(b)
    assert store.get(a) == b"document of participant A"


@pytest.mark.parametrize(
    "bad", ["../x", "../../etc/passwd", "A" * 64, "a" * 63, "g" * 64, "", "a" * 64 + "/"]
)
def test_addresses_that_are_not_sha256_hex_are_refused(tmp_path: Path, bad: str) -> None:
    store = BlobStore(tmp_path, KEY)
    for op in (store.get, store.exists, store.delete):
        with pytest.raises(ValueError, match="not a blob address"):
            op(bad)


def test_missing_and_delete(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, KEY)
    sha = store.put(b"to be purged")
    absent = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(BlobMissing):
        store.get(absent)
    assert store.delete(sha) is True
    assert store.delete(sha) is False and not store.exists(sha)
    with pytest.raises(KeyError):
        store.get(sha)


def test_put_leaves_no_temp_files_and_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    store = BlobStore(tmp_path, KEY)
    synced.clear()
    store.put(b"first")  # file + leaf dir + two new dirs' parents
    assert len(synced) == 4
    synced.clear()
    store.put(b"second", hashlib.sha256(b"second").hexdigest())  # the caller's hash
    assert store.get(hashlib.sha256(b"second").hexdigest()) == b"second"
    synced.clear()
    store.put(b"first")  # dedupe: nothing written
    assert synced == []
    assert [p.name for p in tmp_path.rglob(".*")] == []


def test_two_puts_of_the_same_picture_at_once_leave_one_good_file(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, KEY)
    data = os.urandom(200_000)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        shas = set(pool.map(lambda _: store.put(data), range(8)))
    assert shas == {hashlib.sha256(data).hexdigest()}
    assert store.get(shas.pop()) == data
    assert len(files_under(tmp_path)) == 1 and [p.name for p in tmp_path.rglob(".*")] == []


def test_key_must_be_32_bytes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        BlobStore(tmp_path, b"short")


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "nested" / "blob.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["blob.key"]
    path.write_bytes(b"x" * 31)
    with pytest.raises(ValueError, match="31 bytes"):
        load_or_create_key(path)
