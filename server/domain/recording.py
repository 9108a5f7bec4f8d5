"""Sessions recorded as evidence: the rules of a recording, its manifest and its checks.

A kiosk records each session it serves (with the participant's consent) in fixed-length
WebM segments, hashes each one as it is sealed, and uploads them; the server keeps them
and, when the kiosk closes the recording, writes its **manifest**: every segment (its
order, SHA-256, size and times on the recording's clock), the gaps where nothing was
recorded and why, the kiosk's timeline marks, the media's format, and who and what it is
about (session, claim, booth, branch, officer, consent). The manifest's SHA-256 goes into
the hash-chained audit log (`recording.closed`), so from then on:

- a segment is checked against the manifest (`check_segments`: changed, missing or out of
  order, named);
- the manifest is checked against the chain entry (its hash is the entry's evidence, and
  the entry is part of the chain).

Pure: times are parameters, nothing here reads a file or a database.

    open ──segment (any order, each once)──▶ open ──close (all segments in)──▶ closed
      │                                                                          │
      └────────────────────────── purge (past retention, no legal hold) ─────────┴─▶ purged
    refused (consent refused, no media) ──purge──▶ purged
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from server.domain.audit import canonical_json

FORMAT = "loket-recording/1"
SHA_HEX = re.compile(r"[0-9a-f]{64}")
GAP_TOLERANCE_S = 0.5  # a hole between segments shorter than this is a seam, not a gap


class RecordingState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    REFUSED = "refused"  # the participant refused; nothing was recorded
    PURGED = "purged"


class RecordingEvent(StrEnum):
    SEGMENT = "segment"
    CLOSE = "close"
    PURGE = "purge"


TRANSITIONS: dict[tuple[RecordingState, RecordingEvent], RecordingState] = {
    (RecordingState.OPEN, RecordingEvent.SEGMENT): RecordingState.OPEN,
    (RecordingState.OPEN, RecordingEvent.CLOSE): RecordingState.CLOSED,
    (RecordingState.OPEN, RecordingEvent.PURGE): RecordingState.PURGED,
    (RecordingState.CLOSED, RecordingEvent.PURGE): RecordingState.PURGED,
    (RecordingState.REFUSED, RecordingEvent.PURGE): RecordingState.PURGED,
}


class ConsentAnswer(StrEnum):
    GIVEN = "given"
    REFUSED = "refused"


class RefusalPolicy(StrEnum):
    """What happens when a participant refuses to be recorded."""

    IN_PERSON = "in_person"  # no remote session: the kiosk says where to go instead
    UNRECORDED = "unrecorded"  # the session goes on without a recording (audited)


class GapReason(StrEnum):
    KIOSK_RESTART = "kiosk_restart"  # the kiosk process stopped or died mid-session
    DISK_FULL = "disk_full"  # the kiosk's disk had no room for a segment
    WRITE_FAILED = "write_failed"  # a segment could not be written
    UNKNOWN = "unknown"  # a hole the kiosk gave no reason for


# What a kiosk marks on the recording's timeline (the server adds its own audited
# events: verdicts, outcome, monitoring, whispering, consent; see `timeline`).
MARK_KINDS = frozenset(
    {
        "recording_started",
        "recording_resumed",
        "focus",
        "hold",
        "capture_requested",
        "capture_taken",
        "capture_stored",
        "capture_failed",
        "call_connected",
        "call_lost",
        "officer_reconnected",
        "kiosk_offline",
        "kiosk_online",
        "monitor_started",
        "monitor_stopped",
        "recording_paused",
        "session_ended",
    }
)
MAX_MARKS_PER_SEGMENT = 200
MAX_DETAIL_CHARS = 200


class RecordingError(Exception):
    """A refused request: `status` for HTTP, `code` for clients, `message` for people."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def transition(state: RecordingState, event: RecordingEvent) -> RecordingState:
    after = TRANSITIONS.get((state, event))
    if after is None:
        raise RecordingError(
            409, "recording_" + str(state), f"the recording is {state}: it cannot {event}"
        )
    return after


# --- what a kiosk sends -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mark:
    at_s: float  # on the recording's clock
    kind: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"at_s": round(self.at_s, 3), "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Gap:
    start_s: float
    end_s: float
    reason: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Segment:
    seq: int  # 1, 2, ... in recording order
    sha256: str
    size: int
    start_s: float
    end_s: float
    frames: int = 0
    marks: tuple[Mark, ...] = ()
    gap_before: Gap | None = None  # why nothing was recorded before this one

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "file": segment_file(self.seq),
            "sha256": self.sha256,
            "bytes": self.size,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "frames": self.frames,
        }

    def same_as(self, other: Segment) -> bool:
        return (self.sha256, self.size) == (other.sha256, other.size)


def segment_file(seq: int) -> str:
    return f"segment-{seq:06d}.webm"


@dataclass(frozen=True, slots=True)
class Limits:
    max_segments: int = 2000  # 5.5 hours of 10 s segments
    max_segment_bytes: int = 4 * 1024 * 1024
    max_recording_bytes: int = 1024**3  # what one kiosk may make the server keep
    max_segment_s: float = 120.0
    max_recording_s: float = 6 * 3600.0


def _clean(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    return "".join(c for c in str(text) if c.isprintable())[:limit]


def check_segment(new: Segment, limits: Limits) -> Segment:
    """A segment as a kiosk describes it, refused (RecordingError 422) when it cannot be
    one; its marks and gap cleaned of what a timeline cannot show."""
    problems = []
    if not 1 <= new.seq <= limits.max_segments:
        problems.append(f"seq {new.seq} is outside 1..{limits.max_segments}")
    if not SHA_HEX.fullmatch(new.sha256):
        problems.append("sha256 is not 64 lowercase hex characters")
    if not 1 <= new.size <= limits.max_segment_bytes:
        problems.append(f"a segment is 1 to {limits.max_segment_bytes:,} bytes")
    times = (new.start_s, new.end_s)
    if not all(math.isfinite(t) and 0 <= t <= limits.max_recording_s for t in times):
        problems.append(f"times are seconds 0..{limits.max_recording_s:g} of the recording")
    elif not 0 < new.end_s - new.start_s <= limits.max_segment_s:
        problems.append(f"a segment lasts more than 0 and at most {limits.max_segment_s:g} s")
    if len(new.marks) > MAX_MARKS_PER_SEGMENT:
        problems.append(f"at most {MAX_MARKS_PER_SEGMENT} marks a segment")
    if problems:
        raise RecordingError(422, "invalid_segment", "; ".join(problems))
    marks = tuple(
        Mark(m.at_s, m.kind, _clean(m.detail))
        for m in new.marks
        if m.kind in MARK_KINDS and math.isfinite(m.at_s) and 0 <= m.at_s <= new.end_s + 1
    )
    gap = new.gap_before
    if gap is not None:
        reason = gap.reason if gap.reason in set(GapReason) else GapReason.UNKNOWN
        start = min(max(0.0, gap.start_s), new.start_s) if math.isfinite(gap.start_s) else 0.0
        gap = Gap(start, new.start_s, reason, _clean(gap.detail))
    return Segment(new.seq, new.sha256, new.size, new.start_s, new.end_s, new.frames, marks, gap)


def within_budget(held_bytes: int, new: Segment, limits: Limits) -> None:
    """Refuses (413) a segment that would take the recording past its byte budget."""
    if held_bytes + new.size > limits.max_recording_bytes:
        raise RecordingError(
            413,
            "recording_too_large",
            f"a recording holds at most {limits.max_recording_bytes:,} bytes; this one holds "
            f"{held_bytes:,}: close it (a new session starts a new recording)",
        )


def accept_segment(stored: Mapping[int, Segment], new: Segment) -> bool:
    """Whether `new` is to be stored (False: the same segment is stored already: a retry).
    Refuses (409) another segment under a stored number, and one that overlaps a
    neighbour in time (segments follow each other on the recording's clock)."""
    existing = stored.get(new.seq)
    if existing is not None:
        if existing.same_as(new):
            return False
        raise RecordingError(
            409,
            "segment_conflict",
            f"segment {new.seq} is stored already with other contents; a segment is never replaced",
        )
    before = [s for s in stored.values() if s.seq < new.seq]
    after = [s for s in stored.values() if s.seq > new.seq]
    if before and max(s.end_s for s in before) > new.start_s + 0.05:
        raise RecordingError(
            409, "segment_overlaps", f"segment {new.seq} starts before an earlier one ends"
        )
    if after and min(s.start_s for s in after) < new.end_s - 0.05:
        raise RecordingError(
            409, "segment_overlaps", f"segment {new.seq} ends after a later one starts"
        )
    return True


def missing_segments(stored: Mapping[int, Segment], listed: Sequence[tuple[int, str]]) -> list[int]:
    """What a closing kiosk listed (seq, sha256) that the server does not hold as listed;
    also any number below the last that neither has. Refused (409) if one is stored with
    other contents than the kiosk says it sealed."""
    problems = []
    for seq, sha in listed:
        held = stored.get(seq)
        if held is not None and held.sha256 != sha:
            raise RecordingError(
                409,
                "segment_conflict",
                f"segment {seq} is stored with other contents than the kiosk sealed",
            )
    numbers = {seq for seq, _ in listed} | set(stored)
    last = max(numbers, default=0)
    for seq in range(1, last + 1):
        if seq not in stored:
            problems.append(seq)
    return problems


def gaps_of(segments: Sequence[Segment], ended_s: float, gap_after: Gap | None) -> list[Gap]:
    """Where nothing was recorded: before the first segment, between two, after the last
    (until the recording ended), each with the kiosk's reason if it gave one."""
    gaps: list[Gap] = []
    at = 0.0
    for seg in sorted(segments, key=lambda s: s.seq):
        if seg.start_s - at > GAP_TOLERANCE_S:
            told = seg.gap_before
            reason = told.reason if told is not None else GapReason.UNKNOWN
            detail = told.detail if told is not None else ""
            gaps.append(Gap(at, seg.start_s, str(reason), detail))
        at = max(at, seg.end_s)
    if ended_s - at > GAP_TOLERANCE_S:
        reason = gap_after.reason if gap_after is not None else GapReason.UNKNOWN
        gaps.append(Gap(at, ended_s, str(reason), gap_after.detail if gap_after else ""))
    return gaps


@dataclass(frozen=True, slots=True)
class Facts:
    """What the server knows of the recording beyond its segments."""

    recording_id: str
    session_id: str
    claim_id: str
    booth_id: str
    branch: str
    officer_id: str
    officer_name: str
    started_at: str  # ISO-8601 UTC: the recording's clock 0, on the kiosk's clock
    consent: Mapping[str, Any]
    media: Mapping[str, Any]
    clock_offset_s: float  # server clock - kiosk clock, as measured
    clock_rtt_s: float | None


@dataclass(frozen=True, slots=True)
class Ending:
    """What the closing kiosk says."""

    ended_s: float
    reason: str
    gap_after: Gap | None = None
    marks: tuple[Mark, ...] = ()  # after the last segment began


def build_manifest(
    facts: Facts, segments: Iterable[Segment], ending: Ending, closed_at: str
) -> dict[str, Any]:
    """The manifest, as plain JSON (hash it with `manifest_sha256`)."""
    ordered = sorted(segments, key=lambda s: s.seq)
    marks = [m for s in ordered for m in s.marks] + list(ending.marks)
    marks.sort(key=lambda m: m.at_s)
    duration = max([ending.ended_s, *(s.end_s for s in ordered)], default=0.0)
    recorded = sum(s.end_s - s.start_s for s in ordered)
    return {
        "format": FORMAT,
        "recording_id": facts.recording_id,
        "session_id": facts.session_id,
        "claim_id": facts.claim_id,
        "booth_id": facts.booth_id,
        "branch": facts.branch,
        "officer": {"id": facts.officer_id, "name": facts.officer_name},
        "consent": dict(facts.consent),
        "started_at": facts.started_at,
        "duration_s": round(duration, 3),
        "recorded_s": round(recorded, 3),
        "end_reason": _clean(ending.reason, 64),
        "closed_at": closed_at,
        "clock": {
            "offset_s": round(facts.clock_offset_s, 3),
            "rtt_s": None if facts.clock_rtt_s is None else round(facts.clock_rtt_s, 3),
            "note": "server time = kiosk time + offset_s, measured by the kiosk",
        },
        "media": dict(facts.media),
        "segments": [s.to_json() for s in ordered],
        "gaps": [g.to_json() for g in gaps_of(ordered, duration, ending.gap_after)],
        "marks": [m.to_json() for m in marks],
    }


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The manifest's one byte form: the bytes its SHA-256 is taken over (and exported)."""
    return canonical_json(manifest)


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(manifest_bytes(manifest)).hexdigest()


# --- verification -----------------------------------------------------------------------


class SegmentFault(StrEnum):
    CHANGED = "changed"  # its bytes are not what the manifest hashed (or do not decrypt)
    MISSING = "missing"  # dropped: the manifest lists it, the store has nothing
    REORDERED = "reordered"  # it holds another listed segment's bytes
    EXTRA = "extra"  # stored, but the manifest does not list it


@dataclass(frozen=True, slots=True)
class SegmentProblem:
    seq: int
    fault: SegmentFault
    message: str


@dataclass(frozen=True, slots=True)
class Found:
    """What the store holds under one segment number: its bytes' SHA-256, or why not."""

    sha256: str | None = None
    unreadable: str | None = None  # e.g. "does not decrypt"


def check_segments(manifest: Mapping[str, Any], found: Mapping[int, Found]) -> list[SegmentProblem]:
    """Every segment the manifest lists against what is stored under its number."""
    listed = {int(s["seq"]): str(s["sha256"]) for s in manifest.get("segments", [])}
    owner = {sha: seq for seq, sha in listed.items()}
    problems = []
    for seq, sha in sorted(listed.items()):
        got = found.get(seq)
        if got is None:
            problems.append(
                SegmentProblem(seq, SegmentFault.MISSING, f"segment {seq} is missing (dropped)")
            )
        elif got.sha256 == sha:
            continue
        elif got.sha256 is not None and got.sha256 in owner:
            other = owner[got.sha256]
            problems.append(
                SegmentProblem(
                    seq,
                    SegmentFault.REORDERED,
                    f"segment {seq} holds the bytes of segment {other} (segments reordered)",
                )
            )
        else:
            why = got.unreadable or f"its SHA-256 is {got.sha256}, the manifest says {sha}"
            problems.append(
                SegmentProblem(seq, SegmentFault.CHANGED, f"segment {seq} was changed: {why}")
            )
    for seq in sorted(set(found) - set(listed)):
        extra = f"segment {seq} is stored but not in the manifest"
        problems.append(SegmentProblem(seq, SegmentFault.EXTRA, extra))
    return problems


# --- the timeline beside the video ------------------------------------------------------

# Audited actions shown on a recording's timeline, and how they read.
AUDITED_EVENTS = {
    "recording.consent_given": "consent given",
    "recording.consent_refused": "consent refused",
    "capture.requested": "capture requested",
    "document.uploaded": "document stored",
    "document.verdict": "document judged",
    "outcome.recorded": "outcome recorded",
    "monitor.started": "supervisor monitoring",
    "monitor.stopped": "monitoring stopped",
    "whisper.started": "supervisor whispering to the officer",
    "whisper.stopped": "whisper stopped",
    "session.moved": "moved to another officer",
    "session.ended_by_supervisor": "ended by a supervisor",
}


@dataclass(frozen=True, slots=True)
class TimelineItem:
    at_s: float  # on the recording's clock
    kind: str
    label: str
    source: str  # "kiosk" (a mark in the manifest) or "audit" (an entry of the chain)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "at_s": round(self.at_s, 3),
            "kind": self.kind,
            "label": self.label,
            "source": self.source,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class AuditedEvent:
    at: float  # unix time on the server's clock
    seq: int
    action: str
    decision: str | None
    details: Mapping[str, Any]


MARK_LABELS = {
    "recording_started": "recording started",
    "recording_resumed": "recording resumed",
    "focus": "officer talking to this booth",
    "hold": "on hold (officer with another booth)",
    "capture_requested": "capture asked",
    "capture_taken": "picture taken",
    "capture_stored": "picture stored",
    "capture_failed": "capture failed",
    "call_connected": "call connected",
    "call_lost": "call lost",
    "officer_reconnected": "officer reconnected",
    "kiosk_offline": "kiosk lost the server",
    "kiosk_online": "kiosk back online",
    "monitor_started": "supervisor monitoring",
    "monitor_stopped": "monitoring stopped",
    "recording_paused": "recording paused",
    "session_ended": "session ended",
}


def timeline(
    manifest: Mapping[str, Any], started_unix: float, audited: Iterable[AuditedEvent]
) -> list[TimelineItem]:
    """The kiosk's marks and the claim's audited events, on the recording's clock.
    Audited times are the server's: moved to the kiosk's clock by the measured offset."""
    items = [
        TimelineItem(
            float(m["at_s"]),
            str(m["kind"]),
            MARK_LABELS.get(m["kind"], m["kind"]),
            "kiosk",
            {"detail": m.get("detail", "")},
        )
        for m in manifest.get("marks", [])
    ]
    offset = float(manifest.get("clock", {}).get("offset_s", 0.0))
    end = float(manifest.get("duration_s", 0.0))
    for event in audited:
        at_s = event.at - offset - started_unix
        if event.action not in AUDITED_EVENTS or not -1.0 <= at_s <= end + 1.0:
            continue
        detail = {
            "seq": event.seq,
            **{
                k: v for k, v in event.details.items() if k in ("document_id", "kind", "capture_id")
            },
        }
        if event.decision:
            detail["decision"] = event.decision
        items.append(
            TimelineItem(
                max(0.0, at_s), event.action, AUDITED_EVENTS[event.action], "audit", detail
            )
        )
    items.sort(key=lambda i: (i.at_s, i.source))
    return items
