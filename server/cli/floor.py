"""`loket floor status|reset`: the region's live floor in Redis, for operators."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from server.cli.common import fail, load_settings

floor_app = typer.Typer(
    help="The live floor a region's servers share in Redis (LOKET_REDIS_URL): its leader, "
    "what waits, what was set aside; and a reset for a format change.",
    no_args_is_help=True,
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _redis_settings() -> Any:
    settings = load_settings()
    if not settings.redis_url:
        raise fail("LOKET_REDIS_URL is not set: one process keeps its floor in memory")
    return settings


async def _status() -> dict[str, Any]:
    from redis.asyncio import Redis

    from server.adapters.redis.keys import FLOOR_GROUP, Keys

    settings = _redis_settings()
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3)
    k = Keys(settings.redis_prefix)
    try:
        leader = await redis.get(k.leader)
        pending: Any = {"pending": 0}
        if await redis.exists(k.events):
            groups = await redis.xinfo_groups(k.events)
            if any(g["name"] in (FLOOR_GROUP, FLOOR_GROUP.encode()) for g in groups):
                pending = await redis.xpending(k.events, FLOOR_GROUP)
        seconds, _ = await redis.time()
        procs: Any = await redis.zrange(k.procs, 0, -1, withscores=True)
        memory = await redis.info("memory")
        return {
            "leader": _text(leader) if leader else None,
            "events_waiting": await redis.xlen(k.events),
            "events_bytes": int(await redis.get(k.events_bytes) or 0),
            "events_pending": pending["pending"],
            "outbox": await redis.xlen(k.outbox),
            "events_quarantined": await redis.xlen(k.quarantine),
            "outbox_quarantined": await redis.xlen(k.outbox_quarantine),
            "applied_log": await redis.xlen(k.log),
            "snapshot_bytes": await redis.strlen(k.snapshot),
            # seconds until each process's presence deadline (negative: lapsed)
            "processes": {_text(p): round(score / 1000 - seconds, 1) for p, score in procs},
            "redis_used_memory": memory.get("used_memory_human"),
        }
    finally:
        await redis.aclose()


@floor_app.command(help="Show the floor's leader, backlog, quarantines and processes (JSON).")
def status() -> None:
    try:
        typer.echo(json.dumps(asyncio.run(_status()), indent=2))
    except OSError as exc:
        raise fail(f"Redis unreachable ({exc}); check LOKET_REDIS_URL") from None


async def _reset() -> int:
    from redis.asyncio import Redis

    settings = _redis_settings()
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{settings.redis_prefix}:*")]
        if keys:
            await redis.delete(*keys)
        return len(keys)
    finally:
        await redis.aclose()


@floor_app.command(
    help="Forget the live floor (queue, sessions, leader state) of this LOKET_REDIS_PREFIX. "
    "For a release whose floor format the running servers cannot read (the README's upgrade "
    "order says when): stop every server first. Records (claims, documents, outcomes, the "
    "audit log) are in the database and untouched; kiosks and consoles reconnect and resume "
    "from their welcome, booths check their participants in again."
)
def reset(
    yes: bool = typer.Option(False, "--yes", help="Really delete the floor's keys."),
) -> None:
    if not yes:
        raise fail("this forgets every queue place and live session: add --yes to go on")
    try:
        deleted = asyncio.run(_reset())
    except OSError as exc:
        raise fail(f"Redis unreachable ({exc}); check LOKET_REDIS_URL") from None
    typer.echo(f"floor reset: {deleted} keys deleted")
