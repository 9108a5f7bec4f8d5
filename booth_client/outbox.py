"""The kiosk's on-disk outbox: every capture is kept until the server has it, or has been
told it never will.

An item is a small JSON record (and, once taken, its picture), each written to a temp
file, fsynced and renamed, then the directory fsynced, so a kiosk killed at any instant
finds every item whole on restart. Its life:

    reserved ──picture──▶ pending ──server 2xx──▶ (gone: delivered)
        │                    │
        └──cut short──▶ refused ◀──refused for good
                            └──reported to the server──▶ (gone: a tombstone is kept)

- `reserved`: the officer asked (`request_capture`); the record holds the capture's grant
  once the server gave it (booth_client/delivery.py fetches it beside the countdown), so
  the authority to deliver outlives the session before the picture even exists. A
  reservation of an earlier process (its `owner`) without its picture was cut short by a
  restart: `refused`.
- `pending`: the picture is on disk with the Idempotency-Key it is uploaded under, the
  same on every retry, so the server stores it exactly once however often it is sent.
- `refused`: the server will not take it (or it was never taken); the kiosk reports that
  to the server (the officer and supervisor are told) and only then forgets the item,
  keeping a tombstone (`gone/`, the last few) so the screen and health can say so.

Only this process writes the records; `update` re-reads and rewrites one under a lock, so
the grant arriving and the picture being attached never lose each other. Nothing else of
the participant stays on disk: the outbox holds pictures in flight only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("loket.booth.outbox")

PICTURE, RECORD = ".jpg", ".json"
GONE = "gone"  # tombstones of items given up on
KEEP_TOMBSTONES = 20


class ItemState(StrEnum):
    RESERVED = "reserved"
    PENDING = "pending"
    REFUSED = "refused"


@dataclass(frozen=True)
class OutboxItem:
    item_id: str
    claim_id: str
    kind: str
    idempotency_key: str
    content_type: str = "image/jpeg"
    capture_id: str | None = None
    session_id: str | None = None
    created_at: float = 0.0  # unix time
    state: ItemState = ItemState.PENDING
    grant: str | None = None  # the server's capture grant (server/domain/grants.py)
    size: int = 0  # bytes of the picture, once taken
    attempts: int = 0  # uploads tried
    # What the participant and the officer saw of the picture: attempt, sharpness, glare.
    scores: dict[str, Any] = field(default_factory=dict)
    # Why it will not be delivered: reason, status, message (state refused).
    refusal: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None  # the kiosk process that reserved it (Drainer.owner)

    @property
    def capture_key(self) -> str:
        """The capture's own name towards the server (grants, reports)."""
        return self.capture_id or self.item_id

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutboxItem:
        known = {f.name for f in fields(cls)}
        item = cls(**{k: v for k, v in data.items() if k in known})
        return replace(item, state=ItemState(item.state))


def default_state_dir(label: str | None) -> Path:
    """Per booth, under the user's state directory (XDG), so kiosks on one machine (the
    demo) never share one."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in (label or "booth"))
    return base / "loket-booth" / name


def default_outbox_dir(label: str | None) -> Path:
    return default_state_dir(label) / "outbox"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Whole or not at all, and on disk when this returns (but for the directory entry:
    fsync_dir after)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Outbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ready = False  # the directory is made (and swept) on first use
        self._lock = threading.Lock()  # record read-modify-writes (worker threads)

    def _open(self) -> None:
        if not self._ready:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._sweep_partial()
            self._ready = True

    def _record(self, item_id: str) -> Path:
        return self.directory / (item_id + RECORD)

    def _write(self, item: OutboxItem) -> None:
        write_durably(self._record(item.item_id), json.dumps(asdict(item)).encode())
        fsync_dir(self.directory)

    def reserve(
        self,
        claim_id: str,
        kind: str,
        *,
        capture_id: str | None = None,
        session_id: str | None = None,
        content_type: str = "image/jpeg",
        owner: str | None = None,
    ) -> OutboxItem:
        """A capture the officer asked for, before its picture exists; durable on return.
        `owner`: the process taking the picture (another's reservation was cut short)."""
        self._open()
        item = OutboxItem(
            item_id=f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}",
            claim_id=claim_id,
            kind=kind,
            idempotency_key=f"capture-{uuid.uuid4().hex}",
            content_type=content_type,
            capture_id=capture_id,
            session_id=session_id,
            created_at=time.time(),
            state=ItemState.RESERVED,
            owner=owner,
        )
        with self._lock:
            self._write(item)
        return item

    def attach(self, item_id: str, data: bytes, scores: dict[str, Any] | None = None) -> OutboxItem:
        """The reservation's picture: durable before the record says it is there."""
        write_durably(self.directory / (item_id + PICTURE), data)
        return self.update(item_id, state=ItemState.PENDING, size=len(data), scores=scores or {})

    def put(
        self,
        claim_id: str,
        kind: str,
        data: bytes,
        *,
        content_type: str = "image/jpeg",
        capture_id: str | None = None,
        session_id: str | None = None,
    ) -> OutboxItem:
        """Keep a picture in one step (reserve + attach); durable on return."""
        item = self.reserve(
            claim_id, kind, capture_id=capture_id, session_id=session_id, content_type=content_type
        )
        return self.attach(item.item_id, data)

    def update(self, item_id: str, **changes: Any) -> OutboxItem:
        """Rewrite one record with `changes` (re-read first: another change may have landed)."""
        with self._lock:
            item = self.get(item_id)
            if item is None:
                raise FileNotFoundError(f"no outbox item {item_id}")
            item = replace(item, **changes)
            self._write(item)
            return item

    def get(self, item_id: str) -> OutboxItem | None:
        try:
            item = OutboxItem.from_json(json.loads(self._record(item_id).read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            log.error("outbox_record_unreadable", file=item_id + RECORD)
            return None
        if item.state is ItemState.RESERVED and (self.directory / (item_id + PICTURE)).exists():
            # Killed between the picture's rename and the record's: the picture is whole.
            item = replace(item, state=ItemState.PENDING, size=self.picture_size(item_id))
        return item

    def pending(self) -> list[OutboxItem]:
        """Every item not yet settled (any state), oldest first."""
        self._open()
        items = []
        for record in sorted(self.directory.glob("*" + RECORD)):
            item = self.get(record.stem)
            if item is not None:
                items.append(item)
        return items

    def picture(self, item: OutboxItem) -> bytes:
        return (self.directory / (item.item_id + PICTURE)).read_bytes()

    def picture_size(self, item_id: str) -> int:
        return (self.directory / (item_id + PICTURE)).stat().st_size

    def remove(self, item: OutboxItem) -> None:
        # The record first: a picture without a record is swept on the next start.
        with self._lock:
            for suffix in (RECORD, PICTURE):
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / (item.item_id + suffix)).unlink()
            fsync_dir(self.directory)

    def bury(self, item: OutboxItem, fate: dict[str, Any]) -> None:
        """Forget an item given up on, keeping a small tombstone (no picture) first."""
        gone = self.directory / GONE
        gone.mkdir(exist_ok=True, mode=0o700)
        stone = {
            "item_id": item.item_id, "claim_id": item.claim_id, "kind": item.kind,
            "capture_id": item.capture_id, "session_id": item.session_id, "at": time.time(),
            **fate,
        }  # fmt: skip
        write_durably(gone / (item.item_id + RECORD), json.dumps(stone).encode())
        fsync_dir(gone)
        self.remove(item)
        for old in sorted(gone.glob("*" + RECORD))[:-KEEP_TOMBSTONES]:
            old.unlink(missing_ok=True)

    def tombstones(self) -> list[dict[str, Any]]:
        """The last items given up on, newest first."""
        found = []
        for path in sorted((self.directory / GONE).glob("*" + RECORD), reverse=True):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text()))
        return found

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Whether this process may deliver now: one drainer per outbox directory, even
        across processes (two kiosk processes pointed at one state directory by mistake)."""
        self._open()
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _sweep_partial(self) -> None:
        """Leftovers of a write cut short: temp files, pictures whose record never landed."""
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        records = {p.stem for p in self.directory.glob("*" + RECORD)}
        for picture in self.directory.glob("*" + PICTURE):
            if picture.stem not in records:
                picture.unlink(missing_ok=True)
