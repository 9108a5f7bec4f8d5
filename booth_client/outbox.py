"""The kiosk's on-disk outbox: every capture is kept until the server acknowledges it.

A capture is written (picture and a small JSON record, each fsynced, then the directory)
before anything is sent, with the Idempotency-Key it will be uploaded under. So:

- a network loss only delays it: the drain retries with backoff;
- a kiosk killed mid-upload finds it again on restart and sends it with the *same* key:
  if the first attempt did reach the server, the server answers from its stored answer
  (it never stores the document twice), otherwise it is stored now;
- it leaves the disk only once the server said 2xx, or refused it for good (a 4xx that
  retrying cannot fix, e.g. the session's claim is no longer this booth's to add to),
  which is logged with the server's reason.

Nothing else of the participant stays on disk: the outbox holds pictures in flight only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import structlog

log = structlog.get_logger("loket.booth.outbox")

PICTURE, RECORD = ".jpg", ".json"


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


@dataclass(frozen=True)
class Delivery:
    """What the server said about one upload attempt."""

    status: int
    body: dict[str, object]

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        # Timeouts, rate limits and server faults pass; other refusals will not change.
        return self.status in (408, 425, 429) or self.status >= 500


Uploader = Callable[[OutboxItem, bytes], Awaitable[Delivery]]
TokenSource = Callable[[], Awaitable[str]]

# Tests only: kill the kiosk process at this point of an upload, to prove a restart
# delivers the capture exactly once. Unset in production.
CRASH_POINT_ENV = "LOKET_BOOTH_CRASH_POINT"


def http_uploader(http: httpx.AsyncClient, token: TokenSource) -> Uploader:
    """Upload over HTTP with the item's own Idempotency-Key (the same on every retry)."""

    async def upload(item: OutboxItem, data: bytes) -> Delivery:
        crash = os.environ.get(CRASH_POINT_ENV, "")
        if crash == "before_upload":
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            response = await http.post(
                f"/api/claims/{item.claim_id}/documents",
                params={"kind": item.kind},
                content=data,
                headers={
                    "Authorization": f"Bearer {await token()}",
                    "Content-Type": item.content_type,
                    "Idempotency-Key": item.idempotency_key,
                },
            )
        except httpx.TransportError as exc:
            raise OSError(f"upload failed: {exc!r}") from exc
        if crash == "after_upload":  # the server has it; we die before noting that
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.headers.get("Idempotent-Replayed") == "true":
            body = {**body, "replayed": True}
        return Delivery(response.status_code, body if isinstance(body, dict) else {})

    return upload


def default_outbox_dir(label: str | None) -> Path:
    """Per booth, under the user's state directory (XDG), so kiosks on one machine (the
    demo) never share one."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in (label or "booth"))
    return base / "loket-booth" / name / "outbox"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Outbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ready = False  # the directory is made (and swept) on first use

    def _open(self) -> None:
        if not self._ready:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._sweep_partial()
            self._ready = True

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
        """Keep a capture; durable on return (before any upload is attempted)."""
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
        )
        # The picture first, the record last: a record always has its picture.
        _write_durably(self.directory / (item.item_id + PICTURE), data)
        _write_durably(self.directory / (item.item_id + RECORD), json.dumps(asdict(item)).encode())
        _fsync_dir(self.directory)
        return item

    def pending(self) -> list[OutboxItem]:
        """Items waiting for the server, oldest first."""
        self._open()
        items = []
        for record in sorted(self.directory.glob("*" + RECORD)):
            try:
                items.append(OutboxItem(**json.loads(record.read_text())))
            except (OSError, ValueError, TypeError):
                log.error("outbox_record_unreadable", file=record.name)
        return items

    def picture(self, item: OutboxItem) -> bytes:
        return (self.directory / (item.item_id + PICTURE)).read_bytes()

    def remove(self, item: OutboxItem) -> None:
        # The record first: a picture without a record is swept on the next start.
        for suffix in (RECORD, PICTURE):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / (item.item_id + suffix)).unlink()
        _fsync_dir(self.directory)

    def _sweep_partial(self) -> None:
        """Leftovers of a write cut short: temp files, pictures whose record never landed."""
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        records = {p.stem for p in self.directory.glob("*" + RECORD)}
        for picture in self.directory.glob("*" + PICTURE):
            if picture.stem not in records:
                picture.unlink(missing_ok=True)


async def drain_once(outbox: Outbox, upload: Uploader) -> tuple[int, int]:
    """Try every pending item once, oldest first. Returns (delivered, still pending).

    Stops at the first network failure (the rest would fail the same way); an item the
    server refuses for good is dropped with the refusal logged.
    """
    delivered = 0
    items = await asyncio.to_thread(outbox.pending)
    for index, item in enumerate(items):
        try:
            answer = await upload(item, await asyncio.to_thread(outbox.picture, item))
        except FileNotFoundError:
            await asyncio.to_thread(outbox.remove, item)
            continue
        except OSError as exc:  # network: keep it, try again later
            log.info("outbox_upload_deferred", item=item.item_id, error=str(exc))
            return delivered, len(items) - index
        if answer.delivered:
            await asyncio.to_thread(outbox.remove, item)
            delivered += 1
            log.info("outbox_delivered", item=item.item_id, kind=item.kind,
                     replayed=bool(answer.body.get("replayed")))  # fmt: skip
        elif answer.retryable:
            return delivered, len(items) - index
        else:
            await asyncio.to_thread(outbox.remove, item)
            log.error("outbox_refused", item=item.item_id, kind=item.kind,
                      status=answer.status, error=answer.body.get("error"))  # fmt: skip
    return delivered, 0
