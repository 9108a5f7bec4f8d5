"""The region's docker-compose.yml and its files say what Loket actually reads.

No Docker here to run it; what can drift is checked instead: every LOKET_* variable the
deployment sets is a setting the server knows (a typo would be silently ignored), Redis
keeps an AOF, and the proxy passes websocket upgrades without stickiness."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _loket_variables(text: str) -> set[str]:
    return set(re.findall(r"\b(LOKET_[A-Z_]+)\b", text))


def test_every_loket_variable_in_the_deployment_is_a_setting() -> None:
    known = {f"LOKET_{name.upper()}" for name in Settings.model_fields}
    for path in ("docker-compose.yml", "deploy/region.env.example"):
        used = _loket_variables((ROOT / path).read_text()) - {"LOKET_PUBLIC_URL"}
        assert used, path
        assert used <= known, f"{path}: unknown settings {sorted(used - known)}"


def test_servers_share_redis_and_postgres_and_start_after_the_schema() -> None:
    services = _compose()["services"]
    env = services["loket"]["environment"]
    assert env["LOKET_REDIS_URL"].startswith("redis://redis:")
    assert env["LOKET_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert services["loket"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["migrate"]["command"] == ["loket", "db", "upgrade"]
    assert services["loket"]["deploy"]["replicas"] >= 2


def test_redis_keeps_an_append_only_file_and_never_evicts() -> None:
    command = " ".join(_compose()["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_the_proxy_upgrades_websockets_round_robin() -> None:
    conf = (ROOT / "deploy/nginx.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade" in conf
    assert "ip_hash" not in conf and "sticky" not in conf.replace("No stickiness", "")
