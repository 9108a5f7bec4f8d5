"""Bytes through Redis, sealed: encrypted and authenticated with a key from the region's
shared secret.

What the floor keeps in Redis (its events, the applied log, snapshots, the audit outbox)
holds personal data: a walk-in's check-in carries a NIK, and Redis writes it to its AOF
and replicas. So every blob is AES-256-GCM under a key derived from the secret every
Loket process shares and Redis never sees: someone who can read Redis reads nothing, and
someone who can write to it can only make a process refuse a blob, never feed it one.
(Snapshots are pickles of the core's state: authenticated before anything is unpickled.)

Rotating the secret: give every process the old one in `LOKET_PREVIOUS_SECRETS` while the
new `LOKET_JWT_SECRET` rolls out. Blobs are always sealed with the current key and opened
with whichever key fits, so a snapshot or event written before the rotation is still read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"LS2"  # sealed format 2 (format 1 was an HMAC over a pickle, in clear)
_NONCE = 12


class SealBroken(Exception):
    """The blob was not sealed by a Loket process with this secret (or a previous one)."""


def _key(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(b"loket/redis-seal/v2\0" + raw).digest()


class Sealer:
    def __init__(self, secret: str | bytes, previous: Sequence[str | bytes] = ()) -> None:
        self._current = AESGCM(_key(secret))
        self._all = [self._current, *(AESGCM(_key(p)) for p in previous)]

    def seal(self, body: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return MAGIC + nonce + self._current.encrypt(nonce, body, MAGIC)

    def unseal(self, blob: bytes) -> bytes:
        if not blob.startswith(MAGIC):
            raise SealBroken(
                "not sealed in this version's format (an older Loket wrote it): "
                "see the README's upgrade order"
            )
        nonce, body = blob[len(MAGIC) : len(MAGIC) + _NONCE], blob[len(MAGIC) + _NONCE :]
        for aead in self._all:
            try:
                return aead.decrypt(nonce, body, MAGIC)
            except InvalidTag:
                continue
        raise SealBroken(
            "the blob's seal fits neither this server's secret nor LOKET_PREVIOUS_SECRETS"
        )
