"""FastAPI dependencies: who is calling (Bearer access token) and may they."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.api.errors import error_body
from server.auth.errors import AuthError
from server.auth.service import AuthService
from server.principal import AccountRole, Principal

_bearer = HTTPBearer(auto_error=False, description="access token from /api/auth/login")


def auth_http_error(exc: AuthError) -> HTTPException:
    headers = {"WWW-Authenticate": 'Bearer realm="loket"'} if exc.status == 401 else {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(int(exc.retry_after + 0.999))
    hint = {
        401: "Log in again at /api/auth/login (booths: /api/auth/booth).",
        403: "Ask an operator to check this account.",
        429: "Wait for the time in Retry-After, then try again.",
        503: "Wait for the time in Retry-After, then try again.",
    }.get(exc.status)
    return HTTPException(exc.status, error_body(exc.code, exc.message, hint), headers=headers)


async def current_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise auth_http_error(
            AuthError("unauthenticated", "send `Authorization: Bearer <access token>`")
        )
    auth: AuthService = request.app.state.auth
    try:
        return auth.authenticate(credentials.credentials)
    except AuthError as exc:
        raise auth_http_error(exc) from None


def require_roles(*roles: AccountRole) -> Callable[..., Awaitable[Principal]]:
    allowed = frozenset(roles)

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(str(r) for r in allowed))
            raise HTTPException(
                403,
                error_body(
                    "forbidden",
                    f"a {principal.role} account may not do this (needs: {names})",
                    "Log in with an account that has the right role.",
                ),
            )
        return principal

    return dependency
