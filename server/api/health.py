"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.api.errors import error_body

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: records reachable and schema current")
async def readyz(request: Request) -> JSONResponse:
    problems = [str(p) for p in await request.app.state.readiness()]
    status = 200 if not problems else 503
    return JSONResponse({"ready": not problems, "problems": problems}, status_code=status)


def _metrics_token_ok(request: Request) -> bool:
    """True when /metrics is open (no LOKET_METRICS_TOKEN) or the bearer token matches."""
    token = request.app.state.settings.metrics_token
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Constant time over the bytes: the comparison does not tell how much of it matched.
    return hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode())


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if not _metrics_token_ok(request):
        return JSONResponse(
            error_body(
                "unauthenticated",
                "/metrics needs `Authorization: Bearer <LOKET_METRICS_TOKEN>`",
                "Set the scraper's bearer token (Prometheus: `authorization: {credentials: ...}`).",
            ),
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="loket-metrics"'},
        )
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
