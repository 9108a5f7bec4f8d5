"""Demo accounts for `loket demo`: one CSO, one supervisor, six booths, fresh secrets."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from server.adapters.sql import migrate
from server.adapters.sql.wiring import open_accounts
from server.auth.ratelimit import LoginThrottle
from server.auth.secrets import load_or_create_jwt_secret
from server.auth.service import AuthService
from server.auth.tokens import TokenIssuer
from server.principal import AccountRole
from server.settings import Settings

DEMO_BRANCH = "demo01"


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str


@dataclass(frozen=True)
class DemoBooth:
    booth_id: str
    credential: str


@dataclass(frozen=True)
class DemoAccounts:
    cso: DemoUser
    supervisor: DemoUser
    booths: tuple[DemoBooth, ...]


def auth_service(settings: Settings, store: object) -> AuthService:
    issuer = TokenIssuer(
        load_or_create_jwt_secret(settings),
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
    )
    return AuthService(store, issuer, LoginThrottle.from_settings(settings), settings)  # type: ignore[arg-type]


async def ensure_demo_accounts(settings: Settings, booths: int = 6) -> DemoAccounts:
    """Create (or reset the secrets of) the demo accounts. Idempotent across runs."""
    await migrate.upgrade(settings)
    engine, store = await open_accounts(settings)
    try:
        auth = auth_service(settings, store)
        people = []
        for username, role, name, skills in (
            ("demo-cso", AccountRole.CSO, "Demo CSO", frozenset({"lang:en"})),
            ("demo-supervisor", AccountRole.SUPERVISOR, "Demo Supervisor", frozenset()),
        ):
            password = secrets.token_urlsafe(12)
            if await store.get_user(username) is None:
                await auth.add_user(
                    username, password, role=role, display_name=name, branch=DEMO_BRANCH,
                    pools=frozenset({"*"}), skills=skills, capacity=6,
                )  # fmt: skip
            else:
                await auth.set_password(username, password)
                await auth.set_disabled(username, False)
            people.append(DemoUser(username, password))
        kiosks = []
        for i in range(1, booths + 1):
            booth_id, credential = await auth.enrol_booth(
                DEMO_BRANCH, f"Demo booth {i}", booth_id=f"demo-booth-{i}"
            )
            kiosks.append(DemoBooth(booth_id, credential))
        return DemoAccounts(cso=people[0], supervisor=people[1], booths=tuple(kiosks))
    finally:
        await engine.dispose()
