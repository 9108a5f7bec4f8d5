"""Claims domain: document rules, NIK/KPJ checks, claim states and CSO decisions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.claims import (
    DECISION_STATES,
    FINAL_STATES,
    IDENTITY_CONFIRMED,
    REASONS,
    TRANSITIONS,
    Claim,
    ClaimRuleError,
    ClaimState,
    Decision,
    ReasonUse,
    decide,
    judge_document,
    new_booked_claim,
    reason,
    reasons_for,
    register_walk_in,
    transition,
    validate_kpj,
    validate_nik,
    with_balance,
)
from server.domain.documents import (
    NPWP_THRESHOLD_IDR,
    Checklist,
    DocumentKind,
    Requirement,
    RequirementStatus,
    Verdict,
    checklist,
    display_name,
    required_documents,
)
from signaling.messages import ClaimType

NOW = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
OK = IDENTITY_CONFIRMED  # identity rules have their own tests (test_verification_domain)
NIK = "3171015208900001"  # Jakarta, woman born 12-08-1990, serial 0001
KPJ = "12345678901"
BASE = {"kpj_card", "identity", "family_card", "savings_book"}


def keys(claim_type: ClaimType, balance: int = 0) -> set[str]:
    return {r.key for r in required_documents(claim_type, balance)}


def claim_in(state: ClaimState, claim_type: ClaimType = ClaimType.RETIREMENT) -> Claim:
    claim = register_walk_in("c-1", NIK, KPJ, claim_type, "jakarta-1", NOW)
    path = {
        ClaimState.REGISTERED: [],
        ClaimState.CHECKED_IN: [ClaimState.CHECKED_IN],
        ClaimState.IN_VERIFICATION: [ClaimState.CHECKED_IN, ClaimState.IN_VERIFICATION],
    }[state]
    for step in path:
        claim = transition(claim, step)
    return claim


def all_accepted(claim: Claim) -> Checklist:
    reqs = required_documents(claim.claim_type, claim.balance_idr)
    return checklist(reqs, {r.any_of[0]: Verdict.ACCEPTED for r in reqs})


# ---------------------------------------------------------------------------------------------
# Rule table


@pytest.mark.parametrize(
    ("claim_type", "extra"),
    [
        (ClaimType.RESIGNATION, {"employment_end"}),
        (ClaimType.TERMINATION, {"employment_end"}),
        (ClaimType.RETIREMENT, set()),
        (ClaimType.DISABILITY, {"disability_statement"}),
        (ClaimType.DEATH, {"death_certificate", "heirs_letter"}),
    ],
)
def test_required_set_per_claim_type(claim_type: ClaimType, extra: set[str]) -> None:
    assert keys(claim_type) == BASE | extra
    assert keys(claim_type, NPWP_THRESHOLD_IDR + 1) == BASE | extra | {"npwp"}


def test_npwp_threshold_is_strictly_greater() -> None:
    assert NPWP_THRESHOLD_IDR == 50_000_000
    assert "npwp" not in keys(ClaimType.RETIREMENT, 50_000_000)
    assert "npwp" in keys(ClaimType.RETIREMENT, 50_000_001)


def test_required_documents_order_is_stable_and_alternatives_named() -> None:
    reqs = required_documents(ClaimType.RESIGNATION, 60_000_000)
    assert [r.key for r in reqs] == [
        "kpj_card",
        "identity",
        "family_card",
        "savings_book",
        "employment_end",
        "npwp",
    ]
    by_key = {r.key: r for r in reqs}
    assert set(by_key["identity"].any_of) == {DocumentKind.KTP, DocumentKind.KITAS}
    assert set(by_key["employment_end"].any_of) == {
        DocumentKind.PAKLARING,
        DocumentKind.TERMINATION_LETTER,
    }
    with pytest.raises(ValueError):
        required_documents(ClaimType.RETIREMENT, -1)


def test_every_kind_has_a_display_name() -> None:
    for kind in DocumentKind:
        assert display_name(kind)
    assert display_name(DocumentKind.KK) == "KK (family card)"
    assert display_name(DocumentKind.KTP) == "KTP (identity card)"


def test_kitas_satisfies_identity() -> None:
    reqs = required_documents(ClaimType.RETIREMENT, 0)
    verdicts = {
        DocumentKind.KPJ_CARD: Verdict.ACCEPTED,
        DocumentKind.KITAS: Verdict.ACCEPTED,
        DocumentKind.KK: Verdict.ACCEPTED,
        DocumentKind.BUKU_TABUNGAN: Verdict.ACCEPTED,
    }
    result = checklist(reqs, verdicts)
    assert result.complete
    identity = next(i for i in result.items if i.requirement.key == "identity")
    assert identity.kind is DocumentKind.KITAS


def test_checklist_statuses() -> None:
    reqs = required_documents(ClaimType.RESIGNATION, 0)
    verdicts: dict[DocumentKind, Verdict | None] = {
        DocumentKind.KPJ_CARD: Verdict.ACCEPTED,
        DocumentKind.KTP: Verdict.REJECTED,
        DocumentKind.KK: None,
        DocumentKind.PAKLARING: Verdict.REJECTED,
        DocumentKind.TERMINATION_LETTER: None,  # a fresh alternative outranks the rejection
    }
    result = checklist(reqs, verdicts)
    status = {i.requirement.key: i.status for i in result.items}
    assert status == {
        "kpj_card": RequirementStatus.ACCEPTED,
        "identity": RequirementStatus.REJECTED,
        "family_card": RequirementStatus.PENDING,
        "savings_book": RequirementStatus.MISSING,
        "employment_end": RequirementStatus.PENDING,
    }
    assert not result.complete
    assert [r.key for r in result.outstanding] == [
        "identity",
        "family_card",
        "savings_book",
        "employment_end",
    ]


def test_empty_requirement_is_refused() -> None:
    with pytest.raises(ValueError):
        Requirement("nothing", (), "no kinds")


# ---------------------------------------------------------------------------------------------
# NIK / KPJ


@pytest.mark.parametrize(
    "nik",
    [
        NIK,
        "3171011508900001",  # man, born on the 15th
        "1101017101000001",  # woman born on the 31st (71), province 11
        "9601010112999999",  # province 96 (Papua Barat Daya)
    ],
)
def test_valid_niks(nik: str) -> None:
    assert validate_nik(nik) == nik


@pytest.mark.parametrize(
    "nik",
    [
        "317101520890000",  # 15 digits
        "31710152089000011",  # 17 digits
        "31710152089000A1",  # letter
        " 3171015208900001",  # whitespace is not silently accepted
        "3171015213900001",  # month 13
        "3171015200900001",  # month 00
        "3171010008900001",  # day 00
        "3171013208900001",  # day 32
        "3171014008900001",  # day 40
        "3171017208900001",  # day 72
        "3171015208900000",  # serial 0000
        "0071015208900001",  # province 00
        "1071015208900001",  # province 10
        "9771015208900001",  # province 97
        "٣١٧١٠١٥٢٠٨٩٠٠٠٠١",  # Arabic-Indic digits are not ASCII digits
    ],
)
def test_invalid_niks_are_refused_without_echoing_the_nik(nik: str) -> None:
    with pytest.raises(ClaimRuleError) as exc:
        validate_nik(nik)
    assert exc.value.code == "invalid_nik"
    assert nik not in str(exc.value)
    assert nik[:12] not in str(exc.value)


def test_kpj_validation() -> None:
    assert validate_kpj(KPJ) == KPJ
    for bad in ["1234567890", "123456789012", "1234567890A", ""]:
        with pytest.raises(ClaimRuleError) as exc:
            validate_kpj(bad)
        assert exc.value.code == "invalid_kpj"


def test_claim_repr_masks_nik() -> None:
    claim = claim_in(ClaimState.REGISTERED)
    assert NIK not in repr(claim)
    assert NIK[-4:] in repr(claim)


# ---------------------------------------------------------------------------------------------
# Registration and transitions


def test_booked_claim() -> None:
    appointment = datetime(2024, 5, 7, 10, 0, tzinfo=UTC)
    claim = new_booked_claim(
        "c-2", "BK-1234", NIK, KPJ, ClaimType.DEATH, "bandung", appointment, NOW
    )
    assert not claim.walk_in
    assert claim.state is ClaimState.REGISTERED
    assert claim.appointment == appointment
    with pytest.raises(ClaimRuleError):
        new_booked_claim("c-3", "BK-1", "123", KPJ, ClaimType.DEATH, "b", appointment, NOW)


def test_walk_in_shape() -> None:
    claim = claim_in(ClaimState.REGISTERED)
    assert claim.walk_in and claim.booking_code is None and claim.appointment is None
    assert claim.state is ClaimState.REGISTERED


def test_final_states_and_claim_invariants() -> None:
    assert {ClaimState.APPROVED, ClaimState.REJECTED, ClaimState.CANCELLED} == FINAL_STATES
    walk_in = claim_in(ClaimState.REGISTERED)
    with pytest.raises(ValueError):
        dataclasses.replace(walk_in, booking_code="BK-1")
    with pytest.raises(ValueError):
        dataclasses.replace(walk_in, balance_idr=-1)
    with pytest.raises(ClaimRuleError):
        dataclasses.replace(walk_in, nik="3171015208900000")


def test_back_edges_allowed() -> None:
    checked_in = claim_in(ClaimState.CHECKED_IN)
    assert transition(checked_in, ClaimState.REGISTERED).state is ClaimState.REGISTERED
    serving = claim_in(ClaimState.IN_VERIFICATION)
    assert transition(serving, ClaimState.CHECKED_IN).state is ClaimState.CHECKED_IN
    follow = decide(
        serving, Decision.NEEDS_FOLLOW_UP, all_accepted(serving), ["follow_up_bank_account_check"],
        identity=OK,
    )  # fmt: skip
    assert transition(follow, ClaimState.CHECKED_IN).state is ClaimState.CHECKED_IN


def test_transition_cannot_bypass_decide() -> None:
    serving = claim_in(ClaimState.IN_VERIFICATION)
    for target in DECISION_STATES:
        with pytest.raises(ClaimRuleError) as exc:
            transition(serving, target)
        assert exc.value.code == "invalid_transition"


def test_skipping_a_state_is_refused() -> None:
    with pytest.raises(ClaimRuleError) as exc:
        transition(claim_in(ClaimState.REGISTERED), ClaimState.IN_VERIFICATION)
    assert exc.value.code == "invalid_transition"


def test_balance_update_refused_once_final() -> None:
    serving = claim_in(ClaimState.IN_VERIFICATION)
    assert with_balance(serving, 70_000_000).balance_idr == 70_000_000
    done = decide(serving, Decision.APPROVED, all_accepted(serving), identity=OK)
    with pytest.raises(ClaimRuleError):
        with_balance(done, 1)


# ---------------------------------------------------------------------------------------------
# Reasons and decisions


def test_reason_catalogue() -> None:
    codes = [r.code for r in REASONS]
    assert len(codes) == len(set(codes))
    for r in REASONS:
        assert r.text_en and r.text_id and r.applies_to
    assert reason("doc_blurry").applies_to == {ReasonUse.DOCUMENT_REJECTION}
    assert {r.code for r in reasons_for(ReasonUse.FOLLOW_UP)} == {
        "follow_up_missing_document",
        "follow_up_employer_confirmation",
        "follow_up_bank_account_check",
        "follow_up_member_data",
        "follow_up_waiting_period",
    }
    with pytest.raises(ClaimRuleError) as exc:
        reason("nope")
    assert exc.value.code == "unknown_reason"


def test_judge_document() -> None:
    assert judge_document(DocumentKind.KTP, Verdict.ACCEPTED).reason_codes == ()
    rejected = judge_document(DocumentKind.KTP, Verdict.REJECTED, ["doc_blurry"])
    assert rejected.reason_codes == ("doc_blurry",)
    for codes, code in [([], "reason_required"), (["claim_duplicate"], "reason_not_applicable")]:
        with pytest.raises(ClaimRuleError) as exc:
            judge_document(DocumentKind.KTP, Verdict.REJECTED, codes)
        assert exc.value.code == code


def test_approve_with_missing_documents_names_them() -> None:
    serving = claim_in(ClaimState.IN_VERIFICATION, ClaimType.DEATH)
    reqs = required_documents(ClaimType.DEATH, 0)
    partial = checklist(reqs, {DocumentKind.KPJ_CARD: Verdict.ACCEPTED})
    with pytest.raises(ClaimRuleError) as exc:
        decide(serving, Decision.APPROVED, partial, identity=OK)
    assert exc.value.code == "missing_documents"
    assert "heirs_letter" in str(exc.value) and "kpj_card" not in str(exc.value)


def test_approve_refuses_checklist_for_lower_balance() -> None:
    # A checklist built before the balance was known lacks NPWP; it must not approve.
    serving = claim_in(ClaimState.IN_VERIFICATION)
    stale = all_accepted(serving)
    richer = with_balance(serving, NPWP_THRESHOLD_IDR + 1)
    with pytest.raises(ClaimRuleError) as exc:
        decide(richer, Decision.APPROVED, stale, identity=OK)
    assert exc.value.code == "missing_documents"
    assert "npwp" in str(exc.value)


def test_decide_needs_in_verification() -> None:
    claim = claim_in(ClaimState.CHECKED_IN)
    with pytest.raises(ClaimRuleError) as exc:
        decide(claim, Decision.APPROVED, all_accepted(claim), identity=OK)
    assert exc.value.code == "invalid_transition"


def test_approval_takes_no_reasons() -> None:
    serving = claim_in(ClaimState.IN_VERIFICATION)
    with pytest.raises(ClaimRuleError) as exc:
        decide(serving, Decision.APPROVED, all_accepted(serving), ["claim_duplicate"], identity=OK)
    assert exc.value.code == "reason_not_allowed"


# ---------------------------------------------------------------------------------------------
# Properties

states = st.sampled_from(list(ClaimState))
claim_types = st.sampled_from(list(ClaimType))

# An action is either a plain transition or a decision with valid reasons and documents.
actions = st.one_of(
    st.tuples(st.just("transition"), states),
    st.tuples(st.just("decide"), st.sampled_from(list(Decision))),
)
# Spelled out, not derived from TRANSITIONS, so a table edit that reopens one is caught.
TERMINAL = {ClaimState.APPROVED, ClaimState.REJECTED, ClaimState.CANCELLED}
VALID_REASON = {
    Decision.REJECTED: ["claim_not_eligible"],
    Decision.NEEDS_FOLLOW_UP: ["follow_up_missing_document"],
    Decision.APPROVED: [],
}


@settings(max_examples=300)
@given(states, st.lists(actions, max_size=30), claim_types)
def test_random_transitions_stay_in_table(
    start: ClaimState, steps: list[tuple[str, object]], claim_type: ClaimType
) -> None:
    # Any starting state (as if loaded from storage), so every edge is tried early.
    claim = dataclasses.replace(claim_in(ClaimState.REGISTERED, claim_type), state=start)
    for kind, target in steps:
        before = claim.state
        try:
            if kind == "transition":
                assert isinstance(target, ClaimState)
                claim = transition(claim, target)
            else:
                assert isinstance(target, Decision)
                claim = decide(
                    claim, target, all_accepted(claim), VALID_REASON[target], identity=OK
                )
        except ClaimRuleError as exc:
            assert exc.code == "invalid_transition"
            assert claim.state is before
            continue
        assert claim.state in TRANSITIONS[before], (before, claim.state)
        assert before not in FINAL_STATES and before not in TERMINAL
        if kind == "transition":
            assert claim.state not in DECISION_STATES


# Per requirement: which alternative was uploaded (or none) and its verdict.
uploads = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 1), st.sampled_from([Verdict.ACCEPTED, Verdict.REJECTED, None])),
)


@settings(max_examples=300)
@given(claim_types, st.integers(0, 2 * NPWP_THRESHOLD_IDR), st.data())
def test_approve_iff_every_requirement_accepted(
    claim_type: ClaimType, balance: int, data: st.DataObject
) -> None:
    claim = with_balance(claim_in(ClaimState.IN_VERIFICATION, claim_type), balance)
    reqs = required_documents(claim_type, balance)
    verdicts: dict[DocumentKind, Verdict | None] = {}
    for req in reqs:
        upload = data.draw(uploads)
        if upload is not None:
            idx, verdict = upload
            verdicts[req.any_of[idx % len(req.any_of)]] = verdict
    expected = all(
        any(verdicts.get(kind) is Verdict.ACCEPTED for kind in req.any_of) for req in reqs
    )
    result = checklist(reqs, verdicts)
    assert result.complete == expected
    if expected:
        assert decide(claim, Decision.APPROVED, result, identity=OK).state is ClaimState.APPROVED
    else:
        with pytest.raises(ClaimRuleError) as exc:
            decide(claim, Decision.APPROVED, result, identity=OK)
        assert exc.value.code == "missing_documents"


def _applicable(code: str, decision: Decision) -> bool:
    use = {
        Decision.REJECTED: ReasonUse.CLAIM_REJECTION,
        Decision.NEEDS_FOLLOW_UP: ReasonUse.FOLLOW_UP,
    }
    return any(r.code == code and use[decision] in r.applies_to for r in REASONS)


any_code = st.one_of(st.sampled_from([r.code for r in REASONS]), st.text(max_size=12))


@settings(max_examples=300)
@given(
    st.sampled_from([Decision.REJECTED, Decision.NEEDS_FOLLOW_UP]),
    st.lists(any_code, max_size=4),
)
def test_negative_decisions_need_applicable_reasons(decision: Decision, codes: list[str]) -> None:
    serving = claim_in(ClaimState.IN_VERIFICATION)
    valid = bool(codes) and all(_applicable(c, decision) for c in codes)
    if valid:
        assert (
            decide(serving, decision, all_accepted(serving), codes, identity=OK).state
            == decision.value
        )
    else:
        with pytest.raises(ClaimRuleError) as exc:
            decide(serving, decision, all_accepted(serving), codes, identity=OK)
        assert exc.value.code in {"reason_required", "unknown_reason", "reason_not_applicable"}


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


valid_niks = st.builds(
    lambda prov, area, day, woman, month, year, serial: (
        f"{prov:02d}{area}{day + 40 * woman:02d}{month:02d}{year}{serial:04d}"
    ),
    st.integers(11, 96),
    _digits(4),
    st.integers(1, 31),
    st.booleans(),
    st.integers(1, 12),
    _digits(2),
    st.integers(1, 9999),
)


@settings(max_examples=300)
@given(valid_niks, _digits(11), claim_types, st.text(min_size=1, max_size=20), st.integers(1, 50))
def test_walk_in_never_refused_with_valid_ids(
    nik: str, kpj: str, claim_type: ClaimType, branch: str, count: int
) -> None:
    # No quota: however many walk-ins a branch registers, none is refused.
    for i in range(count):
        claim = register_walk_in(f"w-{i}", nik, kpj, claim_type, branch, NOW)
        assert claim.state is ClaimState.REGISTERED
        assert claim.walk_in and claim.nik == nik and claim.kpj == kpj
