"""Which documents a JHT claim needs, and how far the uploaded ones get it.

Pure rules: no I/O. The rule table `RULES` is the one place to change when the agency
changes its document list; everything else derives from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from signaling.messages import ClaimType


class DocumentKind(StrEnum):
    KPJ_CARD = "kpj_card"
    KTP = "ktp"  # Indonesian identity card
    KITAS = "kitas"  # limited-stay permit: the identity document of foreign workers
    KK = "kk"  # kartu keluarga, family card
    PAKLARING = "paklaring"  # employer reference letter
    TERMINATION_LETTER = "termination_letter"  # surat PHK
    BUKU_TABUNGAN = "buku_tabungan"  # savings book: where the money is paid to
    NPWP = "npwp"  # tax number card
    DEATH_CERTIFICATE = "death_certificate"
    HEIRS_LETTER = "heirs_letter"
    DOCTOR_STATEMENT = "doctor_statement"
    # The participant's face from the booth's face camera, for the officer to compare
    # with the KTP's photo (evidence like a document; never on the checklist).
    FACE_STILL = "face_still"


# Indonesian name first where that is what the participant knows it by.
DISPLAY_NAMES: Mapping[DocumentKind, str] = {
    DocumentKind.KPJ_CARD: "KPJ card (BPJS Ketenagakerjaan membership card)",
    DocumentKind.KTP: "KTP (identity card)",
    DocumentKind.KITAS: "KITAS (limited-stay permit)",
    DocumentKind.KK: "KK (family card)",
    DocumentKind.PAKLARING: "Paklaring (employer reference letter)",
    DocumentKind.TERMINATION_LETTER: "Surat PHK (termination letter)",
    DocumentKind.BUKU_TABUNGAN: "Buku tabungan (savings book)",
    DocumentKind.NPWP: "NPWP (tax number card)",
    DocumentKind.DEATH_CERTIFICATE: "Surat keterangan kematian (death certificate)",
    DocumentKind.HEIRS_LETTER: "Surat keterangan ahli waris (heirs' letter)",
    DocumentKind.DOCTOR_STATEMENT: "Doctor's statement of total permanent disability",
    DocumentKind.FACE_STILL: "Face still (the participant at the booth)",
}


def display_name(kind: DocumentKind) -> str:
    return DISPLAY_NAMES[kind]


@dataclass(frozen=True, slots=True)
class Requirement:
    """One line of the checklist; any one of `any_of` satisfies it."""

    key: str
    any_of: tuple[DocumentKind, ...]
    reason: str

    def __post_init__(self) -> None:
        if not self.any_of:
            raise ValueError(f"requirement {self.key!r} names no document kind")


# Payouts above this need the participant's NPWP (tax withholding differs without one).
NPWP_THRESHOLD_IDR = 50_000_000

ALL_CLAIM_TYPES: frozenset[ClaimType] = frozenset(ClaimType)


@dataclass(frozen=True, slots=True)
class Rule:
    """A requirement and when it applies: claim type in `claim_types` AND, if set,
    balance strictly above `balance_above_idr`."""

    requirement: Requirement
    claim_types: frozenset[ClaimType] = ALL_CLAIM_TYPES
    balance_above_idr: int | None = None

    def applies(self, claim_type: ClaimType, balance_idr: int) -> bool:
        if claim_type not in self.claim_types:
            return False
        return self.balance_above_idr is None or balance_idr > self.balance_above_idr


IDENTITY = Requirement(
    "identity", (DocumentKind.KTP, DocumentKind.KITAS), "KTP, or KITAS for foreign workers"
)

# The rule table, in checklist order. Change the document list here and only here.
RULES: tuple[Rule, ...] = (
    Rule(Requirement("kpj_card", (DocumentKind.KPJ_CARD,), "proves JHT membership")),
    Rule(IDENTITY),
    Rule(Requirement("family_card", (DocumentKind.KK,), "confirms identity and family")),
    Rule(
        Requirement(
            "savings_book", (DocumentKind.BUKU_TABUNGAN,), "the account the JHT is paid into"
        )
    ),
    Rule(
        Requirement(
            "employment_end",
            (DocumentKind.PAKLARING, DocumentKind.TERMINATION_LETTER),
            "proves the employment has ended",
        ),
        claim_types=frozenset({ClaimType.RESIGNATION, ClaimType.TERMINATION}),
    ),
    Rule(
        Requirement("npwp", (DocumentKind.NPWP,), "needed for payouts above Rp 50,000,000"),
        balance_above_idr=NPWP_THRESHOLD_IDR,
    ),
    Rule(
        Requirement(
            "death_certificate", (DocumentKind.DEATH_CERTIFICATE,), "proves the participant died"
        ),
        claim_types=frozenset({ClaimType.DEATH}),
    ),
    Rule(
        Requirement(
            "heirs_letter", (DocumentKind.HEIRS_LETTER,), "shows who may claim as the heirs"
        ),
        claim_types=frozenset({ClaimType.DEATH}),
    ),
    Rule(
        Requirement(
            "disability_statement",
            (DocumentKind.DOCTOR_STATEMENT,),
            "confirms total permanent disability",
        ),
        claim_types=frozenset({ClaimType.DISABILITY}),
    ),
)


def required_documents(claim_type: ClaimType, balance_idr: int) -> tuple[Requirement, ...]:
    """The requirements for a claim, in `RULES` order (stable, so screens do not reshuffle)."""
    if balance_idr < 0:
        raise ValueError("balance_idr must be >= 0")
    return tuple(rule.requirement for rule in RULES if rule.applies(claim_type, balance_idr))


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class DocumentVerdict:
    """A CSO's judgement of one uploaded document. Catalogue checks of the reason codes
    live in `claims.judge_document`; this only keeps the shape honest."""

    kind: DocumentKind
    verdict: Verdict
    reason_codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.verdict is Verdict.REJECTED and not self.reason_codes:
            raise ValueError("a rejected document needs at least one reason code")
        if self.verdict is Verdict.ACCEPTED and self.reason_codes:
            raise ValueError("an accepted document takes no reason codes")


class RequirementStatus(StrEnum):
    MISSING = "missing"  # nothing uploaded for it
    PENDING = "pending"  # uploaded, not judged yet
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # every upload for it was rejected: ask for a new one


@dataclass(frozen=True, slots=True)
class RequirementCheck:
    requirement: Requirement
    status: RequirementStatus
    # The document that decided the status (None when missing).
    kind: DocumentKind | None = None


@dataclass(frozen=True, slots=True)
class Checklist:
    items: tuple[RequirementCheck, ...]

    @property
    def complete(self) -> bool:
        return all(item.status is RequirementStatus.ACCEPTED for item in self.items)

    @property
    def outstanding(self) -> tuple[Requirement, ...]:
        """Requirements not yet satisfied by an accepted document."""
        return tuple(
            item.requirement for item in self.items if item.status is not RequirementStatus.ACCEPTED
        )

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(item.requirement.key for item in self.items)


# When alternatives disagree, the best one counts: an accepted KITAS satisfies identity even
# if a KTP photo was rejected, and a fresh upload awaiting judgement outranks a rejection.
_PRECEDENCE = (RequirementStatus.ACCEPTED, RequirementStatus.PENDING, RequirementStatus.REJECTED)


def _status_of(verdict: Verdict | None) -> RequirementStatus:
    if verdict is None:
        return RequirementStatus.PENDING
    return RequirementStatus(verdict.value)


def checklist(
    requirements: Iterable[Requirement], verdicts: Mapping[DocumentKind, Verdict | None]
) -> Checklist:
    """Status of each requirement.

    `verdicts` holds one entry per uploaded document kind: its latest verdict, or None when
    uploaded but not judged yet. A kind absent from the mapping has not been uploaded
    (a re-upload after a rejection should reset its entry to None).
    """
    items: list[RequirementCheck] = []
    for req in requirements:
        found = {kind: _status_of(verdicts[kind]) for kind in req.any_of if kind in verdicts}
        check = RequirementCheck(req, RequirementStatus.MISSING)
        for status in _PRECEDENCE:
            kind = next((k for k in req.any_of if found.get(k) is status), None)
            if kind is not None:
                check = RequirementCheck(req, status, kind)
                break
        items.append(check)
    return Checklist(tuple(items))
