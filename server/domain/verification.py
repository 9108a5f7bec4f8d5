"""The verification workbench's rules: which fields of which document the officer compares
with the member record, the state the officer gives each, and when identity is confirmed.

Pure: no I/O, no clock. Machine readings and the face score are advice: they only
pre-fill a field's *suggested* state; a field counts once the officer sets its state, and
setting another state than the suggested one is an override, recorded as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from server.domain.claims import Claim, ClaimRuleError, IdentityCheck, ReasonUse, reason
from server.domain.documents import DocumentKind, Verdict, display_name, required_documents
from server.domain.members import MemberRecord, nik_birth_problem, waiting_period_problem


class FieldState(StrEnum):
    MATCHES = "matches"
    DIFFERS = "differs"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field a document must match: `name` is also the machine reading's field name
    (reading.fields.KIND_FIELDS) where the document is read by machine."""

    name: str
    label: str


# The person in the booth against the document's photo (the face still is advice).
PHOTO = "photo"
PHOTO_RECORD = "the person at the booth"

_F = FieldSpec
_NAME = _F("name", "Name")
_EMPLOYMENT = (_NAME, _F("employer", "Employer"), _F("employment_end", "Employment end"))
# What each document must match. Documents not listed here are judged as a whole only.
DOCUMENT_FIELDS: Mapping[DocumentKind, tuple[FieldSpec, ...]] = {
    DocumentKind.KTP: (_F("nik", "NIK"), _NAME, _F("birth_place", "Birth place"),
                       _F("birth_date", "Birth date"), _F("sex", "Sex"), _F(PHOTO, "Photo")),
    DocumentKind.KITAS: (_NAME, _F("birth_date", "Birth date"), _F("sex", "Sex"),
                         _F(PHOTO, "Photo")),
    DocumentKind.KPJ_CARD: (_F("kpj", "KPJ number"), _NAME),
    DocumentKind.BUKU_TABUNGAN: (_F("account_number", "Account number"),
                                 _F("holder_name", "Account holder")),
    DocumentKind.PAKLARING: _EMPLOYMENT,
    DocumentKind.TERMINATION_LETTER: _EMPLOYMENT,
}  # fmt: skip

# Which member-record field each document field is compared with.
RECORD_FIELD: Mapping[str, str] = {
    "name": "full_name", "birth_place": "birth_place", "birth_date": "birth_date",
    "sex": "sex", "holder_name": "account_holder", "account_number": "account_number",
    "employer": "employer_name", "employment_end": "employment_end",
}  # fmt: skip


def fields_of(kind: DocumentKind | str) -> tuple[FieldSpec, ...]:
    """The identity fields of a document kind (none for documents judged as a whole)."""
    try:
        return DOCUMENT_FIELDS.get(DocumentKind(kind), ())
    except ValueError:
        return ()


def record_value(field: str, claim: Claim, member: MemberRecord | None) -> str | None:
    """What the record says for a document field (dates ISO, sex M/F); None if unknown."""
    if field == "nik":
        return claim.nik
    if field == "kpj":
        return claim.kpj
    if field == PHOTO:
        return PHOTO_RECORD
    if member is None:
        return None
    return member.values()[RECORD_FIELD[field]]


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """The officer's state for one field of one document, and what the machine had
    suggested when it was set (None: no suggestion)."""

    document_id: str
    kind: DocumentKind
    field: str
    state: FieldState
    reason_code: str | None
    suggested: FieldState | None
    checked_by: str
    checked_at: datetime

    @property
    def override(self) -> bool:
        return self.suggested is not None and self.state is not self.suggested


def judge_field(
    document_id: str,
    kind: DocumentKind,
    field: str,
    state: FieldState,
    reason_code: str | None,
    *,
    suggested: FieldState | None,
    by: str,
    at: datetime,
) -> FieldCheck:
    """The officer's state for a field, checked: the field belongs to the document, and
    "differs" needs a field-mismatch reason from the catalogue (no other state takes one)."""
    if field not in {spec.name for spec in fields_of(kind)}:
        names = ", ".join(spec.name for spec in fields_of(kind)) or "none"
        raise ClaimRuleError(
            "unknown_field", f"{display_name(kind)} has no field {field!r} to compare ({names})."
        )
    if state is FieldState.DIFFERS:
        if not reason_code:
            raise ClaimRuleError(
                "reason_required", "Say why the field differs: pick a reason from the list."
            )
        if ReasonUse.FIELD_MISMATCH not in reason(reason_code).applies_to:
            raise ClaimRuleError(
                "reason_not_applicable",
                f"Reason {reason_code!r} is not for a differing field; pick one listed for it.",
            )
    elif reason_code:
        raise ClaimRuleError("reason_not_allowed", f"A field that {state} takes no reason.")
    return FieldCheck(document_id, kind, field, state, reason_code, suggested, by, at)


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    """What the rules need of one stored document."""

    document_id: str
    kind: DocumentKind
    verdict: Verdict | None
    purged: bool = False


CheckKey = tuple[str, str]  # (document_id, field)


def _unconfirmed(doc: DocumentFacts, checks: Mapping[CheckKey, FieldCheck]) -> list[str]:
    """The fields of `doc` the officer has not marked as matching."""
    return [
        spec.label
        for spec in fields_of(doc.kind)
        if (got := checks.get((doc.document_id, spec.name))) is None
        or got.state is not FieldState.MATCHES
    ]


def identity_check(
    claim: Claim,
    member: MemberRecord | None,
    documents: Iterable[DocumentFacts],
    checks: Mapping[CheckKey, FieldCheck],
    today: date,
) -> IdentityCheck:
    """What stands between this claim and an approval, on the identity side (the documents'
    own acceptance is `claims.decide`'s). For every required document that has identity
    fields, one accepted copy must have every field marked as matching a record that the
    import or the directory confirmed and that agrees with the NIK; the waiting period
    after the end of employment must have passed by `today`."""
    problems: list[tuple[str, str]] = []
    if member is None:
        problems.append(("member_record_missing", "there is no member record to compare "
                         "with: look the member up in the directory again"))  # fmt: skip
    elif not member.confirmed:
        why = f" ({member.note})" if member.note else ""
        problems.append(("member_unconfirmed", "the member record was only typed at the "
                         f"booth and not confirmed by the directory{why}: look it up again, "
                         "or ask for follow-up"))  # fmt: skip
    elif member.birth_date is not None and member.sex is not None:
        mismatch = nik_birth_problem(claim.nik, member.birth_date, member.sex)
        if mismatch is not None:
            problems.append(("member_record_inconsistent", f"the member record disagrees "
                             f"with its NIK ({mismatch}): ask for follow-up"))  # fmt: skip
    live = [d for d in documents if not d.purged and d.verdict is Verdict.ACCEPTED]
    for requirement in required_documents(claim.claim_type, claim.balance_idr):
        candidates = [d for d in live if d.kind in requirement.any_of and fields_of(d.kind)]
        if not candidates:
            continue  # not accepted yet: `decide` names it as missing
        left = min((_unconfirmed(d, checks) for d in candidates), key=len)
        if left:
            doc = display_name(candidates[0].kind)
            problems.append(("identity_unconfirmed",
                             f"{doc}: {', '.join(left)} not confirmed as matching"))  # fmt: skip
    if member is not None:
        waiting = waiting_period_problem(claim.claim_type, member.employment_end, today)
        if waiting is not None:
            problems.append(("waiting_period", waiting))
    return IdentityCheck(tuple(problems))


def machine_state(value: str | None) -> FieldState | None:
    """A reading's comparison state (reading.compare.Match values) as a field state."""
    try:
        return FieldState(value) if value else None
    except ValueError:
        return None


FACE_SUGGESTION: Mapping[str, FieldState] = {
    "likely_same": FieldState.MATCHES,
    "likely_different": FieldState.DIFFERS,
}  # "uncertain", or no score: no suggestion, the officer decides by eye


# --- evidence on the outcome ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldEvidence:
    """One identity field as the outcome keeps it."""

    document_id: str
    kind: str
    field: str
    record: str | None
    read: str | None
    confidence: float | None
    suggested: str | None
    state: str | None
    reason_code: str | None
    override: bool
    checked_by: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id, "kind": self.kind, "field": self.field,
            "record": self.record, "read": self.read, "confidence": self.confidence,
            "suggested": self.suggested, "state": self.state, "reason_code": self.reason_code,
            "override": self.override, "checked_by": self.checked_by,
        }  # fmt: skip


def summary(fields: Sequence[FieldEvidence], face: Mapping[str, Any] | None) -> dict[str, Any]:
    """Counts for lists and exports (no personal values: field names and codes only)."""
    states = [f.state for f in fields]
    return {
        "fields": len(fields),
        "matches": states.count(FieldState.MATCHES.value),
        "differs": states.count(FieldState.DIFFERS.value),
        "unreadable": states.count(FieldState.UNREADABLE.value),
        "unchecked": states.count(None),
        "overrides": sum(f.override for f in fields),
        "mismatches": [
            f"{f.kind}.{f.field}:{f.reason_code}"
            for f in fields
            if f.state == FieldState.DIFFERS.value
        ],
        "overridden": [f"{f.kind}.{f.field}" for f in fields if f.override],
        "face_band": face.get("band") if face else None,
        "face_similarity": face.get("similarity") if face else None,
    }
