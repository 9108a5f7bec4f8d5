"""Append-only, hash-chained audit log of what officers did with claims and documents.

Each entry carries the SHA-256 of its own content and of the entry before it, so editing,
deleting, inserting or reordering stored rows shows up in `verify_chain`. Dropping the newest
rows leaves a shorter but self-consistent chain; that is only caught by comparing the last hash
with a head hash kept elsewhere (`expected_head`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

GENESIS = "0" * 64
"""prev_hash of entry 1, and the head of an empty log."""

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _check_json(value: object, path: str) -> None:
    # json.dumps alone would quietly turn tuples/int keys into other shapes and accept NaN;
    # a hash over such data would not survive a round trip through storage.
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path}: {value!r} is not representable in JSON")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: key {key!r} is not a string")
            _check_json(item, f"{path}.{key}")
        return
    raise TypeError(
        f"{path}: {type(value).__name__} is not JSON (pass datetimes as ISO-8601 strings)"
    )


def canonical_json(value: object) -> bytes:
    """One byte form per value: sorted keys, no spaces, UTF-8 (not \\u escapes)."""
    _check_json(value, "$")
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    role: str
    action: str
    claim_id: str | None
    decision: str | None
    reason_codes: tuple[str, ...]
    evidence: tuple[str, ...]
    fingerprints: tuple[str, ...]
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where the log ends, as kept outside it: seq 0 and GENESIS before the first entry."""

    seq: int
    hash: str


EMPTY_HEAD = ChainHead(0, GENESIS)


def entry_fields(entry: AuditEntry) -> dict[str, object]:
    """Every field that the hash covers, i.e. all but `hash` itself."""
    return {
        "seq": entry.seq,
        "at": entry.at,
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "claim_id": entry.claim_id,
        "decision": entry.decision,
        "reason_codes": list(entry.reason_codes),
        "evidence": list(entry.evidence),
        "fingerprints": list(entry.fingerprints),
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }


def entry_hash(fields: Mapping[str, object]) -> str:
    """SHA-256 hex over the canonical JSON of an entry's fields (without `hash`)."""
    if "hash" in fields:
        raise ValueError("entry_hash takes the fields without `hash`")
    return hashlib.sha256(canonical_json(fields)).hexdigest()


def _check_utc_iso(at: str) -> None:
    try:
        parsed = datetime.fromisoformat(at)
    except (TypeError, ValueError):
        raise ValueError(f"at={at!r} is not an ISO-8601 timestamp") from None
    if parsed.utcoffset() != timedelta(0):
        raise ValueError(f"at={at!r} must be in UTC (end it with +00:00 or Z)")


def append(
    prev: AuditEntry | ChainHead | None,
    *,
    at: str,
    actor: str,
    role: str,
    action: str,
    claim_id: str | None = None,
    decision: str | None = None,
    reason_codes: Iterable[str] = (),
    evidence: Iterable[str] = (),
    fingerprints: Iterable[str] = (),
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """The entry that follows `prev` (the last entry or the stored head; None or EMPTY_HEAD
    for the first one), with its hash computed."""
    _check_utc_iso(at)
    codes_t, evidence_t, prints_t = tuple(reason_codes), tuple(evidence), tuple(fingerprints)
    if not all(isinstance(x, str) for x in (*codes_t, *evidence_t, *prints_t)):
        raise TypeError("reason codes, evidence and fingerprints must be strings")
    for sha in evidence_t:
        if not _SHA256_HEX.fullmatch(sha):
            raise ValueError(f"evidence {sha!r} is not a lowercase SHA-256 hex digest")
    # A private deep copy: a caller mutating its dict later must not change a hashed entry.
    details_copy: dict[str, Any] = json.loads(canonical_json(dict(details or {})))
    seq, prev_hash = (prev.seq + 1, prev.hash) if prev else (1, GENESIS)
    fields: dict[str, object] = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "role": role,
        "action": action,
        "claim_id": claim_id,
        "decision": decision,
        "reason_codes": list(codes_t),
        "evidence": list(evidence_t),
        "fingerprints": list(prints_t),
        "details": details_copy,
        "prev_hash": prev_hash,
    }
    digest = entry_hash(fields)
    return AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        role=role,
        action=action,
        claim_id=claim_id,
        decision=decision,
        reason_codes=codes_t,
        evidence=evidence_t,
        fingerprints=prints_t,
        details=details_copy,
        prev_hash=prev_hash,
        hash=digest,
    )


def chain_head(entries: Iterable[AuditEntry]) -> ChainHead:
    """The head to keep outside the log (EMPTY_HEAD when it is empty)."""
    head = EMPTY_HEAD
    for entry in entries:
        head = ChainHead(entry.seq, entry.hash)
    return head


class ProblemKind(StrEnum):
    EDITED = "edited"
    BROKEN_LINK = "broken_link"
    MISSING = "missing"
    OUT_OF_ORDER = "out_of_order"
    BAD_GENESIS = "bad_genesis"
    HEAD_MISMATCH = "head_mismatch"


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    kind: ProblemKind
    message: str


_RESTORE = "restore it from a backup and find out who had write access to the audit table"


def _recomputed(entry: AuditEntry) -> str | None:
    try:
        return entry_hash(entry_fields(entry))
    except (TypeError, ValueError):  # a stored row that is not even JSON was tampered with
        return None


def verify_chain(
    entries: Iterable[AuditEntry], expected_head: str | None = None
) -> list[ChainProblem]:
    """Every inconsistency in the stored log, in storage order; [] means intact.

    `entries` in storage order (by seq as stored). `expected_head` is the last hash as
    recorded outside the log; without it, removing the newest entries goes unnoticed.
    """
    problems: list[ChainProblem] = []
    prev: AuditEntry | None = None
    for entry in entries:
        n = entry.seq
        if _recomputed(entry) != entry.hash:
            problems.append(
                ChainProblem(
                    n,
                    ProblemKind.EDITED,
                    f"entry {n} was edited after it was written: its content no longer "
                    f"matches its hash; {_RESTORE}",
                )
            )
        if prev is None:
            if n != 1:
                problems.append(
                    ChainProblem(
                        n,
                        ProblemKind.MISSING,
                        f"the log starts at entry {n}: entries 1 to {n - 1} are missing; "
                        f"{_RESTORE}",
                    )
                )
            elif entry.prev_hash != GENESIS:
                problems.append(
                    ChainProblem(
                        n,
                        ProblemKind.BAD_GENESIS,
                        f"entry 1 does not start a chain (its prev_hash is not {GENESIS[:8]}…): "
                        f"it was replaced or the log was spliced; {_RESTORE}",
                    )
                )
        else:
            p = prev.seq
            if n <= p:
                problems.append(
                    ChainProblem(
                        n,
                        ProblemKind.OUT_OF_ORDER,
                        f"entry {n} is stored after entry {p}: rows were reordered, "
                        f"duplicated or inserted; {_RESTORE}",
                    )
                )
            elif n > p + 1:
                gap = f"entry {p + 1}" if n == p + 2 else f"entries {p + 1} to {n - 1}"
                problems.append(
                    ChainProblem(
                        n,
                        ProblemKind.MISSING,
                        f"{gap} missing before entry {n} (deleted or moved); {_RESTORE}",
                    )
                )
            if entry.prev_hash != prev.hash:
                problems.append(
                    ChainProblem(
                        n,
                        ProblemKind.BROKEN_LINK,
                        f"entry {n} does not follow the entry stored before it ({p}): an entry "
                        f"was removed, inserted, reordered or rewritten there; {_RESTORE}",
                    )
                )
        prev = entry
    if expected_head is not None:
        head = prev.hash if prev else GENESIS
        if head != expected_head:
            last = prev.seq if prev else 0
            problems.append(
                ChainProblem(
                    last,
                    ProblemKind.HEAD_MISMATCH,
                    f"the log ends at entry {last} but its hash is not the recorded head "
                    f"{expected_head[:12]}…: newer entries were deleted or the last one was "
                    f"rewritten; {_RESTORE}",
                )
            )
    return problems
