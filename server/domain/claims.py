"""A JHT claim's life at the booth: registration, states, and the CSO's decision.

Pure rules: no I/O, no clock (callers pass `now`). Every refusal is a `ClaimRuleError`
whose `code` a client can switch on and whose message says what to do next.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from server.domain.documents import (
    Checklist,
    DocumentKind,
    DocumentVerdict,
    RequirementStatus,
    Verdict,
    required_documents,
)
from server.domain.privacy import mask_nik
from signaling.messages import ClaimType


class ClaimRuleError(ValueError):
    """A domain rule refused the request. `code` is stable; the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------
# Participant numbers

# [0-9], not \d: \d also matches Arabic-Indic and other Unicode digits.
_NIK_RE = re.compile(r"[0-9]{16}")
_KPJ_RE = re.compile(r"[0-9]{11}")

# Structural check only. Rejecting a real participant's NIK blocks their claim, while a typo
# that slips through is caught when the CSO compares it with the KTP, so province codes are
# a lenient range (covers the new Papua provinces, 93-96) rather than an exact list.
_PROVINCE_MIN, _PROVINCE_MAX = 11, 96


def validate_nik(nik: str) -> str:
    """Return `nik` if it is structurally a valid 16-digit NIK, else raise "invalid_nik".

    Layout: PP KK CC DD MM YY SSSS (province, regency, district, birth day - women +40 -,
    birth month, birth year, serial). Messages show only the masked NIK.
    """
    shown = mask_nik(nik)
    if not _NIK_RE.fullmatch(nik):
        raise ClaimRuleError(
            "invalid_nik", f"NIK {shown} must be exactly 16 digits; re-enter it from the KTP."
        )
    province, day, month, serial = int(nik[0:2]), int(nik[6:8]), int(nik[8:10]), nik[12:16]
    problem = None
    if not _PROVINCE_MIN <= province <= _PROVINCE_MAX:
        problem = "its first two digits are not a province code"
    elif not (1 <= day <= 31 or 41 <= day <= 71):
        problem = "digits 7-8 are not a birth day (01-31, or 41-71 for women)"
    elif not 1 <= month <= 12:
        problem = "digits 9-10 are not a birth month (01-12)"
    elif serial == "0000":
        problem = "its last four digits cannot be 0000"
    if problem is not None:
        raise ClaimRuleError(
            "invalid_nik", f"NIK {shown} is not valid: {problem}; re-check it against the KTP."
        )
    return nik


def validate_kpj(kpj: str) -> str:
    """Return `kpj` if it is an 11-digit KPJ (BPJS Ketenagakerjaan membership) number."""
    if not _KPJ_RE.fullmatch(kpj):
        raise ClaimRuleError(
            "invalid_kpj", "The KPJ number must be exactly 11 digits; copy it from the KPJ card."
        )
    return kpj


# ---------------------------------------------------------------------------------------------
# States


class ClaimState(StrEnum):
    REGISTERED = "registered"  # booked or walked in, not at a booth yet
    CHECKED_IN = "checked_in"  # at the booth, waiting for a CSO
    IN_VERIFICATION = "in_verification"  # a CSO is checking documents
    APPROVED = "approved"
    REJECTED = "rejected"
    NEEDS_FOLLOW_UP = "needs_follow_up"  # e.g. missing papers; participant comes back
    CANCELLED = "cancelled"  # no-show, or withdrawn before a decision


# Allowed moves. Back-edges: checked_in -> registered (left before being served),
# in_verification -> checked_in (session dropped, requeued), needs_follow_up -> checked_in
# (returns with the missing papers). Empty set = final.
TRANSITIONS: Mapping[ClaimState, frozenset[ClaimState]] = {
    ClaimState.REGISTERED: frozenset({ClaimState.CHECKED_IN, ClaimState.CANCELLED}),
    ClaimState.CHECKED_IN: frozenset(
        {ClaimState.IN_VERIFICATION, ClaimState.REGISTERED, ClaimState.CANCELLED}
    ),
    ClaimState.IN_VERIFICATION: frozenset(
        {
            ClaimState.APPROVED,
            ClaimState.REJECTED,
            ClaimState.NEEDS_FOLLOW_UP,
            ClaimState.CHECKED_IN,
        }
    ),
    ClaimState.NEEDS_FOLLOW_UP: frozenset({ClaimState.CHECKED_IN, ClaimState.CANCELLED}),
    ClaimState.APPROVED: frozenset(),
    ClaimState.REJECTED: frozenset(),
    ClaimState.CANCELLED: frozenset(),
}

FINAL_STATES: frozenset[ClaimState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

# Reached only through `decide`, which checks documents and reasons first.
DECISION_STATES: frozenset[ClaimState] = frozenset(
    {ClaimState.APPROVED, ClaimState.REJECTED, ClaimState.NEEDS_FOLLOW_UP}
)


# ---------------------------------------------------------------------------------------------
# The claim


@dataclass(frozen=True, slots=True)
class Claim:
    claim_id: str
    booking_code: str | None  # None for walk-ins
    kpj: str
    nik: str
    branch: str
    claim_type: ClaimType
    appointment: datetime | None  # None for walk-ins
    balance_idr: int  # JHT balance; drives the NPWP requirement
    state: ClaimState
    walk_in: bool
    registered_at: datetime

    def __post_init__(self) -> None:
        # Checked here so that no Claim, however built, holds a malformed NIK or KPJ.
        validate_nik(self.nik)
        validate_kpj(self.kpj)
        if not self.claim_id or not self.branch:
            raise ValueError("claim_id and branch must be non-empty")
        if self.balance_idr < 0:
            raise ValueError("balance_idr must be >= 0")
        if self.walk_in and (self.booking_code is not None or self.appointment is not None):
            raise ValueError("a walk-in has no booking code or appointment")
        if not self.walk_in and not self.booking_code:
            raise ValueError("a booked claim needs its booking code")

    def __repr__(self) -> str:
        # Keep the full NIK out of logs and tracebacks.
        return (
            f"Claim(claim_id={self.claim_id!r}, nik={mask_nik(self.nik)!r}, "
            f"claim_type={self.claim_type.value!r}, state={self.state.value!r}, "
            f"walk_in={self.walk_in!r}, branch={self.branch!r})"
        )


def register_walk_in(
    claim_id: str,
    nik: str,
    kpj: str,
    claim_type: ClaimType,
    branch: str,
    now: datetime,
    *,
    balance_idr: int = 0,
) -> Claim:
    """Register a participant who walked in. There is no quota: a walk-in is never refused
    for lack of a slot; only a malformed NIK or KPJ is refused.

    The balance is often unknown at the door; set it with `with_balance` once looked up,
    before computing the document checklist (it decides whether NPWP is needed).
    """
    return Claim(
        claim_id=claim_id,
        booking_code=None,
        kpj=validate_kpj(kpj),
        nik=validate_nik(nik),
        branch=branch,
        claim_type=claim_type,
        appointment=None,
        balance_idr=balance_idr,
        state=ClaimState.REGISTERED,
        walk_in=True,
        registered_at=now,
    )


def new_booked_claim(
    claim_id: str,
    booking_code: str,
    nik: str,
    kpj: str,
    claim_type: ClaimType,
    branch: str,
    appointment: datetime,
    now: datetime,
    *,
    balance_idr: int = 0,
) -> Claim:
    """A claim made through an online booking for a given appointment slot."""
    return Claim(
        claim_id=claim_id,
        booking_code=booking_code,
        kpj=validate_kpj(kpj),
        nik=validate_nik(nik),
        branch=branch,
        claim_type=claim_type,
        appointment=appointment,
        balance_idr=balance_idr,
        state=ClaimState.REGISTERED,
        walk_in=False,
        registered_at=now,
    )


def with_balance(claim: Claim, balance_idr: int) -> Claim:
    """The claim with its looked-up JHT balance; refused once decided (the checklist that
    justified the decision depended on it)."""
    if claim.state in FINAL_STATES:
        raise ClaimRuleError(
            "invalid_transition",
            f"Claim {claim.claim_id} is {claim.state}; its balance can no longer change.",
        )
    return dataclasses.replace(claim, balance_idr=balance_idr)


def can_transition(from_state: ClaimState, to_state: ClaimState) -> bool:
    return to_state in TRANSITIONS[from_state]


def transition(claim: Claim, to_state: ClaimState) -> Claim:
    """Move a claim along a non-decision edge of `TRANSITIONS`."""
    if to_state in DECISION_STATES:
        raise ClaimRuleError(
            "invalid_transition",
            f"Claim {claim.claim_id} can only become {to_state} through a CSO decision.",
        )
    return _move(claim, to_state)


def _move(claim: Claim, to_state: ClaimState) -> Claim:
    if not can_transition(claim.state, to_state):
        allowed = ", ".join(sorted(TRANSITIONS[claim.state])) or "nothing (final)"
        raise ClaimRuleError(
            "invalid_transition",
            f"Claim {claim.claim_id} cannot go from {claim.state} to {to_state}; "
            f"allowed next: {allowed}.",
        )
    return dataclasses.replace(claim, state=to_state)


# ---------------------------------------------------------------------------------------------
# Reasons


class ReasonUse(StrEnum):
    DOCUMENT_REJECTION = "document_rejection"
    CLAIM_REJECTION = "claim_rejection"
    FOLLOW_UP = "follow_up"
    FIELD_MISMATCH = "field_mismatch"  # an identity field the officer marks as differing


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    text_en: str
    text_id: str  # Bahasa Indonesia, shown to the participant
    applies_to: frozenset[ReasonUse]


def _r(code: str, en: str, id_: str, *uses: ReasonUse) -> Reason:
    return Reason(code, en, id_, frozenset(uses))


_DOC = ReasonUse.DOCUMENT_REJECTION
_CLAIM = ReasonUse.CLAIM_REJECTION
_FOLLOW = ReasonUse.FOLLOW_UP
_FIELD = ReasonUse.FIELD_MISMATCH

# The fixed catalogue. Codes are stored with decisions: add new ones, never rename.
REASONS: tuple[Reason, ...] = (
    _r("doc_blurry", "The document is blurry or unreadable.",
       "Dokumen buram atau tidak terbaca.", _DOC),
    _r("doc_expired", "The document has expired.",
       "Dokumen sudah tidak berlaku.", _DOC),
    _r("doc_name_mismatch", "The name does not match the participant's data.",
       "Nama tidak sesuai dengan data peserta.", _DOC),
    _r("doc_wrong_type", "This is not the requested document.",
       "Dokumen bukan jenis yang diminta.", _DOC),
    _r("doc_incomplete", "The document is incomplete (pages or parts missing).",
       "Dokumen tidak lengkap.", _DOC),
    _r("doc_suspected_forgery", "The document appears altered or forged.",
       "Dokumen diduga dipalsukan.", _DOC, _CLAIM),
    _r("claim_not_eligible", "The participant is not eligible for this claim type.",
       "Peserta tidak memenuhi syarat untuk jenis klaim ini.", _CLAIM),
    _r("claim_duplicate", "A claim for this participant is already in progress.",
       "Klaim untuk peserta ini sedang diproses.", _CLAIM),
    _r("claim_identity_mismatch", "The person at the booth is not the participant or heir.",
       "Identitas tidak sesuai dengan peserta atau ahli waris.", _CLAIM),
    _r("claim_already_paid", "This JHT balance has already been paid out.",
       "Saldo JHT ini sudah dibayarkan.", _CLAIM),
    _r("follow_up_missing_document", "A required document is missing; bring it next visit.",
       "Dokumen persyaratan belum lengkap; bawa pada kunjungan berikutnya.", _FOLLOW),
    _r("follow_up_employer_confirmation", "The employer must confirm the end of employment.",
       "Perlu konfirmasi dari pemberi kerja tentang berakhirnya hubungan kerja.", _FOLLOW),
    _r("follow_up_bank_account_check", "The bank account must be checked before payment.",
       "Rekening bank perlu diperiksa sebelum pembayaran.", _FOLLOW),
    # Identity fields compared on the verification workbench (server/domain/verification).
    _r("field_value_differs", "The document shows another value than the member record.",
       "Data pada dokumen berbeda dengan data kepesertaan.", _FIELD),
    _r("field_spelling_variant", "Spelled differently, but the same person (record to correct).",
       "Ejaan berbeda, tetapi orang yang sama (data perlu diperbaiki).", _FIELD),
    _r("field_other_person", "The document belongs to another person.",
       "Dokumen milik orang lain.", _FIELD, _CLAIM),
    _r("field_looks_altered", "The field looks altered on the document.",
       "Isian pada dokumen tampak diubah.", _FIELD),
    _r("field_face_mismatch", "The person at the booth does not look like the photo.",
       "Wajah peserta tidak sesuai dengan foto pada dokumen.", _FIELD, _CLAIM),
    _r("follow_up_member_data", "The membership data must be corrected before payment.",
       "Data kepesertaan perlu diperbaiki sebelum pembayaran.", _FOLLOW),
    _r("follow_up_waiting_period", "The one-month waiting period after resigning has not passed.",
       "Masa tunggu satu bulan setelah mengundurkan diri belum terlewati.", _FOLLOW),
)  # fmt: skip

_REASONS_BY_CODE: Mapping[str, Reason] = {r.code: r for r in REASONS}


def reason(code: str) -> Reason:
    try:
        return _REASONS_BY_CODE[code]
    except KeyError:
        raise ClaimRuleError(
            "unknown_reason", f"Reason code {code!r} is not in the catalogue; pick a listed one."
        ) from None


def reasons_for(use: ReasonUse) -> tuple[Reason, ...]:
    """The catalogue entries a CSO may pick for `use`, in catalogue order."""
    return tuple(r for r in REASONS if use in r.applies_to)


def _check_reasons(codes: Sequence[str], use: ReasonUse, what: str) -> tuple[str, ...]:
    if isinstance(codes, str):  # a bare string would be read as one code per character
        raise TypeError("reason_codes must be a sequence of codes, not a string")
    if not codes:
        raise ClaimRuleError("reason_required", f"Give at least one reason {what}.")
    for code in codes:
        if use not in reason(code).applies_to:
            raise ClaimRuleError(
                "reason_not_applicable",
                f"Reason {code!r} cannot be used {what}; pick one listed for {use}.",
            )
    return tuple(dict.fromkeys(codes))  # keep order, drop repeats


def judge_document(
    kind: DocumentKind, verdict: Verdict, reason_codes: Sequence[str] = ()
) -> DocumentVerdict:
    """A CSO's verdict on one document; a rejection needs catalogue document reasons."""
    if verdict is Verdict.ACCEPTED:
        if reason_codes:
            raise ClaimRuleError("reason_not_allowed", "An accepted document takes no reasons.")
        return DocumentVerdict(kind, verdict)
    codes = _check_reasons(reason_codes, ReasonUse.DOCUMENT_REJECTION, "to reject a document")
    return DocumentVerdict(kind, verdict, codes)


# ---------------------------------------------------------------------------------------------
# Decision


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    NEEDS_FOLLOW_UP = "needs_follow_up"


_DECISION_USE: Mapping[Decision, ReasonUse] = {
    Decision.REJECTED: ReasonUse.CLAIM_REJECTION,
    Decision.NEEDS_FOLLOW_UP: ReasonUse.FOLLOW_UP,
}


@dataclass(frozen=True, slots=True)
class IdentityCheck:
    """Whether the officer confirmed who the participant is: every identity field of the
    claim's required documents marked as matching a consistent member record, and no
    waiting period left (server.domain.verification.identity_check computes it).
    `problems` are (code, message) pairs; none means confirmed."""

    problems: tuple[tuple[str, str], ...] = ()

    @property
    def confirmed(self) -> bool:
        return not self.problems


IDENTITY_CONFIRMED = IdentityCheck()


def decide(
    claim: Claim,
    decision: Decision,
    checklist: Checklist,
    reason_codes: Sequence[str] = (),
    *,
    identity: IdentityCheck,
) -> Claim:
    """The CSO's outcome for a claim under verification; returns it in the new state.

    Approval needs every requirement of this claim (type and balance) met by an accepted
    document and the participant's identity confirmed (`identity`); a rejection or
    follow-up needs at least one applicable catalogue reason.
    """
    if claim.state is not ClaimState.IN_VERIFICATION:
        raise ClaimRuleError(
            "invalid_transition",
            f"Claim {claim.claim_id} is {claim.state}; a decision needs it in_verification.",
        )
    if decision is Decision.APPROVED:
        if reason_codes:
            raise ClaimRuleError(
                "reason_not_allowed", "An approval takes no reason codes; remove them."
            )
        _check_complete(claim, checklist)
        if identity.problems:
            code = identity.problems[0][0]
            said = "; ".join(message for _, message in identity.problems)
            raise ClaimRuleError(code, f"Cannot approve claim {claim.claim_id}: {said}")
    else:
        _check_reasons(reason_codes, _DECISION_USE[decision], f"for {decision}")
    return _move(claim, ClaimState(decision.value))


def _check_complete(claim: Claim, checklist: Checklist) -> None:
    # Recompute what this claim needs: a checklist built for another type or an older
    # balance (e.g. without NPWP) must not let an approval through.
    needed = required_documents(claim.claim_type, claim.balance_idr)
    accepted = {
        i.requirement.key for i in checklist.items if i.status is RequirementStatus.ACCEPTED
    }
    missing = [r for r in needed if r.key not in accepted]
    if missing:
        names = ", ".join(f"{r.key} ({r.reason})" for r in missing)
        raise ClaimRuleError(
            "missing_documents",
            f"Cannot approve claim {claim.claim_id}: not yet accepted: {names}. "
            "Accept those documents or ask the participant to follow up.",
        )
