"""The demo's membership table holds the members its kiosks show the documents of, and
each record passes the rules an officer's approval needs (NIK birth digits, waiting)."""

from __future__ import annotations

from datetime import UTC, datetime

from booth_client.sources.id_cards import person_for
from server.cli.demo_front import DEMO_MEMBERS, demo_members, desk_walk_in
from server.domain.members import check_nik_birth, waiting_period_problem


def test_demo_members_are_the_desks_walk_ins_and_pass_the_rules() -> None:
    members = demo_members(40)
    today = datetime.now(UTC).date()
    for n, (nik, kpj, record) in enumerate(members, start=1):
        ref = desk_walk_in(n)
        assert (nik, kpj) == (ref.nik, ref.kpj)
        shown = person_for(nik, kpj)  # what the kiosk's synthetic KTP and bank book say
        assert record.full_name == shown.name == record.account_holder
        assert (record.birth_date, record.sex) == (shown.birth_date, shown.sex)
        assert record.account_number == shown.account_number and record.bank_name == shown.bank
        assert not record.missing()
        check_nik_birth(nik, record)  # raises when the NIK's digits disagree
        assert waiting_period_problem(ref.claim_type, record.employment_end, today) is None
    assert len({nik for nik, _, _ in demo_members()}) == DEMO_MEMBERS
