"""A kiosk whose refresh answer is lost on the network keeps its login: it sends the same
refresh token again at once and the server gives it the successor it missed (issue 21,
C11). Real server, real sockets; only the first refresh answer is dropped, after the
server has answered it, as a reset connection would."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from booth_client.client import BoothClient
from booth_client.config import BoothConfig
from tests.support.accounts import enrol_booth
from tests.support.live_server import running_server, server_settings


class LoseRefreshAnswers(httpx.AsyncBaseTransport):
    """Sends every request; drops the answers of the first `count` refreshes."""

    def __init__(self, count: int) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.to_lose = count
        self.refreshes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.url.path == "/api/auth/refresh":
            self.refreshes += 1
            if self.to_lose > 0:
                self.to_lose -= 1
                await response.aread()  # the server rotated and answered...
                await response.aclose()
                raise httpx.ReadError("connection reset", request=request)  # ...in vain
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.parametrize("lost", [1, 2])
async def test_a_kiosk_retries_a_lost_refresh_and_keeps_its_login(
    tmp_path: Path, lost: int
) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        _, credential = await enrol_booth(server, "booth-1")
        config = BoothConfig(server_url=server.base_url, credential=credential)  # type: ignore[arg-type]
        kiosk = BoothClient(config)
        transport = LoseRefreshAnswers(lost)
        async with httpx.AsyncClient(base_url=server.base_url, transport=transport) as http:
            with capture_logs() as logs:
                first = await kiosk._ensure_tokens(http)
                second = await kiosk._ensure_tokens(http, force=True)
        assert transport.refreshes == lost + 1 and transport.to_lose == 0
        assert second.refresh != first.refresh
        events = [e["event"] for e in logs]
        assert events.count("booth_login") == 1, events  # no fall-back to the credential
        assert "refresh_token_reused" not in events and events.count("refresh_retried") == lost
        # What the kiosk holds is the family's live token.
        async with httpx.AsyncClient(base_url=server.base_url) as plain:
            res = await plain.post("/api/auth/refresh", json={"refresh_token": second.refresh})
        assert res.status_code == 200, res.text
