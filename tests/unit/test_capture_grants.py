"""Capture grants (server/domain/grants.py): signed, bound, expiring; and the access
policy's one rule about them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.access import AccessFacts, Action, SessionFacts, decide
from server.domain.grants import (
    MAX_GRANT_CHARS,
    CaptureGrant,
    GrantError,
    GrantProblem,
    grant_key,
    sign,
    verify,
)
from server.principal import AccountRole, Principal
from signaling.session import SessionState

KEY = grant_key("test-secret-" + "x" * 32)
GRANT = CaptureGrant("booth-1", "claim-1", "ktp", "cap-1", "s-1", 1_000, 2_000)


def _verify(token: str, **kw: object) -> CaptureGrant:
    args: dict[str, object] = {"now": 1_500, "booth_id": "booth-1", "claim_id": "claim-1"}
    args.update(kw)
    return verify(token, KEY, **args)  # type: ignore[arg-type]


def test_a_grant_verifies_for_its_booth_claim_kind_and_capture_until_it_expires() -> None:
    token = sign(GRANT, KEY)
    assert _verify(token, kind="ktp", capture_id="cap-1") == GRANT
    for kw, problem in [
        ({"booth_id": "booth-2"}, GrantProblem.MISMATCH),
        ({"claim_id": "claim-2"}, GrantProblem.MISMATCH),
        ({"kind": "kk"}, GrantProblem.MISMATCH),
        ({"capture_id": "cap-2"}, GrantProblem.MISMATCH),
        ({"now": 2_000}, GrantProblem.EXPIRED),
    ]:
        assert isinstance(kw, dict)
        with pytest.raises(GrantError) as refused:
            _verify(token, **kw)
        assert refused.value.problem is problem
    assert _verify(token, now=9_999, allow_expired=True) == GRANT  # a report may cite it


def test_another_key_or_a_changed_byte_is_not_a_grant() -> None:
    token = sign(GRANT, KEY)
    other = sign(GRANT, grant_key("another-secret-" + "y" * 32))
    payload = token.split(".")[1]
    forged_payload = sign(
        CaptureGrant("booth-1", "claim-1", "ktp", "cap-1", "s-1", 1_000, 9_000), KEY
    ).split(".")[1]
    for bad in [other, token.replace(payload, forged_payload), token + "A", "lcg1..", "x" * 5000]:
        with pytest.raises(GrantError) as refused:
            _verify(bad)
        assert refused.value.problem is GrantProblem.INVALID


@given(st.text(max_size=MAX_GRANT_CHARS + 10))
def test_any_string_is_a_grant_or_a_typed_refusal(text: str) -> None:
    try:
        _verify(text)
    except GrantError as exc:
        assert exc.problem is GrantProblem.INVALID


def test_the_policy_lets_a_granted_booth_upload_after_its_session() -> None:
    booth = Principal("booth-1", AccountRole.BOOTH, "Booth 1", "jkt01")
    cso = Principal("siti", AccountRole.CSO, "Siti", "jkt01")
    ended = AccessFacts(session=None, grant_booth="booth-1")
    assert decide(booth, Action.DOCUMENT_UPLOAD, ended)
    assert not decide(booth, Action.DOCUMENT_UPLOAD, AccessFacts(grant_booth="booth-2"))
    assert not decide(cso, Action.DOCUMENT_UPLOAD, AccessFacts(grant_booth="siti"))
    other = SessionFacts("s-2", "booth-2", "siti", SessionState.ON_HOLD)
    assert decide(booth, Action.DOCUMENT_UPLOAD, AccessFacts(session=other, grant_booth="booth-1"))
    # A grant opens uploads only, nothing else about the claim.
    assert not decide(booth, Action.CLAIM_READ, AccessFacts(grant_booth="booth-1"))
