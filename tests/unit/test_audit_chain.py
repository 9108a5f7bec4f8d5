"""The hash-chained audit log: every way of tampering with stored rows is reported."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.audit import (
    EMPTY_HEAD,
    GENESIS,
    AuditEntry,
    ChainHead,
    ChainProblem,
    ProblemKind,
    append,
    canonical_json,
    chain_head,
    entry_fields,
    entry_hash,
    verify_chain,
)

FPS = ("sha-256 AB:CD:EF:01", "sha-256 12:34:56:78")
ACTIONS = ("document.uploaded", "document.viewed", "document.verdict", "outcome.recorded")


def _doc(i: int) -> str:
    return hashlib.sha256(f"doc-{i}".encode()).hexdigest()


def build_chain(n: int = 20) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev: AuditEntry | None = None
    for i in range(n):
        prev = append(
            prev,
            at=f"2024-05-01T08:{i:02d}:00+00:00",
            actor=f"cso-{i % 3}",
            role="cso",
            action=ACTIONS[i % len(ACTIONS)],
            claim_id=f"claim-{i // 4}",
            decision="approved" if i % 4 == 3 else None,
            reason_codes=("ktp_ok", "kk_ok") if i % 4 == 3 else (),
            evidence=(_doc(i),),
            fingerprints=FPS,
            details={"note": f"catatan {i} — ü", "pages": i},
        )
        entries.append(prev)
    return entries


CHAIN = build_chain()


def kinds_at(problems: list[ChainProblem], seq: int) -> set[ProblemKind]:
    return {p.kind for p in problems if p.seq == seq}


def test_canonical_json_is_sorted_compact_utf8_and_rejects_non_json() -> None:
    assert canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()
    with pytest.raises(TypeError):
        canonical_json({"at": datetime.now(UTC)})
    with pytest.raises(TypeError):
        canonical_json({1: "int key"})
    with pytest.raises(TypeError):
        canonical_json({"x": float("nan")})


def test_intact_chain_verifies_and_links_from_genesis() -> None:
    assert verify_chain(CHAIN) == []
    assert verify_chain(iter(CHAIN), expected_head=CHAIN[-1].hash) == []
    assert [e.seq for e in CHAIN] == list(range(1, 21))
    assert CHAIN[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(CHAIN))
    assert CHAIN[5].hash == entry_hash(entry_fields(CHAIN[5]))
    assert chain_head(CHAIN) == ChainHead(20, CHAIN[-1].hash) and chain_head([]) == EMPTY_HEAD
    assert verify_chain([], expected_head=GENESIS) == []


def test_append_continues_from_a_stored_head() -> None:
    # The database keeps (seq, hash) of the last entry; appending from it or from the entry
    # itself gives the same result.
    kwargs: dict[str, Any] = {
        "at": "2024-05-01T09:00:00+00:00",
        "actor": "cso-9",
        "role": "cso",
        "action": "document.viewed",
        "evidence": (_doc(1),),
        "fingerprints": FPS,
    }
    from_head = append(ChainHead(20, CHAIN[-1].hash), **kwargs)
    assert from_head == append(CHAIN[-1], **kwargs)
    assert from_head.seq == 21 and verify_chain([*CHAIN, from_head]) == []
    first = append(EMPTY_HEAD, **kwargs)
    assert first == append(None, **kwargs)
    assert first.seq == 1 and first.prev_hash == GENESIS


def test_append_validates_and_copies_its_inputs() -> None:
    details = {"k": [1]}
    entry = append(
        None, at="2024-05-01T08:00:00Z", actor="a", role="cso", action="x", details=details
    )
    details["k"].append(2)  # the caller's dict changing later must not alter the entry
    assert verify_chain([entry]) == []
    with pytest.raises(ValueError, match="UTC"):
        append(None, at="2024-05-01T08:00:00+07:00", actor="a", role="cso", action="x")
    with pytest.raises(ValueError, match="ISO"):
        append(None, at="yesterday", actor="a", role="cso", action="x")
    with pytest.raises(ValueError, match="SHA-256"):
        append(
            None,
            at="2024-05-01T08:00:00Z",
            actor="a",
            role="cso",
            action="x",
            evidence=("not-a-hash",),
        )
    with pytest.raises(TypeError):
        append(
            None,
            at="2024-05-01T08:00:00Z",
            actor="a",
            role="cso",
            action="x",
            details={"when": datetime.now(UTC)},
        )


def _tamper(entry: AuditEntry, name: str, salt: int) -> AuditEntry:
    value = getattr(entry, name)
    new: Any
    if name == "seq":
        new = value + 100 + salt
    elif isinstance(value, tuple):
        new = (*value, f"forged-{salt}") if salt % 2 else value[:-1] if value else ("x",)
    elif isinstance(value, dict):
        new = {**value, "forged": salt}
    elif value is None:
        new = f"forged-{salt}"
    elif name == "at":
        new = f"2024-06-0{salt % 9 + 1}T00:00:00+00:00"
    else:
        new = value[:-1] + ("0" if value[-1] != "0" else "1")
    assert new != value
    return dataclasses.replace(entry, **{name: new})


FIELDS = [f.name for f in dataclasses.fields(AuditEntry)]


@settings(max_examples=200, deadline=None)
@given(row=st.integers(0, len(CHAIN) - 1), name=st.sampled_from(FIELDS), salt=st.integers(0, 9))
def test_editing_any_field_of_any_row_is_reported_at_that_row(
    row: int, name: str, salt: int
) -> None:
    edited = _tamper(CHAIN[row], name, salt)
    entries = [*CHAIN[:row], edited, *CHAIN[row + 1 :]]
    problems = verify_chain(entries)
    assert ProblemKind.EDITED in kinds_at(problems, edited.seq), problems
    message = next(p.message for p in problems if p.kind is ProblemKind.EDITED)
    assert f"entry {edited.seq} was edited" in message


@settings(max_examples=50, deadline=None)
@given(row=st.integers(1, len(CHAIN) - 2))
def test_deleting_a_middle_row_is_reported_at_the_next_row(row: int) -> None:
    entries = [*CHAIN[:row], *CHAIN[row + 1 :]]
    problems = verify_chain(entries)
    nxt = CHAIN[row + 1].seq
    assert kinds_at(problems, nxt) == {ProblemKind.MISSING, ProblemKind.BROKEN_LINK}
    assert f"entry {row + 1} missing before entry {nxt}" in problems[0].message
    assert all(p.kind is not ProblemKind.EDITED for p in problems)


def test_deleting_the_first_row_is_reported() -> None:
    problems = verify_chain(CHAIN[1:])
    assert kinds_at(problems, 2) == {ProblemKind.MISSING}
    assert "entries 1 to 1 are missing" in problems[0].message


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_swapping_two_rows_is_reported(data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(CHAIN) - 2))
    j = data.draw(st.integers(i + 1, len(CHAIN) - 1))
    entries = list(CHAIN)
    entries[i], entries[j] = entries[j], entries[i]
    problems = verify_chain(entries)
    kinds = {p.kind for p in problems}
    assert ProblemKind.OUT_OF_ORDER in kinds and ProblemKind.BROKEN_LINK in kinds
    assert ProblemKind.EDITED not in kinds


def test_deleting_the_last_row_is_only_caught_by_the_recorded_head() -> None:
    head = chain_head(CHAIN).hash
    assert verify_chain(CHAIN[:-1]) == []  # the rows alone cannot tell
    problems = verify_chain(CHAIN[:-1], expected_head=head)
    assert [(p.seq, p.kind) for p in problems] == [(19, ProblemKind.HEAD_MISMATCH)]
    assert "ends at entry 19" in problems[0].message
    wiped = verify_chain([], expected_head=head)
    assert [(p.seq, p.kind) for p in wiped] == [(0, ProblemKind.HEAD_MISMATCH)]


def test_forged_row_with_recomputed_hash_breaks_the_next_link() -> None:
    victim = CHAIN[9]
    forged_fields = entry_fields(victim) | {"decision": "rejected"}
    forged = dataclasses.replace(victim, decision="rejected", hash=entry_hash(forged_fields))
    problems = verify_chain([*CHAIN[:9], forged, *CHAIN[10:]])
    assert [(p.seq, p.kind) for p in problems] == [(11, ProblemKind.BROKEN_LINK)]
    assert "entry 11 does not follow" in problems[0].message


def test_inserted_row_with_valid_hash_and_link_is_caught_after_it() -> None:
    # A forger who links the new row to its predecessor still cannot fix the successor.
    inserted = append(
        CHAIN[4],
        at="2024-05-01T08:04:30+00:00",
        actor="intruder",
        role="cso",
        action="document.purged",
        evidence=(_doc(99),),
    )
    problems = verify_chain([*CHAIN[:5], inserted, *CHAIN[5:]])
    assert kinds_at(problems, 6) >= {ProblemKind.OUT_OF_ORDER, ProblemKind.BROKEN_LINK}
    assert kinds_at(problems, 6) - {ProblemKind.OUT_OF_ORDER, ProblemKind.BROKEN_LINK} == set()


def test_rewritten_genesis_is_reported() -> None:
    first = dataclasses.replace(CHAIN[0], prev_hash="1" * 64)
    first = dataclasses.replace(first, hash=entry_hash(entry_fields(first)))
    problems = verify_chain([first, *CHAIN[1:]])
    assert kinds_at(problems, 1) == {ProblemKind.BAD_GENESIS}
    assert kinds_at(problems, 2) == {ProblemKind.BROKEN_LINK}


def test_rows_that_are_not_json_count_as_edited() -> None:
    broken = dataclasses.replace(CHAIN[3], details={"x": object()})
    problems = verify_chain([*CHAIN[:3], broken, *CHAIN[4:]])
    assert kinds_at(problems, 4) == {ProblemKind.EDITED}
