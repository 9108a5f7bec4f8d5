"""Auth endpoints: people log in with a password, booths with their enrolment credential."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from server.api.params import TEXT_PATTERN
from server.auth.deps import auth_http_error, current_principal
from server.auth.errors import AuthError
from server.auth.service import AuthService
from server.auth.tokens import TokenPair
from server.principal import Principal

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    username: Annotated[str, Field(min_length=1, max_length=64, pattern=TEXT_PATTERN)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class BoothLoginRequest(Strict):
    credential: Annotated[str, Field(min_length=1, max_length=512)]


class RefreshRequest(Strict):
    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int = Field(description="seconds until the access token expires")
    subject: str
    role: str
    display_name: str


class Me(BaseModel):
    subject: str
    role: str
    display_name: str
    branch: str
    pools: list[str]
    skills: list[str]
    capacity: int


def _service(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth
    return service


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _response(pair: TokenPair, principal: Principal) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type=pair.token_type,
        expires_in=pair.expires_in,
        subject=principal.subject,
        role=str(principal.role),
        display_name=principal.display_name,
    )


@router.post(
    "/login",
    summary="Log in a CSO, supervisor or operator",
    description="Repeated failures for one name make that name wait (429 with "
    "Retry-After, doubling); an address is limited only at a much higher count, and "
    "booth logins are counted apart. 503 with Retry-After when too many logins are "
    "being checked at once.",
)
async def login(body: LoginRequest, request: Request) -> TokenResponse:
    try:
        pair, principal = await _service(request).login(
            body.username, body.password, _client_ip(request)
        )
    except AuthError as exc:
        raise auth_http_error(exc) from None
    return _response(pair, principal)


@router.post(
    "/booth",
    summary="Log in a booth kiosk with its enrolment credential",
    description="Failed booth logins are limited per address, apart from people's logins.",
)
async def booth_login(body: BoothLoginRequest, request: Request) -> TokenResponse:
    try:
        pair, principal = await _service(request).booth_login(body.credential, _client_ip(request))
    except AuthError as exc:
        raise auth_http_error(exc) from None
    return _response(pair, principal)


@router.post(
    "/refresh",
    summary="Trade a refresh token, once, for a fresh token pair",
    description="Each refresh token works once: the answer carries its successor, which "
    "the client must keep. A client that lost the answer may send the same token again "
    "within LOKET_REFRESH_REUSE_INTERVAL seconds (default 5) and gets the same successor, "
    "as long as that successor is unused. Otherwise presenting a token that was already "
    "used revokes every token of that login (its family) and answers 401 `token_revoked`: "
    "log in again.",
)
async def refresh(body: RefreshRequest, request: Request) -> TokenResponse:
    try:
        pair, principal = await _service(request).refresh(body.refresh_token)
    except AuthError as exc:
        raise auth_http_error(exc) from None
    return _response(pair, principal)


@router.post(
    "/logout",
    status_code=204,
    summary="Log out: revoke the refresh token's login (its whole family)",
    description="Body: the refresh token of this login. Every refresh token of the login "
    "stops working; access tokens already issued live out their few minutes. A Bearer "
    "access token may be sent but is not needed. Idempotent: an expired, used or already "
    "revoked refresh token also answers 204; a token this server did not sign is a 401.",
    responses={204: {"description": "logged out"}},
)
async def logout(body: RefreshRequest, request: Request) -> Response:
    try:
        await _service(request).logout(body.refresh_token)
    except AuthError as exc:
        raise auth_http_error(exc) from None
    return Response(status_code=204)


@router.get("/me", summary="Who this access token belongs to")
async def me(principal: Principal = Depends(current_principal)) -> Me:
    return Me(
        subject=principal.subject,
        role=str(principal.role),
        display_name=principal.display_name,
        branch=principal.branch,
        pools=sorted(principal.pools),
        skills=sorted(principal.skills),
        capacity=principal.capacity,
    )
