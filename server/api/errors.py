"""One JSON error shape for every HTTP failure: {"error": {code, message, hint, details}}."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


def error_body(code: str, message: str, hint: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "hint": hint, **extra}}


def _missing_headers(errors: Sequence[Any]) -> list[str]:
    """The required headers absent from a request that has nothing else wrong (a 400
    naming the header, e.g. `idempotency_key_required`); [] otherwise."""
    names = [
        str(err["loc"][1])
        for err in errors
        if err.get("type") == "missing" and tuple(err.get("loc", ()))[:1] == ("header",)
    ]
    return names if len(names) == len(errors) else []


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        missing = _missing_headers(exc.errors())
        if missing:
            return JSONResponse(
                error_body(
                    f"{missing[0].lower().replace('-', '_')}_required",
                    f"send the {missing[0]} header",
                    "The headers each operation needs are listed at /docs.",
                ),
                status_code=400,
            )
        details = [
            {"field": ".".join(str(p) for p in err["loc"][1:]) or "(body)", "problem": err["msg"]}
            for err in exc.errors()[:20]
        ]
        return JSONResponse(
            error_body(
                "invalid_request",
                "the request body or parameters are not valid",
                "Fix the fields listed in `details` (see /docs) and send again.",
                details=details,
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict) and "error" in exc.detail:
            body = exc.detail
        else:
            body = error_body(_STATUS_CODES.get(exc.status_code, "error"), str(exc.detail))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
