"""The verification workbench's rules: the member record (NIK birth digits, the waiting
period after a resignation), field states, and approval refused while identity is not
confirmed (unit, hypothesis, and a state machine over the officer's field states)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from server.domain.claims import (
    Claim,
    ClaimRuleError,
    ClaimState,
    Decision,
    IdentityCheck,
    decide,
    register_walk_in,
    transition,
)
from server.domain.documents import DocumentKind, Verdict, checklist, required_documents
from server.domain.members import (
    MemberRecord,
    MemberSource,
    add_months,
    check_nik_birth,
    local_day,
    nik_birth,
    nik_birth_problem,
    parse_member,
    payable_from,
    typed_walk_in,
    waiting_period_problem,
)
from server.domain.verification import (
    PHOTO,
    DocumentFacts,
    FieldCheck,
    FieldState,
    fields_of,
    identity_check,
    judge_field,
    record_value,
)
from signaling.messages import ClaimType

NOW = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
TODAY = date(2026, 12, 8)
NIK_F = "3171015208900001"  # a woman born 12-08-1990
KPJ = "12345678901"


def nik_for(born: date, sex: str, serial: int = 1) -> str:
    day = born.day + (40 if sex == "F" else 0)
    return f"317101{day:02d}{born.month:02d}{born.year % 100:02d}{serial:04d}"


def row(**changes: str) -> dict[str, str]:
    values = {
        "full_name": "SITI AMINAH", "birth_place": "JAKARTA", "birth_date": "1990-08-12",
        "sex": "F", "address": "JL. MAWAR NO. 3", "employer_name": "PT MAJU JAYA",
        "employment_end": "2026-09-30", "bank_name": "BANK MANDIRI",
        "account_number": "123-00-4567890-1", "account_holder": "SITI AMINAH",
    }  # fmt: skip
    values.update(changes)
    return values


def parse(nik: str = NIK_F, **changes: str) -> MemberRecord:
    return parse_member(row(**changes), source=MemberSource.IMPORT, recorded_at=NOW, nik=nik,
                        today=TODAY)  # fmt: skip


# --- the record -------------------------------------------------------------------------------


def test_a_complete_row_becomes_a_record() -> None:
    record = parse()
    assert record.birth_date == date(1990, 8, 12) and record.sex == "F"
    assert record.account_number == "1230045678901"  # separators dropped
    assert record.confirmed and not record.missing()
    assert "SITI" not in repr(record)  # names stay out of logs


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"full_name": "  "}, "full_name: is missing"),
        ({"birth_date": "12-08-1990"}, "write it YYYY-MM-DD"),
        ({"sex": "X"}, "is not M or F"),
        ({"account_number": "12ab"}, "5-20 digits"),
        ({"employment_end": "2027-01-01"}, "in the future"),
        ({"bank_name": ""}, "bank_name: is missing"),
    ],
)
def test_a_bad_column_is_named(changes: dict[str, str], says: str) -> None:
    with pytest.raises(ClaimRuleError) as exc:
        parse(**changes)
    assert exc.value.code == "invalid_member" and says in exc.value.message


def test_the_address_is_optional_and_l_p_mean_m_f() -> None:
    assert parse(address="").address is None
    assert parse(nik_for(date(1990, 8, 12), "M"), sex="L").sex == "M"
    assert parse(sex="P").sex == "F"


def test_a_record_that_disagrees_with_its_nik_is_refused() -> None:
    with pytest.raises(ClaimRuleError) as exc:
        parse(birth_date="1990-08-13")
    assert exc.value.code == "nik_birth_mismatch" and "12-08-..90" in exc.value.message
    with pytest.raises(ClaimRuleError) as exc:
        parse(sex="M")
    assert "woman" in exc.value.message


dates = st.dates(min_value=date(1940, 1, 1), max_value=date(2010, 12, 31))
sexes = st.sampled_from(["M", "F"])


@given(born=dates, sex=sexes, serial=st.integers(1, 9999))
def test_the_nik_birth_digits_agree_with_the_date_and_sex_they_encode(
    born: date, sex: str, serial: int
) -> None:
    nik = nik_for(born, sex, serial)
    said = nik_birth(nik)
    assert (said.day, said.month, said.year2, said.sex) == (
        born.day, born.month, born.year % 100, sex,
    )  # fmt: skip
    assert nik_birth_problem(nik, born, sex) is None
    check_nik_birth(nik, MemberRecord(MemberSource.IMPORT, NOW, **_complete(born, sex)))


@given(born=dates, other=dates, sex=sexes, other_sex=sexes)
def test_any_other_date_or_sex_disagrees(born: date, other: date, sex: str, other_sex: str) -> None:
    nik = nik_for(born, sex)
    same_digits = (other.day, other.month, other.year % 100) == (born.day, born.month,
                                                                 born.year % 100)  # fmt: skip
    agrees = nik_birth_problem(nik, other, other_sex) is None
    assert agrees == (same_digits and other_sex == sex)


def _complete(born: date, sex: str) -> dict[str, object]:
    return {"full_name": "A", "birth_place": "B", "birth_date": born, "sex": sex,
            "employer_name": "E", "employment_end": date(2026, 1, 1), "bank_name": "K",
            "account_number": "12345", "account_holder": "A"}  # fmt: skip


def test_a_typed_walk_in_knows_nothing_and_says_why() -> None:
    typed = typed_walk_in(NOW, "not confirmed by the directory: no answer within 3 s")
    assert not typed.confirmed and "birth_date" in typed.missing()
    with pytest.raises(ValueError):
        MemberRecord(MemberSource.DIRECTORY, NOW)  # a directory record is complete


# --- the waiting period -----------------------------------------------------------------------


def test_a_resignation_is_paid_a_month_after_the_employment_ended() -> None:
    assert payable_from(ClaimType.RESIGNATION, date(2026, 10, 31)) == date(2026, 11, 30)
    assert payable_from(ClaimType.RESIGNATION, date(2026, 1, 31)) == date(2026, 2, 28)
    assert payable_from(ClaimType.RETIREMENT, date(2026, 10, 31)) is None
    assert waiting_period_problem(ClaimType.RESIGNATION, date(2026, 11, 9), TODAY) is not None
    assert waiting_period_problem(ClaimType.RESIGNATION, date(2026, 11, 8), TODAY) is None
    assert waiting_period_problem(ClaimType.TERMINATION, date(2026, 12, 1), TODAY) is None


@given(end=st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)))
def test_one_month_is_28_to_31_days_and_never_early(end: date) -> None:
    first = add_months(end, 1)
    assert 28 <= (first - end).days <= 31
    assert waiting_period_problem(ClaimType.RESIGNATION, end, first) is None
    assert waiting_period_problem(ClaimType.RESIGNATION, end, first - timedelta(days=1))


def test_the_agency_day_is_western_indonesian_time() -> None:
    assert local_day(datetime(2026, 12, 7, 17, 0, tzinfo=UTC)) == date(2026, 12, 8)


# --- fields and approval ----------------------------------------------------------------------


def serving_claim(claim_type: ClaimType = ClaimType.RETIREMENT, nik: str = NIK_F) -> Claim:
    claim = register_walk_in("c-1", nik, KPJ, claim_type, "jkt01", NOW)
    return transition(transition(claim, ClaimState.CHECKED_IN), ClaimState.IN_VERIFICATION)


def accepted_documents(claim: Claim) -> list[DocumentFacts]:
    return [
        DocumentFacts(f"d-{r.any_of[0]}", r.any_of[0], Verdict.ACCEPTED)
        for r in required_documents(claim.claim_type, claim.balance_idr)
    ]


def all_matching(docs: list[DocumentFacts]) -> dict[tuple[str, str], FieldCheck]:
    return {
        (d.document_id, spec.name): judge_field(
            d.document_id,
            d.kind,
            spec.name,
            FieldState.MATCHES,
            None,
            suggested=None,
            by="siti",
            at=NOW,
        )
        for d in docs
        for spec in fields_of(d.kind)
    }


def approve(claim: Claim, docs: list[DocumentFacts], identity: IdentityCheck) -> Claim:
    verdicts = {d.kind: d.verdict for d in docs}
    done = checklist(required_documents(claim.claim_type, claim.balance_idr), verdicts)
    return decide(claim, Decision.APPROVED, done, identity=identity)


def test_the_fields_each_document_must_match() -> None:
    names = {k: [s.name for s in fields_of(k)] for k in DocumentKind if fields_of(k)}
    assert names[DocumentKind.KTP] == ["nik", "name", "birth_place", "birth_date", "sex", PHOTO]
    assert names[DocumentKind.KPJ_CARD] == ["kpj", "name"]
    assert names[DocumentKind.BUKU_TABUNGAN] == ["account_number", "holder_name"]
    assert names[DocumentKind.PAKLARING] == ["name", "employer", "employment_end"]
    assert fields_of(DocumentKind.KK) == () and fields_of("no such kind") == ()
    claim, member = serving_claim(), parse()
    assert record_value("nik", claim, member) == NIK_F
    assert record_value("holder_name", claim, member) == "SITI AMINAH"
    assert record_value("employment_end", claim, member) == "2026-09-30"
    assert record_value("name", claim, None) is None


def test_differs_needs_a_field_reason_and_the_others_take_none() -> None:
    def judge(state: FieldState, code: str | None, field: str = "name") -> FieldCheck:
        return judge_field("d", DocumentKind.KTP, field, state, code, suggested=FieldState.MATCHES,
                           by="siti", at=NOW)  # fmt: skip

    assert judge(FieldState.DIFFERS, "field_value_differs").override
    assert not judge(FieldState.MATCHES, None).override
    for state, code, expected in [
        (FieldState.DIFFERS, None, "reason_required"),
        (FieldState.DIFFERS, "doc_blurry", "reason_not_applicable"),
        (FieldState.DIFFERS, "made_up", "unknown_reason"),
        (FieldState.MATCHES, "field_value_differs", "reason_not_allowed"),
    ]:
        with pytest.raises(ClaimRuleError) as exc:
            judge(state, code)
        assert exc.value.code == expected
    with pytest.raises(ClaimRuleError) as exc:
        judge(FieldState.MATCHES, None, field="kpj")  # not on a KTP
    assert exc.value.code == "unknown_field"


def test_approval_is_refused_until_every_identity_field_matches() -> None:
    claim, member = serving_claim(), parse()
    docs = accepted_documents(claim)
    checks = all_matching(docs)
    assert approve(claim, docs, identity_check(claim, member, docs, checks, TODAY)).state is (
        ClaimState.APPROVED
    )
    key = ("d-ktp", "sex")
    checks[key] = judge_field("d-ktp", DocumentKind.KTP, "sex", FieldState.DIFFERS,
                              "field_value_differs", suggested=None, by="siti", at=NOW)  # fmt: skip
    identity = identity_check(claim, member, docs, checks, TODAY)
    assert [code for code, _ in identity.problems] == ["identity_unconfirmed"]
    assert "Sex" in identity.problems[0][1]
    with pytest.raises(ClaimRuleError) as exc:
        approve(claim, docs, identity)
    assert exc.value.code == "identity_unconfirmed"
    # Rejecting or asking for follow-up stays possible.
    done = checklist(required_documents(claim.claim_type, 0), {d.kind: d.verdict for d in docs})
    assert decide(claim, Decision.REJECTED, done, ["field_other_person"],
                  identity=identity).state is ClaimState.REJECTED  # fmt: skip


def test_a_record_not_confirmed_or_inconsistent_blocks_approval() -> None:
    claim = serving_claim()
    docs = accepted_documents(claim)
    checks = all_matching(docs)
    typed = typed_walk_in(NOW, "not confirmed by the directory: timeout")
    assert identity_check(claim, typed, docs, checks, TODAY).problems[0][0] == "member_unconfirmed"
    assert identity_check(claim, None, docs, checks, TODAY).problems[0][0] == (
        "member_record_missing"
    )
    wrong = MemberRecord(MemberSource.DIRECTORY, NOW, **_complete(date(1991, 1, 1), "F"))
    assert identity_check(claim, wrong, docs, checks, TODAY).problems[0][0] == (
        "member_record_inconsistent"
    )


def test_a_resignation_inside_its_waiting_period_cannot_be_approved() -> None:
    claim = serving_claim(ClaimType.RESIGNATION)
    docs = accepted_documents(claim)
    member = parse(employment_end="2026-11-20")
    identity = identity_check(claim, member, docs, all_matching(docs), TODAY)
    assert [c for c, _ in identity.problems] == ["waiting_period"]
    assert "2026-12-20" in identity.problems[0][1]


def test_one_fully_matching_copy_of_a_document_is_enough() -> None:
    claim, member = serving_claim(), parse()
    docs = accepted_documents(claim)
    second = DocumentFacts("d-ktp-2", DocumentKind.KTP, Verdict.ACCEPTED)
    checks = all_matching(docs)  # the first KTP matches; the second is unchecked
    assert identity_check(claim, member, [*docs, second], checks, TODAY).confirmed
    rejected = [DocumentFacts(d.document_id, d.kind, Verdict.REJECTED) if d.kind == "ktp" else d
                for d in docs]  # fmt: skip
    # A rejected KTP does not count (the checklist then says what is missing).
    assert identity_check(claim, member, [*rejected, second], checks, TODAY).problems


# --- the officer's field states, as a state machine -------------------------------------------


class FieldStates(RuleBasedStateMachine):
    """The officer sets, changes and overrides field states in any order; approval is
    possible exactly when every identity field of the accepted documents matches."""

    def __init__(self) -> None:
        super().__init__()
        self.claim = serving_claim(ClaimType.RESIGNATION)
        self.member = parse()
        self.docs = accepted_documents(self.claim)
        self.fields = [(d, s.name) for d in self.docs for s in fields_of(d.kind)]
        self.checks: dict[tuple[str, str], FieldCheck] = {}

    @rule(index=st.integers(0, 30), state=st.sampled_from(FieldState),
          suggested=st.none() | st.sampled_from(FieldState))  # fmt: skip
    def set_state(self, index: int, state: FieldState, suggested: FieldState | None) -> None:
        doc, field = self.fields[index % len(self.fields)]
        code = "field_value_differs" if state is FieldState.DIFFERS else None
        check = judge_field(doc.document_id, doc.kind, field, state, code, suggested=suggested,
                            by="siti", at=NOW)  # fmt: skip
        assert check.override == (suggested is not None and suggested is not state)
        self.checks[(doc.document_id, field)] = check

    @precondition(lambda self: len(self.checks) < len(self.fields))
    @rule()
    def match_everything_left(self) -> None:
        for doc, field in self.fields:
            if (doc.document_id, field) not in self.checks:
                self.set_state(self.fields.index((doc, field)), FieldState.MATCHES, None)

    @invariant()
    def approval_follows_the_fields(self) -> None:
        identity = identity_check(self.claim, self.member, self.docs, self.checks, TODAY)
        every = all(
            (c := self.checks.get((d.document_id, f))) is not None and c.state is FieldState.MATCHES
            for d, f in self.fields
        )
        assert identity.confirmed == every
        if every:
            assert approve(self.claim, self.docs, identity).state is ClaimState.APPROVED
        else:
            with pytest.raises(ClaimRuleError) as exc:
                approve(self.claim, self.docs, identity)
            assert exc.value.code == "identity_unconfirmed"


FieldStates.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestFieldStates = FieldStates.TestCase
