"""Capture grants: the server's signed word that a booth may deliver one picture to a claim.

A kiosk asks for a grant when the officer requests a capture, while the session is live
and the booth is its end. The grant then carries that authority past the session: an
upload (or an undeliverable report) that presents it is accepted for that claim even after
the session ended, the kiosk restarted, the server restarted, or another process answers.

A grant is `lcg1.<payload>.<mac>`: the payload is compact JSON (booth, claim, kind,
capture, session, issued, expires; base64url), the MAC is HMAC-SHA256 over `lcg1.` and
the payload with a key derived from the server's JWT secret (`grant_key`), so every
process of a cluster verifies it without shared state. Rotating the JWT secret voids the
grants in flight: their pictures are then reported undeliverable, none is stored wrongly.

Pure: the clock is a parameter; nothing here reads a file or the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from enum import StrEnum

PREFIX = "lcg1"
MAX_GRANT_CHARS = 1024  # a real grant is ~350 characters; parse nothing longer
_FIELDS = ("booth_id", "claim_id", "kind", "capture_id", "session_id")


class GrantProblem(StrEnum):
    INVALID = "grant_invalid"  # not a grant of ours: malformed, forged or another key
    EXPIRED = "grant_expired"
    MISMATCH = "grant_mismatch"  # ours, but for another booth, claim or document kind


class GrantError(Exception):
    """A grant refused; `problem` is the error code the API answers with."""

    def __init__(self, problem: GrantProblem, message: str) -> None:
        super().__init__(message)
        self.problem, self.message = problem, message


@dataclass(frozen=True, slots=True)
class CaptureGrant:
    booth_id: str
    claim_id: str
    kind: str
    capture_id: str
    session_id: str
    issued_at: int  # unix seconds
    expires_at: int


def grant_key(jwt_secret: str) -> bytes:
    """The grant key, derived from the JWT secret (and only usable for grants)."""
    return hmac.new(jwt_secret.encode(), b"loket capture grant v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, f"{PREFIX}.{payload}".encode(), hashlib.sha256).digest())


def sign(grant: CaptureGrant, key: bytes) -> str:
    payload = _b64(json.dumps(asdict(grant), separators=(",", ":"), sort_keys=True).encode())
    return f"{PREFIX}.{payload}.{_mac(key, payload)}"


def _parse(token: str, key: bytes) -> CaptureGrant:
    invalid = GrantError(GrantProblem.INVALID, "the capture grant is not valid")
    if not isinstance(token, str) or len(token) > MAX_GRANT_CHARS or not token.isascii():
        raise invalid
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise invalid
    _, payload, mac = parts
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise invalid
    try:
        fields = json.loads(_unb64(payload))
        grant = CaptureGrant(**fields)
    except (ValueError, TypeError, binascii.Error):
        raise invalid from None
    if not all(isinstance(getattr(grant, f), str) for f in _FIELDS) or not all(
        isinstance(getattr(grant, f), int) for f in ("issued_at", "expires_at")
    ):
        raise invalid
    return grant


def verify(
    token: str,
    key: bytes,
    *,
    now: float,
    booth_id: str,
    claim_id: str,
    kind: str | None = None,
    capture_id: str | None = None,
    allow_expired: bool = False,
) -> CaptureGrant:
    """The grant `token` carries, if it is ours, unexpired and for this booth and claim
    (and kind / capture, when given). Raises GrantError naming the problem.

    `allow_expired`: an undeliverable report may cite an expired grant (the expiry is
    often the very reason); an upload may not.
    """
    grant = _parse(token, key)
    if grant.booth_id != booth_id or grant.claim_id != claim_id:
        raise GrantError(GrantProblem.MISMATCH, "the capture grant is for another booth or claim")
    if kind is not None and grant.kind != kind:
        raise GrantError(
            GrantProblem.MISMATCH, f"the capture grant is for a {grant.kind}, not a {kind}"
        )
    if capture_id is not None and grant.capture_id != capture_id:
        raise GrantError(GrantProblem.MISMATCH, "the capture grant is for another capture")
    if not allow_expired and now >= grant.expires_at:
        raise GrantError(GrantProblem.EXPIRED, "the capture grant has expired")
    return grant
