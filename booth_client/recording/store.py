"""A session's recording on the kiosk's disk, until the server has all of it.

    state_dir/recordings/<booth>/<session id>/
        recording.json     what it is: session, claim, consent, media, its clock's 0 (unix),
                           the server's recording id and grant once opened
        journal.jsonl      the timeline's marks, one per line, each fsynced as it happens
        000001.webm.part   the segment being written (a kiosk killed now loses it: a gap)
        000001.webm        a sealed segment: fsynced, hashed, renamed; deleted once the
        000001.json        server has it (its record stays: seq, times, SHA-256, marks)
        closed.json        the session ended: when, why, what was not recorded at the end

Every record is written whole (temp file, fsync, rename, directory fsync), so a kiosk
killed at any instant finds each segment either sealed with its hash or not there at all,
and never two of one number: the next segment's number follows the highest sealed one.
A process that finds a recording it did not write (a restart mid-session) goes on from
the last sealed segment's end; the time between is a gap (`kiosk_restart`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import structlog

from booth_client.outbox import fsync_dir, write_durably

log = structlog.get_logger("loket.booth.recording")

INFO, JOURNAL, CLOSED = "recording.json", "journal.jsonl", "closed.json"
PART = ".webm.part"


def _load(cls: type[Any], data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class RecordingInfo:
    session_id: str
    claim_id: str
    origin: float  # unix time of the recording's clock 0
    consent: dict[str, Any]
    media: dict[str, Any]
    segment_s: float
    recording_id: str | None = None  # the server's, once opened
    grant: str | None = None
    server_state: str | None = None  # open, refused, closed (as the server said)
    clock_offset_s: float | None = None  # server clock - kiosk clock
    clock_rtt_s: float | None = None
    writer: str = ""  # the process writing its segments (another one: a restart)


@dataclass(frozen=True)
class Sealed:
    """A segment sealed on disk (and, once `uploaded`, on the server)."""

    seq: int
    start_s: float
    end_s: float
    sha256: str
    size: int
    frames: int = 0
    marks: list[dict[str, Any]] = field(default_factory=list)
    gap_before: dict[str, Any] | None = None
    uploaded: bool = False


@dataclass(frozen=True)
class Closing:
    ended_s: float
    reason: str
    gap_after: dict[str, Any] | None = None
    marks: list[dict[str, Any]] = field(default_factory=list)


class Recording:
    """One session's directory (see the module's docstring). Thread-safe: the encoder
    thread seals segments while the event loop adds marks and the uploader reads."""

    def __init__(self, directory: Path, info: RecordingInfo) -> None:
        self.directory = directory
        self._info = info
        self._lock = threading.RLock()
        self._pending: list[dict[str, Any]] = []  # marks not yet in a sealed segment
        self._sealed: dict[int, Sealed] = {}

    # --- making and finding ----------------------------------------------------------

    @classmethod
    def create(cls, root: Path, info: RecordingInfo) -> Recording:
        directory = root / safe_name(info.session_id)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        recording = cls(directory, info)
        recording._write(INFO, asdict(info))
        fsync_dir(root)
        return recording

    @classmethod
    def load(cls, directory: Path) -> Recording | None:
        try:
            info = _load(RecordingInfo, json.loads((directory / INFO).read_text()))
        except (OSError, ValueError, TypeError):
            log.error("recording_unreadable", directory=str(directory))
            return None
        recording = cls(directory, info)
        # Loaded once per process (RecordingStore), before this process writes to it: a
        # part file is one an earlier process was cut short in (never sealed).
        for path in directory.glob("*" + PART):
            path.unlink(missing_ok=True)
        for path in directory.glob("*.tmp"):
            path.unlink(missing_ok=True)
        for path in sorted(directory.glob("[0-9]*.json")):
            with contextlib.suppress(OSError, ValueError, TypeError):
                sealed = _load(Sealed, json.loads(path.read_text()))
                recording._sealed[sealed.seq] = sealed
        placed = {m["id"] for s in recording._sealed.values() for m in s.marks if "id" in m}
        recording._pending = [m for m in recording._journal() if m.get("id") not in placed]
        return recording

    def _journal(self) -> Iterator[dict[str, Any]]:
        path = self.directory / JOURNAL
        if not path.exists():
            return
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                mark = json.loads(line)
                if isinstance(mark, dict):
                    yield mark

    # --- what it is --------------------------------------------------------------------

    @property
    def info(self) -> RecordingInfo:
        return self._info

    def update(self, **changes: Any) -> RecordingInfo:
        with self._lock:
            self._info = replace(self._info, **changes)
            self._write(INFO, asdict(self._info))
            return self._info

    def sealed(self) -> list[Sealed]:
        with self._lock:
            return [self._sealed[s] for s in sorted(self._sealed)]

    def next_seq(self) -> int:
        with self._lock:
            return max(self._sealed, default=0) + 1

    def last_end(self) -> float | None:
        with self._lock:
            return max((s.end_s for s in self._sealed.values()), default=None)

    def waiting(self) -> list[Sealed]:
        """Sealed segments the server does not have yet, in order."""
        return [s for s in self.sealed() if not s.uploaded]

    def pending_bytes(self) -> int:
        return sum(s.size for s in self.waiting())

    def closing(self) -> Closing | None:
        with contextlib.suppress(OSError, ValueError, TypeError):
            return _load(Closing, json.loads((self.directory / CLOSED).read_text()))  # type: ignore[no-any-return]
        return None

    # --- writing -----------------------------------------------------------------------

    def mark(self, at_s: float, kind: str, detail: str = "") -> None:
        """A timeline mark, on disk when this returns (blocking: call from a thread)."""
        mark = {"id": uuid.uuid4().hex[:12], "at_s": round(at_s, 3), "kind": kind,
                "detail": detail[:200]}  # fmt: skip
        with self._lock:
            with (self.directory / JOURNAL).open("a", encoding="utf-8") as out:
                out.write(json.dumps(mark) + "\n")
                out.flush()
                os.fsync(out.fileno())
            self._pending.append(mark)

    def part(self, seq: int) -> Path:
        return self.directory / f"{seq:06d}{PART}"

    def seal(
        self, seq: int, start_s: float, end_s: float, frames: int, gap_before: dict[str, Any] | None
    ) -> Sealed:
        """The part file becomes segment `seq`: fsynced, hashed, renamed, recorded with the
        marks made until its end. Raises OSError if the disk refuses."""
        part = self.part(seq)
        with part.open("rb+") as f:
            os.fsync(f.fileno())
            digest, size = hashlib.sha256(), 0
            while chunk := f.read(1 << 16):
                digest.update(chunk)
                size += len(chunk)
        os.replace(part, self.directory / f"{seq:06d}.webm")
        with self._lock:
            mine = [m for m in self._pending if m["at_s"] <= end_s + 0.001]
            sealed = Sealed(seq, round(start_s, 3), round(end_s, 3), digest.hexdigest(), size,
                            frames, mine, gap_before)  # fmt: skip
            self._write(f"{seq:06d}.json", asdict(sealed))
            self._sealed[seq] = sealed
            taken = {m["id"] for m in mine}
            self._pending = [m for m in self._pending if m["id"] not in taken]
        return sealed

    def segment_bytes(self, seq: int) -> bytes:
        return (self.directory / f"{seq:06d}.webm").read_bytes()

    def uploaded(self, seq: int) -> None:
        """The server has it: its bytes go from the kiosk's disk, its record stays."""
        with self._lock:
            sealed = replace(self._sealed[seq], uploaded=True)
            self._write(f"{seq:06d}.json", asdict(sealed))
            self._sealed[seq] = sealed
        (self.directory / f"{seq:06d}.webm").unlink(missing_ok=True)

    def close(self, ended_s: float, reason: str, gap_after: dict[str, Any] | None) -> Closing:
        with self._lock:
            closing = Closing(round(ended_s, 3), reason, gap_after, list(self._pending))
            self._pending = []
            self._write(CLOSED, asdict(closing))
            return closing

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            fsync_dir(self.directory.parent)

    def _write(self, name: str, data: dict[str, Any]) -> None:
        write_durably(self.directory / name, json.dumps(data).encode())
        fsync_dir(self.directory)


class RecordingStore:
    """Every recording on this kiosk's disk (one per session), oldest first. One object
    per recording in a process (the worker seals, the uploader sends, the loop marks: all
    through it), loaded from disk the first time it is asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._known: dict[str, Recording] = {}
        self._lock = threading.Lock()

    def open(self, info: RecordingInfo) -> Recording:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        recording = Recording.create(self.root, info)
        with self._lock:
            self._known[recording.directory.name] = recording
        return recording

    def find(self, session_id: str) -> Recording | None:
        return self._get(self.root / safe_name(session_id))

    def _get(self, directory: Path) -> Recording | None:
        with self._lock:
            known = self._known.get(directory.name)
            if not (directory / INFO).exists():
                self._known.pop(directory.name, None)  # delivered and removed
                return None
            if known is None and (known := Recording.load(directory)) is not None:
                self._known[directory.name] = known
            return known

    def all(self) -> list[Recording]:
        if not self.root.is_dir():
            return []
        found = [r for d in self.root.iterdir() if (r := self._get(d)) is not None]
        return sorted(found, key=lambda r: r.info.origin)

    def free_bytes(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return shutil.disk_usage(self.root).free


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:80]
