"""The kiosk's token refresh, sent again at once when its answer is lost.

The server answers a refresh token presented again within its reuse interval
(LOKET_REFRESH_REUSE_INTERVAL, default 5 s), while the successor is unused, with that same
successor. So a refresh that failed on the network (a reset connection, a timeout: the
server may well have rotated) is safe to send again straight away; sent much later it would
count as reuse and end this login. Three attempts fit in the interval.
"""

from __future__ import annotations

import asyncio

import httpx
import structlog

log = structlog.get_logger("booth.auth")

RETRY_PAUSES = (0.25, 0.5)  # seconds before the second and the third attempt
ATTEMPT_TIMEOUT = 2.0  # seconds: the last attempt starts within 4.75 s of the first


async def post_refresh(http: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    """POST /api/auth/refresh; a network error or a 5xx is retried (twice), anything else
    is the answer. The last network error is raised."""
    for pause in (*RETRY_PAUSES, None):
        try:
            response = await http.post(
                "/api/auth/refresh",
                json={"refresh_token": refresh_token},
                timeout=ATTEMPT_TIMEOUT,
            )
        except httpx.TransportError as exc:
            if pause is None:
                raise
            log.info("refresh_retry", error=str(exc) or type(exc).__name__)
        else:
            if response.status_code < 500 or pause is None:
                return response
            log.info("refresh_retry", status=response.status_code)
        await asyncio.sleep(pause)
    raise AssertionError("unreachable: the last attempt returns or raises")
