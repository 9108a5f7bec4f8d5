"""The LiveState port in Redis: one hash of sessions, indexes by peer and by claim.

The floor's leader writes sessions inside its fenced commit (leader.py) with the same Lua
as `put`/`delete` here, so the layout is defined once: SESSION_LUA.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from redis.asyncio import Redis

from server.adapters.redis.keys import Keys
from server.ports.live_state import LiveSession
from signaling.session import SessionState

# Lua helpers shared by the scripts that write sessions. `prefix` names the per-peer sets.
SESSION_LUA = """
local function put_session(sessions, claims, prefix, sid, js, booth, cso, claim)
  redis.call('HSET', sessions, sid, js)
  redis.call('SADD', prefix .. ':peer_sessions:booth:' .. booth, sid)
  redis.call('SADD', prefix .. ':peer_sessions:cso:' .. cso, sid)
  if claim ~= '' then redis.call('HSET', claims, claim, sid) end
end
local function delete_session(sessions, claims, prefix, sid)
  local js = redis.call('HGET', sessions, sid)
  if not js then return 0 end
  local s = cjson.decode(js)
  redis.call('HDEL', sessions, sid)
  redis.call('SREM', prefix .. ':peer_sessions:booth:' .. s.booth_id, sid)
  redis.call('SREM', prefix .. ':peer_sessions:cso:' .. s.cso_id, sid)
  if type(s.claim_id) == 'string' and redis.call('HGET', claims, s.claim_id) == sid then
    redis.call('HDEL', claims, s.claim_id)
  end
  return 1
end
"""

_PUT = (
    SESSION_LUA
    + """
put_session(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return 1
"""
)
_DELETE = SESSION_LUA + "return delete_session(KEYS[1], KEYS[2], ARGV[1], ARGV[2])"


def encode_session(session: LiveSession) -> str:
    return json.dumps(asdict(session), separators=(",", ":"))


def decode_session(raw: bytes | str) -> LiveSession:
    data: dict[str, Any] = json.loads(raw)
    return LiveSession(
        session_id=data["session_id"],
        booth_id=data["booth_id"],
        cso_id=data["cso_id"],
        state=SessionState(data["state"]),
        created_at=float(data["created_at"]),
        booth_fingerprints=tuple(data.get("booth_fingerprints") or ()),
        cso_fingerprints=tuple(data.get("cso_fingerprints") or ()),
        claim_id=data.get("claim_id"),
    )


def session_args(session: LiveSession) -> list[str]:
    """put_session's arguments after the keys and prefix."""
    return [
        session.session_id,
        encode_session(session),
        session.booth_id,
        session.cso_id,
        session.claim_id or "",
    ]


class RedisLiveState:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._put = redis.register_script(_PUT)
        self._delete = redis.register_script(_DELETE)

    async def put(self, session: LiveSession) -> None:
        k = self._keys
        await self._put(keys=[k.sessions, k.claims], args=[k.prefix, *session_args(session)])

    async def get(self, session_id: str) -> LiveSession | None:
        raw = await self._redis.hget(self._keys.sessions, session_id)
        return decode_session(raw) if raw is not None else None

    async def delete(self, session_id: str) -> None:
        k = self._keys
        await self._delete(keys=[k.sessions, k.claims], args=[k.prefix, session_id])

    async def of_peer(self, address: str) -> list[LiveSession]:
        ids = sorted(
            m.decode() if isinstance(m, bytes) else m
            for m in await self._redis.smembers(self._keys.peer_sessions(address))
        )
        if not ids:
            return []
        raws = await self._redis.hmget(self._keys.sessions, ids)
        return [decode_session(raw) for raw in raws if raw is not None]

    async def count(self) -> int:
        return int(await self._redis.hlen(self._keys.sessions))

    async def of_claim(self, claim_id: str) -> LiveSession | None:
        sid = await self._redis.hget(self._keys.claims, claim_id)
        if sid is None:
            return None
        return await self.get(sid.decode() if isinstance(sid, bytes) else sid)
