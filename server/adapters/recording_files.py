"""Recording segments on disk, encrypted at rest like document pictures.

A segment lives at root/<recording id>/<seq>.seg (six digits), as

    version (1 byte) | nonce (12 bytes) | AES-256-GCM(segment) + tag

under the documents key, with `loket-recording:<recording id>` as associated data: a file
copied into another recording does not decrypt, and one renamed within its recording
decrypts to bytes whose SHA-256 is another segment's (so `loket recording verify` can say
"reordered" rather than only "changed"). Files are named by their place, not their hash:
a recording is one directory, and a purge removes it whole.

Every write is a temp file, fsynced, renamed, and the directory fsynced: a segment is
either whole on disk or absent. The methods block on disk I/O; callers use
asyncio.to_thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.adapters.blobs import KEY_BYTES, fsync_dir
from server.domain.recording import Found

_VERSION = 1
_NONCE = 12
_TAG = 16
_ID = re.compile(r"[0-9a-f]{32}")
_FILE = re.compile(r"(\d{6})\.seg")


class SegmentMissing(KeyError):
    """No file under that recording and number."""


class SegmentUnreadable(Exception):
    """The file does not decrypt: changed, damaged, or written with another key."""


class StorageFull(OSError):
    """The recordings' disk has no room: the kiosk keeps the segment and sends it again."""


def _check_id(recording_id: str) -> str:
    # The id becomes a path: anything but 32 lowercase hex could climb out of root.
    if not isinstance(recording_id, str) or not _ID.fullmatch(recording_id):
        raise ValueError(f"{recording_id!r} is not a recording id")
    return recording_id


class SegmentFiles:
    def __init__(self, root: Path, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self.root = Path(root)

    def _dir(self, recording_id: str) -> Path:
        return self.root / _check_id(recording_id)

    def path(self, recording_id: str, seq: int) -> Path:
        return self._dir(recording_id) / f"{int(seq):06d}.seg"

    @staticmethod
    def _aad(recording_id: str) -> bytes:
        return f"loket-recording:{recording_id}".encode()

    def put(self, recording_id: str, seq: int, data: bytes) -> None:
        """Store a segment; durable when this returns. StorageFull when the disk is."""
        directory = self._dir(recording_id)
        try:
            made = not directory.is_dir()
            directory.mkdir(parents=True, exist_ok=True)
            nonce = secrets.token_bytes(_NONCE)
            sealed = self._aead.encrypt(nonce, data, self._aad(recording_id))
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".seg.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(bytes([_VERSION]) + nonce + sealed)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path(recording_id, seq))
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            fsync_dir(directory)
            if made:
                fsync_dir(self.root)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(exc.errno, f"no room for recordings under {self.root}") from exc
            raise

    def get(self, recording_id: str, seq: int) -> bytes:
        try:
            blob = self.path(recording_id, seq).read_bytes()
        except FileNotFoundError:
            raise SegmentMissing(seq) from None
        if len(blob) < 1 + _NONCE + _TAG or blob[0] != _VERSION:
            raise SegmentUnreadable(f"segment {seq}: not a segment file (changed or damaged)")
        try:
            return self._aead.decrypt(
                blob[1 : 1 + _NONCE], blob[1 + _NONCE :], self._aad(recording_id)
            )
        except InvalidTag:
            raise SegmentUnreadable(
                f"segment {seq} does not decrypt (changed, damaged, or from another recording)"
            ) from None

    def found(self, recording_id: str) -> dict[int, Found]:
        """Every segment file of a recording: its plaintext's SHA-256, or why not."""
        out: dict[int, Found] = {}
        for seq in self.numbers(recording_id):
            try:
                out[seq] = Found(sha256=hashlib.sha256(self.get(recording_id, seq)).hexdigest())
            except SegmentUnreadable as exc:
                out[seq] = Found(unreadable=str(exc).split(": ", 1)[-1])
            except SegmentMissing:
                continue
        return out

    def numbers(self, recording_id: str) -> list[int]:
        directory = self._dir(recording_id)
        if not directory.is_dir():
            return []
        return sorted(
            int(m.group(1)) for p in directory.iterdir() if (m := _FILE.fullmatch(p.name))
        )

    def delete_recording(self, recording_id: str) -> int:
        """Remove every segment of a recording (retention); the number of files removed."""
        directory = self._dir(recording_id)
        count = len(self.numbers(recording_id))
        shutil.rmtree(directory, ignore_errors=True)
        if self.root.is_dir():
            fsync_dir(self.root)
        return count
