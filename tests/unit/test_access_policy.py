"""The one access policy (server.domain.access.decide), over its whole matrix.

An independent oracle written from the rules (README, issue 10) is compared with
`decide` for every role, action, session state, relation to the session and branch scope;
the rules that matter most are also spelled out as tables.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.access import (
    AccessDecision,
    AccessFacts,
    Action,
    Reach,
    SessionFacts,
    decide,
)
from server.principal import AccountRole, Principal
from signaling.session import SessionState

R, S, A = AccountRole, SessionState, Action
SERVING = {S.CONNECTING, S.ON_HOLD, S.FOCUSED, S.RECONNECTING}
IN_CALL = {S.CONNECTING, S.ON_HOLD, S.FOCUSED}
CODES = {"forbidden", "not_in_session", "illegal_transition"}


def who(role: AccountRole, subject: str = "siti", branch: str = "jkt01",
        pools: frozenset[str] = frozenset()) -> Principal:  # fmt: skip
    return Principal(subject, role, subject.title(), branch, pools=pools)


def session(state: SessionState, booth: str = "booth-1", cso: str = "siti") -> SessionFacts:
    return SessionFacts("s1", booth, cso, state)


def facts(state: SessionState | None = None, branch: str | None = None, **ends: str) -> AccessFacts:
    return AccessFacts(session=session(state, **ends) if state else None, claim_branch=branch)


# --- the oracle -------------------------------------------------------------------------------


def _scope(p: Principal) -> frozenset[str] | None:
    scope = p.pools or frozenset({p.branch})
    return None if "*" in scope else scope


def expected(p: Principal, action: Action, f: AccessFacts) -> tuple[bool, Reach, object]:
    """(allowed, reach, branches) as the rules say."""
    s = f.session
    booth_end = p.role is R.BOOTH and s is not None and s.booth_id == p.subject
    cso_end = p.role is R.CSO and s is not None and s.cso_id == p.subject
    serving = s is not None and s.state in SERVING
    scope = _scope(p)
    supervising = p.role is R.SUPERVISOR and (
        f.claim_branch is None or scope is None or f.claim_branch in scope
    )
    auditor = p.role is R.AUDITOR
    no: tuple[bool, Reach, object] = (False, Reach.NONE, None)

    def yes(reach: Reach = Reach.FULL, branches: object = None) -> tuple[bool, Reach, object]:
        return True, reach, branches

    match action:
        case A.CLAIM_READ:
            if auditor:
                return yes(Reach.FULL_NIK)
            return yes() if supervising or ((booth_end or cso_end) and serving) else no
        case A.MEMBER_READ:
            if auditor or (cso_end and serving):
                return yes(Reach.FULL_NIK)
            return yes() if supervising else no
        case A.CLAIM_LOOKUP:
            if auditor:
                return yes(Reach.FULL_NIK)
            if supervising:
                return yes()
            return yes(Reach.MASKED) if p.role in (R.CSO, R.SUPERVISOR) else no
        case A.DOCUMENT_UPLOAD:
            return yes() if booth_end and serving else no
        case A.DOCUMENT_READ:
            if auditor:
                return yes(Reach.FULL_NIK)
            return yes() if supervising or (cso_end and serving) else no
        case A.DOCUMENT_JUDGE | A.OUTCOME_RECORD:
            return yes() if cso_end and serving else no
        case A.OUTCOME_LIST:
            if auditor:
                return yes(Reach.FULL_NIK)
            return yes(Reach.FULL, scope) if supervising else no
        case A.OUTCOME_EXPORT_FULL_NIK:
            return yes(Reach.FULL_NIK) if auditor else no
        case A.AUDIT_VERIFY:
            return yes() if p.role in (R.AUDITOR, R.SUPERVISOR) else no
        case A.CLAIM_IMPORT:
            return yes() if p.role is R.OPERATOR else no
        case A.SESSION_ACCEPT | A.SESSION_DECLINE:
            return yes() if cso_end and s is not None and s.state is S.RESERVED else no
        case A.SESSION_SIGNAL:
            return yes() if (booth_end or cso_end) and serving else no
        case A.SESSION_FOCUS:
            return yes() if cso_end and s is not None and s.state in IN_CALL else no
        case A.SESSION_END:
            return yes() if cso_end and serving else no
        case A.FLOOR_VIEW:
            return yes() if p.role in (R.SUPERVISOR, R.OPERATOR) else no
        case A.SESSION_MONITOR | A.SESSION_STEER:
            return yes() if supervising and serving else no
        case A.CSO_STEER:
            return yes() if supervising else no
        case A.TICKET_DESK:
            return yes() if supervising or p.role is R.OPERATOR else no
        case A.RECORDING_WRITE:
            return yes() if booth_end and serving else no
        case A.RECORDING_PLAY:
            if auditor:
                return yes(Reach.FULL_NIK)
            return yes() if supervising else no
        case A.RECORDING_LIST:
            if auditor:
                return yes(Reach.FULL_NIK)
            return yes(Reach.FULL, scope) if supervising else no
        case A.LEGAL_HOLD:
            return yes() if p.role is R.OPERATOR else no
    raise AssertionError(action)


# --- the whole matrix, exhaustively over a small world -----------------------------------------

SUBJECTS = ("siti", "budi", "booth-1", "booth-2")
POOLS: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"*"}),
    frozenset({"jkt01"}),
    frozenset({"bdg01", "sby01"}),
)
BRANCHES = (None, "jkt01", "bdg01")
SESSIONS = (None, *(session(st, b, c) for st in S for b in ("booth-1", "booth-2")
                    for c in ("siti", "budi")))  # fmt: skip


def _check(p: Principal, action: Action, f: AccessFacts) -> AccessDecision:
    got = decide(p, action, f)
    allowed, reach, branches = expected(p, action, f)
    assert (got.allowed, got.reach, got.branches) == (allowed, reach, branches), (
        p, action, f, got,
    )  # fmt: skip
    assert bool(got) is got.allowed
    if got.allowed:
        assert got.reach is not Reach.NONE
    else:
        assert got.reason and got.code in CODES and got.branches is None
    return got


@pytest.mark.parametrize("action", list(Action))
def test_every_role_action_session_and_scope_matches_the_rules(action: Action) -> None:
    checked = 0
    for role, subject, pools, home, branch, s in itertools.product(
        AccountRole, SUBJECTS, POOLS, ("jkt01", "bdg01"), BRANCHES, SESSIONS
    ):
        _check(who(role, subject, home, pools), action, AccessFacts(s, branch))
        checked += 1
    assert checked > 10_000


@settings(max_examples=1500, deadline=None)
@given(
    role=st.sampled_from(AccountRole),
    subject=st.sampled_from(SUBJECTS),
    pools=st.sampled_from(POOLS),
    home=st.sampled_from(("jkt01", "bdg01", "*")),
    branch=st.sampled_from((*BRANCHES, "sby01")),
    state=st.none() | st.sampled_from(S),
    booth=st.sampled_from(SUBJECTS),
    cso=st.sampled_from(SUBJECTS),
    action=st.sampled_from(Action),
)
def test_decide_agrees_with_the_rules_anywhere(
    role, subject, pools, home, branch, state, booth, cso, action
) -> None:  # type: ignore[no-untyped-def]
    s = None if state is None else SessionFacts("s9", booth, cso, state)
    _check(who(role, subject, home, pools), action, AccessFacts(s, branch))


@settings(max_examples=800, deadline=None)
@given(
    role=st.sampled_from(AccountRole),
    subject=st.sampled_from(SUBJECTS),
    pools=st.sampled_from(POOLS),
    branch=st.sampled_from(BRANCHES),
    state=st.none() | st.sampled_from(S),
    action=st.sampled_from(Action),
)
def test_forbidden_means_no_session_could_change_the_answer(
    role, subject, pools, branch, state, action
) -> None:  # type: ignore[no-untyped-def]
    """The code uploads rely on to refuse before reading a body: `forbidden` is about the
    principal alone; a refusal that a session could lift says not_in_session/illegal_transition."""
    p = who(role, subject, "jkt01", pools)
    s = None if state is None else SessionFacts("s1", subject, subject, state)
    got = decide(p, action, AccessFacts(s, branch))
    if not got.allowed and got.code == "forbidden":
        for other in S:
            as_end = SessionFacts("s1", subject, subject, other)
            assert not decide(p, action, AccessFacts(as_end, branch)).allowed
        assert not decide(p, action, AccessFacts(None, branch)).allowed


# --- the rules that matter most, as tables ------------------------------------------------------

CLAIM_ACTIONS = (A.CLAIM_READ, A.MEMBER_READ, A.DOCUMENT_READ, A.DOCUMENT_JUDGE, A.OUTCOME_RECORD)


@pytest.mark.parametrize("action", CLAIM_ACTIONS)
@pytest.mark.parametrize(
    ("state", "allowed"),
    [(None, False), (S.IDLE, False), (S.QUEUED, False), (S.RESERVED, False),
     (S.CONNECTING, True), (S.ON_HOLD, True), (S.FOCUSED, True), (S.RECONNECTING, True),
     (S.ENDED, False)],
)  # fmt: skip
def test_a_cso_reaches_a_claim_from_accept_until_the_end(
    action: Action, state: SessionState | None, allowed: bool
) -> None:
    got = decide(who(R.CSO), action, facts(state))
    assert got.allowed is allowed
    if state is S.RESERVED:
        assert got.code == "illegal_transition" and "accept" in got.reason
    if state is None:
        assert got.code == "not_in_session"


@pytest.mark.parametrize("action", CLAIM_ACTIONS)
def test_another_cso_never_reaches_the_claim(action: Action) -> None:
    for state in S:
        got = decide(who(R.CSO, "budi"), action, facts(state))
        assert not got.allowed and got.code == "not_in_session"


def test_a_user_named_like_the_booth_is_not_the_booth() -> None:
    for role in (R.CSO, R.SUPERVISOR, R.OPERATOR):
        p = who(role, "booth-1", pools=frozenset({"*"}))
        assert not decide(p, A.DOCUMENT_UPLOAD, facts(S.FOCUSED))
        assert not decide(p, A.SESSION_SIGNAL, facts(S.FOCUSED, cso="siti"))
    booth = who(R.BOOTH, "siti")  # a booth whose id is the CSO's name
    assert not decide(booth, A.SESSION_END, facts(S.FOCUSED))
    assert not decide(booth, A.SESSION_FOCUS, facts(S.FOCUSED))


def test_the_booth_uploads_and_reads_its_claim_in_a_call_but_never_the_pictures() -> None:
    booth = who(R.BOOTH, "booth-1")
    assert not decide(booth, A.DOCUMENT_UPLOAD, facts(S.RESERVED))
    assert decide(booth, A.DOCUMENT_UPLOAD, facts(S.CONNECTING))
    assert decide(booth, A.CLAIM_READ, facts(S.FOCUSED)).reach is Reach.FULL
    assert not decide(booth, A.DOCUMENT_READ, facts(S.FOCUSED))
    assert not decide(booth, A.CLAIM_LOOKUP)


def test_lookup_reach_by_role_and_scope() -> None:
    jkt = who(R.SUPERVISOR, "budi", pools=frozenset({"jkt01"}))
    assert decide(who(R.CSO), A.CLAIM_LOOKUP, facts(branch="bdg01")).reach is Reach.MASKED
    assert decide(jkt, A.CLAIM_LOOKUP, facts(branch="jkt01")).reach is Reach.FULL
    assert decide(jkt, A.CLAIM_LOOKUP, facts(branch="bdg01")).reach is Reach.MASKED
    assert decide(who(R.AUDITOR), A.CLAIM_LOOKUP).reach is Reach.FULL_NIK
    assert not decide(who(R.OPERATOR), A.CLAIM_LOOKUP)


def test_supervisors_are_scoped_to_their_branches() -> None:
    own_branch = who(R.SUPERVISOR, "budi", branch="jkt01")  # no pools: its own branch
    pools = who(R.SUPERVISOR, "budi", branch="jkt01", pools=frozenset({"bdg01", "sby01"}))
    everywhere = who(R.SUPERVISOR, "budi", pools=frozenset({"*"}))
    assert decide(own_branch, A.CLAIM_READ, facts(branch="jkt01"))
    assert not decide(own_branch, A.CLAIM_READ, facts(branch="bdg01"))
    assert not decide(pools, A.DOCUMENT_READ, facts(branch="jkt01"))
    assert decide(pools, A.DOCUMENT_READ, facts(branch="sby01"))
    assert decide(everywhere, A.CLAIM_READ, facts(branch="any01"))
    # Lists: limited to the scope; a filter outside it is refused.
    assert decide(own_branch, A.OUTCOME_LIST).branches == frozenset({"jkt01"})
    assert decide(pools, A.OUTCOME_LIST, facts(branch="sby01")).branches == {"bdg01", "sby01"}
    assert not decide(pools, A.OUTCOME_LIST, facts(branch="jkt01"))
    assert decide(everywhere, A.OUTCOME_LIST).branches is None
    assert decide(who(R.AUDITOR), A.OUTCOME_LIST).reach is Reach.FULL_NIK


def test_full_niks_only_for_auditors_and_the_serving_officers_workbench() -> None:
    for role in AccountRole:
        for action in Action:
            for state in (None, S.FOCUSED):
                got = decide(who(role, pools=frozenset({"*"})), action, facts(state))
                workbench = role is R.CSO and action is A.MEMBER_READ and state is S.FOCUSED
                assert (got.reach is Reach.FULL_NIK) <= (role is R.AUDITOR or workbench)


def test_session_actions() -> None:
    cso = who(R.CSO)
    assert decide(cso, A.SESSION_ACCEPT, facts(S.RESERVED))
    assert not decide(cso, A.SESSION_ACCEPT, facts(S.CONNECTING))
    assert decide(cso, A.SESSION_DECLINE, facts(S.RESERVED))
    assert not decide(who(R.CSO, "budi"), A.SESSION_ACCEPT, facts(S.RESERVED))
    assert not decide(cso, A.SESSION_SIGNAL, facts(S.RESERVED))
    assert decide(who(R.BOOTH, "booth-1"), A.SESSION_SIGNAL, facts(S.RECONNECTING))
    assert not decide(cso, A.SESSION_FOCUS, facts(S.RECONNECTING))
    assert decide(cso, A.SESSION_FOCUS, facts(S.ON_HOLD))
    ended = decide(cso, A.SESSION_END, facts(S.ENDED))
    assert not ended and "decline" not in ended.reason
    offered = decide(cso, A.SESSION_END, facts(S.RESERVED))
    assert not offered and "decline" in offered.reason
    assert decide(who(R.OPERATOR), A.FLOOR_VIEW) and not decide(cso, A.FLOOR_VIEW)


def test_supervisors_monitor_and_steer_only_live_calls_in_their_branches() -> None:
    boss = who(R.SUPERVISOR, "boss", pools=frozenset({"jkt01"}))
    here = dataclasses.replace(facts(S.FOCUSED), claim_branch="jkt01")
    there = dataclasses.replace(facts(S.FOCUSED), claim_branch="bdg01")
    assert decide(boss, A.SESSION_MONITOR, here) and not decide(boss, A.SESSION_MONITOR, there)
    offered = dataclasses.replace(facts(S.RESERVED), claim_branch="jkt01")
    assert not decide(boss, A.SESSION_STEER, offered)
    assert not decide(who(R.OPERATOR), A.SESSION_MONITOR, here)
    assert not decide(who(R.CSO), A.CSO_STEER)


def test_no_facts_means_no_session() -> None:
    assert decide(who(R.CSO), A.CLAIM_READ).code == "not_in_session"
    assert decide(who(R.OPERATOR), A.CLAIM_IMPORT)
    assert not decide(who(R.AUDITOR), A.CLAIM_IMPORT)
