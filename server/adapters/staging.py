"""Resumable uploads in progress: encrypted chunks on the shared data volume.

Every server process may receive any chunk, so the state lives on disk under
`DATA_DIR/uploads/<upload id>/` (the volume the document store already shares), never in
one process's memory:

- `meta.json`: who uploads what (booth, claim, kind, Idempotency-Key, declared length and
  SHA-256, content type, the capture grant). Created once, by linking a complete temp file
  into place: two processes creating the same upload at once end up with one.
- `c<offset>`: one chunk each, `version | nonce | AES-256-GCM(chunk)` under the documents
  key with `<upload id>:<offset>` as associated data, so staged personal data is never in
  clear on disk and a chunk moved to another place or upload does not decrypt. Written to a
  temp file, then *linked* to its name: the link fails if that offset already has a chunk,
  so of two PATCHes racing for one offset (two processes, a client retrying over a
  connection it thinks is dead) exactly one lands and the other is told the new offset.
  No lock is held anywhere, so a process that dies mid-chunk blocks nothing.

Chunks are not fsynced (it cost ~40 % of a chunk here): a machine that loses power may
lose the last chunks, and the offset goes back, which the client always asks for before
going on; a chunk torn by the power cut does not decrypt (the GCM tag), and the upload is
then started again. The picture is made durable once, when it is stored as a document.

The offset is where the chain of chunks from 0 ends. An upload with no new chunk for
`expiry_s` is purged; what one booth and all booths may have in progress is bounded.
The methods block on disk I/O; callers run them through asyncio.to_thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.adapters.blobs import fsync_dir

_VERSION = 1
_NONCE = 12
_TAG = 16
_OVERHEAD = 1 + _NONCE + _TAG
_ID = re.compile(r"[0-9a-f]{32}")
_CHUNK = re.compile(r"c(\d{12})")
META = "meta.json"


class StagingError(Exception):
    """Base of the staging refusals; each carries what the client should do."""


class UploadGone(StagingError):
    """No such upload here: never created, finished, or purged after its expiry."""


class StagingFull(StagingError):
    """Too much in progress; `scope` is `booth`, `total` or `bytes`."""

    def __init__(self, scope: str, message: str) -> None:
        super().__init__(message)
        self.scope = scope


class OffsetMismatch(StagingError):
    """A chunk sent for another offset than the upload's; `offset` is the right one."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"the upload is at offset {offset}")
        self.offset = offset


class ChunkPastEnd(StagingError):
    """A chunk that would take the upload past its declared length."""


class StagedConflict(StagingError):
    """The upload exists with other contents (same Idempotency-Key, another picture)."""


class StagedCorrupt(StagingError):
    """A staged chunk does not decrypt (damaged disk, or another key): start again."""


@dataclass(frozen=True, slots=True)
class StagedUpload:
    upload_id: str
    booth_id: str
    claim_id: str
    kind: str
    idempotency_key: str
    length: int
    sha256: str  # hex, of the whole picture
    content_type: str
    grant: str | None = None
    created_at: float = 0.0  # unix time

    def same_request(self, other: StagedUpload) -> bool:
        mine, theirs = asdict(self), asdict(other)
        for volatile in ("created_at", "grant"):
            mine.pop(volatile), theirs.pop(volatile)
        return mine == theirs


@dataclass(frozen=True, slots=True)
class UploadState:
    upload: StagedUpload
    offset: int
    touched_at: float  # unix time of the last chunk (or the creation)

    @property
    def complete(self) -> bool:
        return self.offset == self.upload.length


def upload_id_for(booth_id: str, idempotency_key: str) -> str:
    """Deterministic: a kiosk that lost the creation's answer gets the same upload back."""
    return hashlib.sha256(f"{booth_id}\0{idempotency_key}".encode()).hexdigest()[:32]


def _write_temp(directory: Path, data: bytes | bytearray, *, sync: bool = True) -> str:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".t", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return name


class UploadStaging:
    def __init__(
        self,
        root: Path,
        key: bytes,
        *,
        max_per_booth: int,
        max_total: int,
        max_bytes: int,
        expiry_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        self._aead = AESGCM(key)
        self.max_per_booth, self.max_total, self.max_bytes = max_per_booth, max_total, max_bytes
        self.expiry_s = expiry_s
        self._clock = clock
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    # --- reading ---------------------------------------------------------------------

    def _dir(self, upload_id: str) -> Path:
        if not _ID.fullmatch(upload_id):
            raise UploadGone(f"no upload {upload_id!r}")
        return self.root / upload_id

    def _meta(self, directory: Path) -> StagedUpload:
        try:
            return StagedUpload(**json.loads((directory / META).read_text()))
        except FileNotFoundError:
            raise UploadGone("no such upload (finished, or purged after its expiry)") from None
        except (ValueError, TypeError):
            raise StagedCorrupt("the upload's record is damaged: create it again") from None

    def _chunks(self, directory: Path) -> dict[int, int]:
        """offset -> plaintext size of every chunk on disk."""
        found = {}
        with os.scandir(directory) as entries:
            for entry in entries:
                match = _CHUNK.fullmatch(entry.name)
                if match:
                    found[int(match.group(1))] = entry.stat().st_size - _OVERHEAD
        return found

    @staticmethod
    def _chain(chunks: dict[int, int]) -> list[tuple[int, int]]:
        offset, chain = 0, []
        while offset in chunks and chunks[offset] > 0:
            chain.append((offset, chunks[offset]))
            offset += chunks[offset]
        return chain

    def state(self, upload_id: str) -> UploadState:
        directory = self._dir(upload_id)
        upload = self._meta(directory)
        try:
            chain = self._chain(self._chunks(directory))
            touched = directory.stat().st_mtime
        except FileNotFoundError:  # finished or purged by another request meanwhile
            raise UploadGone("no such upload (finished, or purged after its expiry)") from None
        offset = chain[-1][0] + chain[-1][1] if chain else 0
        if self._clock() - touched > self.expiry_s:
            self.discard(upload_id)
            raise UploadGone("the upload expired (no chunk for too long): create it again")
        return UploadState(upload, min(offset, upload.length), touched)

    # --- writing ---------------------------------------------------------------------

    def create(self, upload: StagedUpload) -> tuple[UploadState, bool]:
        """Stage a new upload (True), or return the one already staged under its id (a
        retry of the creation: False). Raises StagedConflict for another picture under the
        same id and StagingFull past a bound (what is expired is purged first)."""
        directory = self._dir(upload.upload_id)
        with contextlib.suppress(UploadGone):
            existing = self.state(upload.upload_id)
            if not existing.upload.same_request(upload):
                raise StagedConflict("this Idempotency-Key is staging another picture")
            return existing, False
        self._admit(upload)
        directory.mkdir(mode=0o700, exist_ok=True)
        record = json.dumps(asdict(upload), separators=(",", ":")).encode()
        tmp = _write_temp(directory, record)
        try:
            os.link(tmp, directory / META)  # exactly one creation wins
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        fsync_dir(directory)
        fsync_dir(self.root)
        return self._created(upload), True

    def _created(self, upload: StagedUpload) -> UploadState:
        state = self.state(upload.upload_id)
        if not state.upload.same_request(upload):
            raise StagedConflict("this Idempotency-Key is staging another picture")
        return state

    def _admit(self, upload: StagedUpload) -> None:
        booth, total, declared = 0, 0, 0
        for other in self._in_progress():
            total += 1
            declared += other.length
            booth += other.booth_id == upload.booth_id
        if booth >= self.max_per_booth:
            raise StagingFull("booth", f"this booth has {booth} uploads in progress already")
        if total >= self.max_total:
            raise StagingFull("total", f"{total} uploads are in progress on this server")
        if declared + upload.length > self.max_bytes:
            raise StagingFull("bytes", "the upload staging area is full")

    def _in_progress(self) -> list[StagedUpload]:
        """Every live upload; the expired and the unreadable are purged on the way."""
        live = []
        now = self._clock()
        with os.scandir(self.root) as entries:
            names = [e.name for e in entries if e.is_dir() and _ID.fullmatch(e.name)]
        for name in names:
            directory = self.root / name
            try:
                touched = directory.stat().st_mtime
                upload = self._meta(directory)
            except (FileNotFoundError, UploadGone):
                # A creation in progress (no meta yet) is young; an old empty one is litter.
                with contextlib.suppress(FileNotFoundError):
                    if now - directory.stat().st_mtime > self.expiry_s:
                        shutil.rmtree(directory, ignore_errors=True)
                continue
            except StagedCorrupt:
                shutil.rmtree(directory, ignore_errors=True)
                continue
            if now - touched > self.expiry_s:
                shutil.rmtree(directory, ignore_errors=True)
                continue
            live.append(upload)
        return live

    def purge_expired(self) -> int:
        """Remove every upload idle past its expiry; returns how many are left."""
        return len(self._in_progress())

    def append(self, upload_id: str, offset: int, data: bytes) -> UploadState:
        """Add `data` at `offset` and return the new state. OffsetMismatch (with the right
        offset) if the upload is elsewhere, or another request wrote there first."""
        state = self.state(upload_id)
        if offset != state.offset:
            raise OffsetMismatch(state.offset)
        if offset + len(data) > state.upload.length:
            raise ChunkPastEnd(
                f"{len(data)} bytes at offset {offset} pass the declared length "
                f"{state.upload.length}"
            )
        if not data:
            return state
        directory = self._dir(upload_id)
        nonce = secrets.token_bytes(_NONCE)
        sealed = bytearray(_OVERHEAD + len(data))
        sealed[0] = _VERSION
        sealed[1 : 1 + _NONCE] = nonce
        aad = f"{upload_id}:{offset}".encode()
        self._aead.encrypt_into(nonce, data, aad, memoryview(sealed)[1 + _NONCE :])
        tmp = _write_temp(directory, sealed, sync=False)
        try:
            os.link(tmp, directory / f"c{offset:012d}")
        except FileExistsError:
            raise OffsetMismatch(self.state(upload_id).offset) from None
        finally:
            os.unlink(tmp)
        return UploadState(state.upload, offset + len(data), self._clock())

    def assemble(self, upload_id: str) -> bytes:
        """The whole picture (every chunk decrypted, in order)."""
        directory = self._dir(upload_id)
        state = self.state(upload_id)
        if not state.complete:
            raise OffsetMismatch(state.offset)
        parts = []
        for offset, _ in self._chain(self._chunks(directory)):
            sealed = (directory / f"c{offset:012d}").read_bytes()
            if sealed[0] != _VERSION:
                raise StagedCorrupt("a staged chunk has an unknown format: create it again")
            aad = f"{upload_id}:{offset}".encode()
            try:
                parts.append(self._aead.decrypt(sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :], aad))
            except InvalidTag:
                raise StagedCorrupt("a staged chunk does not decrypt: create it again") from None
        data = b"".join(parts)
        return data[: state.upload.length]

    def discard(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._dir(upload_id))
            fsync_dir(self.root)
