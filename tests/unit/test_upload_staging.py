"""The resumable uploads' staging area on disk (server/adapters/staging.py): encrypted
chunks, the offset as the chain of chunks, one winner per offset, bounds and expiry."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from server.adapters.staging import (
    ChunkPastEnd,
    OffsetMismatch,
    StagedConflict,
    StagedUpload,
    StagingFull,
    UploadGone,
    UploadStaging,
    upload_id_for,
)

PICTURE = os.urandom(200_000)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _staging(tmp_path: Path, clock: Clock | None = None, **bounds: int) -> UploadStaging:
    limits = {"max_per_booth": 2, "max_total": 3, "max_bytes": 10_000_000} | bounds
    return UploadStaging(tmp_path / "uploads", b"k" * 32, expiry_s=60, clock=clock or Clock(),
                         **limits)  # fmt: skip


def _upload(booth: str = "booth-1", key: str = "k1", data: bytes = PICTURE) -> StagedUpload:
    return StagedUpload(upload_id_for(booth, key), booth, "claim-1", "ktp", key, len(data),
                        hashlib.sha256(data).hexdigest(), "image/jpeg")  # fmt: skip


def test_chunks_add_up_to_the_picture_and_nothing_is_in_clear(tmp_path: Path) -> None:
    staging = _staging(tmp_path)
    upload = _upload()
    state, created = staging.create(upload)
    assert created and state.offset == 0
    assert staging.create(upload) == (state, False)  # a retried creation: the same upload
    for offset in range(0, len(PICTURE), 64_000):
        state = staging.append(upload.upload_id, offset, PICTURE[offset : offset + 64_000])
    assert state.complete and staging.assemble(upload.upload_id) == PICTURE
    files = list((tmp_path / "uploads" / upload.upload_id).iterdir())
    assert all(f.stat().st_mode & 0o077 == 0 for f in files)
    for chunk in (f for f in files if f.name.startswith("c")):
        assert PICTURE[:64] not in chunk.read_bytes() and PICTURE[64_000:64_064] not in (
            chunk.read_bytes()
        )
    staging.discard(upload.upload_id)
    with pytest.raises(UploadGone):
        staging.state(upload.upload_id)


def test_a_wrong_offset_or_a_chunk_past_the_end_changes_nothing(tmp_path: Path) -> None:
    staging = _staging(tmp_path)
    upload = _upload()
    staging.create(upload)
    staging.append(upload.upload_id, 0, PICTURE[:1000])
    with pytest.raises(OffsetMismatch) as wrong:
        staging.append(upload.upload_id, 0, PICTURE[:1000])
    assert wrong.value.offset == 1000
    with pytest.raises(ChunkPastEnd):
        staging.append(upload.upload_id, 1000, PICTURE[1000:] + b"x")
    with pytest.raises(StagedConflict):
        staging.create(_upload(data=PICTURE[:-1]))  # same key, another picture
    assert staging.state(upload.upload_id).offset == 1000


def test_of_many_writers_at_one_offset_exactly_one_lands(tmp_path: Path) -> None:
    staging = _staging(tmp_path)
    upload = _upload()
    staging.create(upload)
    barrier, results = threading.Barrier(8), []

    def write(n: int) -> None:
        barrier.wait()
        try:
            staging.append(upload.upload_id, 0, PICTURE[: 1000 + n])
            results.append("ok")
        except OffsetMismatch:
            results.append("mismatch")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1 and results.count("mismatch") == 7
    assert 1000 <= staging.state(upload.upload_id).offset < 1008


def test_bounds_per_booth_in_total_and_in_bytes_and_expiry(tmp_path: Path) -> None:
    clock = Clock()
    staging = _staging(tmp_path, clock)
    staging.create(_upload("booth-1", "a"))
    staging.create(_upload("booth-1", "b"))
    with pytest.raises(StagingFull) as full:
        staging.create(_upload("booth-1", "c"))
    assert full.value.scope == "booth"
    staging.create(_upload("booth-2", "a"))
    with pytest.raises(StagingFull) as full:
        staging.create(_upload("booth-3", "a"))
    assert full.value.scope == "total"
    clock.now += 61  # all three abandoned: purged on the next look
    assert staging.purge_expired() == 0
    assert list((tmp_path / "uploads").iterdir()) == []
    small = _staging(tmp_path, Clock(), max_bytes=300_000)
    small.create(_upload("booth-1", "a"))
    with pytest.raises(StagingFull) as full:
        small.create(_upload("booth-2", "a"))
    assert full.value.scope == "bytes"
