"""The one access policy: who may do what to a claim or a session, given the session's state.

Every REST handler and every socket action asks `decide(principal, action, facts)`; nothing
else in the server makes an access decision. It is a pure function over plain data, so the
whole matrix is tested without a network (tests/unit/test_access_policy.py).

The rule the first release got wrong: a CSO's access to a claim follows its *session*, not
its *offer*. A CSO that was only offered a booth (state `reserved`) sees the masked summary
in the offer and nothing more; from `accept` (state `connecting`) until the session ends it
may read the claim and its pictures, judge documents and record the outcome.

A refusal's `code` says what kind of refusal it is: `forbidden` (this principal's role may
never do it, whatever the session), `not_in_session` (no live session, or not an end of
it) and `illegal_transition` (an end of the session, but not in a state that allows it).
Callers may refuse `forbidden` before looking anything else up (e.g. before reading an
upload's body); the other two depend on the live session.

Supervisors are scoped to the branches they look after (`in_scope`): a decision about one
claim gets its branch in `AccessFacts.claim_branch`; a decision about many (outcome lists)
answers with `AccessDecision.branches`, the branches the reader may see (None: all).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from server.principal import AccountRole, Principal
from signaling.messages import Role
from signaling.session import IN_CALL, SessionState

ANY_BRANCH = "*"

# Assigned or later and not ended: the two ends share (or are rebuilding) a peer connection.
# `reconnecting` counts: a signaling blip must not lock the officer out of the claim.
SERVING_STATES: frozenset[SessionState] = frozenset({*IN_CALL, SessionState.RECONNECTING})


class Action(StrEnum):
    # REST: claims, documents, outcomes
    CLAIM_READ = "claim.read"  # the claim, its checklist and document list
    CLAIM_LOOKUP = "claim.lookup"  # find claims by booking code or NIK
    MEMBER_READ = "member.read"  # the member record and the verification workbench
    DOCUMENT_UPLOAD = "document.upload"
    DOCUMENT_READ = "document.read"  # the picture itself
    DOCUMENT_JUDGE = "document.judge"
    OUTCOME_RECORD = "outcome.record"
    OUTCOME_LIST = "outcome.list"  # lists and CSV export, masked NIKs
    OUTCOME_EXPORT_FULL_NIK = "outcome.export_full_nik"
    AUDIT_VERIFY = "audit.verify"
    CLAIM_IMPORT = "claim.import"  # bulk import of booked claims
    # Sockets: what an end may do to a live session
    SESSION_ACCEPT = "session.accept"
    SESSION_DECLINE = "session.decline"
    SESSION_SIGNAL = "session.signal"  # offer / answer / candidate / peer_state
    SESSION_FOCUS = "session.focus"
    SESSION_END = "session.end"
    FLOOR_VIEW = "floor.view"
    # Supervisors on the live floor (their branches only; each is audited)
    SESSION_MONITOR = "session.monitor"  # watch and hear a session, or whisper to its CSO
    SESSION_STEER = "session.steer"  # move a booth to another CSO, end a stuck session
    CSO_STEER = "cso.steer"  # pause or resume an officer
    # Front of house: a branch's desk issues, recalls, transfers and cancels tickets
    TICKET_DESK = "ticket.desk"
    # Recordings (server/domain/recording.py): the booth writes its session's; its branch
    # supervisors and auditors find, play and export them; operators place legal holds.
    RECORDING_WRITE = "recording.write"
    RECORDING_PLAY = "recording.play"  # play, export, timeline and verify one recording
    RECORDING_LIST = "recording.list"  # find recordings (by NIK: auditors)
    LEGAL_HOLD = "legal_hold"


class Reach(StrEnum):
    """How much of a claim a permitted reader sees."""

    NONE = "none"
    MASKED = "masked"  # masked NIK, no KPJ, balance or booking code (lookups by CSOs)
    FULL = "full"  # everything but the full NIK
    FULL_NIK = "full_nik"  # auditors


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What the policy needs to know about the live session of a claim (None: none)."""

    session_id: str
    booth_id: str
    cso_id: str
    state: SessionState


@dataclass(frozen=True, slots=True)
class AccessFacts:
    session: SessionFacts | None = None
    claim_branch: str | None = None  # the branch a claim belongs to, for scoped readers
    # The booth a verified capture grant for this claim was issued to (server/domain/grants).
    grant_booth: str | None = None


@dataclass(frozen=True, slots=True)
class AccessDecision:
    allowed: bool
    reach: Reach = Reach.NONE
    # Why not, in words a user can act on; also the error code family for the caller.
    reason: str = ""
    code: str = "forbidden"  # forbidden | not_in_session | illegal_transition
    # For reads over many claims: the branches the reader may see; None means all.
    branches: frozenset[str] | None = None

    def __bool__(self) -> bool:
        return self.allowed


_ALLOWED: dict[Reach, AccessDecision] = {reach: AccessDecision(True, reach) for reach in Reach}


def _allow(reach: Reach = Reach.FULL, branches: frozenset[str] | None = None) -> AccessDecision:
    if branches is None:
        return _ALLOWED[reach]  # decisions are immutable: share them (relays ask per message)
    return AccessDecision(True, reach, branches=branches)


def _deny(reason: str, code: str = "forbidden") -> AccessDecision:
    return AccessDecision(False, Reach.NONE, reason, code)


def scope_of(principal: Principal) -> frozenset[str] | None:
    """The branches a supervisor looks after (their pools, else their own branch); None: all."""
    scope = principal.pools or frozenset({principal.branch})
    return None if ANY_BRANCH in scope else scope


# Which socket each account role opens; the one table of it (the socket endpoints, the
# floor's addressing and its link relay all ask here). Auditors open none: they read
# records, not the live floor.
SOCKET_ROLE: dict[AccountRole, Role] = {
    AccountRole.BOOTH: Role.BOOTH,
    AccountRole.CSO: Role.CSO,
    AccountRole.SUPERVISOR: Role.SUPERVISOR,
    AccountRole.OPERATOR: Role.SUPERVISOR,  # operators are trusted with the floor view
}


def socket_role(principal: Principal) -> Role | None:
    """The socket this principal speaks on (None: none)."""
    return SOCKET_ROLE.get(principal.role)


def may_open_socket(principal: Principal, role: Role) -> AccessDecision:
    if SOCKET_ROLE.get(principal.role) is role:
        return _allow()
    return _deny(f"a {principal.role} account may not open the {role} socket")


def floor_scope(principal: Principal) -> frozenset[str] | None:
    """The branches of the live floor this principal sees and steers (None: all).
    Supervisors: the branches they look after; operators: the whole region."""
    if principal.role is AccountRole.OPERATOR:
        return None
    return scope_of(principal)


FLOOR_TOPIC_ALL = "floor"


def floor_topic(scope: frozenset[str] | None) -> str:
    """The pub/sub topic of one scope's floor: one snapshot per scope and pass, however
    many supervisors share it."""
    return FLOOR_TOPIC_ALL if scope is None else "floor:" + "+".join(sorted(scope))


def in_scope(principal: Principal, branch: str | None) -> bool:
    """Supervisors see the branches they look after. `branch` None: no particular branch
    (a lookup before its results are known, a list over all branches), which is in scope;
    the results are then filtered claim by claim, or by `AccessDecision.branches`."""
    if branch is None:
        return True
    scope = scope_of(principal)
    return scope is None or branch in scope


def _is_end(principal: Principal, session: SessionFacts) -> bool:
    """The principal is the booth or the CSO of the session (by role and id: a user named
    like a booth id is not that booth)."""
    if principal.role is AccountRole.BOOTH:
        return principal.subject == session.booth_id
    if principal.role is AccountRole.CSO:
        return principal.subject == session.cso_id
    return False


def _serving(principal: Principal, session: SessionFacts | None, end: str) -> AccessDecision:
    """The principal is the `end` ("cso"/"booth") of a session that is assigned or later."""
    if session is None:
        return _deny("there is no live session for this claim", "not_in_session")
    who = session.cso_id if end == "cso" else session.booth_id
    if who != principal.subject or not _is_end(principal, session):
        return _deny("you are not an end of this claim's live session", "not_in_session")
    if session.state is SessionState.RESERVED:
        return _deny(
            "this booth is only offered to you; accept it before opening its claim",
            "illegal_transition",
        )
    if session.state not in SERVING_STATES:
        return _deny(f"the session is {session.state}, not in a call", "illegal_transition")
    return _allow()


def decide(
    principal: Principal, action: Action, facts: AccessFacts | None = None
) -> AccessDecision:
    facts = facts or AccessFacts()
    role, session = principal.role, facts.session
    auditor = role is AccountRole.AUDITOR
    supervisor = role is AccountRole.SUPERVISOR and in_scope(principal, facts.claim_branch)
    match action:
        case Action.CLAIM_READ:
            if auditor:
                return _allow(Reach.FULL_NIK)
            if supervisor:
                return _allow()
            if role is AccountRole.CSO:
                return _serving(principal, session, "cso")
            if role is AccountRole.BOOTH:
                return _serving(principal, session, "booth")
            return _deny("only the booth and CSO in this claim's live session, its branch "
                         "supervisors and auditors may see it")  # fmt: skip
        case Action.MEMBER_READ:
            # The serving officer compares the record with the KTP: the full NIK, from
            # accept until the session ends; everyone else who may read the claim, masked.
            if auditor:
                return _allow(Reach.FULL_NIK)
            if supervisor:
                return _allow()
            if role is AccountRole.CSO:
                serving = _serving(principal, session, "cso")
                return _allow(Reach.FULL_NIK) if serving else serving
            return _deny("only the CSO serving this claim, its branch supervisors and "
                         "auditors may see the member record")  # fmt: skip
        case Action.CLAIM_LOOKUP:
            # claim_branch: the found claim's branch (None: before anything is found).
            if auditor:
                return _allow(Reach.FULL_NIK)
            if supervisor:
                return _allow()
            if role in (AccountRole.CSO, AccountRole.SUPERVISOR):
                # Enough to tell a participant "found / not found" and to pick the claim.
                return _allow(Reach.MASKED)
            return _deny("claim lookup is for CSOs, supervisors and auditors")
        case Action.DOCUMENT_UPLOAD:
            if role is not AccountRole.BOOTH:
                return _deny("documents are uploaded by the booth in the claim's live session")
            if facts.grant_booth is not None and facts.grant_booth == principal.subject:
                return _allow()  # its grant outlives the session: the picture was asked for
            return _serving(principal, session, "booth")
        case Action.DOCUMENT_READ:
            if auditor:
                return _allow(Reach.FULL_NIK)
            if supervisor:
                return _allow()
            if role is AccountRole.CSO:
                return _serving(principal, session, "cso")
            return _deny("only the CSO serving this claim, its supervisors and auditors "
                         "may see its pictures")  # fmt: skip
        case Action.DOCUMENT_JUDGE | Action.OUTCOME_RECORD:
            if role is not AccountRole.CSO:
                return _deny("only the CSO serving this claim may judge it")
            return _serving(principal, session, "cso")
        case Action.OUTCOME_LIST:
            # claim_branch: the branch the list is filtered to, if any.
            if auditor:
                return _allow(Reach.FULL_NIK)
            if supervisor:
                return _allow(Reach.FULL, scope_of(principal))
            if role is AccountRole.SUPERVISOR:
                return _deny(f"branch {facts.claim_branch} is not one you supervise")
            return _deny("outcome lists are for supervisors and auditors")
        case Action.OUTCOME_EXPORT_FULL_NIK:
            return _allow(Reach.FULL_NIK) if auditor else _deny("full NIKs are for auditors")
        case Action.AUDIT_VERIFY:
            if auditor or role is AccountRole.SUPERVISOR:
                return _allow()
            return _deny("audit verification is for auditors and supervisors")
        case Action.CLAIM_IMPORT:
            if role is AccountRole.OPERATOR:
                return _allow()
            return _deny("claims are imported by operators")
        case Action.SESSION_ACCEPT | Action.SESSION_DECLINE:
            if role is not AccountRole.CSO:
                return _deny("only CSOs accept or decline booths")
            if session is None or session.cso_id != principal.subject:
                return _deny("that session is not offered to you", "not_in_session")
            if session.state is not SessionState.RESERVED:
                return _deny(f"session is {session.state}, not awaiting acceptance",
                             "illegal_transition")  # fmt: skip
            return _allow()
        case Action.SESSION_SIGNAL:
            if session is None or not _is_end(principal, session):
                return _deny("you are not an end of that session", "not_in_session")
            if session.state not in SERVING_STATES:
                return _deny(f"session is {session.state}; signal only after the booth is "
                             "assigned", "illegal_transition")  # fmt: skip
            return _allow()
        case Action.SESSION_FOCUS:
            if role is not AccountRole.CSO:
                return _deny("only the CSO of a session focuses it")
            if session is None or session.cso_id != principal.subject:
                return _deny("that session is not yours", "not_in_session")
            if session.state not in IN_CALL:
                return _deny(f"session is {session.state}; focus a booth once it is connected",
                             "illegal_transition")  # fmt: skip
            return _allow()
        case Action.SESSION_END:
            if role is not AccountRole.CSO:
                return _deny("only the CSO of a session ends it")
            if session is None or session.cso_id != principal.subject:
                return _deny("that session is not yours", "not_in_session")
            if session.state is SessionState.RESERVED:
                return _deny("the booth is only offered to you; decline the offer instead",
                             "illegal_transition")  # fmt: skip
            if session.state not in SERVING_STATES:
                return _deny(f"session is {session.state}, not in a call", "illegal_transition")
            return _allow()
        case Action.SESSION_MONITOR | Action.SESSION_STEER:
            if role is not AccountRole.SUPERVISOR:
                return _deny("only supervisors monitor or steer sessions")
            if not in_scope(principal, facts.claim_branch):
                return _deny("that booth is in a branch you do not supervise")
            if session is None:
                return _deny("there is no such live session", "not_in_session")
            if session.state not in SERVING_STATES:
                return _deny(f"session is {session.state}, not in a call", "illegal_transition")
            return _allow()
        case Action.CSO_STEER:
            if role is not AccountRole.SUPERVISOR:
                return _deny("only supervisors pause or resume officers")
            if not in_scope(principal, facts.claim_branch):
                return _deny("that officer is in a branch you do not supervise")
            return _allow()
        case Action.TICKET_DESK:
            # claim_branch: the ticket's branch (or the one it goes to).
            if role is AccountRole.OPERATOR:
                return _allow()
            if role is not AccountRole.SUPERVISOR:
                return _deny("tickets are handled by the branch's desk (supervisor accounts)")
            if not in_scope(principal, facts.claim_branch):
                return _deny(f"branch {facts.claim_branch} is not one you look after")
            return _allow()
        case Action.FLOOR_VIEW:
            if role in (AccountRole.SUPERVISOR, AccountRole.OPERATOR):
                return _allow()
            return _deny("the floor view is for supervisors and operators")
        case Action.RECORDING_WRITE:
            if role is not AccountRole.BOOTH:
                return _deny("a session is recorded by its booth")
            if facts.grant_booth is not None and facts.grant_booth == principal.subject:
                return _allow()  # the recording's grant outlives the session
            return _serving(principal, session, "booth")
        case Action.RECORDING_PLAY:
            if auditor:
                return _allow(Reach.FULL_NIK)
            if supervisor:
                return _allow()
            if role is AccountRole.SUPERVISOR:
                return _deny(f"branch {facts.claim_branch} is not one you supervise")
            return _deny("recordings are played by the branch's supervisors and auditors")
        case Action.RECORDING_LIST:
            if auditor:
                return _allow(Reach.FULL_NIK)
            if supervisor:
                return _allow(Reach.FULL, scope_of(principal))
            if role is AccountRole.SUPERVISOR:
                return _deny(f"branch {facts.claim_branch} is not one you supervise")
            return _deny("recordings are found by supervisors and auditors")
        case Action.LEGAL_HOLD:
            if role is AccountRole.OPERATOR:
                return _allow()
            return _deny("legal holds are placed and released by operators")
    return _deny(f"unknown action {action}")  # pragma: no cover
