"""Time-limited TURN credentials in coturn's REST-API form (`use-auth-secret`).

username = "<expiry unix time>:<peer id>", password = base64(HMAC-SHA1(secret, username)).
coturn recomputes the password from its copy of the secret, so nothing is stored and a
leaked credential dies at `expiry`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TurnCredential:
    username: str
    password: str
    expires_at: int


def turn_credential(secret: bytes, peer_id: str, *, now: float, ttl: int) -> TurnCredential:
    expires_at = int(now) + ttl
    username = f"{expires_at}:{peer_id}"
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode("ascii"), expires_at)


@dataclass(frozen=True, slots=True)
class IceServerSpec:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


def ice_servers_for(
    urls: list[str], peer_id: str, *, secret: bytes | None, now: float, ttl: int
) -> list[IceServerSpec]:
    """STUN urls as-is; TURN urls grouped into one entry with a fresh credential.

    TURN urls are dropped when no secret is configured: a TURN server without
    credentials would only make the browser fail ICE gathering slowly.
    """
    stun = tuple(u for u in urls if u.startswith(("stun:", "stuns:")))
    turn = tuple(u for u in urls if u.startswith(("turn:", "turns:")))
    servers = [IceServerSpec(urls=stun)] if stun else []
    if turn and secret:
        cred = turn_credential(secret, peer_id, now=now, ttl=ttl)
        servers.append(IceServerSpec(urls=turn, username=cred.username, credential=cred.password))
    return servers
