"""Open the Redis side of a cluster from Settings (app.py calls this, nothing else)."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.adapters.redis.floor import ClusterFloor
from server.adapters.redis.keys import Keys
from server.adapters.redis.live_state import RedisLiveState
from server.adapters.redis.router import RedisRouter
from server.adapters.redis.sealed import Sealer
from server.floor.runtime import floor_config
from server.metrics import Metrics
from server.ports.router import Mailbox
from server.settings import Settings


def default_process_id() -> str:
    # Unique per start, so a restarted process never reads its predecessor's inbox.
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass
class Cluster:
    settings: Settings
    redis: Redis
    keys: Keys
    sealer: Sealer
    router: RedisRouter
    live: RedisLiveState
    process_id: str
    secret: str

    def floor(self, metrics: Metrics, runtime_kw: dict[str, Any]) -> ClusterFloor:
        s = self.settings
        floor = ClusterFloor(
            floor_config(s, self.secret),
            self.redis,
            self.keys,
            self.sealer,
            self.router,
            self.live,
            metrics,
            process_id=self.process_id,
            lease_s=s.leader_lease,
            presence_ttl=s.presence_ttl,
            snapshot_interval=s.snapshot_interval,
            events_budget=s.floor_events_budget,
            runtime_kw=runtime_kw,
        )
        floor.on_reset = self.router.reset_sockets
        return floor

    async def close(self) -> None:
        await self.router.stop()
        await self.redis.aclose()


async def open_cluster(
    settings: Settings,
    secret: str,
    *,
    on_replaced: Callable[[Mailbox], None] | None = None,
    on_evicted: Callable[[list[Mailbox]], None] | None = None,
) -> Cluster | None:
    """None without LOKET_REDIS_URL (one process, in-memory floor)."""
    if not settings.redis_url:
        return None
    redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=5.0,  # > the 1 s blocking reads
        socket_connect_timeout=2.0,
        health_check_interval=10,
        # A pooled connection Redis closed (restart, failover) is retried on a fresh one.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    await redis.ping()  # fail at start-up, with the URL's host in the error, not later
    keys = Keys(settings.redis_prefix)
    process_id = settings.process_id or default_process_id()
    router = RedisRouter(
        redis,
        keys,
        process_id,
        presence_ttl=settings.presence_ttl,
        on_replaced=on_replaced,
        on_evicted=on_evicted,
    )
    return Cluster(
        settings,
        redis,
        keys,
        Sealer(secret, settings.previous_secrets),
        router,
        RedisLiveState(redis, keys),
        process_id,
        secret,
    )
