"""Accounts for tests, created through the running app's AuthService, tokens via HTTP."""

from __future__ import annotations

import httpx

from server.auth.service import AuthService
from server.principal import AccountRole
from tests.support.live_server import LiveServer

PASSWORD = "correct horse battery"


def _auth(server: LiveServer) -> AuthService:
    auth: AuthService = server.app.state.auth
    return auth


async def enrol_booth(server: LiveServer, label: str, branch: str = "jkt01") -> tuple[str, str]:
    return await _auth(server).enrol_booth(branch, label)


async def booth_token(server: LiveServer, label: str, branch: str = "jkt01") -> str:
    _, credential = await enrol_booth(server, label, branch)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        res = await http.post("/api/auth/booth", json={"credential": credential})
        res.raise_for_status()
        return str(res.json()["access_token"])


async def add_user(
    server: LiveServer,
    username: str,
    *,
    role: str = "cso",
    capacity: int = 6,
    pools: frozenset[str] = frozenset({"*"}),
    skills: frozenset[str] = frozenset({"lang:en"}),
    branch: str = "jkt01",
) -> None:
    await _auth(server).add_user(
        username,
        PASSWORD,
        role=AccountRole(role),
        display_name=username.title(),
        branch=branch,
        pools=pools,
        skills=skills,
        capacity=capacity,
    )


async def login(server: LiveServer, username: str, password: str = PASSWORD) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        res = await http.post("/api/auth/login", json={"username": username, "password": password})
        res.raise_for_status()
        body: dict[str, str] = res.json()
        return body


async def user_token(server: LiveServer, username: str, **profile: object) -> str:
    await add_user(server, username, **profile)  # type: ignore[arg-type]
    return (await login(server, username))["access_token"]


async def booth_login(
    server: LiveServer, label: str, branch: str = "jkt01"
) -> tuple[str, dict[str, str]]:
    """Enrol a booth and log it in: (booth id, the whole token response)."""
    booth_id, credential = await enrol_booth(server, label, branch)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        res = await http.post("/api/auth/booth", json={"credential": credential})
        res.raise_for_status()
        body: dict[str, str] = res.json()
        return booth_id, body
