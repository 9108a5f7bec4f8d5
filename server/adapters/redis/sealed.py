"""Python objects through Redis, sealed with an HMAC of the server's secret.

The floor's events, applied log and snapshot hold the core's own dataclasses; pickling
them keeps one definition of that state instead of a second, hand-written schema. Pickle
must never load bytes an attacker wrote, so every blob carries an HMAC-SHA256 keyed from
the JWT secret (which every Loket process shares and Redis never sees), checked before
anything is unpickled: someone who can write to Redis still cannot make a process run
their code, only make it refuse the blob.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import Any

_MAC_BYTES = 32


class SealBroken(Exception):
    """The blob was not written by a Loket process with this secret."""


class Sealer:
    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        self._key = hashlib.sha256(b"loket/redis-seal/v1\0" + raw).digest()

    def seal(self, obj: Any) -> bytes:
        body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        return hmac.new(self._key, body, hashlib.sha256).digest() + body

    def unseal(self, blob: bytes) -> Any:
        mac, body = blob[:_MAC_BYTES], blob[_MAC_BYTES:]
        expected = hmac.new(self._key, body, hashlib.sha256).digest()
        if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise SealBroken("the blob's seal does not match this server's secret")
        return pickle.loads(body)  # authenticated above
