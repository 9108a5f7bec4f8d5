"""Typed protocol errors: one code enum, one exception, one wire shape.

Split as h11 does: every code here is something the *peer* did wrong (or a refusal the
peer should act on), except `internal`, which is ours. The server maps each code to a
websocket close code when the error is fatal for the connection.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    MALFORMED_JSON = "malformed_json"
    TOO_LARGE = "too_large"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    FORBIDDEN_FOR_ROLE = "forbidden_for_role"
    UNAUTHENTICATED = "unauthenticated"
    AUTH_FAILED = "auth_failed"
    NOT_IN_SESSION = "not_in_session"
    PEER_UNAVAILABLE = "peer_unavailable"
    UNKNOWN_SESSION = "unknown_session"
    ILLEGAL_TRANSITION = "illegal_transition"
    RATE_LIMITED = "rate_limited"
    CONFLICT = "conflict"
    CLAIM_NOT_FOUND = "claim_not_found"
    CLAIM_REFUSED = "claim_refused"
    TOO_EARLY = "too_early"  # an appointment's ticket before its check-in window
    TICKET_MISMATCH = "ticket_mismatch"  # not the number called to this booth
    INTERNAL = "internal"


# What the peer should do about each code; sent as `hint` so a console or kiosk log
# tells a human the next step rather than just the failure.
ERROR_HINTS: dict[ErrorCode, str] = {
    ErrorCode.MALFORMED_JSON: "Send one JSON object per websocket text frame.",
    ErrorCode.TOO_LARGE: "Keep each message under the server's max_message_bytes.",
    ErrorCode.INVALID_MESSAGE: "Check the message against `loket schema`.",
    ErrorCode.UNKNOWN_TYPE: "Check the message type against `loket schema`.",
    ErrorCode.UNSUPPORTED_VERSION: "Update the client to the server's protocol version.",
    ErrorCode.FORBIDDEN_FOR_ROLE: "This socket's role may not send that message type.",
    ErrorCode.UNAUTHENTICATED: "Send `hello` with a valid access token first.",
    ErrorCode.AUTH_FAILED: "Log in again (or re-enrol the booth) to get a fresh token.",
    ErrorCode.NOT_IN_SESSION: "Only the two ends of one live session may signal each other.",
    ErrorCode.PEER_UNAVAILABLE: "The other end is reconnecting; negotiate again when it is back.",
    ErrorCode.UNKNOWN_SESSION: "The session has ended or never existed; wait for a new one.",
    ErrorCode.ILLEGAL_TRANSITION: "The session is not in a state that allows this message.",
    ErrorCode.RATE_LIMITED: "Slow down and retry later.",
    ErrorCode.CONFLICT: "The request conflicts with the current state; refresh and retry.",
    ErrorCode.CLAIM_NOT_FOUND: (
        "Check the booking code, or check in as a walk-in with NIK, KPJ number and claim "
        "type: no booking is needed."
    ),
    ErrorCode.CLAIM_REFUSED: "Correct the NIK or KPJ number, or ask a CSO about this claim.",
    ErrorCode.TOO_EARLY: "Come back when the appointment's check-in window opens.",
    ErrorCode.TICKET_MISMATCH: "Type the number on your ticket; this booth called another.",
    ErrorCode.INTERNAL: "Server fault; retry, and report it if it persists.",
}


class ProtocolError(Exception):
    """A message or action was refused. `ref` is the offending message id, if known."""

    def __init__(
        self, code: ErrorCode, message: str, *, ref: str | None = None, fatal: bool = False
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref
        # fatal: the connection cannot continue (bad version, failed auth).
        self.fatal = fatal
