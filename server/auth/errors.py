"""The one error type auth raises; HTTP and websocket layers map it to their own shape."""

from __future__ import annotations


class AuthError(Exception):
    def __init__(
        self, code: str, message: str, *, status: int = 401, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code  # invalid_credentials, token_expired, token_invalid, rate_limited, ...
        self.message = message  # says what to do next
        self.status = status
        self.retry_after = retry_after


def invalid_credentials() -> AuthError:
    # One message for unknown user and wrong password: no account enumeration.
    return AuthError("invalid_credentials", "wrong username or password; check both and try again")
