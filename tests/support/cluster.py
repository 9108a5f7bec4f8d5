"""A Loket cluster for tests: real `loket serve` processes sharing a real redis-server and a
real PostgreSQL database, each on its own loopback port, killable with SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.asyncio import Redis

from server.adapters.redis.keys import Keys
from server.adapters.redis.leader import current_leader
from server.adapters.sql.wiring import open_accounts
from server.auth.demo import auth_service
from server.principal import AccountRole
from server.settings import Settings
from signaling.messages import Role
from tests.support.live_server import free_port
from tests.support.redis import RedisServer
from tests.support.ws_client import SignalClient

JWT_SECRET = "cluster-test-" + "x" * 32
PASSWORD = "a-long-test-password"


@dataclass
class Node:
    """One `loket serve` process."""

    name: str  # its LOKET_PROCESS_ID
    port: int
    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server.cli", "serve", "--port", str(self.port),
                env=self.env, stdout=out, stderr=out,
            )  # fmt: skip
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            for _ in range(300):
                if self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready; see {self.log_path}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.process = None


@dataclass
class Cluster:
    settings: Settings  # what the nodes share (database, redis, secret, timings)
    redis_server: RedisServer
    redis: Redis
    keys: Keys
    directory: Path
    nodes: dict[str, Node] = field(default_factory=dict)
    _serial: int = 0

    def _env(self, name: str) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "LOKET_DATA_DIR": str(s.data_dir),
            "LOKET_DATABASE_URL": s.database_url or "",
            "LOKET_REDIS_URL": s.redis_url or "",
            "LOKET_REDIS_PREFIX": s.redis_prefix,
            "LOKET_JWT_SECRET": JWT_SECRET,
            "LOKET_PROCESS_ID": name,
            "LOKET_LEADER_LEASE": str(s.leader_lease),
            "LOKET_PRESENCE_TTL": str(s.presence_ttl),
            "LOKET_SNAPSHOT_INTERVAL": str(s.snapshot_interval),
            "LOKET_GRACE_PERIOD": str(s.grace_period),
            "LOKET_RESERVATION_TIMEOUT": str(s.reservation_timeout),
            "LOKET_BROADCAST_INTERVAL": "0.1",
            "LOKET_LOG_LEVEL": "INFO",
            "LOKET_LOG_JSON": "true",
        }

    async def add_node(self, label: str) -> Node:
        self._serial += 1
        name = f"{label}-{self._serial}"
        node = Node(name, free_port(), self._env(name), self.directory / f"{name}.log")
        await node.start()
        self.nodes[label] = node
        return node

    async def leader(self, within: float = 15.0) -> str:
        """The process id holding the floor's lease (waits for one)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            leader = await current_leader(self.redis, self.keys)
            if leader is not None:
                return leader
            await asyncio.sleep(0.05)
        raise TimeoutError("no floor leader")

    def node_named(self, process_id: str) -> tuple[str, Node]:
        for label, node in self.nodes.items():
            if node.name == process_id:
                return label, node
        raise KeyError(process_id)

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes.values()))

    # --- accounts (straight into the shared database) ----------------------------------

    async def add_booths(self, count: int, prefix: str = "booth") -> list[str]:
        """Enrol booths; returns their credentials."""
        engine, store = await open_accounts(self.settings)
        try:
            auth = auth_service(self.settings, store)
            credentials = []
            for i in range(count):
                _, credential = await auth.enrol_booth(
                    "jkt01", f"{prefix} {i}", booth_id=f"{prefix}-{i}"
                )
                credentials.append(credential)
            return credentials
        finally:
            await engine.dispose()

    async def add_user(self, username: str, role: AccountRole, capacity: int = 6) -> None:
        engine, store = await open_accounts(self.settings)
        try:
            auth = auth_service(self.settings, store)
            await auth.add_user(
                username, PASSWORD, role=role, display_name=username.title(), branch="jkt01",
                pools=frozenset({"*"}), capacity=capacity,
            )  # fmt: skip
        finally:
            await engine.dispose()


async def booth_token(node: Node, credential: str) -> str:
    async with httpx.AsyncClient(base_url=node.base_url) as http:
        reply = await http.post("/api/auth/booth", json={"credential": credential})
        reply.raise_for_status()
        return str(reply.json()["access_token"])


async def user_token(node: Node, username: str) -> str:
    async with httpx.AsyncClient(base_url=node.base_url) as http:
        reply = await http.post(
            "/api/auth/login", json={"username": username, "password": PASSWORD}
        )
        reply.raise_for_status()
        return str(reply.json()["access_token"])


async def connect(node: Node, role: Role, token: str, resume: str | None = None) -> SignalClient:
    return await SignalClient.connect(node.ws_url, role, token, resume=resume)


@contextlib.asynccontextmanager
async def running_cluster(
    settings: Settings, redis_server: RedisServer, directory: Path, labels: tuple[str, ...]
) -> AsyncIterator[Cluster]:
    redis = Redis.from_url(redis_server.url)
    cluster = Cluster(settings, redis_server, redis, Keys(settings.redis_prefix), directory)
    try:
        await asyncio.gather(*(cluster.add_node(label) for label in labels))  # side by side
        yield cluster
    finally:
        await cluster.stop()
        await redis.aclose()
